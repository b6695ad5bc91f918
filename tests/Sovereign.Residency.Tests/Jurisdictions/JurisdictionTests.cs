using Sovereign.Residency.Jurisdictions;

namespace Sovereign.Residency.Tests.Jurisdictions;

public sealed class JurisdictionTests
{
    [Theory]
    [InlineData("de", "DE")]
    [InlineData(" Th ", "TH")]
    [InlineData("GB", "GB")]
    public void TryParse_TwoLetters_ReturnsUpperCase(string input, string expected)
    {
        Assert.True(Jurisdiction.TryParse(input, out var jurisdiction));
        Assert.Equal(expected, jurisdiction.Code);
        Assert.Equal(Jurisdiction.Parse(expected), jurisdiction);
    }

    [Theory]
    [InlineData("DEU")]
    [InlineData("D1")]
    [InlineData("D")]
    [InlineData("")]
    [InlineData(null)]
    public void TryParse_NotTwoLetters_ReturnsFalse(string? input)
    {
        Assert.False(Jurisdiction.TryParse(input, out var jurisdiction));
        Assert.Equal(string.Empty, jurisdiction.Code);
    }

    [Fact]
    public void Parse_Invalid_ThrowsFormatException()
    {
        Assert.Throws<FormatException>(() => Jurisdiction.Parse("Germany"));
    }
}
