using System.Text;

namespace Sovereign.Inference.Engine;

/// <summary>
/// Finds stop strings in streamed text, across token boundaries. Text that could still turn out to be the start of
/// a stop string is held back until it either completes a match (and is dropped) or cannot (and is released).
/// </summary>
internal sealed class StopSequenceMatcher
{
    private readonly string[] _stops;
    private readonly StringBuilder _pending = new();

    public StopSequenceMatcher(IReadOnlyList<string> stops)
    {
        _stops = stops.Where(s => s.Length > 0).Distinct(StringComparer.Ordinal).ToArray();
    }

    /// <summary>Whether a stop string has matched; once true, further text is ignored.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds decoded text and returns the part that is safe to send.</summary>
    public string Append(string text)
    {
        if (Stopped || text.Length == 0)
        {
            return string.Empty;
        }

        if (_stops.Length == 0)
        {
            return text;
        }

        _pending.Append(text);
        var buffer = _pending.ToString();

        var cut = -1;
        foreach (var stop in _stops)
        {
            var at = buffer.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (cut < 0 || at < cut))
            {
                cut = at;
            }
        }

        if (cut >= 0)
        {
            Stopped = true;
            _pending.Clear();
            return buffer[..cut];
        }

        var hold = LongestSuffixThatStartsAStop(buffer);
        var release = buffer[..^hold];
        _pending.Clear().Append(buffer, buffer.Length - hold, hold);
        return release;
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
        return rest;
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
