using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// Times operators and tenants write are ISO 8601, UTC unless they state an offset. The API's query times (usage and
/// audit periods, a price's withdrawal) and the CLI's also took the US order: <c>07/12/2026</c>, the 7th of December
/// to an operator in Berlin or Bangkok, was read as the 12th of July without a word.
/// </summary>
public sealed class IsoTimeTests
{
    [Theory]
    [InlineData("2026-12-07", "2026-12-07T00:00:00.0000000+00:00")]
    [InlineData("2026-12-07T10:30", "2026-12-07T10:30:00.0000000+00:00")]
    [InlineData("2026-12-07T10:30:15Z", "2026-12-07T10:30:15.0000000+00:00")]
    [InlineData("2026-12-07t10:30:15.123z", "2026-12-07T10:30:15.1230000+00:00")]
    [InlineData("2026-12-07 10:30:15", "2026-12-07T10:30:15.0000000+00:00")]
    [InlineData("2026-12-07T00:00:00+07:00", "2026-12-06T17:00:00.0000000+00:00")]
    [InlineData("2030-01-01T00:00:00.0000000+00:00", "2030-01-01T00:00:00.0000000+00:00")] // as the API lists times
    [InlineData("2028-02-29", "2028-02-29T00:00:00.0000000+00:00")]
    public void IsoTimes_AreRead_UtcUnlessTheyStateAnOffset(string text, string expected)
    {
        Assert.True(IsoTime.TryParse(text, out var time));
        Assert.Equal(expected, time.ToUniversalTime().ToString("O", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), AdminApi.ParseTime(text, "from"));
    }

    [Theory]
    [InlineData("07/12/2026")] // the 12th of July to the old parser, the 7th of December to most of the world
    [InlineData("12/07/2026")]
    [InlineData("2026/12/07")]
    [InlineData("Dec 7 2026")]
    [InlineData("7 December 2026")]
    [InlineData("12:00")] // noon on the server's local date
    [InlineData("2027-02-29")]
    [InlineData("2026-12-07T24:00:00Z")]
    [InlineData("2026-12-07T10:30:00+7")]
    [InlineData(" 2026-12-07")]
    [InlineData("")]
    public void OtherShapes_AreRefused_NamingTheFieldAndTheFormat(string text)
    {
        Assert.False(IsoTime.TryParse(text, out _));
        if (text.Length > 0)
        {
            var refused = Assert.Throws<OpenAIException>(() => AdminApi.ParseTime(text, "from"));
            Assert.Equal(400, refused.Status);
            Assert.Equal("from", refused.Param);
            Assert.Contains("YYYY-MM-DD", refused.Message, StringComparison.Ordinal);
        }
    }
}
