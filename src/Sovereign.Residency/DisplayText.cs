using System.Globalization;
using System.Text;

namespace Sovereign.Residency;

/// <summary>
/// Text that came from outside (a file an auditor was handed, a database row, a server's answer) made safe to show in
/// a sentence a person reads on a terminal or in a log: every character that would act instead of show is written as
/// its <c>\uXXXX</c> escape, so the reader sees what was there and nothing else happens.
/// </summary>
/// <remarks>
/// A terminal obeys an ESC sequence it is sent (<c>ESC[8m</c> hides the lines that follow, <c>ESC[2J</c> clears the
/// screen, OSC 52 writes the clipboard, OSC 8 makes a link), a line break or a carriage return starts a line the
/// reader takes for the program's own, and a bidirectional override shows text in another order. Letters of every
/// script, combining marks and emoji are kept as they are.
/// </remarks>
public static class DisplayText
{
    /// <summary>
    /// Whether <paramref name="c"/> acts instead of showing: a control character (C0 with tab, line feed and carriage
    /// return, DEL, C1), a bidirectional embedding, override or isolate (U+202A-U+202E, U+2066-U+2069), a Unicode line or
    /// paragraph separator (U+2028, U+2029), or half of a surrogate pair (a whole pair is not asked about).
    /// </summary>
    public static bool Acts(char c) =>
        char.IsControl(c) || char.IsSurrogate(c) || c is (>= '\u202A' and <= '\u202E') or (>= '\u2066' and <= '\u2069') or '\u2028' or '\u2029';

    /// <summary>
    /// <paramref name="value"/> with every character that acts (<see cref="Acts"/>; a surrogate only when it is not
    /// half of a pair) written as <c>\uXXXX</c>, and <paramref name="keep"/>'s characters kept as they are (a stream of
    /// text keeps its line breaks). The same string when nothing needs escaping.
    /// </summary>
    public static string Escaped(string value, string keep = "")
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(keep);
        var first = FirstActing(value, keep);
        if (first < 0)
        {
            return value;
        }

        var shown = new StringBuilder(value.Length + 16).Append(value, 0, first);
        for (var i = first; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                shown.Append(c).Append(value[++i]);
            }
            else if (Acts(c) && keep.IndexOf(c, StringComparison.Ordinal) < 0)
            {
                shown.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
            }
            else
            {
                shown.Append(c);
            }
        }

        return shown.ToString();
    }

    /// <summary>
    /// As <see cref="Escaped"/>, cut to at most <paramref name="maxLength"/> characters (never inside a surrogate pair)
    /// followed by <c>…</c> when it was longer: a value a file holds may be megabytes long.
    /// </summary>
    public static string Shortened(string value, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxLength);

        // Only the first maxLength characters of a longer value can be shown, escaped or not.
        var shown = Escaped(Cut(value, maxLength));
        return shown.Length <= maxLength && value.Length <= maxLength ? shown : Cut(shown, maxLength) + "…";
    }

    private static string Cut(string value, int length) =>
        value.Length <= length ? value : value[..(char.IsHighSurrogate(value[length - 1]) ? length - 1 : length)];

    private static int FirstActing(string value, string keep)
    {
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
            }
            else if (Acts(c) && keep.IndexOf(c, StringComparison.Ordinal) < 0)
            {
                return i;
            }
        }

        return -1;
    }
}
