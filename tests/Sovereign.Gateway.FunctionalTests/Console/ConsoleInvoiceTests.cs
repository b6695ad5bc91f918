using System.Net;
using System.Text.RegularExpressions;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// Found by moving a tenant to a plan in another currency and opening its console page: the month's invoice links
/// named no currency, so each led to an error page ("Pass currency=... (sovereign invoice --currency ...)") and the
/// console had no way to download either invoice.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed partial class ConsoleInvoiceTests(ConsoleFixture fixture)
{
    [Fact]
    public async Task ATenantWithUsageInTwoCurrencies_HasOneInvoiceLinkPerCurrency_AndEachDownloads()
    {
        var (tenant, key) = await fixture.NewTenantAsync("standard");
        Assert.Equal(200, await fixture.ChatAsync(key));
        await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { plan = "baht" });
        Assert.Equal(200, await fixture.ChatAsync(key));
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        using var login = await client.PostAsync("/console/login", new FormUrlEncodedContent([new("credential", ConsoleFixture.AdminToken)]));
        var cookie = login.Headers.GetValues("Set-Cookie").Single().Split(';')[0];

        var html = await GetAsync(client, cookie, $"/console/tenants/{tenant}");
        var thisMonth = InvoiceLink().Matches(await html.Content.ReadAsStringAsync())
            .Select(m => WebUtility.HtmlDecode(m.Groups[1].Value))
            .Where(link => !link.Contains("&to=", StringComparison.Ordinal))
            .ToList();

        Assert.NotEmpty(thisMonth);
        Assert.All(thisMonth, link => Assert.Contains("currency=", link, StringComparison.Ordinal));
        foreach (var currency in new[] { "EUR", "THB" })
        {
            var link = Assert.Single(thisMonth, l => l.Contains("format=csv", StringComparison.Ordinal) && l.Contains("currency=" + currency, StringComparison.Ordinal));
            using var download = await GetAsync(client, cookie, link);
            var csv = await download.Content.ReadAsStringAsync();
            Assert.True(download.StatusCode == HttpStatusCode.OK, csv);
            Assert.Equal($"invoice-{tenant}-{currency}.csv", download.Content.Headers.ContentDisposition?.FileName);
            var rows = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToList();
            Assert.Equal(2, rows.Count); // the model's line and the total
            Assert.All(rows, row => Assert.Equal(currency, row.Split(',')[1]));
        }
    }

    private static async Task<HttpResponseMessage> GetAsync(HttpClient client, string cookie, string path)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Add("Cookie", cookie);
        return await client.SendAsync(request);
    }

    [GeneratedRegex("""href="(/console/tenants/[^"]+/invoice\?[^"]+)" download""")]
    private static partial Regex InvoiceLink();
}
