using System.Buffers;
using System.Collections.Frozen;

namespace Sovereign.Languages;

/// <summary>
/// How a modal or phase verb takes its complement, the syntax that divides the standards beside the yat reflex and the
/// vocabulary: Croatian writes the infinitive (<c>moram ići, mogu doći, počeo je raditi</c>), Serbian the
/// <c>da</c> + present construction (<c>moram da idem, mogu da dođem, počeo je da radi</c>), Bosnian both. A closed
/// class of verbs (moći, morati, trebati, smjeti/smeti, početi, pokušati, uspjeti/uspeti, prestati, htjeti/hteti and
/// voljeti/voleti, in the forms of both reflexes) followed by <c>da</c>, the future's clitics followed by <c>da</c>
/// (<c>ćemo da kupimo</c>, since round 36) and the question <c>da li</c>, count for Bosnian and Serbian; the same verbs
/// followed by an infinitive (a word in <c>-ti</c> or <c>-ći</c>, after at most two clitics), and the future with the
/// shortened infinitive apart (<c>radit ću</c>, since round 36), count for Croatian and Bosnian. Not a word list of
/// the standards' vocabulary: any verb after the modal counts, listed or not. Left out: <c>mora da je</c> (the epistemic "must be", which every standard writes), the
/// forms of htjeti/hteti before an infinitive (<c>neću doći</c> is the future everywhere), and nouns in <c>-ći</c>
/// after a modal (<c>moram kući</c>).
/// </summary>
internal static class VerbComplements
{
    private static readonly FrozenSet<string> Modals = FrozenSet.ToFrozenSet(
    [
        "mogu", "možeš", "može", "možemo", "možete", "mogao", "mogla", "mogli", "moglo", "mogle",
        "moram", "moraš", "mora", "moramo", "morate", "moraju", "morao", "morala", "morali", "moralo", "morale",
        "treba", "trebam", "trebaš", "trebamo", "trebate", "trebaju", "trebao", "trebala", "trebali", "trebalo",
        "smijem", "smiješ", "smije", "smijemo", "smijete", "smiju", "smio", "smjela", "smjeli", "smjelo",
        "smem", "smeš", "sme", "smemo", "smete", "smeju", "smeo", "smela", "smeli", "smelo",
        "počnem", "počneš", "počne", "počnemo", "počnete", "počnu", "počeo", "počela", "počeli", "počelo", "počinjem", "počinje", "počinju",
        "pokušam", "pokušaš", "pokuša", "pokušamo", "pokušate", "pokušaju", "pokušao", "pokušala", "pokušali", "pokušavam", "pokušava",
        "uspijem", "uspiješ", "uspije", "uspijemo", "uspiju", "uspio", "uspjela", "uspjeli", "uspem", "uspeš", "uspe", "uspemo", "uspeju", "uspeo", "uspela", "uspeli",
        "prestanem", "prestane", "prestao", "prestala", "prestali",
        "volim", "voliš", "voli", "volimo", "volite", "vole",
    ], StringComparer.Ordinal);

    // Before da only: their forms before an infinitive make the future (neću doći, hoće li doći). Round 36 added the
    // future's clitics: ću, će ... before an infinitive is the future in every standard (sutra ću raditi), before da
    // the Serbian (and Bosnian) future (šta ćemo da kuvamo, ko će da pomogne), which Croatian does not write.
    private static readonly FrozenSet<string> Volition = FrozenSet.ToFrozenSet(
        ["hoću", "hoćeš", "hoće", "hoćemo", "hoćete", "neću", "nećeš", "neće", "nećemo", "nećete", "htio", "htjela", "htjeli", "hteo", "htela", "hteli",
         "ću", "ćeš", "će", "ćemo", "ćete"], StringComparer.Ordinal);

    private static readonly FrozenSet<string> FutureClitics = FrozenSet.ToFrozenSet(["ću", "ćeš", "će", "ćemo", "ćete"], StringComparer.Ordinal);

    // Words in -at, -it, -ut, -jet that a future clitic may follow without being a shortened infinitive: nouns,
    // adjectives and adverbs (brat će doći, ispit će biti težak, rezultat će stići), which every standard writes so.
    private static readonly FrozenSet<string> NotShortenedInfinitives = FrozenSet.ToFrozenSet(
    [
        "put", "sat", "kat", "rat", "brat", "svat", "kut", "prut", "vrat", "hrvat", "ispit", "kaput", "minut", "rezultat",
        "kredit", "limit", "profit", "apetit", "biskvit", "automat", "advokat", "kandidat", "institut", "format", "mandat",
        "svijet", "cvijet", "savjet", "posjet", "zavjet", "ljut", "žut", "sit", "bogat", "zauzet", "hit", "kit", "mit", "šut", "tat",
    ], StringComparer.Ordinal);

