namespace Sovereign.Languages;

/// <summary>
/// Letters that no covered language writes together, found in the languages beside them (session 37, out of set 6:
/// Upper Sorbian read as Polish, Czech or Slovak, Carpathian Rusyn as Ukrainian or Russian, Silesian as Polish, none of
/// them with a profile or a Lingua model of its own):
/// <list type="bullet">
/// <item>Polish <c>ł, ś, ź, ń</c> beside a háček letter <c>č, š, ž, ř, ě</c>: Polish writes no háček, Czech, Slovak,
/// Slovenian, Croatian, Bosnian, Serbian, Lithuanian and Latvian none of those four; the Sorbian languages write both
/// (<c>dźěćo, małe, zapjasće</c>).</item>
/// <item>Cyrillic <c>ы</c> beside <c>ї</c> or <c>є</c>: Russian writes no <c>ї, є</c>, Ukrainian no <c>ы</c>,
/// Belarusian (<c>і</c> and <c>ы</c>) neither <c>ї</c> nor <c>є</c>; Rusyn writes all three (<c>шыйной, мої</c>).</item>
/// <item><c>ō, ŏ</c>, which no covered alphabet has: Silesian (<c>ksiōnżka, lŏ</c>).</item>
/// <item>Kashubian <c>ë, ò, ù, ã</c> beside Polish <c>ł, ś, ź, ń, ą, ę</c> (round 20, out of set 7): Polish writes none
/// of the four, and the alphabets that do (Dutch, French, Italian, Catalan, Portuguese, Vietnamese, Maltese, Albanian)
/// none of those six.</item>
/// <item>Latgalian <c>y</c> beside Latvian <c>ā, ē, ī, ļ, ņ, ķ, ģ</c>: Latvian writes no <c>y</c>, Lithuanian (<c>y</c>,
/// <c>ū</c>) none of those seven.</item>
/// <item>Crimean Tatar <c>ñ, q</c> beside Turkish <c>ı, ğ, ş</c>: Turkish writes neither <c>ñ</c> nor <c>q</c>, Spanish
/// no dotless <c>ı</c>; Azerbaijani, a decoy, writes <c>q</c> with them too.</item>
/// <item>Gagauz <c>ä, ê, ţ</c> and Turkmen <c>ä, ň, ý, ž</c> beside Turkish <c>ı, ğ, ş</c> (round 26): Turkish writes
/// none of the five (its circumflex is on <c>â, î, û</c>), and the alphabets that write <c>ä, ý, ž, ň</c> (German,
/// Swedish, Finnish, Estonian, Slovak, Czech) none of <c>ı, ğ, ş</c>. <c>ţ</c> counts only beside <c>ı</c> or
/// <c>ğ</c>: Romanian typed with cedillas writes <c>ţ</c> beside <c>ş</c>.</item>
/// <item>Cyrillic <c>ӑ, ӗ, ӳ, ҫ</c> (Chuvash) and <c>ҡ, ҙ</c> (Bashkir), Latin <c>ŋ, ŧ</c> (Northern Sami) and the
/// Arabic-script vowels and consonants <c>ۇ, ۆ, ۈ, ې, ە, ڭ, ۋ</c> (Uyghur, Kazakh and Kyrgyz in Arabic letters), which no
/// covered alphabet has (round 26).</item>
/// </list>
/// Taken from the alphabets; checked on every covered sentence of the tuning corpus, the held-out and development sets
/// and the UDHR: none writes such a mixture. A covered answer to such a text is replaced by <c>und</c>.
/// </summary>
internal static class LetterMixtures
{
    private const string PolishOnly = "łśźń";
    private const string Hacek = "čšžřě";
    private const string CyrillicYeru = "ы";
    private const string UkrainianOnly = "їє";
    private const string SilesianOnly = "ōŏ";
    private const string KashubianOnly = "ëòùã";
    private const string PolishBeside = "łśźńąę";
    private const string LatgalianY = "y";
    private const string LatvianOnly = "āēīļņķģ";
    private const string CrimeanTatarOnly = "ñq";
    private const string TurkishOnly = "ığş";
    private const string LithuanianE = "ė";
    private const string LatvianLong = "āēīōļņķģ";
    private const string GagauzTurkmenOnly = "äêňýž";
    private const string TurkmenOnly = "ňýž";
    private const string TurkishDotless = "ığ";
    private const string ChuvashOnly = "ӑӗӳ";
    private const string ChuvashBashkir = "ӑӗӳҫҡҙ";
    private const string SamiOnly = "ŋŧ";
    private const string UyghurOnly = "ۇۆۈېڭۋە";

