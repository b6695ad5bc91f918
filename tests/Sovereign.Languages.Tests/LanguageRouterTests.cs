namespace Sovereign.Languages.Tests;

public sealed class LanguageRouterTests
{
    private static readonly LanguageAlias Auto = new("auto", "general-8b",
    [
        new RouteCandidate("sea-lion-9b", ["th", "vi", "id", "ms", "tl", "km", "lo", "my"]),
        new RouteCandidate("typhoon-8b", ["th"]),
        new RouteCandidate("airavata-7b", ["hi", "mr", "bn"]),
        new RouteCandidate("eurollm-9b", ["de", "fr", "mt", "ga"]),
    ]);

    private static LanguageDetection Detected(string language) => new(language, 0.9, LanguageDetection.ByScript);

    [Fact]
    public void Choose_PreferredCandidateAllowed_PicksIt()
    {
        var choice = LanguageRouter.Choose(Auto, Detected("th"), _ => true);

        Assert.Equal("sea-lion-9b", choice.ModelId);
        Assert.Equal("th", choice.Language);
        Assert.Contains("preference 1", choice.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Choose_PreferredCandidateNotAllowed_NextAllowedCandidateAndSaysSo()
    {
        var choice = LanguageRouter.Choose(Auto, Detected("th"), id => id != "sea-lion-9b");

        Assert.Equal("typhoon-8b", choice.ModelId);
        Assert.Contains("not allowed by policy: sea-lion-9b", choice.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Choose_FilipinoDetectedAndCandidateListsTl_Matches()
    {
        Assert.Equal("sea-lion-9b", LanguageRouter.Choose(Auto, Detected("fil"), _ => true).ModelId);
    }

    [Fact]
    public void Choose_NoCandidateServesLanguage_AliasDefault()
    {
        var choice = LanguageRouter.Choose(Auto, Detected("ja"), _ => true);

        Assert.Equal("general-8b", choice.ModelId);
        Assert.Contains("no candidate serves 'ja'", choice.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Choose_Undetermined_AliasDefault()
    {
        var choice = LanguageRouter.Choose(Auto, LanguageDetection.None(LanguageDetection.ByScript), _ => true);

        Assert.Equal("general-8b", choice.ModelId);
        Assert.Equal(LanguageDetection.Undetermined, choice.Language);
        Assert.Contains("undetermined", choice.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Choose_CandidatesNotAllowed_FallsBackToAllowedDefaultAndSaysSo()
    {
        var choice = LanguageRouter.Choose(Auto, Detected("hi"), id => id == "general-8b");

        Assert.Equal("general-8b", choice.ModelId);
        Assert.Contains("not allowed by policy: airavata-7b", choice.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Choose_NothingAllowed_FailsClosed()
    {
        var choice = LanguageRouter.Choose(Auto, Detected("hi"), _ => false);

        Assert.Null(choice.ModelId);
        Assert.False(choice.IsRouted);
        Assert.Contains("general-8b not allowed", choice.Reason, StringComparison.Ordinal);
    }
}
