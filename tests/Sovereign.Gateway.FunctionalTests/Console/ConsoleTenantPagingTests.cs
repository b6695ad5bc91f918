using System.Net;
using System.Text.RegularExpressions;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// The console's tenants page lists 100 tenants at a time with a link to the next ones: it listed every tenant in one
/// page (100,000 tenants: one table of 100,000 rows, built from one answer of all of them).
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed partial class ConsoleTenantPagingTests(ConsoleFixture fixture)
{
    [Fact]
    public async Task TenantsPage_ShowsAtMostAHundred_AndItsNextLinksWalkEveryTenantOnce()
    {
        for (var i = 0; i < 101; i++)
        {
            await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = $"cpage-{i:D3}", policy = new { allowed_jurisdictions = new[] { "TH" } } });
        }

        var all = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/tenants", null)).GetProperty("data").EnumerateArray().Select(t => t.GetProperty("id").GetString()!).ToList();
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        using var login = await client.PostAsync("/console/login", new FormUrlEncodedContent([new("credential", ConsoleFixture.AdminToken)]));
        var cookie = login.Headers.GetValues("Set-Cookie").Single().Split(';')[0];

        var seen = new List<string>();
        string? path = "/console/tenants";
        var pages = 0;
        while (path is not null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            request.Headers.Add("Cookie", cookie);
            using var response = await client.SendAsync(request);
            var html = await response.Content.ReadAsStringAsync();
            Assert.Equal(200, (int)response.StatusCode);
            var ids = TenantLink().Matches(html).Select(m => Uri.UnescapeDataString(m.Groups[1].Value)).ToList();
            Assert.InRange(ids.Count, 1, 100);
            Assert.Contains($"{all.Count:N0} tenants", html, StringComparison.Ordinal);
            seen.AddRange(ids);
            pages++;
            path = NextLink().Match(html) is { Success: true } next ? WebUtility.HtmlDecode(next.Groups[1].Value) : null;
        }

        Assert.True(pages >= 2, $"{all.Count} tenants in {pages} page(s)");
        Assert.Equal(all, seen);
    }

    [Fact]
    public async Task CliTenantsList_HonoursLimit_AndAfterWalksOnFromThere()
    {
        for (var i = 0; i < 3; i++)
        {
            await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = $"clipage-{i}", policy = new { allowed_jurisdictions = new[] { "TH" } } });
        }

        var all = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/tenants", null)).GetProperty("data").EnumerateArray().Select(t => t.GetProperty("id").GetString()!).ToList();
        string[] Cli(params string[] args) => [.. args, "--url", fixture.Url, "--admin-token", ConsoleFixture.AdminToken, "--json"];

        var (exit, stdout, stderr) = await CliProcess.RunAsync(Cli("tenants", "list", "--limit", "2"));
        Assert.True(exit == 0, stderr);
        var first = System.Text.Json.JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(all.Take(2), first.GetProperty("data").EnumerateArray().Select(t => t.GetProperty("id").GetString()!));
        Assert.True(first.GetProperty("has_more").GetBoolean());

        (exit, stdout, stderr) = await CliProcess.RunAsync(Cli("tenants", "list", "--after", all[1]));
        Assert.True(exit == 0, stderr);
        var rest = System.Text.Json.JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(all.Skip(2), rest.GetProperty("data").EnumerateArray().Select(t => t.GetProperty("id").GetString()!));
        Assert.False(rest.GetProperty("has_more").GetBoolean());

        (exit, _, stderr) = await CliProcess.RunAsync(Cli("tenants", "list", "--limit", "0"));
        Assert.Equal(2, exit);
        Assert.Contains("--limit", stderr, StringComparison.Ordinal);
    }

    [GeneratedRegex("<a href=\"/console/tenants/([^\"/?]+)\">")]
    private static partial Regex TenantLink();

    [GeneratedRegex("<a id=\"tenants-next\" href=\"([^\"]+)\">")]
    private static partial Regex NextLink();
}
