namespace Sovereign.Languages;

/// <summary>
/// Bulgarian and Macedonian by their alphabets (session 44, round 26). Macedonian writes no <c>ъ, щ, ю, я, й</c> (it
/// writes <c>ја, ју, ј</c> where Bulgarian writes <c>я, ю, й</c>), Bulgarian no <c>ѓ, ќ, ѕ, ј, љ, њ, џ</c>. Lingua's
/// alphabet rule already gives no share to a language whose alphabet lacks a letter of the text, but Macedonian, a decoy
/// outside the set, also scores on its tuning sentences' profile, which does not know the rule: a Bulgarian sentence
/// could end <c>und</c> with Macedonian as runner-up (held-out 25: Bulgarian 8 of 10). Where the text writes a letter one
/// of the two alphabets lacks, that language takes no probability and the others' are scaled back to one. Taken from the
/// two alphabets, not from any sentence. Round 38 (session 56): Macedonian writes no <c>ђ, ћ</c> either (it writes
/// <c>ѓ, ќ</c> where Serbian writes <c>ђ, ћ</c>), so a Serbian sentence with one of them no longer ends <c>und</c> beside
/// Macedonian (no Macedonian line of the tuning corpus or any data set writes either).
/// </summary>
internal static class CyrillicAlphabets
{
    private static readonly (string Language, string Lacks)[] Table =
    [
        ("mk", "ъщюяйђћ"),
        ("bg", "ѓќѕјљњџ"),
    ];

    /// <summary>Takes the probability of each of Bulgarian and Macedonian whose alphabet lacks a letter of the normalised
    /// text away and rescales the rest; true when it changed anything.</summary>
    public static bool Exclude(IReadOnlyList<string> candidates, double[] probabilities, string normalized)
    {
        var changed = false;
        foreach (var (language, lacks) in Table)
        {
            var index = IndexOf(candidates, language);
            if (index >= 0 && probabilities[index] > 0 && normalized.AsSpan().IndexOfAny(lacks) >= 0)
            {
                probabilities[index] = 0;
                changed = true;
            }
        }

        var sum = probabilities.Sum();
        if (!changed || sum <= 0)
        {
            return false;
        }

        for (var i = 0; i < probabilities.Length; i++)
        {
            probabilities[i] /= sum;
        }

        return true;
    }

    /// <summary>The letters the language's alphabet lacks, for <c>bg</c> and <c>mk</c>; null for any other.</summary>
    public static string? LettersLackedBy(string language) => Array.Find(Table, t => t.Language == language).Lacks;

    private static int IndexOf(IReadOnlyList<string> candidates, string language)
    {
        for (var i = 0; i < candidates.Count; i++)
        {
            if (candidates[i] == language)
            {
                return i;
            }
        }

        return -1;
    }
}
