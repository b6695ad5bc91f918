namespace Sovereign.Languages;

/// <summary>
/// Latin, a language of the catalog outside the default set, by its alphabet (session 56, round 38). Latin has no
/// tuning sentences: its score is Lingua's share alone, and Lingua gives it most of the share of some short Croatian,
/// Bosnian, Serbian, Slovenian, Norwegian or Tetum sentences although they write letters no Latin text writes
/// (<c>č, ž, š, å, ó</c>), so that they end <c>und</c> with Latin as runner-up. Latin is written in the letters a-z;
/// editions mark long vowels with a macron or breve (<c>ā, ĕ</c>), ligatures (<c>æ, œ</c>) and a diaeresis on a vowel
/// that starts a new syllable (<c>aër, poëta, Boötes</c>); it writes no other accented or modified letter. Where the
/// text writes one, Latin takes no probability and the others' are scaled back to one, as <see cref="CyrillicAlphabets"/>
/// does for Bulgarian and Macedonian - but only where Lingua's own leader is Latin (the share that made it lead is
/// Lingua's, blind to the letter; where Latin leads with a small share because the profiled languages' evidence is
/// against the text, the text is in none of them) and where the language then leading is a covered language whose alphabet
/// writes every such letter of the text (<see cref="Letters"/>): a text in a language outside the set (Turkmen, Romani,
/// Papiamento, Friulian) that Latin held at <c>und</c> is not handed to a covered language that could not have written
/// it either. Taken from the alphabets, not from any sentence.
/// </summary>
internal static class LatinAlphabet
{
    /// <summary>The code it applies to.</summary>
    public const string Language = "la";

    /// <summary>Whether the normalised (lower-case) text writes a letter Latin's alphabet lacks.</summary>
    public static bool WritesLetterLatinLacks(string normalized)
    {
        foreach (var c in normalized)
        {
            if (c <= 'z' || !char.IsLetter(c))
            {
                continue;
            }

            if (!Allowed(c))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Takes Latin's probability away where the normalised text writes a letter its alphabet lacks, and rescales
    /// the rest; true when it changed anything.</summary>
    public static bool Exclude(IReadOnlyList<string> candidates, double[] probabilities, string normalized)
    {
        var index = -1;
        for (var i = 0; i < candidates.Count; i++)
        {
            if (candidates[i] == Language)
            {
                index = i;
                break;
            }
        }

        if (index < 0 || probabilities[index] <= 0 || !WritesLetterLatinLacks(normalized))
        {
            return false;
        }

        var next = -1;
        for (var i = 0; i < candidates.Count; i++)
        {
            if (i != index && (next < 0 || probabilities[i] > probabilities[next]))
            {
                next = i;
            }
        }

        if (next < 0 || !WritesEveryLetter(candidates[next], normalized))
        {
            return false;
        }

        probabilities[index] = 0;
        var sum = probabilities.Sum();
        if (sum <= 0)
        {
            return false;
        }

        for (var i = 0; i < probabilities.Length; i++)
        {
            probabilities[i] /= sum;
        }

        return true;
    }

    /// <summary>Whether the language's alphabet writes every letter beyond a-z of the normalised text (false for a language
    /// not in <see cref="Letters"/>).</summary>
    public static bool WritesEveryLetter(string language, string normalized)
    {
        if (!Letters.TryGetValue(language, out var letters))
        {
            return false;
        }

        foreach (var c in normalized)
        {
            if (c > 'z' && char.IsLetter(c) && !letters.Contains(c, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The letters beyond a-z each covered Latin-script language writes, from its alphabet and the accents its
    /// spelling puts on vowels (lower case); Vietnamese is left out (it writes nearly every accented vowel).</summary>
    public static readonly IReadOnlyDictionary<string, string> Letters = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["hr"] = "čćšžđ", ["bs"] = "čćšžđ", ["sr"] = "čćšžđ", ["sl"] = "čšžćđ",
        ["cs"] = "áčďéěíňóřšťúůýž", ["sk"] = "áäčďéíĺľňóôŕšťúýž", ["pl"] = "ąćęłńóśźż",
        ["da"] = "æøåé", ["no"] = "æøåéèêóòô", ["sv"] = "åäöé", ["is"] = "áðéíóúýþæö", ["fi"] = "äöå", ["et"] = "äöõüšž",
        ["de"] = "äöüß", ["nl"] = "éëïöüèáóúíàç", ["en"] = "éèïëç", ["fr"] = "àâæçéèêëîïôœùûüÿ",
        ["es"] = "áéíóúñü", ["gl"] = "áéíóúñü", ["pt"] = "áâãàçéêíóôõú", ["ca"] = "àçéèíïòóúü·", ["it"] = "àèéìíîòóùú",
        ["ro"] = "ăâîșțşţ", ["hu"] = "áéíóöőúüű", ["lt"] = "ąčęėįšųūž", ["lv"] = "āčēģīķļņšūž", ["tr"] = "çğıöşüâî",
        ["ga"] = "áéíóú", ["mt"] = "ċġħżàèìòù", ["eu"] = "ñ", ["fil"] = "ñ", ["tet"] = "áéíóúñ", ["ms"] = "é", ["id"] = "é",
    };

    // Macron and breve vowels, the ligatures, and the diaeresis vowels.
    private static bool Allowed(char c) => "āēīōūȳăĕĭŏŭæœëïöüä".Contains(c, StringComparison.Ordinal);
}
