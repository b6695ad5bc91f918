using System.Net;
using System.Text.RegularExpressions;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// The console's policy form holds every field as read when the page opened, and saving it wrote them all back: a
/// change made meanwhile (a CLI edit, another operator) was undone without a word. The form now carries the tenant's
/// ETag, and a save from a stale page is refused and shows the tenant as it is now.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed partial class ConsolePolicyEditTests(ConsoleFixture fixture)
{
    [Fact]
    public async Task SavingAPageOpenedBeforeAnotherChange_IsRefused_AndTheOtherChangeStays()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        using var login = await client.PostAsync("/console/login", new FormUrlEncodedContent([new("credential", ConsoleFixture.AdminToken)]));
        var cookie = login.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        var opened = await SendAsync(client, cookie, HttpMethod.Get, $"/console/tenants/{tenant}", null);
        var version = WebUtility.HtmlDecode(Version().Match(opened).Groups[1].Value);

        // Meanwhile another operator disables the tenant; this page still shows it enabled.
        await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { disabled = true });
        var stale = await SendAsync(client, cookie, HttpMethod.Post, $"/console/tenants/{tenant}/policy",
            [new("version", version), new("jurisdictions", "TH"), new("models", ConsoleFixture.Model), new("licenses", ""), new("origins", ""), new("plan", "standard")]);

        var after = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}", null);
        Assert.True(after.GetProperty("disabled").GetBoolean(), "the stale page enabled the tenant again");
        Assert.Equal(System.Text.Json.JsonValueKind.Null, after.GetProperty("policy").GetProperty("allowed_models").ValueKind);
        Assert.Contains("Not saved: the tenant was changed after this page was opened.", stale, StringComparison.Ordinal);

        // The page shown is the tenant as it is now, with its new version: saved from it, the change is made.
        var current = WebUtility.HtmlDecode(Version().Match(stale).Groups[1].Value);
        var saved = await SendAsync(client, cookie, HttpMethod.Post, $"/console/tenants/{tenant}/policy",
            [new("version", current), new("jurisdictions", "TH"), new("models", ConsoleFixture.Model), new("licenses", ""), new("origins", ""), new("plan", "standard"), new("disabled", "on")]);
        Assert.Contains("Saved.", saved, StringComparison.Ordinal);
        after = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}", null);
        Assert.True(after.GetProperty("disabled").GetBoolean());
        Assert.Equal(ConsoleFixture.Model, after.GetProperty("policy").GetProperty("allowed_models")[0].GetString());
    }

    private static async Task<string> SendAsync(HttpClient client, string cookie, HttpMethod method, string path, KeyValuePair<string, string>[]? form)
    {
        using var request = new HttpRequestMessage(method, path) { Content = form is null ? null : new FormUrlEncodedContent(form) };
        request.Headers.Add("Cookie", cookie);
        using var response = await client.SendAsync(request);
        return await response.Content.ReadAsStringAsync();
    }

    [GeneratedRegex("""<input type="hidden" name="version" value="([^"]*)">""")]
    private static partial Regex Version();
}
