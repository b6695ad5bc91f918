using System.Collections.Frozen;

namespace Sovereign.Languages;

/// <summary>
/// Languages outside the set that a covered neighbour's evidence takes, told apart by their function words, as
/// <see cref="DevanagariDecoys"/> tells Bhojpuri and Awadhi from Hindi (session 37): Banjar and Sundanese read as Malay
/// or Indonesian, Waray as Filipino, Asturian as Spanish, Galician, Portuguese or Catalan. Two distinct words of a
/// list turn such an answer into <c>und</c> with the decoy as runner-up. Written from general knowledge of each
/// language's grammar (pronouns, negation, copula, prepositions, conjunctions, a few everyday words), and checked on
/// every sentence of the overturned languages in the tuning corpus, the held-out and development sets and the UDHR:
/// none writes two of them (Malay's UDHR writes Sundanese <c>abdi</c> once; words Malay or Indonesian write -
/// <c>teh, mah, urang, bahari, jua, lawan, kaya</c> -, Tagalog's <c>kay</c>, Spanish and Galician <c>pa, nun, nel,
/// les, xente, agora</c> were left out).
/// </summary>
internal static class FunctionWordDecoys
{
    /// <summary>Distinct words of a decoy's list a text needs at least.</summary>
    public const int MinimumWords = 2;

    private static readonly (string Decoy, string[] Overturns, FrozenSet<string> Words)[] Table =
    [
        ("bjn", ["ms", "id"], Set("ulun pian kada gasan handak banar tagal nang kawa tulak wayah sidin bubuhan baisi hanyar pina")),
        ("su", ["ms", "id"], Set("anjeun téh teu henteu jeung ieu éta kumaha naon geus keur hoyong tiasa badé bade sareng kanggo deui ogé oge moal acan tacan kedah")),
        ("war", ["fil"], Set("han hin ngan karuyag maupay mahitungod didto adto hiya iton gud liwat pirme waray namon akon imo iya didi ngada")),
        ("ast", ["es", "gl", "pt", "ca"], Set("ye dalgún dalguna dalgunos dalgunes dalgo güei muncho muncha munchos munches tamién ellí equí nueche nueches muyer muyeres fía fíu fíos vieyu güela güelu güelos toles tolos vuestru nuesu nuesa esti tien")),
    ];

    /// <summary>For a normalised text answered as <paramref name="language"/>, the decoy whose function words it
    /// writes and how many, or null.</summary>
    public static (string Language, int Words)? Evaluate(string normalized, string language)
    {
        foreach (var (decoy, overturns, words) in Table)
        {
            if (Array.IndexOf(overturns, language) < 0)
            {
                continue;
            }

            var lookup = words.GetAlternateLookup<ReadOnlySpan<char>>();
            var found = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (start, length) in LanguageProfiles.Words(normalized))
            {
                if (lookup.TryGetValue(normalized.AsSpan(start, length), out var word))
                {
                    found.Add(word);
                }
            }

            if (found.Count >= MinimumWords)
            {
                return (decoy, found.Count);
            }
        }

        return null;
    }

    private static FrozenSet<string> Set(string words) => words.Split(' ').ToFrozenSet(StringComparer.Ordinal);
}
