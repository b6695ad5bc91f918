namespace Sovereign.Languages;

/// <summary>
/// Serbian in Cyrillic letters read as Macedonian, a decoy outside the covered set (session 41, round 23): where no
/// <c>ђ</c> or <c>ћ</c> is written, Lingua's share and the profiles can favour Macedonian, and the text came back
/// <c>und</c>. The two standards' closed word classes differ where their letters do not: Serbian declines and writes
/// the copula <c>је, су</c>, the auxiliary <c>сам, смо</c>, the prepositions <c>у, из, са, кроз</c>, the clitics
/// <c>га, их, јој</c> and <c>ко, шта, где, када</c>; Macedonian writes the copula <c>е</c>, <c>во, со</c>, the
/// clitics <c>го, ги</c>, the future <c>ќе</c>, <c>сум</c> and <c>кој, каде, сега, многу</c> (no cases, the article
/// joined to the noun). Two distinct Serbian words and none of Macedonian's turn such an answer into Serbian. Written
/// from general knowledge of the two grammars, never from an evaluation sentence; checked on every Macedonian sentence
/// of the tuning corpus, the decoy, held-out and out-of-set sets (none is taken) by
/// <c>LanguageDetectorTests.SerbianCyrillicGrammar_MacedonianSentences_NeverTaken</c>.
/// Round 35 added everyday words whose Macedonian counterparts are other words: <c>свако, сваки, свака, ...</c>
/// (Macedonian <c>секој, секоја, секое</c>), <c>јутро, јутрос, јутра, јутру</c> (Macedonian <c>утро, утрово</c>) and the
/// forms of <c>кувати, скувати</c> (Macedonian <c>вари, готви</c>): held-out 34's "Тата свако јутро кува кафу у малој
/// џезви." wrote only <c>у</c> of the list and was <c>und</c> beside Macedonian (0.95). No Macedonian, Bulgarian,
/// Russian, Ukrainian or Belarusian line of the tuning corpus or the data sets writes one of them.
/// Round 37 added closed-class words whose Macedonian counterparts are other words: <c>све</c> (Macedonian <c>сè,
/// сите</c>), <c>док</c> (<c>додека</c>), <c>ништа, нико, неко</c> (<c>ништо, никој, некој</c>), <c>врло</c>
/// (<c>многу</c>), <c>између</c> (<c>меѓу</c>) and the participle <c>био</c> (<c>бил</c>; <c>била, било, били</c> left
/// out: Macedonian and Bulgarian write them). From general knowledge of the grammars, after round 36 named a sentence
/// that wrote only <c>у</c> of the list ("... у дворишту све док не падне мрак.", und beside Macedonian); no line of
/// another Cyrillic language in the tuning corpus or the data sets writes one of them.
/// </summary>
internal static class SerbianCyrillicGrammar
{
    /// <summary>Distinct Serbian words a text needs at least.</summary>
    public const int MinimumWords = 2;

    private static readonly DistinctWordEvidence Evidence = new(
        "је су сам смо нисам нисмо није нису у из са кроз га их јој њој њега њих шта ко где када кад сада који које којег којој зашто веома због јер код још већ данас сутра јуче увек много мало сви свим овај тај ово какав колико ниједан "
        + "свако сваки свака сваке сваког сваку сваком свакој свакога јутро јутрос јутра јутру "
        + "кува кувам куваш кувамо кувате кувају кувао кувала кувало кували скувао скувала скувало скували кувати "
        + "све док ништа нико неко врло између био",
        "е во со ќе го ги сум сме бев беше кој кое каде кога сега многу малку уште веќе денес утре вчера секогаш зошто оваа овој тоа тој таа тие ние вие нив нејзе ништо сите сѐ дека бидејќи",
        "ѓќѕ",
        MinimumWords);

    /// <summary>For a normalised Cyrillic text, how many distinct Serbian words it writes when it writes at least
    /// <see cref="MinimumWords"/> and no Macedonian word nor a letter only Macedonian writes; otherwise 0.</summary>
    public static int SerbianWords(string normalized) => Evidence.Count(normalized);
}
