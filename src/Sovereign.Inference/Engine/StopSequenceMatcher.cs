using System.Text;

namespace Sovereign.Inference.Engine;

/// <summary>
/// Finds stop strings in streamed text, across token boundaries. Text that could still turn out to be the start of
/// a stop string is held back until it either completes a match (and is dropped) or cannot (and is released).
/// </summary>
/// <remarks>
/// With exempting markers (the opening of a tool call in the model's syntax), stop strings end text only before the
/// first marker: once one is written, what follows is a call, which a stop string matched inside cut into markup
/// returned as content. A stop string that matches where a marker may still be completing is held until it is known.
/// </remarks>
internal sealed class StopSequenceMatcher
{
    private readonly string[] _stops;
    private readonly string[] _markers;
    private readonly int _tailLength;
    private readonly StringBuilder _pending = new();

    /// <summary>The last characters released, where a marker may have begun.</summary>
    private string _tail = "";

    public StopSequenceMatcher(IReadOnlyList<string> stops, IReadOnlyList<string>? exemptFrom = null)
    {
        _stops = stops.Where(s => s.Length > 0).Distinct(StringComparer.Ordinal).ToArray();
        _markers = _stops.Length == 0 ? [] : (exemptFrom ?? []).Where(m => m.Length > 0).Distinct(StringComparer.Ordinal).ToArray();
        _tailLength = _markers.Length == 0 ? 0 : _markers.Max(m => m.Length) - 1;
    }

    /// <summary>Whether a stop string has matched; once true, further text is ignored.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Whether an exempting marker was written: from there on no stop string is matched.</summary>
    public bool Exempt { get; private set; }

    /// <summary>Adds decoded text and returns the part that is safe to send.</summary>
    public string Append(string text)
    {
        if (Stopped || text.Length == 0)
        {
            return string.Empty;
        }

        if (_stops.Length == 0 || Exempt)
        {
            return text;
        }

        _pending.Append(text);
        var buffer = _pending.ToString();
        var cut = FirstStop(buffer);
        if (_markers.Length > 0)
        {
            // Where a marker starts, relative to the buffer (negative: it began in text already released).
            var seen = _tail + buffer;
            if (FirstMarker(seen) - _tail.Length is { } marker && (cut < 0 || marker <= cut))
            {
                Exempt = true;
                return Release(buffer, buffer.Length);
            }

            if (cut >= 0 && PartialMarkerAt(seen) - _tail.Length is { } partial && partial <= cut)
            {
                // The stop may lie inside a marker still being written: hold from where it would start.
                return Release(buffer, Math.Max(partial, 0));
            }
        }

        if (cut >= 0)
        {
            Stopped = true;
            _pending.Clear();
            return buffer[..cut];
        }

        return Release(buffer, buffer.Length - LongestSuffixThatStartsAStop(buffer));
    }

    /// <summary>Releases any held-back text at the end of generation (it did not become a stop string).</summary>
    public string Flush()
    {
        if (Stopped)
        {
            return string.Empty;
        }

        var rest = _pending.ToString();
        _pending.Clear();
        if (!Exempt && FirstStop(rest) is var cut and >= 0)
        {
            // Held for a marker that never came: the stop string ends the text after all.
            Stopped = true;
            return rest[..cut];
        }

        return rest;
    }

    /// <summary>Sends <paramref name="buffer"/> up to <paramref name="end"/> and holds the rest.</summary>
    private string Release(string buffer, int end)
    {
        var release = buffer[..end];
        _pending.Clear().Append(buffer, end, buffer.Length - end);
        if (_tailLength > 0 && release.Length > 0)
        {
            var seen = _tail + release;
            _tail = seen.Length <= _tailLength ? seen : seen[^_tailLength..];
        }

        return release;
    }

    private int FirstStop(string buffer)
    {
        var cut = -1;
        foreach (var stop in _stops)
        {
            var at = buffer.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut))
            {
                cut = at;
            }
        }

        return cut;
    }

    /// <summary>Where the first whole marker starts in <paramref name="text"/>, else null.</summary>
    private int? FirstMarker(string text)
    {
        int? first = null;
        foreach (var marker in _markers)
        {
            var at = text.IndexOf(marker, StringComparison.Ordinal);
            if (at >= 0 && (first is null || at < first))
            {
                first = at;
            }
        }

        return first;
    }

    /// <summary>Where the earliest suffix of <paramref name="text"/> that is a proper prefix of a marker starts, else null.</summary>
    private int? PartialMarkerAt(string text)
    {
        int? at = null;
        foreach (var marker in _markers)
        {
            for (var n = Math.Min(marker.Length - 1, text.Length); n > 0; n--)
            {
                if (text.AsSpan(text.Length - n).SequenceEqual(marker.AsSpan(0, n)))
                {
                    at = at is null ? text.Length - n : Math.Min(at.Value, text.Length - n);
                    break;
                }
            }
        }

        return at;
    }

    private int LongestSuffixThatStartsAStop(string buffer)
    {
        var longest = 0;
        foreach (var stop in _stops)
        {
            var max = Math.Min(stop.Length - 1, buffer.Length);
            for (var n = max; n > longest; n--)
            {
                if (buffer.AsSpan(buffer.Length - n).SequenceEqual(stop.AsSpan(0, n)))
                {
                    longest = n;
                    break;
                }
            }
        }

        return longest;
    }
}
