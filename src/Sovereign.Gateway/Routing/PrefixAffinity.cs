using System.Collections.Concurrent;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Sovereign.Gateway.Pipeline;

namespace Sovereign.Gateway.Routing;

/// <summary>
/// Remembers which replica last served a long prompt prefix (a system prompt, an earlier turn), so the router can send
/// the next request with that prefix where its KV cells are likely still cached. Keys are hashes of the leading text,
/// never the text; the map is bounded and forgets the oldest half when full. Each gateway keeps its own (a hint, not
/// a guarantee: a miss costs one prefill).
/// </summary>
public sealed class PrefixAffinity
{
    /// <summary>Shorter prompts are prefilled fast anyway; affinity is not worth steering for them.</summary>
    public const int MinimumPrefixChars = 256;

    /// <summary>How much leading text the key covers.</summary>
    public const int PrefixChars = 2048;

    private const int Capacity = 65_536;
    private readonly ConcurrentDictionary<ulong, (string Node, long Stamp)> _lastNode = new();
    private long _clock;

    /// <summary>
    /// The key of a generation's prompt prefix for <paramref name="tenant"/>, or null when the prompt is too short to
    /// matter. Per tenant, as the engines' prefix caches are (<see cref="Pipeline.PrefixCachePartition"/>): another
    /// tenant's requests with the same prefix find nothing cached, and would only move the prefix's node back and forth.
    /// </summary>
    internal static ulong? KeyOf(Workload work, string tenant)
    {
        if (work is not GenerationWorkload generation)
        {
            return null;
        }

        var text = new StringBuilder();
        if (generation.Turns is { } turns)
        {
            // Only the leading PrefixChars are copied, however long a turn is: this runs on every request.
            foreach (var turn in turns)
            {
                text.Append(turn.Role).Append('\u001f');
                text.Append(turn.Content, 0, Math.Min(turn.Content.Length, Math.Max(0, PrefixChars - text.Length))).Append('\u001e');
                if (text.Length >= PrefixChars)
                {
                    break;
                }
            }
        }
        else if (generation.Prompt is { ValueKind: System.Text.Json.JsonValueKind.String } prompt)
        {
            var value = prompt.GetString()!;
            text.Append(value, 0, Math.Min(value.Length, PrefixChars));
        }

        if (text.Length < MinimumPrefixChars)
        {
            return null;
        }

        var prefix = text.ToString(0, Math.Min(text.Length, PrefixChars));
        return BinaryPrimitives.ReadUInt64LittleEndian(SHA256.HashData(Encoding.UTF8.GetBytes(tenant + '\u001d' + prefix)));
    }

    /// <summary>The replica that last served this prefix, if remembered.</summary>
    public string? LastNodeOf(ulong? key) => key is { } k && _lastNode.TryGetValue(k, out var entry) ? entry.Node : null;

    /// <summary>Notes that <paramref name="nodeId"/> now serves this prefix.</summary>
    public void Remember(ulong? key, string nodeId)
    {
        if (key is not { } k)
        {
            return;
        }

        _lastNode[k] = (nodeId, Interlocked.Increment(ref _clock));
        if (_lastNode.Count > Capacity)
        {
            // Forget the older half; rare (once per Capacity / 2 new prefixes), so a scan is fine.
            var cut = _lastNode.Values.Select(v => v.Stamp).Order().ElementAt(_lastNode.Count / 2);
            foreach (var (oldKey, value) in _lastNode)
            {
                if (value.Stamp < cut)
                {
                    _lastNode.TryRemove(oldKey, out _);
                }
            }
        }
    }
}
