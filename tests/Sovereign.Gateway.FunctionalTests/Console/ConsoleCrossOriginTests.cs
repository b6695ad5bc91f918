namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// The console's forms act only when posted from its own pages. The session cookie is SameSite=Strict, but "site"
/// ignores the port and sibling subdomains: a page of another service on the same host (another port) or domain was
/// sent the operator's cookie and could disable a tenant; and any site could sign a browser in with its own key.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConsoleCrossOriginTests(ConsoleFixture fixture)
{
    [Theory]
    [InlineData("Sec-Fetch-Site", "same-site")]
    [InlineData("Sec-Fetch-Site", "cross-site")]
    [InlineData("Origin", "http://127.0.0.1:1")]
    [InlineData("Origin", "null")]
    public async Task APolicyFormPostedFromAnotherOrigin_Is403_AndChangesNothing(string header, string value)
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        using var login = await client.PostAsync("/console/login", new FormUrlEncodedContent([new("credential", ConsoleFixture.AdminToken)]));
        var cookie = login.Headers.GetValues("Set-Cookie").Single().Split(';')[0];

        using var request = new HttpRequestMessage(HttpMethod.Post, $"/console/tenants/{tenant}/policy")
        {
            Content = new FormUrlEncodedContent([new("jurisdictions", "TH"), new("plan", "standard"), new("disabled", "on")]),
        };
        request.Headers.Add("Cookie", cookie);
        request.Headers.Add(header, value);
        using var answer = await client.SendAsync(request);

        Assert.Equal(403, (int)answer.StatusCode);
        Assert.Contains("act only when sent from this console", await answer.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False((await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}", null)).GetProperty("disabled").GetBoolean());
    }

    [Fact]
    public async Task ASignInPostedFromAnotherSite_Is403_AndSetsNoCookie()
    {
        var (_, key) = await fixture.NewTenantAsync();
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/console/login") { Content = new FormUrlEncodedContent([new("credential", key)]) };
        request.Headers.Add("Sec-Fetch-Site", "cross-site");
        request.Headers.Add("Origin", "https://attacker.example");
        using var answer = await client.SendAsync(request);

        Assert.Equal(403, (int)answer.StatusCode);
        Assert.False(answer.Headers.Contains("Set-Cookie"));
    }

    [Theory]
    [InlineData("Sec-Fetch-Site", "same-origin")]
    [InlineData("Sec-Fetch-Site", "none")]
    [InlineData("Origin", "")]
    public async Task ASignInFromTheConsolesOwnPage_OrTypedByHand_StillWorks(string header, string value)
    {
        var (_, key) = await fixture.NewTenantAsync();
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/console/login") { Content = new FormUrlEncodedContent([new("credential", key)]) };
        request.Headers.Add(header, value.Length > 0 ? value : fixture.Url);
        using var answer = await client.SendAsync(request);

        Assert.Equal(302, (int)answer.StatusCode);
        Assert.True(answer.Headers.Contains("Set-Cookie"));
    }
}
