namespace Sovereign.Languages;

/// <summary>
/// Bulgarian read as Serbian (round 35). Where a Bulgarian text writes none of the letters only Bulgarian writes
/// (<c>ъ, щ, ю, я, й</c>) and a Serbian one none of Serbian's (<c>ђ, ћ, ј, љ, њ, џ</c>), the alphabets do not tell them
/// apart and the profiles can favour Serbian: held-out 34's "В рецептата пише да се пече четиресет минути на сто и
/// осемдесет градуса." was Serbian at 0.91. The two standards' closed word classes and numerals differ where their
/// letters do not: Bulgarian writes the prepositions <c>в, във, със, от, през, между</c> (Serbian <c>у, са, од, кроз,
/// између</c>), <c>днес, винаги, тук, там, нищо</c> (Serbian <c>данас, увек, ту, тамо, ништа</c>), the demonstratives and
/// relatives <c>това, този, тази, тези, което, които</c>, and the numerals <c>един, осем, седем, четиресет, четиридесет,
/// петдесет, шестдесет, седемдесет, осемдесет, деветдесет</c> (Serbian <c>један, осам, седам, четрдесет, педесет,
/// шездесет, седамдесет, осамдесет, деведесет</c>). Words Macedonian shares with Bulgarian (<c>сега, ние, вие, една,
/// едно, вчера</c>) are left out, so that Macedonian read as Serbian does not become Bulgarian. Two distinct Bulgarian
/// words, no Serbian letter and none of Serbian's own words (<c>у, од, су, смо, кроз, шта, ко, где, када, сада, данас,
/// сутра, због, веома</c>) or Macedonian's (<c>во, со, сум, кој, каде, ...</c>) turn a Serbian answer into Bulgarian.
/// Written from general knowledge of the standards; checked on every Serbian and Macedonian sentence in Cyrillic letters
/// of the tuning corpus and the data sets (none writes two of the words) by
/// <c>LanguageDetectorTests.BulgarianSerbianGrammar_SerbianAndMacedonianSentences_NeverTaken</c>.
/// </summary>
internal static class BulgarianSerbianGrammar
{
    /// <summary>Distinct Bulgarian words a text needs at least.</summary>
    public const int MinimumWords = 2;

    private static readonly DistinctWordEvidence Evidence = new(
        "в във със от през между днес винаги тук там нищо това този тази тези което които един осем седем четиресет четиридесет петдесет шестдесет седемдесет осемдесет деветдесет",
        "у од су смо кроз шта ко где када кад сада данас сутра због веома "
        + "во со сум сме кој кое каде зошто тоа таа тие денес многу секогаш ништо оваа овој дека сите",
        CyrillicAlphabets.LettersLackedBy("bg")!,
        MinimumWords);

    /// <summary>For a normalised Cyrillic text, how many distinct Bulgarian words it writes when it writes at least
    /// <see cref="MinimumWords"/>, no letter Bulgarian's alphabet lacks and none of Serbian's or Macedonian's own words;
    /// otherwise 0.</summary>
    public static int BulgarianWords(string normalized) => Evidence.Count(normalized);
}
