namespace Sovereign.Languages.Tests;

/// <summary>Contrast words: lines that name several languages, and inflected forms matched by stem.</summary>
public sealed class ContrastEvidenceTests
{
    [Theory]
    [InlineData("mlijeko", "hr bs")]           // ijekavian: Croatian and Bosnian against Serbian
    [InlineData("mleko", "sr sl")]             // ekavian: Serbian, and Slovenian writes it so too
    [InlineData("hiljada", "bs sr")]           // against Croatian tisuća
    [InlineData("tisuća", "hr")]
    [InlineData("historija", "bs")]
    [InlineData("akšam", "bs")]                // a Bosnian Turkism (session 21)
    [InlineData("kuhati", "hr bs")]            // the h Croatian and Bosnian keep (session 22) ...
    [InlineData("kuvati", "sr")]               // ... and Serbian drops
    [InlineData("lahka", "bs")]                // Bosnian h where the others write none (laka)
    [InlineData("trotoar", "bs sr")]           // against Croatian pločnik
    [InlineData("није", "sr")]                 // Serbian Cyrillic against Macedonian не е
    [InlineData("perilicu", "hr")]             // the household lexicon (session 37): Croatian perilica ...
    [InlineData("šporet", "bs sr")]            // ... Bosnian and Serbian šporet against Croatian štednjak
    [InlineData("hrišćanin", "sr")]            // Greek ch as h (Croatian kršćanin)
    [InlineData("daidža", "bs")]
    [InlineData("svibnja", "hr")]              // round 29: a Croatian month in the genitive a date takes ...
    [InlineData("januara", "bs sr")]           // ... and the eastern one
    [InlineData("vrećica", "hr")]              // Croatian vrećica against Bosnian and Serbian kesa
    [InlineData("kesa", "bs sr")]
    [InlineData("ispričavam", "hr")]           // apologies: Croatian ispričavam, Bosnian and Serbian izvinite
    [InlineData("izvinite", "bs sr")]
    [InlineData("stoljeće", "hr bs")]          // ijekavian stoljeće against Serbian vek
    [InlineData("uposlenik", "bs")]            // Bosnian uposlenik (Croatian djelatnik, Serbian zaposleni)
    [InlineData("hljebu", "bs")]               // the bread word's other cases: hljebu, kruhu, hlebu
    [InlineData("općenito", "hr bs")]          // round 37: Bosnian writes opć- as Croatian does (Serbian uopšteno)
    [InlineData("ćerka", "bs sr")]             // ... and ćerka, preduzeće as Serbian does
    [InlineData("preduzeće", "bs sr")]
    [InlineData("sedar", "ms")]                // Malaysian spelling against Indonesian sadar
    [InlineData("sadar", "id")]
    public void WordHits_ListedWord_CountsForEveryLanguageOfItsLine(string word, string languages)
    {
        var hits = ContrastEvidence.Default.WordHits(LanguageProfiles.Normalize(word));

        Assert.Equal(languages.Split(' ').Order(StringComparer.Ordinal), hits.Keys.Order(StringComparer.Ordinal));
        Assert.All(hits.Values, count => Assert.Equal(1, count));
    }

    // Round 37: idući is written by all three standards (iduće godine, idući mjesec), so it is no evidence for any.
    [Theory]
    [InlineData("idući")]
    public void WordHits_WordEveryStandardWrites_CountsForNone(string word)
    {
        Assert.Empty(ContrastEvidence.Default.WordHits(LanguageProfiles.Normalize(word)));
    }

    [Theory]
    [InlineData("Radio sam na univerzitetu u fabrikama.", "bs", 2)]   // univerzitet, fabrika: by stem
    [InlineData("Hiljadama ljudi, hiljadama puta.", "sr", 1)]        // hiljada: one distinct form, once
    public void WordHits_InflectedForms_MatchByStem(string text, string language, int expected)
    {
        var hits = ContrastEvidence.Default.WordHits(LanguageProfiles.Normalize(text));

        Assert.Equal(expected, hits.GetValueOrDefault(language));
    }

    [Fact]
    public void WordHits_WordsEveryScandinavianLanguageShares_AreNoEvidence()
    {
        // "det som på med har den" were once Swedish-only entries and tilted Danish and Norwegian text to Swedish.
        var hits = ContrastEvidence.Default.WordHits(LanguageProfiles.Normalize("det som på med har den"));

        Assert.DoesNotContain("da", hits.Keys);
        Assert.DoesNotContain("no", hits.Keys);
        Assert.DoesNotContain("sv", hits.Keys);
    }

    [Theory]
    [InlineData("Za ručak je sogan-dolma.", "bs", 2)]       // the parts of a hyphenated compound not listed whole
    [InlineData("kanak-kanak dan kanak-kanak", "ms", 1)]   // listed whole: one distinct word, once
    [InlineData("e-pošta", "bs", 0)]                        // parts that are no listed word or stem count nothing
    public void WordHits_HyphenatedCompound_CountsByItsParts(string text, string language, int expected)
    {
        var hits = ContrastEvidence.Default.WordHits(LanguageProfiles.Normalize(text));

        Assert.Equal(expected, hits.GetValueOrDefault(language));
    }

    [Theory]
    [InlineData("la", "fr", 1)]          // Spanish and Catalan la: French writes it too
    [InlineData("un la que", "fr", 2)]   // the most shared with one language (Catalan un, la), not the sum over all
    [InlineData("la", "es", 0)]          // listed for Spanish itself
    [InlineData("hiljada", "fr", 0)]     // no French tuning sentence writes it
    public void BorrowedWordHits_ListedWordsAnotherLanguageWrites_CountForItToo(string text, string language, int expected)
    {
        Assert.Equal(expected, ContrastEvidence.Default.BorrowedWordHits(LanguageProfiles.Normalize(text), language));
    }

    [Fact]
    public void BorrowedWordHits_WithinAGroup_NoneFromItsOwnMembers()
    {
        // Croatian and Bosnian ijekavian "mlijeko" against Serbian: Serbian does not borrow it from its own group.
        Assert.Equal(0, ContrastEvidence.Default.BorrowedWordHits(LanguageProfiles.Normalize("mlijeko"), "sr"));
    }

    [Theory]
    [InlineData("à è", "fr", 2)]         // Catalan's letters, which French writes
    [InlineData("ç", "tr", 1)]           // Catalan and Portuguese ç, which Turkish writes
    [InlineData("ñ", "pt", 0)]           // Spanish and Galician ñ: Portuguese is in their group and does not borrow it
    public void BorrowedLetterHits_LettersAnotherLanguageWrites_CountForItToo(string text, string language, int expected)
    {
        Assert.Equal(expected, ContrastEvidence.Default.BorrowedLetterHits(LanguageProfiles.Normalize(text), language));
    }
}
