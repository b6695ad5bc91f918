using System.Text.RegularExpressions;

namespace Sovereign.Languages;

/// <summary>
/// Maltese, which Lingua lacks (it reports German, Italian or Swedish for it). Maltese writes ħ, ġ and ċ, which no
/// other covered language uses, and ż, which Polish shares; its article is hyphenated to the noun and assimilates
/// (il-, tal-, fid-, ix-); and it has a small set of frequent function words (għal, minn, huwa, jew, kull, ...).
/// </summary>
internal static partial class MalteseHeuristic
{
    /// <summary>Evidence at or above which a Latin-script text is Maltese (with a distinctive letter or two articles).</summary>
    public const int DecisiveScore = 4;

    /// <summary>Evidence at or above which a text is too Maltese-like to trust Lingua's (Maltese-less) answer.</summary>
    public const int SuspiciousScore = 2;

    private static readonly HashSet<string> FunctionWords = new(StringComparer.Ordinal)
    {
        "għal", "minn", "huwa", "hija", "jew", "kull", "għandu", "għandhom", "biex", "bħala", "lejn", "bejn",
        "mingħajr", "wkoll", "ukoll", "ebda", "kollha", "mhux", "hemm", "jkun", "ikun", "ta'", "ma'", "dwar", "fejn",
        "xejn", "lil", "jista'", "tista'", "għax", "imma", "iżda", "dawk", "huma", "aħna", "għandha", "tkun", "jkunu",
    };

    /// <summary>Scores the Maltese evidence in a text.</summary>
    public static (int Score, bool Decisive) Evaluate(string text)
    {
        var lower = text.ToLowerInvariant().Replace('’', '\'');
        int letters = 0, zeds = 0;
        var polish = false;
        foreach (var c in lower)
        {
            switch (c)
            {
                case 'ħ' or 'ġ' or 'ċ':
                    letters++;
                    break;
                case 'ż':
                    zeds++;
                    break;
                case 'ą' or 'ę' or 'ł' or 'ś' or 'ź' or 'ń' or 'ć':
                    polish = true;
                    break;
            }
        }

        int articles = 0, words = 0;
        foreach (var token in Token().EnumerateMatches(lower))
        {
            var word = lower.AsSpan(token.Index, token.Length);
            if (Article().IsMatch(word))
            {
                articles++;
            }
            else if (FunctionWords.GetAlternateLookup<ReadOnlySpan<char>>().Contains(word))
            {
                words++;
            }
        }

        // ż alone is Polish evidence as much as Maltese, so it counts only where no Polish-only letter appears.
        var score = Math.Min(letters, 3) * 2 + (polish ? 0 : Math.Min(zeds, 2)) + Math.Min(articles, 3) * 2 + Math.Min(words, 4);
        var decisive = score >= DecisiveScore && (letters > 0 || articles >= 2);
        return (score, decisive);
    }

    [GeneratedRegex(@"[\p{L}]+(?:['\-][\p{L}]*)?")]
    private static partial Regex Token();

    // The article and its prepositional fusions, assimilated before "sun letters": il-, l-, tal-, fid-, mix-, ...
    // Bare "l-" is left out (Romanian writes l-a, l-au), and so is "in-" (Irish in-phíonóis, English in-depth).
    [GeneratedRegex(@"^(?:il|ir|is|it|id|iż|ix|iċ|(?:ta|fi|bi|mi|li|ma|sa|għa)(?:l|d|t|s|r|n|ż|x|ċ)|mill|lill|għall|bħall)-\p{L}")]
    private static partial Regex Article();
}
