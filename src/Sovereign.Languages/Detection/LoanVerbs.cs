namespace Sovereign.Languages;

/// <summary>
/// How the standards adapt a borrowed verb, the morphology that divides Croatian from Bosnian and Serbian beside the
/// yat reflex and the verb complement: Croatian takes <c>-irati</c> throughout (<c>organizirati, identificirati,
/// rezervirati, reagirati, financirati</c>), Bosnian and Serbian take <c>-ovati</c> after <c>-iz-</c> and <c>-fik-</c>
/// (<c>organizovati, organizuje, identifikovati</c>), <c>-isati</c> for many others (<c>rezervisati, rezerviše,
/// definisati</c>) and <c>-ovati</c> for a few (<c>reagovati, registrovati, konstatovati</c>); <c>finans-</c> against
/// Croatian <c>financ-</c>. Counted by the word's shape: a Croatian <c>-izira-/-ficira-</c> form, or a Bosnian/Serbian
/// <c>-izov-/-izuj-/-fikov-/-fikuj-</c> form, after a stem of at least four letters, and an <c>-isati</c> form on a stem
/// of at least four letters that is not one of the native verbs in <c>-isati</c> (<c>pisati, brisati, disati, mirisati,
/// sisati, njihati</c> and their prefixed forms) nor a comparative in <c>-više/-tiše</c>; and the <c>-irati</c> and
/// <c>-ovati</c> forms of the few stems whose two adaptations both exist (Serbian also writes <c>studirati,
/// planirati, parkirati, analizirati</c>, which therefore do not count). Written from the standards' grammars, not from
/// any sentence of the held-out sets.
/// </summary>
internal static class LoanVerbs
{
    // Stems whose Croatian form is -irati and whose Bosnian and Serbian form is -ovati.
    private static readonly string[] OvatiStems =
        ["reag", "registr", "konstat", "protest", "prezent", "dokument", "konsult", "izol", "kombin", "interes", "kritik"];

    // Stems whose Croatian form is -irati and whose Bosnian and Serbian form is -isati (counted by the -isati shape on
    // the Bosnian and Serbian side, by this list on the Croatian side).
    private static readonly string[] IsatiStems =
        ["rezerv", "fotograf", "kontrol", "defin", "inform", "formul", "diskrimin", "elimin", "stimul", "regul", "funkcion",
         "inspir", "oper", "integr", "koordin", "motiv", "eksperiment", "koment"];

    private static readonly string[] IratiEndings =
        ["irati", "iram", "iraš", "ira", "iramo", "irate", "iraju", "irao", "irala", "iralo", "irali", "irale", "iran", "irana", "irano", "irani", "irane", "iranje", "iranja"];

    private static readonly string[] OvatiEndings =
        ["ovati", "ujem", "uješ", "uje", "ujemo", "ujete", "uju", "ovao", "ovala", "ovalo", "ovali", "ovale", "ovan", "ovana", "ovano", "ovani", "ovane", "ovanje", "ovanja"];

    private static readonly string[] IsatiEndings =
        ["isati", "išem", "išeš", "iše", "išemo", "išete", "išu", "isao", "isala", "isalo", "isali", "isale", "isan", "isana", "isano", "isani", "isane", "isanje", "isanja"];

    // Stem endings of the native -isati verbs (napisati, izbrisati, uzdisati, zamirisati, usisati, zanjihati).
    private static readonly string[] NativeIsatiStemEndings = ["p", "br", "d", "mir", "s", "nj"];

    /// <summary>In a normalised text, the loan verbs adapted the Croatian way and those adapted the Bosnian and Serbian
    /// way.</summary>
    public static (int Croatian, int BosnianSerbian) Count(string normalized)
    {
        int croatian = 0, bosnianSerbian = 0;
        foreach (var (start, length) in LanguageProfiles.Words(normalized))
        {
            var word = normalized.AsSpan(start, length);
            if (word.Length < 7)
            {
                continue;
            }

            switch (Kind(word))
            {
                case 1:
                    croatian++;
                    break;
                case 2:
                    bosnianSerbian++;
                    break;
            }
        }

        return (croatian, bosnianSerbian);
    }

    // 1: Croatian, 2: Bosnian and Serbian, 0: neither.
    internal static int Kind(ReadOnlySpan<char> word)
    {
        if (Inside(word, "izira") || Inside(word, "ficira"))
        {
            return word.StartsWith("analiz", StringComparison.Ordinal) ? 0 : 1;
        }

        if (Inside(word, "izov") || Inside(word, "izuj") || Inside(word, "fikov") || Inside(word, "fikuj"))
        {
            return 2;
        }

        if (word.StartsWith("financ", StringComparison.Ordinal) && HasEnding(word[6..], IratiEndings))
        {
            return 1;
        }

        if (word.StartsWith("finans", StringComparison.Ordinal) && HasEnding(word[6..], IratiEndings))
        {
            return 2;
        }

        foreach (var stem in OvatiStems)
        {
            if (word.StartsWith(stem, StringComparison.Ordinal))
            {
                var rest = word[stem.Length..];
                return HasEnding(rest, IratiEndings) ? 1 : HasEnding(rest, OvatiEndings) ? 2 : 0;
            }
        }

        foreach (var stem in IsatiStems)
        {
            if (word.StartsWith(stem, StringComparison.Ordinal) && HasEnding(word[stem.Length..], IratiEndings))
            {
                return 1;
            }
        }

        // The comparatives najviše, previše, najtiše are not verbs.
        if (word.EndsWith("više", StringComparison.Ordinal) || word.EndsWith("tiše", StringComparison.Ordinal))
        {
            return 0;
        }

        foreach (var ending in IsatiEndings)
        {
            if (word.EndsWith(ending, StringComparison.Ordinal) && word.Length - ending.Length >= 4)
            {
                var stem = word[..^ending.Length];
                foreach (var native in NativeIsatiStemEndings)
                {
                    if (stem.EndsWith(native, StringComparison.Ordinal))
                    {
                        return 0;
                    }
                }

                return 2;
            }
        }

        return 0;
    }

    // The marker inside the word after a stem of at least four letters.
    private static bool Inside(ReadOnlySpan<char> word, string marker)
    {
        return word.IndexOf(marker, StringComparison.Ordinal) >= 4;
    }

    private static bool HasEnding(ReadOnlySpan<char> rest, string[] endings)
    {
        foreach (var ending in endings)
        {
            if (rest.SequenceEqual(ending))
            {
                return true;
            }
        }

        return false;
    }
}