    private static readonly FrozenSet<string> Clitics = FrozenSet.ToFrozenSet(
        ["mi", "ti", "ga", "mu", "se", "si", "ih", "im", "joj", "nam", "vam", "me", "te", "ju", "je", "li", "sam", "smo", "ste", "su"], StringComparer.Ordinal);

    // The copula after "mora da": the epistemic "must be", not a complement.
    private static readonly FrozenSet<string> Copula = FrozenSet.ToFrozenSet(["je", "su", "smo", "ste", "sam", "si"], StringComparer.Ordinal);

    // Words in -ći or -ti that are not infinitives but may follow a modal.
    private static readonly FrozenSet<string> NotInfinitives = FrozenSet.ToFrozenSet(["kući", "noći", "ti", "vijesti", "vesti", "puti"], StringComparer.Ordinal);

    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> ModalLookup = Modals.GetAlternateLookup<ReadOnlySpan<char>>();
    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> VolitionLookup = Volition.GetAlternateLookup<ReadOnlySpan<char>>();
    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> CliticLookup = Clitics.GetAlternateLookup<ReadOnlySpan<char>>();
    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> CopulaLookup = Copula.GetAlternateLookup<ReadOnlySpan<char>>();
    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> NotInfinitiveLookup = NotInfinitives.GetAlternateLookup<ReadOnlySpan<char>>();
    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> FutureCliticLookup = FutureClitics.GetAlternateLookup<ReadOnlySpan<char>>();
    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> NotShortenedLookup = NotShortenedInfinitives.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>Round 36: the future written with the shortened infinitive apart (<c>radit ću, bit će, provjerit
    /// ćemo</c>), Croatian's and Bosnian's; Serbian joins it (<c>radiću, biće</c>; <see cref="YatReflex.IsJoinedFuture"/>).
    /// A word of three letters or more in <c>-at, -it, -ut, -jet</c> or <c>-zet, -čet</c> (uzet, počet) directly before a
    /// future clitic, not a listed noun or adjective.</summary>
    internal static bool IsShortenedInfinitive(ReadOnlySpan<char> word) =>
        word.Length >= 3 && !NotShortenedLookup.Contains(word)
        && (word.EndsWith("at", StringComparison.Ordinal) || word.EndsWith("it", StringComparison.Ordinal) || word.EndsWith("ut", StringComparison.Ordinal)
            || word.EndsWith("jet", StringComparison.Ordinal) || word.EndsWith("zet", StringComparison.Ordinal) || word.EndsWith("čet", StringComparison.Ordinal));

    /// <summary>In a normalised text, the modal and phase verbs followed by <c>da</c> (and each <c>da li</c>), and those
    /// followed by an infinitive.</summary>
    /// <remarks>Reads the words as spans of the text, from a pooled array: nothing is allocated per call but the word
    /// enumerator.</remarks>
    public static (int DaPresent, int Infinitive) Count(string normalized)
    {
        var words = ArrayPool<(int Start, int Length)>.Shared.Rent((normalized.Length / 2) + 1);
        try
        {
            var n = 0;
            foreach (var range in LanguageProfiles.Words(normalized))
            {
                words[n++] = range;
            }

            return Count(normalized, words.AsSpan(0, n));
        }
        finally
        {
            ArrayPool<(int Start, int Length)>.Shared.Return(words);
        }
    }

    private static (int DaPresent, int Infinitive) Count(string normalized, ReadOnlySpan<(int Start, int Length)> words)
    {
        int da = 0, infinitive = 0;
        for (var i = 0; i + 1 < words.Length; i++)
        {
            var word = normalized.AsSpan(words[i].Start, words[i].Length);
            if (word is "da" && normalized.AsSpan(words[i + 1].Start, words[i + 1].Length) is "li")
            {
                da++;
                continue;
            }

            if (FutureCliticLookup.Contains(normalized.AsSpan(words[i + 1].Start, words[i + 1].Length)) && IsShortenedInfinitive(word))
            {
                infinitive++;
                continue;
            }

            var modal = ModalLookup.Contains(word);
            if (!modal && !VolitionLookup.Contains(word))
            {
                continue;
            }

            // The complement, after at most two clitics (počela je da pjeva, moram ti reći, mogu ga vidjeti).
            for (var j = i + 1; j < words.Length && j <= i + 3; j++)
            {
                var next = normalized.AsSpan(words[j].Start, words[j].Length);
                if (next is "da")
                {
                    var epistemic = j == i + 1 && word is "mora" or "moralo" && j + 1 < words.Length
                        && CopulaLookup.Contains(normalized.AsSpan(words[j + 1].Start, words[j + 1].Length));
                    da += epistemic ? 0 : 1;
                    break;
                }

                if (modal && next.Length >= 3 && (next.EndsWith("ti", StringComparison.Ordinal) || next.EndsWith("ći", StringComparison.Ordinal)) && !NotInfinitiveLookup.Contains(next))
                {
                    infinitive++;
                    break;
                }

                if (!CliticLookup.Contains(next))
                {
                    break;
                }
            }
        }

        return (da, infinitive);
    }
}
