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

    /// <summary>
    /// The form's hidden version goes back as the PATCH's If-Match. One no header can carry made the console's own call
    /// throw (a non-ASCII letter: a 500 with a logged stack) or reach the API as a malformed request (a line break),
    /// shown as the API's "malformed request". Each is the form's 400 naming the version, and nothing is saved.
    /// </summary>
    [Theory]
    [InlineData("é")]
    [InlineData("\"a\"\nb")]
    public async Task AVersionNoHeaderCanCarry_IsRefused_AndNothingIsSaved(string version)
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        using var login = await client.PostAsync("/console/login", new FormUrlEncodedContent([new("credential", ConsoleFixture.AdminToken)]));
        var cookie = login.Headers.GetValues("Set-Cookie").Single().Split(';')[0];

        using var request = new HttpRequestMessage(HttpMethod.Post, $"/console/tenants/{tenant}/policy")
        {
            Content = new FormUrlEncodedContent([new("version", version), new("jurisdictions", "TH"), new("plan", "standard"), new("disabled", "on")]),
        };
        request.Headers.Add("Cookie", cookie);
        using var response = await client.SendAsync(request);
        var html = await response.Content.ReadAsStringAsync();

        var notice = Regex.Match(html, "role=\"alert\">([^<]*)<").Groups[1].Value;
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {notice}");
        Assert.True(notice.StartsWith("Not saved: the form&#x27;s version is not the ETag this console gave it", StringComparison.Ordinal), notice);
        var after = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}", null);
        Assert.False(after.GetProperty("disabled").GetBoolean(), "the form was saved without its version check");
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
