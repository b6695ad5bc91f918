using System.Text.RegularExpressions;

namespace Sovereign.Languages;

/// <summary>
/// Hindi and Marathi, which Lingua confuses at sentence length and which have no profile in the tuning corpus, told
/// apart by their function words. A marker is evidence, not proof, so the count is compared (markers of the first
/// minus markers of the second). Latin- and Cyrillic-script neighbours are decided by <see cref="LanguageProfiles"/>.
/// </summary>
internal sealed partial class CloseLanguagePair
{
    private readonly HashSet<string> _first;
    private readonly HashSet<string> _second;
    private readonly (Regex Pattern, int Sign)[] _phrases;

    private CloseLanguagePair(string first, string second, string firstMarkers, string secondMarkers, string? withoutMarkers,
        params (Regex Pattern, int Sign)[] phrases)
    {
        First = first;
        Second = second;
        WithoutMarkers = withoutMarkers;
        _first = new(firstMarkers.Split(' ', StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);
        _second = new(secondMarkers.Split(' ', StringSplitOptions.RemoveEmptyEntries), StringComparer.Ordinal);
        _phrases = phrases;
    }

    /// <summary>Marathi against Hindi function words (आहे/है, आणि/और, मध्ये/में, नाही/नहीं, ...).</summary>
    public static CloseLanguagePair MarathiHindi { get; } = new(
        "mr", "hi",
        "आहे आहेत आणि किंवा मध्ये नाही नये असेल असलेल्या त्याच्या त्याला त्यांच्या करण्याचा करण्याची होईल कोणत्याही हा " +
        "पाहिजे त्यांना त्यास त्याची त्याचे",
        "है हैं और के में से को नहीं लिए किसी भी होगा होगी था थी थे एवं तथा अपने उसके इस",
        withoutMarkers: null);

    /// <summary>The pair's first language (positive marker balance).</summary>
    public string First { get; }

    /// <summary>The pair's second language (negative marker balance).</summary>
    public string Second { get; }

    /// <summary>The language reported when the text has no marker of either, whatever Lingua says; null to follow
    /// Lingua.</summary>
    public string? WithoutMarkers { get; }

    /// <summary>Markers of the first language minus markers of the second.</summary>
    public int Balance(string text)
    {
        var lower = text.ToLowerInvariant();
        var balance = 0;
        foreach (var token in Word().EnumerateMatches(lower))
        {
            var word = lower.Substring(token.Index, token.Length);
            if (_first.Contains(word))
            {
                balance++;
            }
            else if (_second.Contains(word))
            {
                balance--;
            }
        }

        foreach (var (pattern, sign) in _phrases)
        {
            balance += sign * pattern.Count(lower);
        }

        return balance;
    }

    // Letters, combining marks (Devanagari vowel signs) and inner hyphens.
    [GeneratedRegex(@"[\p{L}\p{M}]+(?:-[\p{L}\p{M}]+)*")]
    private static partial Regex Word();
}
