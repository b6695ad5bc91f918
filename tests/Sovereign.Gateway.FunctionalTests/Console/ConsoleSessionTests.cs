using Microsoft.AspNetCore.Http;
using Sovereign.Gateway.Console;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>Console sign-ins are bounded: per credential and in all.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class ConsoleSessionTests(ConsoleFixture fixture)
{
    [Fact]
    public async Task RepeatedSignIns_WithOneKey_KeepOnlyTheNewestSessions()
    {
        var (_, key) = await fixture.NewTenantAsync();
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        var cookies = new List<string>();
        for (var i = 0; i < ConsoleSessions.MaxPerCredential + 4; i++)
        {
            using var login = await client.PostAsync("/console/login", new FormUrlEncodedContent([new("credential", key)]));
            Assert.Equal(302, (int)login.StatusCode);
            cookies.Add(login.Headers.GetValues("Set-Cookie").Single().Split(';')[0]);
        }

        // Every sign-in used to keep its session for 8 hours: the first still opened the tenant's page.
        for (var i = 0; i < cookies.Count; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/console");
            request.Headers.Add("Cookie", cookies[i]);
            using var page = await client.SendAsync(request);
            var html = await page.Content.ReadAsStringAsync();
            var signedIn = !html.Contains("Operator token or tenant API key", StringComparison.Ordinal);
            Assert.True(signedIn == i >= 4, $"sign-in {i}: {(signedIn ? "still signed in" : "signed out")}");
        }
    }

    /// <summary>
    /// A tenant signed in with a key that is revoked later is signed out with the reason: the session lived on, and the
    /// page repeated "has been revoked" six times over an empty one (no plan, no usage, no keys).
    /// </summary>
    [Fact]
    public async Task ASessionWhoseKeyIsRevoked_EndsWithTheReason()
    {
        var (tenant, key) = await fixture.NewTenantAsync();
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        using var login = await client.PostAsync("/console/login", new FormUrlEncodedContent([new("credential", key)]));
        var cookie = login.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        var keyId = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/keys", null)).GetProperty("data")[0].GetProperty("id").GetString();
        await fixture.SendAsync(HttpMethod.Delete, $"/admin/v1/tenants/{tenant}/keys/{keyId}", null);

        var (status, html) = await GetConsoleAsync(client, cookie);
        Assert.Equal(401, status);
        Assert.Contains("Operator token or tenant API key", html, StringComparison.Ordinal);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(html, "has been revoked"));

        // The session is gone: the same cookie is a plain sign-in page.
        var (again, page) = await GetConsoleAsync(client, cookie);
        Assert.Equal(200, again);
        Assert.Contains("Operator token or tenant API key", page, StringComparison.Ordinal);
        Assert.DoesNotContain("revoked", page, StringComparison.Ordinal);
    }

    /// <summary>A tenant disabled after its sign-in is signed out too, as signing in refuses it.</summary>
    [Fact]
    public async Task ASessionOfATenantDisabledLater_EndsWithTheReason()
    {
        var (tenant, key) = await fixture.NewTenantAsync();
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        using var login = await client.PostAsync("/console/login", new FormUrlEncodedContent([new("credential", key)]));
        var cookie = login.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { disabled = true });

        var (status, html) = await GetConsoleAsync(client, cookie);
        Assert.Equal(401, status);
        Assert.Contains($"The tenant &#x27;{tenant}&#x27; is disabled.", html, StringComparison.Ordinal);
        Assert.Contains("Operator token or tenant API key", html, StringComparison.Ordinal);
    }

    /// <summary>
    /// Sign-in is open to anyone: a credential that no header can carry (a line break, a non-ASCII letter,
    /// or longer than a server takes) is refused like any wrong one. The console sends it on as the Authorization
    /// header of its own API call, which threw: a 500, logged as a failure with its stack, for anyone who asked.
    /// </summary>
    [Theory]
    [InlineData("a\r\nb")]
    [InlineData("a\nb")]
    [InlineData("\u00e9t\u00e9")]
    [InlineData("sk-sov-\u00e9")]
    [InlineData("sk-sov-a\rb")]
    [InlineData("long")]
    public async Task ACredentialNoHeaderCanCarry_IsRefusedLikeAWrongOne(string credential)
    {
        credential = credential == "long" ? new string('a', 100_000) : credential;
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        using var login = await client.PostAsync("/console/login", new FormUrlEncodedContent([new("credential", credential)]));

        Assert.Equal(401, (int)login.StatusCode);
        Assert.Contains("Operator token or tenant API key", await login.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.False(login.Headers.Contains("Set-Cookie"));
    }

    private static async Task<(int Status, string Html)> GetConsoleAsync(HttpClient client, string cookie)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/console");
        request.Headers.Add("Cookie", cookie);
        using var page = await client.SendAsync(request);
        return ((int)page.StatusCode, await page.Content.ReadAsStringAsync());
    }

    [Fact]
    public void Sessions_AreBoundedPerCredentialAndInAll_OldestEndsFirst()
    {
        var sessions = new ConsoleSessions(TimeProvider.System, maxPerCredential: 3, maxSessions: 10);
        var first = sessions.Create(ConsoleRole.Tenant, "key-a", "a");
        var ids = Enumerable.Range(0, 5).Select(_ => sessions.Create(ConsoleRole.Tenant, "key-a", "a")).ToList();
        Assert.Equal(3, sessions.CountFor("key-a"));
        Assert.Null(sessions.Find(With(first)));
        Assert.Null(sessions.Find(With(ids[1])));
        Assert.Equal("a", sessions.Find(With(ids[^1]))!.Tenant);

        // Many credentials: never more than the total; the oldest sessions overall are the ones that end.
        var others = Enumerable.Range(0, 20).Select(i => sessions.Create(ConsoleRole.Tenant, "key-" + i, null)).ToList();
        Assert.Equal(10, sessions.Count);
        Assert.Equal(0, sessions.CountFor("key-a"));
        Assert.NotNull(sessions.Find(With(others[^1])));
        Assert.Null(sessions.Find(With(others[9])));

        // Signing out frees the slot and the credential's entry.
        var context = With(others[^1]);
        sessions.Remove(context);
        Assert.Null(sessions.Find(context));
        Assert.Equal(9, sessions.Count);
        Assert.Equal(0, sessions.CountFor("key-19"));
    }

    private static DefaultHttpContext With(string id)
    {
        var context = new DefaultHttpContext();
        context.Request.Headers.Cookie = $"{ConsoleSessions.CookieName}={id}";
        return context;
    }
}
