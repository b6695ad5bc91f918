namespace Sovereign.Languages.Tests;

/// <summary>Czech and Slovak by the letters one alphabet has and the other lacks, inside their close group.</summary>
public sealed class CzechSlovakLettersTests
{
    [Theory]
    [InlineData("Po obědě pojedeme k babičce.", 1, 0)]      // ě
    [InlineData("Dům u řeky.", 1, 0)]                        // ů, ř
    [InlineData("Veľmi rád chodím do môjho parku.", 0, 1)]   // ľ, ô
    [InlineData("Päť jabĺk.", 0, 1)]                         // ä, ĺ
    [InlineData("Ten koláč byl výborný.", 0, 0)]             // á, č, ý: both alphabets
    public void Count_LettersOnlyOneAlphabetHas(string text, int czech, int slovak)
    {
        Assert.Equal((czech, slovak), CzechSlovakLetters.Count(LanguageProfiles.Normalize(text)));
    }

    // Held-out 1's Czech sentence that came back Slovak (tuning material since session 22): ě in "oběda" is its only
    // letter Slovak's alphabet lacks, and the group's pooled Lingua share had erased Lingua's alphabet rule. Since session
    // 42 the Czech and Slovak subtitles' word rates also make it Czech, so the letters are shown alone with them off.
    [Fact]
    public void Detect_CzechSentenceWithALetterSlovakLacks_Czech()
    {
        const string text = "Baterie v mobilu mi vždycky dojde do oběda.";

        Assert.Equal("sk", TestData.DefaultDetector.WithSpelling(0).WithSubtitles(0, 2).Detect(text).Language);
        Assert.Equal("cs", TestData.DefaultDetector.WithSubtitles(0, 2).Detect(text).Language);
        Assert.Equal("cs", TestData.DefaultDetector.Detect(text).Language);
    }
}
