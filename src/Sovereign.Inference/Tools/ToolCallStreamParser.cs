using System.Text;

namespace Sovereign.Inference.Tools;

/// <summary>What the stream parser found in newly generated text: content to pass on, or a complete tool call.</summary>
public readonly record struct ToolStreamEvent(string? Content, ParsedToolCall? Call);

/// <summary>
/// Reads generated text as it streams and separates content from tool calls, holding back only text that may still
/// turn out to be part of a call: for Hermes, a possible <c>&lt;tool_call&gt;</c> prefix and an open block; for the
/// JSON formats, output that starts like a call (it is parsed when generation ends).
/// </summary>
public sealed class ToolCallStreamParser(ToolCallFormat format)
{
    private readonly StringBuilder _pending = new();
    private bool _inCall;
    private bool _decided;
    private bool _buffering;

    /// <summary>Adds generated text; returns what can be passed on now.</summary>
    public IReadOnlyList<ToolStreamEvent> Push(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        _pending.Append(text);
        return format == ToolCallFormat.Hermes ? DrainHermes(final: false) : DrainJson(final: false);
    }

    /// <summary>Generation ended: everything still held back, as content or calls.</summary>
    public IReadOnlyList<ToolStreamEvent> Finish() => format == ToolCallFormat.Hermes ? DrainHermes(final: true) : DrainJson(final: true);

    private List<ToolStreamEvent> DrainHermes(bool final)
    {
        var events = new List<ToolStreamEvent>();
        while (_pending.Length > 0)
        {
            var text = _pending.ToString();
            if (!_inCall)
            {
                var open = text.IndexOf(ToolCallSyntax.HermesOpen, StringComparison.Ordinal);
                if (open < 0)
                {
                    // Keep a tail that could be the start of "<tool_call>".
                    var keep = final ? 0 : PrefixOverlap(text, ToolCallSyntax.HermesOpen);
                    AddContent(events, text[..^keep]);
                    _pending.Remove(0, text.Length - keep);
                    break;
                }

                AddContent(events, text[..open]);
                _pending.Remove(0, open);
                _inCall = true;
                continue;
            }

            var close = text.IndexOf(ToolCallSyntax.HermesClose, StringComparison.Ordinal);
            if (close < 0 && !final)
            {
                break;
            }

            var block = close < 0 ? text : text[..(close + ToolCallSyntax.HermesClose.Length)];
            var (content, calls) = ToolCallSyntax.Parse(ToolCallFormat.Hermes, block);
            if (calls.Count == 1)
            {
                events.Add(new ToolStreamEvent(null, calls[0]));
            }
            else
            {
                AddContent(events, content);
            }

            _pending.Remove(0, block.Length);
            _inCall = false;
        }

        return events;
    }

    private List<ToolStreamEvent> DrainJson(bool final)
    {
        var events = new List<ToolStreamEvent>();
        var text = _pending.ToString();
        if (!_decided)
        {
            var trimmed = text.TrimStart();
            var marker = format == ToolCallFormat.Mistral ? ToolCallSyntax.MistralMarker : ToolCallSyntax.PythonTag;
            var opener = format == ToolCallFormat.Mistral ? '[' : '{';
            if (trimmed.Length == 0 || (marker.StartsWith(trimmed, StringComparison.Ordinal) && !final))
            {
                return events; // not enough text to tell yet
            }

            _decided = true;
            _buffering = trimmed[0] == opener || trimmed.StartsWith(marker, StringComparison.Ordinal);
        }

        if (!_buffering)
        {
            AddContent(events, text);
            _pending.Clear();
            return events;
        }

        if (final)
        {
            if (ToolCallSyntax.TryParseJsonCalls(format, text, out var calls))
            {
                events.AddRange(calls.Select(c => new ToolStreamEvent(null, c)));
            }
            else
            {
                AddContent(events, text);
            }

            _pending.Clear();
        }

        return events;
    }

    private static void AddContent(List<ToolStreamEvent> events, string text)
    {
        if (text.Length > 0)
        {
            events.Add(new ToolStreamEvent(text, null));
        }
    }

    /// <summary>Length of the longest suffix of <paramref name="text"/> that is a proper prefix of <paramref name="marker"/>.</summary>
    private static int PrefixOverlap(string text, string marker)
    {
        for (var length = Math.Min(marker.Length - 1, text.Length); length > 0; length--)
        {
            if (string.CompareOrdinal(text, text.Length - length, marker, 0, length) == 0)
            {
                return length;
            }
        }

        return 0;
    }
}
