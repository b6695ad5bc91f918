using System.Collections.Frozen;

namespace Sovereign.Languages;

/// <summary>
/// The reflex of the old vowel yat, the one spelling rule that divides Serbian from Croatian and Bosnian as standards:
/// ijekavian <c>mlijeko, rijeka, lijepo, mjesto, djeca, gdje</c> (Croatian and Bosnian) against ekavian <c>mleko,
/// reka, lepo, mesto, deca, gde</c> (Serbian). Ijekavian words are recognised by their shape (<c>ije</c> or <c>je</c>
/// between consonants), with the few words of that shape every standard writes left out (<c>nije</c>, <c>nijedan</c>,
/// <c>odjednom</c>, <c>klijent</c>, <c>projekt</c>). Ekavian words have no shape of their own (<c>reka</c> is also a
/// word without a reflex), so they are derived: every ijekavian word of the Croatian and Bosnian tuning sentences and
/// contrast words, with its reflex put back to <c>e</c>, is an ekavian word unless Croatian or Bosnian write it too;
/// long ones also match inflected forms by stem (<c>mleko</c>: <c>mleka</c>). This is evidence beyond a word list:
/// any ijekavian word counts, listed or not, and each ekavian form comes from the other standards' own text.
/// </summary>
internal sealed class YatReflex
{
    private const string Consonants = "bcčćdđfghjklmnprsštvzž";

    // Consonants before "je" that make a reflex: mjesto, vjera, bjež-, pjesma, sjever, cjena, tjedan, djeca; and r
    // (round 27): rješenje, rječnik, rjeđe, izgorjela, where Serbian writes rešenje, rečnik, ređe, izgorela (a "je"
    // after r before a consonant is the yat's; the non-yat words with r-je end in it: gorje, primorje).
    private const string BeforeShortReflex = "bcdmprstv";

    // Words of ijekavian shape that every standard writes.
    private static readonly string[] CommonPrefixes =
        ["nije", "odjed", "podjed", "prijem", "klijent", "pacijent", "orijent", "higijen", "dijalog", "dijagno", "injek", "objek", "subjek", "projek", "trajek", "adjek"];

    // Word-final ijekavian forms (a final -ije is more often a case ending: historije, kapije).
    private static readonly FrozenSet<string> FinalForms = FrozenSet.ToFrozenSet(["prije", "poslije", "dvije", "gdje", "ovdje", "ondje", "negdje", "nigdje", "svugdje", "igdje"], StringComparer.Ordinal);

    // Ijekavian words whose yat is an i before o (round 27): dio, udio, predio, razdio, where Serbian writes deo, udeo,
    // predeo, razdeo (ije shortened to i before the o that was l: *dijel > dio). Their shape shows no "je".
    private static readonly FrozenSet<string> YatAsI = FrozenSet.ToFrozenSet(["dio", "udio", "predio", "razdio"], StringComparer.Ordinal);

    /// <summary>Shortest stem (an ekavian form of 5 letters or more, less a final vowel) matched as a word's beginning.</summary>
    private const int MinimumStem = 4;

    private static readonly Lazy<YatReflex> Embedded = new(() => FromCorpus(LanguageProfiles.LoadCorpus()));

    private readonly FrozenSet<string> _ekavian;
    private readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> _ekavianLookup;
    private readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> _ekavianStems;

    // Every word of the Croatian and Bosnian sentences and contrast words: a word the ijekavian standards write is not
    // ekavian, whatever stem or ending it shares with an ekavian form (posla, vremena, sestra; kafić-u is a noun, not
    // a joined future).
    private readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> _ijekavianWritten;

