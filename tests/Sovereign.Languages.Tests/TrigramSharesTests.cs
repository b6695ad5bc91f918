using Lingua;

namespace Sovereign.Languages.Tests;

/// <summary>The one-pass scorer over Lingua's published models against Lingua's own low-accuracy mode.</summary>
public sealed class TrigramSharesTests
{
    private static readonly Language[] Latin = [Language.English, Language.French, Language.German, Language.Croatian, Language.Czech, Language.Shona, Language.Yoruba];

    private static readonly Lazy<TrigramShares> Shares = new(() => TrigramShares.Load(Latin));

    [Theory]
    [InlineData("The kettle is broken, so we will have tea at the neighbours' house.", Language.English)]
    [InlineData("Nous avons oublié les clés de la voiture chez ma grand-mère.", Language.French)]
    [InlineData("Wir müssen morgen früh den Zug nach Hamburg nehmen.", Language.German)]
    [InlineData("Sutra idemo vlakom na more, pa moramo rano ustati.", Language.Croatian)]
    // Lingua's own low-accuracy call reads this one as Shona (a missing n-gram costs a language nothing); here Shona
    // is out of the running, as its alphabet lacks letters of the text.
    [InlineData("Zítra ráno musíme jet vlakem do Brna k babičce.", Language.Czech)]
    public void Shares_LeadWithTheTextsLanguage_AndSumToOne(string text, Language expected)
    {
        var values = Shares.Value.Shares(text);

        Assert.Equal(expected, Shares.Value.Languages[Array.IndexOf(values, values.Max())]);
        Assert.Equal(1.0, values.Sum(), 6);
        Assert.True(values.Max() > 0.5, $"{expected}: {values.Max():F3}");
    }

    [Theory]
    [InlineData("")]
    [InlineData("12 34, 56!")]
    [InlineData("ab")]
    public void Shares_AreZeroWithoutThreeLettersInARow(string text) =>
        Assert.All(Shares.Value.Shares(text), value => Assert.Equal(0, value));
}
