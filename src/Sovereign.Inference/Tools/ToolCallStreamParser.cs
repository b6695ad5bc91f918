using System.Text;
using System.Text.RegularExpressions;

namespace Sovereign.Inference.Tools;

/// <summary>
/// What the stream parser found in newly generated text: content to pass on; the start of a call (its name) followed
/// by fragments of its arguments; or a call read whole (with its raw text, for when the caller refuses the call).
/// </summary>
public readonly record struct ToolStreamEvent(string? Content, ParsedToolCall? Call = null, string? CallStart = null, string? ArgumentsDelta = null);

/// <summary>
/// Reads generated text as it streams and separates content from tool calls, holding back only text that may still
/// turn out to be part of a call. A Hermes call whose head (<c>&lt;tool_call&gt;{"name": "f", "arguments": </c>)
/// names an accepted function is streamed as it is generated: its start, then its arguments in fragments without
/// insignificant whitespace. Other calls, and the JSON formats (decided by the first character, parsed when
/// generation ends), come out whole.
/// </summary>
public sealed partial class ToolCallStreamParser(ToolCallFormat format, Func<string, bool>? accepts = null)
{
    private readonly StringBuilder _pending = new();
    private readonly Func<string, bool> _accepts = accepts ?? (_ => true);
    private bool _inCall;
    private bool _decided;
    private bool _buffering;

    // An accepted Hermes call being streamed: where its arguments are read up to, and the JSON scanner's state.
    private bool _streaming;
    private int _scanned;
    private int _depth;
    private bool _inString;
    private bool _escaped;
    private bool _argumentsDone;

    [GeneratedRegex("""^<tool_call>\s*\{\s*"name"\s*:\s*"([a-zA-Z0-9_-]{1,64})"\s*,\s*"arguments"\s*:\s*(?=\{)""")]
    private static partial Regex HermesHead();

    /// <summary>Adds generated text; returns what can be passed on now.</summary>
    public IReadOnlyList<ToolStreamEvent> Push(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        _pending.Append(text);
        return format == ToolCallFormat.Hermes ? DrainHermes(final: false) : DrainJson(final: false);
    }

    /// <summary>
    /// Generation ended: everything still held back, as content or calls. When it was cut by the token limit
    /// (<paramref name="truncated"/>), a call left unfinished is passed on as far as it got (its start and arguments'
    /// prefix, once its name is complete and accepted) and never as content: the syntax's markup is not an answer.
    /// </summary>
    public IReadOnlyList<ToolStreamEvent> Finish(bool truncated = false)
    {
        _truncated = truncated;
        return format == ToolCallFormat.Hermes ? DrainHermes(final: true) : DrainJson(final: true);
    }

    private bool _truncated;

    /// <summary>The events of a call cut short: its start and its arguments so far, when its name is complete and accepted.</summary>
    private void AddCutCall(List<ToolStreamEvent> events, string text)
    {
        if (ToolCallSyntax.ParseTruncated(format, text) is { CutName: { } name } cut && _accepts(name))
        {
            events.Add(new ToolStreamEvent(null, CallStart: name));
            if (cut.CutArguments.Length > 0)
            {
                events.Add(new ToolStreamEvent(null, ArgumentsDelta: cut.CutArguments));
            }
        }
    }

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
                    // Keep a tail that could be the start of "<tool_call>" (dropped when the cut came there).
                    var overlap = PrefixOverlap(text, ToolCallSyntax.HermesOpen);
                    var keep = final ? 0 : overlap;
                    AddContent(events, text[..^(final && _truncated ? overlap : keep)]);
                    _pending.Remove(0, text.Length - keep);
                    break;
                }

                AddContent(events, text[..open]);
                _pending.Remove(0, open);
                _inCall = true;
                continue;
            }

            if (!_streaming && HermesHead().Match(text) is { Success: true } head && _accepts(head.Groups[1].Value))
            {
                _streaming = true;
                _scanned = head.Length;
                events.Add(new ToolStreamEvent(null, CallStart: head.Groups[1].Value));
            }

            if (_streaming)
            {
                ScanArguments(text, events);
            }

            var close = text.IndexOf(ToolCallSyntax.HermesClose, StringComparison.Ordinal);
            if (close < 0 && !final)
            {
                break;
            }

            var block = close < 0 ? text : text[..(close + ToolCallSyntax.HermesClose.Length)];
            if (close < 0 && _truncated)
            {
                // Cut inside the call: a streamed call has gone out as far as it got; another goes out now, as far.
                if (!_streaming)
                {
                    AddCutCall(events, block);
                }
            }
            else if (!_streaming)
            {
                var (content, calls) = ToolCallSyntax.Parse(ToolCallFormat.Hermes, block);
                events.Add(calls.Count == 1 ? new ToolStreamEvent(block, calls[0]) : new ToolStreamEvent(content));
            }

            _pending.Remove(0, block.Length);
            _inCall = _streaming = _argumentsDone = _inString = _escaped = false;
            _depth = _scanned = 0;
        }

        return events;
    }

    /// <summary>Passes on the arguments' new characters, outside strings without whitespace, up to the value's end.</summary>
    private void ScanArguments(string text, List<ToolStreamEvent> events)
    {
        var delta = new StringBuilder();
        for (; _scanned < text.Length && !_argumentsDone; _scanned++)
        {
            var c = text[_scanned];
            if (_inString)
            {
                if (_escaped)
                {
                    _escaped = false;
                }
                else if (c == '\\')
                {
                    _escaped = true;
                }
                else if (c == '"')
                {
                    _inString = false;
                }

                delta.Append(c);
                continue;
            }

            if (char.IsWhiteSpace(c))
            {
                continue;
            }

            delta.Append(c);
            switch (c)
            {
                case '"': _inString = true; break;
                case '{' or '[': _depth++; break;
                case '}' or ']': _argumentsDone = --_depth == 0; break;
            }
        }

        if (delta.Length > 0)
        {
            events.Add(new ToolStreamEvent(null, ArgumentsDelta: delta.ToString()));
        }
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

            if (final && _truncated && marker.StartsWith(trimmed, StringComparison.Ordinal))
            {
                _pending.Clear();
                return events; // cut inside the call's marker
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
            else if (_truncated)
            {
                AddCutCall(events, text);
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
            events.Add(new ToolStreamEvent(text));
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