    private YatReflex(HashSet<string> ekavian, HashSet<string> ijekavianWritten)
    {
        _ijekavianWritten = ijekavianWritten.ToFrozenSet(StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
        _ekavian = ekavian.ToFrozenSet(StringComparer.Ordinal);
        _ekavianLookup = _ekavian.GetAlternateLookup<ReadOnlySpan<char>>();
        _ekavianStems = ekavian.Where(w => w.Length > MinimumStem).Select(Stem).Where(stem => stem.Length >= MinimumStem).ToFrozenSet(StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Built from the embedded tuning corpus and contrast words.</summary>
    public static YatReflex Default => Embedded.Value;

    /// <summary>Ekavian forms known, for diagnostics.</summary>
    public int EkavianForms => _ekavian.Count;

    /// <summary>Builds the ekavian forms from the Croatian and Bosnian sentences of a corpus (and the contrast words).</summary>
    public static YatReflex FromCorpus(IReadOnlyDictionary<string, IReadOnlyList<string>> corpus)
    {
        var ijekavianText = new HashSet<string>(StringComparer.Ordinal);
        foreach (var code in (string[])["hr", "bs"])
        {
            foreach (var sentence in corpus.GetValueOrDefault(code) ?? [])
            {
                var normalized = LanguageProfiles.Normalize(sentence);
                foreach (var (start, length) in LanguageProfiles.Words(normalized))
                {
                    ijekavianText.Add(normalized.Substring(start, length));
                }
            }

            ijekavianText.UnionWith(ContrastEvidence.Default.WordsOf(code));
        }

        var ekavian = new HashSet<string>(StringComparer.Ordinal);
        foreach (var word in ijekavianText)
        {
            if (Reflex(word) is var (start, length) && length > 0)
            {
                var form = string.Concat(word.AsSpan(0, start), "e", word.AsSpan(start + length));
                if (!ijekavianText.Contains(form) && form.Length >= 3)
                {
                    ekavian.Add(form);
                }
            }
        }

        return new YatReflex(ekavian, ijekavianText);
    }

    /// <summary>Distinct ijekavian and ekavian words in a normalised text (a Serbian joined future counts as
    /// ekavian: it is Serbian's too).</summary>
    /// <remarks>With <paramref name="participles"/> (the default; off only for tuning) the yat verbs' participles
    /// count too.</remarks>
    public (int Ijekavian, int Ekavian) Count(string normalized, bool participles = true)
    {
        int ijekavian = 0, ekavian = 0;
        HashSet<string>? seen = null;
        foreach (var (start, length) in LanguageProfiles.Words(normalized))
        {
            var word = normalized.AsSpan(start, length);
            var participle = participles ? Participle(word) : 0;
            var isIjekavian = participle > 0 || Reflex(word).Length > 0;
            var isEkavian = !isIjekavian && (participle < 0 || (!_ijekavianWritten.Contains(word)
                && (IsEkavian(word) || (IsJoinedFuture(word) && !_ijekavianWritten.Contains(word[..^1])))));
            if ((isIjekavian || isEkavian) && (seen ??= new HashSet<string>(StringComparer.Ordinal)).Add(word.ToString()))
            {
                ijekavian += isIjekavian ? 1 : 0;
                ekavian += isEkavian ? 1 : 0;
            }
        }

        return (ijekavian, ekavian);
    }

    private bool IsEkavian(ReadOnlySpan<char> word)
    {
        if (_ekavianLookup.Contains(word) || HasEkavianEnding(word))
        {
            return true;
        }

        // The longest stem the word begins with, not shorter than the shortest stem, followed by an ending (a vowel
        // begins every case, gender and number ending: mlek-a, mest-ima, vrem-ena), not by more of another root
        // (sest-ra, sest-rični from sesti).
        for (var end = word.Length; end >= MinimumStem; end--)
        {
            if (_ekavianStems.Contains(word[..end]) && (end == word.Length || "aeiou".Contains(word[end], StringComparison.Ordinal)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Verb forms whose ending carries the reflex: ekavian participles and infinitives <c>video, volela, hteli,
    /// razumeti, doneo</c> where the ijekavian standards write <c>vidio, voljela, htjeli, razumjeti, donio</c>. Only
    /// after the consonants where such verbs end (d, l, t, m, n; s for the participle <c>seo</c>), and without the
    /// words of that shape every standard writes (<c>veseo, debeo, pepeo, hotela, modeli, pameti</c>, and <c>video</c>,
    /// which is also the noun every standard writes).
    /// </summary>
    internal static bool HasEkavianEnding(ReadOnlySpan<char> word)
    {
        if (word.Length < 3 || CommonEndings.GetAlternateLookup<ReadOnlySpan<char>>().Contains(word))
        {
            return false;
        }

        var before = word.Length >= 4 ? word[^4] : ' ';
        var last3 = word[^3..];
        if (last3 is "eti" && word.Length >= 4)
        {
            return "dltmn".Contains(before, StringComparison.Ordinal);
        }

        var beforeTwo = word[^3];
        if (word[^2..] is "eo")
        {
            return "dltmns".Contains(beforeTwo, StringComparison.Ordinal);
        }

        // -ela, -ele, -eli, -elo after d, l, t, m: videla, volele, hteli, razumelo.
        return word.Length >= 4 && word[^3] == 'e' && word[^2] == 'l' && "aeio".Contains(word[^1], StringComparison.Ordinal)
            && "dltm".Contains(before, StringComparison.Ordinal);
    }

    /// <summary>
    /// Serbian's joined future (<c>proveriću, pozvaću, videću</c>), where Croatian and Bosnian write the infinitive
    /// apart (<c>provjerit ću</c>): a word of 6 letters or more ending in <c>-iću, -aću, -eću</c> (not <c>svijeću</c>,
    /// <c>nesreću</c>, which are nouns).
    /// </summary>
    internal static bool IsJoinedFuture(ReadOnlySpan<char> word) =>
        word.Length >= 6 && (word.EndsWith("iću", StringComparison.Ordinal) || word.EndsWith("aću", StringComparison.Ordinal) || word.EndsWith("eću", StringComparison.Ordinal))
        && !word.EndsWith("sreću", StringComparison.Ordinal) && !word.EndsWith("sveću", StringComparison.Ordinal) && !word.EndsWith("svijeću", StringComparison.Ordinal);

    /// <summary>
    /// The preposition <c>sa</c> before a word that does not begin with s, z, š, ž (<c>sa medom, sa prijateljima</c>):
    /// Bosnian and Serbian write it freely, Croatian writes <c>s</c> there (<c>s medom</c>) and <c>sa</c> only where
    /// a sibilant follows.
    /// </summary>
    internal static int FreeSa(string normalized)
    {
        var count = 0;
        var afterSa = false;
        foreach (var (start, length) in LanguageProfiles.Words(normalized))
        {
            var word = normalized.AsSpan(start, length);
            if (afterSa && !"szšž".Contains(word[0], StringComparison.Ordinal) && !word.StartsWith("mnom", StringComparison.Ordinal))
            {
                count++;
            }

            afterSa = word is "sa";
        }

        return count;
    }

    // The verbs whose infinitive carries the yat in its ending (vidjeti/videti, voljeti/voleti, živjeti/živeti): a closed
    // class of the grammar. Their masculine participle is -io in the ijekavian standards and -eo in Serbian (vidio/video,
    // volio/voleo), a reflex the shape of the word does not show (mislio, radio are -iti verbs every standard writes
    // alike); with lj, nj the feminine and plural forms neither (voljela/volela). Prefixed verbs count too (zavolio,
    // poželio, doživio, izgorio). Left out: umio (also umiti, to wash, everywhere), sjedio (its "je" already shows),
    // dozvolio (dozvoliti, an -iti verb). Round 27 added sjesti's sjeo (Serbian seo, which the ekavian ending already
    // counts; the "je" before a vowel is no shape the reflex rule reads), and poludio, ogladnio, ožednio (poludeo,
    // ogladneo, ožedneo), inchoative -jeti verbs of the same class.
    private static readonly string[] IjekavianParticiples =
        ["vidio", "volio", "voljela", "voljeli", "voljelo", "želio", "željela", "željeli", "željelo", "živio", "htio", "letio", "razumio", "smio", "trpio", "vrtio", "gorio", "bolio", "boljela", "boljelo", "stidio", "mrzio", "šutio", "sjeo", "poludio", "ogladnio", "ožednio"];

    private static readonly string[] EkavianParticiples =
        ["voleo", "želeo", "živeo", "živela", "živeli", "živelo", "hteo", "leteo", "razumeo", "smeo", "trpeo", "trpela", "trpeli", "vrteo", "goreo", "gorela", "goreli", "boleo", "stideo", "mrzeo", "mrzela", "mrzeli"];

    /// <summary>+1 for an ijekavian participle of a yat verb (<c>vidio, volio, htio</c>), -1 for an ekavian one
    /// (<c>voleo, živeo, hteo</c>), 0 otherwise; a prefix may come before (<c>doživio, zavoleo</c>).</summary>
    internal static int Participle(ReadOnlySpan<char> word)
    {
        if (word.EndsWith("dozvolio", StringComparison.Ordinal))
        {
            // dozvoliti, an -iti verb.
            return 0;
        }

        foreach (var form in IjekavianParticiples)
        {
            if (word.EndsWith(form, StringComparison.Ordinal))
            {
                return 1;
            }
        }

        foreach (var form in EkavianParticiples)
        {
            if (word.EndsWith(form, StringComparison.Ordinal))
            {
                return -1;
            }
        }

        return 0;
    }

    private static readonly FrozenSet<string> CommonEndings = FrozenSet.ToFrozenSet(
        ["video", "veseo", "debeo", "pepeo", "oteo", "hotela", "hotele", "hoteli", "modela", "modele", "modeli", "pameti", "neo", "leo"],
        StringComparer.Ordinal);

    private static string Stem(string form) => "aeiou".Contains(form[^1], StringComparison.Ordinal) ? form[..^1] : form;

    /// <summary>Where a word's ijekavian reflex is (<c>ije</c> or the <c>je</c> after a consonant), or length 0.</summary>
    internal static (int Start, int Length) Reflex(ReadOnlySpan<char> word)
    {
        foreach (var prefix in CommonPrefixes)
        {
            if (word.StartsWith(prefix, StringComparison.Ordinal))
            {
                return (0, 0);
            }
        }

        if (YatAsI.GetAlternateLookup<ReadOnlySpan<char>>().Contains(word))
        {
            return (word.Length - 2, 1);
        }

        if (IsIjVerbForm(word))
        {
            return (0, 0);
        }

        if (FinalForms.GetAlternateLookup<ReadOnlySpan<char>>().Contains(word))
        {
            var at = word.LastIndexOf("je", StringComparison.Ordinal);
            return at > 0 && word[at - 1] == 'i' ? (at - 1, 3) : (at, 2);
        }

        for (var i = 1; i + 2 < word.Length; i++)
        {
            if (word[i] != 'j' || word[i + 1] != 'e' || !IsConsonant(word[i + 2]))
            {
                continue;
            }

            // mlijeko, rijeka, svijet: "ije" between consonants.
            if (word[i - 1] == 'i' && i >= 2 && IsConsonant(word[i - 2]))
            {
                return (i - 1, 3);
            }

            // mjesto, djeca, pjesma: "je" after one of the consonants that take the short reflex (not lj, nj).
            if (BeforeShortReflex.Contains(word[i - 1], StringComparison.Ordinal))
            {
                return (i, 2);
            }
        }

        return (0, 0);
    }

    // Round 32: verbs whose present stem ends in -ij- (piti/pijem, biti/bijem, liti/lijem, viti/vijem, šiti/šijem,
    // kriti/krijem, sijati/sijem, and their prefixed forms: popijem, dobijem, zalijem, otkrijem, sakrijem) write "ije"
    // before the present endings -m, -š, -mo, -te, and piti, biti and viti before the passive participle's -n-
    // (popijen, razbijena, dobijeno, savijenu, razvijeni): the verb's i and the ending's je, which every standard
    // writes, not the yat (a Serbian "presavijenu salvetu" counted as ijekavian).
    private static readonly string[] PresentEndings = ["m", "š", "mo", "te"];
    private static readonly string[] ParticipleEndings = ["", "a", "o", "i", "u", "e", "om", "oj", "og", "oga", "ome", "omu", "ih", "im", "ima"];

    internal static bool IsIjVerbForm(ReadOnlySpan<char> word)
    {
        var at = word.LastIndexOf("ije", StringComparison.Ordinal);
        if (at < 1)
        {
            return false;
        }

        var before = word[..at];
        var rest = word[(at + 3)..];
        foreach (var ending in PresentEndings)
        {
            if (rest.SequenceEqual(ending) && (before.EndsWith("kr", StringComparison.Ordinal) || ("pblvšs".Contains(before[^1]) && !AfterSibilant(before))))
            {
                return true;
            }
        }

        if (rest.Length >= 1 && rest[0] == 'n' && "pbv".Contains(before[^1]) && !AfterSibilant(before))
        {
            var ending = rest[1..];
            foreach (var candidate in ParticipleEndings)
            {
                if (ending.SequenceEqual(candidate))
                {
                    return true;
                }
            }
        }

        return false;

        // svijet, cvijet, zvijezda: v after s, c, z begins a yat word's stem, not a verb's.
        static bool AfterSibilant(ReadOnlySpan<char> before) => before.Length >= 2 && before[^1] == 'v' && "scz".Contains(before[^2]);
    }

    private static bool IsConsonant(char c) => Consonants.Contains(c, StringComparison.Ordinal);
}
