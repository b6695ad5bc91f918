namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// Found by trying the console with curl as a new user: a mistyped console address answered the API's JSON error
/// object, which a browser shows as raw JSON.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConsoleNotFoundTests(ConsoleFixture fixture)
{
    [Theory]
    [InlineData("/console/nope")]
    [InlineData("/console/tenant")]
    [InlineData("/console/usage/extra")]
    [InlineData("/console/%3Cscript%3E")]
    public async Task AMistypedConsoleAddress_IsAnHtmlPageNotFound_WithTheConsolesHeaders(string path)
    {
        using var client = new HttpClient { BaseAddress = fixture.Address };

        using var response = await client.GetAsync(path);

        Assert.Equal(404, (int)response.StatusCode);
        Assert.Equal("text/html", response.Content.Headers.ContentType?.MediaType);
        var html = await response.Content.ReadAsStringAsync();
        Assert.Contains("There is no console page at", html, StringComparison.Ordinal);
        Assert.Contains("href=\"/console\"", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script>", html, StringComparison.Ordinal);
        Assert.Equal("DENY", response.Headers.GetValues("X-Frame-Options").Single());
    }

    [Fact]
    public async Task TheConsolesOwnPages_AndTheApisUnknownAddresses_AreAsBefore()
    {
        using var client = new HttpClient { BaseAddress = fixture.Address };

        using var verify = await client.GetAsync("/console/verify");
        Assert.Equal(200, (int)verify.StatusCode);

        using var api = await client.GetAsync("/v1/nope");
        Assert.Equal(404, (int)api.StatusCode);
        Assert.Equal("application/json", api.Content.Headers.ContentType?.MediaType);
        Assert.Contains("unknown_url", await api.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}
