using System.Collections.Frozen;

namespace Sovereign.Languages;

/// <summary>
/// Grammar and word formation that divide the standards of a close group where no listed word does, recognised by
/// shape, so that any verb counts, listed or not:
/// <list type="bullet">
/// <item>Croatian writes the future with the infinitive cut and apart (<c>kupit ćemo, gledat ću</c>); Bosnian and
/// Serbian join it (<c>kupićemo, gledaću, vidjećemo</c>).</item>
/// <item>Bosnian and Serbian put <c>da</c> + present after a modal verb (<c>moram da idem, mogu da dođem, treba da
/// kupimo</c>) where Croatian writes the infinitive (<c>moram ići</c>).</item>
/// <item>International verbs: Croatian <c>-irati</c> (<c>organizirati, rezervirati, reagirati</c>), Bosnian and Serbian
/// <c>-isati, -ovati, -izovati</c> (<c>rezervisati, organizovati, reagovati</c>) for the same stems.</item>
/// <item>Malay <c>-iti</c> where Indonesian writes <c>-itas</c> (<c>universiti, aktiviti</c> against <c>universitas,
/// aktivitas</c>), for any such word.</item>
/// </list>
/// </summary>
internal static class StandardGrammar
{
    // Modal verbs after which Bosnian and Serbian write "da" + present and Croatian the infinitive (not "znati" or
    // "željeti", where "da" also starts a clause in Croatian: "znam da je", "želim da dođeš").
    private static readonly FrozenSet<string> Modals = FrozenSet.ToFrozenSet(
        ["mogu", "možeš", "može", "možemo", "možete", "moram", "moraš", "mora", "moramo", "morate", "moraju", "treba", "trebalo",
         "hoću", "hoćeš", "hoćemo", "hoćete", "smijem", "smiješ", "smije", "smem", "smeš", "sme", "mogao", "mogla", "mogli",
         "morao", "morala", "morali", "počinjem", "počeo", "počela", "pokušavam", "pokušao", "pokušala", "uspio", "uspjela",
         "uspeo", "uspela", "nemoj", "nemojte"],
        StringComparer.Ordinal);

    // Words after "da" that make it a clause, not a verb's complement: "mora da je", "mogu da li".
    private static readonly FrozenSet<string> ClauseStarts = FrozenSet.ToFrozenSet(["je", "li", "su", "bi", "sam", "si", "smo", "ste", "će"], StringComparer.Ordinal);

    private static readonly FrozenSet<string> FutureClitics = FrozenSet.ToFrozenSet(["ću", "ćeš", "će", "ćemo", "ćete"], StringComparer.Ordinal);

    // Endings of -irati verbs (infinitive, present, participles, verbal noun), and of -isati / -ovati / -izovati ones.
    private static readonly string[] IratiEndings =
        ["irati", "iram", "iraš", "iramo", "irate", "iraju", "irao", "irala", "iralo", "irali", "irane", "irana", "irano", "irani", "iranje", "iranja", "iranju"];

    private static readonly string[] IsatiEndings =
        ["isati", "išem", "išeš", "išemo", "išete", "išu", "isao", "isala", "isalo", "isali", "isan", "isana", "isano", "isani", "isanje",
         "izovati", "izujem", "izuješ", "izuje", "izujemo", "izujete", "izuju", "izovao", "izovala", "izovali", "izovan", "izovana", "izovano",
         "agovati", "agujem", "aguje", "aguju", "agovao", "agovala", "agovali"];

    /// <summary>Shortest part of a word before an <c>-irati</c> or <c>-isati</c> ending (so that <c>birati, pisati, napisati,
    /// potpisati</c>, which every standard writes, do not count).</summary>
    private const int MinimumLoanStem = 5;

