using Sovereign.Metering.Pricing;

namespace Sovereign.Metering.Tests.Pricing;

public sealed class BilledTokensTests
{
    private static readonly BilledTokens Rule = new([new("fair", (IEnumerable<string>)["th", "my"])]);

    private static (long, long, string) AllOfIt() => (100, 100, "script");

    [Fact]
    public void CharacterEquivalentPlan_BillsAPromptAllInTheLanguageAsEnglish_RoundingUp()
    {
        Assert.Equal((34, 4), Pair(Rule.For("fair", "th", 100, 10, () => 3.0, AllOfIt)));
        Assert.Equal((34, 4), Pair(Rule.For("FAIR", "TH", 100, 10, () => 3.0, AllOfIt)));
    }

    /// <summary>
    /// The waiver covers the language's share of the prompt only. Before, the whole prompt was billed at the
    /// language's rate whenever the request's language was waived: 97 English letters and 3 Thai ones cost a third.
    /// </summary>
    [Fact]
    public void CharacterEquivalentPlan_WaivesOnlyTheLanguagesShareOfThePrompt()
    {
        var (prompt, completion, basis) = Rule.For("fair", "th", 100, 10, () => 3.0, () => (3, 100, "script"));

        // 1 + 0.03 × (3 − 1) = 1.06: 100 / 1.06 and 10 / 1.06, rounded up.
        Assert.Equal((95, 10), (prompt, completion));
        Assert.Equal(new CharacterEquivalentBasis("th", 3.0, 3, 100, "script") { CompletionLanguageLetters = 3, CompletionLetters = 100 }, basis);
        Assert.Equal(0.03, basis!.Share, 9);
        Assert.Equal(1.06, basis.EffectiveRatio, 9);

        // Half Thai: 1 + 0.5 × 2 = 2.
        Assert.Equal((50, 5), Pair(Rule.For("fair", "th", 100, 10, () => 3.0, () => (50, 100, "script"))));

        // No Thai letters at all (a prompt of digits): billed as counted.
        Assert.Equal((100, 10), Pair(Rule.For("fair", "th", 100, 10, () => 3.0, () => (0, 0, "script"))));
    }

    /// <summary>
    /// The completion is billed at its own letters' mix. Before, at the prompt's: an English answer to a Thai question
    /// was billed a third of its tokens.
    /// </summary>
    [Fact]
    public void CharacterEquivalentPlan_BillsTheCompletionAtItsOwnLetters()
    {
        var (prompt, completion, basis) = Rule.For("fair", "th", 100, 10, () => 3.0, AllOfIt, () => (0, 50));

        Assert.Equal((34, 10), (prompt, completion));
        Assert.Equal((0L, 50L, 100L, 100L), (basis!.CompletionLanguageLetters, basis.CompletionLetters, basis.LanguageLetters, basis.PromptLetters));

        // A half-Thai answer: 10 / (1 + 0.5 × 2); an answer without letters (digits, a tool call) is billed as counted.
        Assert.Equal((34, 5), Pair(Rule.For("fair", "th", 100, 10, () => 3.0, AllOfIt, () => (25, 50))));
        Assert.Equal((34, 10), Pair(Rule.For("fair", "th", 100, 10, () => 3.0, AllOfIt, () => (0, 0))));
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
        Assert.Equal((100, 10, (CharacterEquivalentBasis?)null), Rule.For(plan, language, 100, 10, () => ratio, AllOfIt));
    }

    [Fact]
    public void TheLanguageTaxAndTheShareAreMeasuredOnlyWhenThePlanWaivesIt_AndSomethingIsBilled()
    {
        var asked = 0;
        Rule.For("standard", "th", 100, 10, () => ++asked, () => (++asked, 1, "script"));
        Assert.Equal((0, 0, (CharacterEquivalentBasis?)null), Rule.For("fair", "th", 0, 0, () => ++asked, () => (++asked, 1, "script")));
        Assert.Equal(0, asked);
    }

    private static (int, int) Pair((int Prompt, int Completion, CharacterEquivalentBasis? Basis) billed) => (billed.Prompt, billed.Completion);
}