    /// <summary>For a lower-cased text, the language the mixture points to (<c>wen</c>, the Sorbian languages;
    /// <c>rue</c>; <c>szl</c>; <c>csb</c>; <c>ltg</c>; <c>crh</c>; <c>gag</c>; <c>tk</c>; <c>cv</c>; <c>ba</c>; <c>se</c>; <c>ug</c>) and
    /// how many words carry its letters, or null.</summary>
    public static (string Language, int Words)? Evaluate(string normalized)
    {
        int polish = 0, hacek = 0, yeru = 0, ukrainian = 0, silesian = 0, kashubian = 0, polishBeside = 0, latgalian = 0, latvian = 0, tatar = 0, turkish = 0, lithuanianE = 0, latvianLong = 0, otilde = 0, finalQ = 0, gagauz = 0, turkmen = 0, cedillaT = 0, dotless = 0, chuvash = 0, chuvashBashkir = 0, sami = 0, uyghur = 0;
        foreach (var (start, length) in LanguageProfiles.Words(normalized))
        {
            var word = normalized.AsSpan(start, length);
            polish += word.IndexOfAny(PolishOnly) >= 0 ? 1 : 0;
            hacek += word.IndexOfAny(Hacek) >= 0 ? 1 : 0;
            yeru += word.IndexOfAny(CyrillicYeru) >= 0 ? 1 : 0;
            ukrainian += word.IndexOfAny(UkrainianOnly) >= 0 ? 1 : 0;
            silesian += word.IndexOfAny(SilesianOnly) >= 0 ? 1 : 0;
            kashubian += word.IndexOfAny(KashubianOnly) >= 0 ? 1 : 0;
            polishBeside += word.IndexOfAny(PolishBeside) >= 0 ? 1 : 0;
            latgalian += word.IndexOfAny(LatgalianY) >= 0 ? 1 : 0;
            latvian += word.IndexOfAny(LatvianOnly) >= 0 ? 1 : 0;
            tatar += word.IndexOfAny(CrimeanTatarOnly) >= 0 ? 1 : 0;
            turkish += word.IndexOfAny(TurkishOnly) >= 0 ? 1 : 0;
            lithuanianE += word.IndexOfAny(LithuanianE) >= 0 ? 1 : 0;
            latvianLong += word.IndexOfAny(LatvianLong) >= 0 ? 1 : 0;
            otilde += word.Contains('õ') ? 1 : 0;
            finalQ += word.Length > 1 && word[^1] == 'q' ? 1 : 0;
            gagauz += word.IndexOfAny(GagauzTurkmenOnly) >= 0 ? 1 : 0;
            turkmen += word.IndexOfAny(TurkmenOnly) >= 0 ? 1 : 0;
            cedillaT += word.Contains('ţ') ? 1 : 0;
            dotless += word.IndexOfAny(TurkishDotless) >= 0 ? 1 : 0;
            chuvash += word.IndexOfAny(ChuvashOnly) >= 0 ? 1 : 0;
            chuvashBashkir += word.IndexOfAny(ChuvashBashkir) >= 0 ? 1 : 0;
            sami += word.IndexOfAny(SamiOnly) >= 0 ? 1 : 0;
            uyghur += word.IndexOfAny(UyghurOnly) >= 0 ? 1 : 0;
        }

        return polish > 0 && hacek > 0 ? ("wen", polish + hacek)
            : yeru > 0 && ukrainian > 0 ? ("rue", yeru + ukrainian)
            : lithuanianE > 0 && latvianLong > 0 ? ("sgs", lithuanianE + latvianLong)
            : silesian > 0 ? ("szl", silesian)
            : kashubian > 0 && polishBeside > 0 ? ("csb", kashubian + polishBeside)
            : latgalian > 0 && latvian > 0 ? ("ltg", latgalian + latvian)
            : tatar > 0 && turkish > 0 ? ("crh", tatar + turkish)
            : otilde > 0 && finalQ > 0 ? ("vro", otilde + finalQ)
            : gagauz > 0 && turkish > 0 ? (turkmen > 0 ? "tk" : "gag", gagauz + turkish)
            : cedillaT > 0 && dotless > 0 ? ("gag", cedillaT + dotless)
            : chuvashBashkir > 0 ? (chuvash > 0 ? "cv" : "ba", chuvashBashkir)
            : sami > 0 ? ("se", sami)
            : uyghur > 0 ? ("ug", uyghur)
            : null;
    }
}
