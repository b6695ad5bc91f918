using Sovereign.Metering.Pricing;

namespace Sovereign.Metering.Tests.Pricing;

public sealed class BilledTokensTests
{
    private static readonly BilledTokens Rule = new([new("fair", (IEnumerable<string>)["th", "my"])]);

    [Fact]
    public void CharacterEquivalentPlan_BillsTheLanguageAsEnglish_RoundingUp()
    {
        Assert.Equal((34, 4), Rule.For("fair", "th", 100, 10, () => 3.0));
        Assert.Equal((34, 4), Rule.For("FAIR", "TH", 100, 10, () => 3.0));
    }

    [Theory]
    [InlineData("standard", "th", 3.0)]
    [InlineData("fair", "de", 3.0)]
    [InlineData("fair", null, 3.0)]
    [InlineData("fair", "th", 1.0)]
    [InlineData("fair", "th", 0.5)]
    [InlineData("fair", "th", double.NaN)]
    [InlineData("fair", "th", null)]
    public void OtherwiseBillsTheTokensCounted(string plan, string? language, double? ratio)
    {
        Assert.Equal((100, 10), Rule.For(plan, language, 100, 10, () => ratio));
    }

    [Fact]
    public void TheLanguageTaxIsMeasuredOnlyWhenThePlanWaivesIt()
    {
        var asked = 0;
        Rule.For("standard", "th", 100, 10, () => ++asked);
        Assert.Equal(0, asked);
    }
}
