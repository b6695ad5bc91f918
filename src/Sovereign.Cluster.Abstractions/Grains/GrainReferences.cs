using System.Collections.Concurrent;

namespace Sovereign.Cluster.Grains;

/// <summary>
/// Grain references of one interface, kept by key. Orleans' <see cref="IGrainFactory.GetGrain{TGrainInterface}(string, string)"/>
/// reads the interface's attributes by reflection on every call (about 4% of a governed request's CPU, three calls a
/// request); a reference is immutable and safe to share, so the request path keeps them.
/// </summary>
public sealed class GrainReferences<TGrain>(IGrainFactory grains) where TGrain : IGrainWithStringKey
{
    // Bounds the cache; an overflowing cache starts again empty rather than tracking recency per request.
    private const int MaxReferences = 100_000;

    private readonly ConcurrentDictionary<string, TGrain> _references = new(StringComparer.Ordinal);

    /// <summary>The grain with this key, as <see cref="IGrainFactory.GetGrain{TGrainInterface}(string, string)"/> gives it.</summary>
    public TGrain Get(string key)
    {
        if (_references.TryGetValue(key, out var reference))
        {
            return reference;
        }

        if (_references.Count >= MaxReferences)
        {
            _references.Clear();
        }

        return _references.GetOrAdd(key, grains.GetGrain<TGrain>(key));
    }
}