    /// <summary>Grammar signs of Croatian, Bosnian and Serbian in a normalised text: the split future counts for Croatian
    /// and, half, for Bosnian (whose standard writes both forms); the joined future for Serbian and Bosnian; <c>da</c>
    /// after a modal for Serbian and, half, for Bosnian (which also writes the infinitive there); <c>-irati</c> verbs for
    /// Croatian, <c>-isati/-izovati</c> ones for Bosnian and Serbian.</summary>
    public static (double Croatian, double Bosnian, double Serbian) SerboCroatianStandards(string normalized)
    {
        double croatian = 0, bosnian = 0, serbian = 0;
        ReadOnlySpan<char> previous = default, beforePrevious = default;
        foreach (var (start, length) in LanguageProfiles.Words(normalized))
        {
            var word = normalized.AsSpan(start, length);
            if (FutureClitics.GetAlternateLookup<ReadOnlySpan<char>>().Contains(word) && IsCutInfinitive(previous))
            {
                croatian++;
                bosnian += 0.5;
            }
            else if (IsJoinedFuture(word))
            {
                serbian++;
                bosnian++;
            }

            if (previous is "da" && Modals.GetAlternateLookup<ReadOnlySpan<char>>().Contains(beforePrevious)
                && !ClauseStarts.GetAlternateLookup<ReadOnlySpan<char>>().Contains(word))
            {
                serbian++;
                bosnian += 0.5;
            }

            if (HasLoanEnding(word, IratiEndings))
            {
                croatian++;
            }
            else if (HasLoanEnding(word, IsatiEndings))
            {
                serbian++;
                bosnian++;
            }

            beforePrevious = previous;
            previous = word;
        }

        return (croatian, bosnian, serbian);
    }

    /// <summary>Malay <c>-iti</c> and Indonesian <c>-itas</c> words in a normalised text (not <c>teliti, meneliti</c>,
    /// "careful", "to research", which both write).</summary>
    public static (int Malay, int Indonesian) MalayAgainstIndonesian(string normalized)
    {
        int malay = 0, indonesian = 0;
        foreach (var (start, length) in LanguageProfiles.Words(normalized))
        {
            var word = normalized.AsSpan(start, length);
            if (word.Length >= 7 && word.EndsWith("iti", StringComparison.Ordinal) && !word.EndsWith("eliti", StringComparison.Ordinal))
            {
                malay++;
            }
            else if (word.Length >= 7 && word.EndsWith("itas", StringComparison.Ordinal))
            {
                indonesian++;
            }
        }

        return (malay, indonesian);
    }

    /// <summary>Bosnian's and Serbian's joined future (<c>kupićemo, vidjeću, proveriće</c>): the future clitic on a
    /// verb stem ending in a vowel (not the nouns <c>sreću, svijeću</c>).</summary>
    internal static bool IsJoinedFuture(ReadOnlySpan<char> word)
    {
        if (YatReflex.IsJoinedFuture(word))
        {
            return true;
        }

        foreach (var ending in (ReadOnlySpan<string>)["ćemo", "ćete", "ćeš"])
        {
            if (word.Length >= ending.Length + 4 && word.EndsWith(ending, StringComparison.Ordinal) && "aie".Contains(word[^(ending.Length + 1)]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Croatian's cut infinitive before the future clitic: <c>kupit, gledat, vidjet, čut</c> (not <c>ići</c>,
    /// <c>doći</c>, which every standard writes so).</summary>
    internal static bool IsCutInfinitive(ReadOnlySpan<char> word) =>
        word.Length >= 3 && word[^1] == 't' && "aeiu".Contains(word[^2]) && !NounsInT.GetAlternateLookup<ReadOnlySpan<char>>().Contains(word);

    // Nouns of that shape that may stand before "će" in any standard: "brat će doći", "svijet će se promijeniti".
    private static readonly FrozenSet<string> NounsInT = FrozenSet.ToFrozenSet(
        ["brat", "sat", "rat", "put", "svijet", "svet", "kaput", "predmet", "posjet", "poset", "kredit", "budžet", "planet", "zlat", "grad", "cvijet", "cvet", "savjet", "savet", "let", "pet", "ugovorit"],
        StringComparer.Ordinal);

    private static bool HasLoanEnding(ReadOnlySpan<char> word, string[] endings)
    {
        foreach (var ending in endings)
        {
            if (word.Length - ending.Length >= MinimumLoanStem && word.EndsWith(ending, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }
}
