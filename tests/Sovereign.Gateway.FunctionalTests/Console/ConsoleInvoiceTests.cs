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

    /// <summary>
    /// Found closing a month: a tenant that used a model on the default plan (no prices: its usage recorded in XXX, at
    /// no cost) and then on a priced plan had two invoice links, one per currency its usage was recorded in, and the XXX
    /// one led to the error page "currency must be an ISO 4217 currency code ...; got 'XXX'". Free usage is lines at 0
    /// of the invoice in the currency charged, which the API builds when no currency is named: one link, both requests.
    /// </summary>
    [Fact]
    public async Task ATenantWithFreeUsageBeforeAPricedPlan_HasOneInvoiceLink_WithEveryRequest()
    {
        var (tenant, key) = await fixture.NewTenantAsync("default");
        Assert.Equal(200, await fixture.ChatAsync(key));
        await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { plan = "standard" });
        Assert.Equal(200, await fixture.ChatAsync(key));
        using var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false }) { BaseAddress = fixture.Address };
        using var login = await client.PostAsync("/console/login", new FormUrlEncodedContent([new("credential", ConsoleFixture.AdminToken)]));
        var cookie = login.Headers.GetValues("Set-Cookie").Single().Split(';')[0];

        var html = await GetAsync(client, cookie, $"/console/tenants/{tenant}");
        var thisMonth = InvoiceLink().Matches(await html.Content.ReadAsStringAsync())
            .Select(m => WebUtility.HtmlDecode(m.Groups[1].Value))
            .Where(link => !link.Contains("&to=", StringComparison.Ordinal))
            .ToList();

        Assert.All(thisMonth, link => Assert.DoesNotContain("currency=", link, StringComparison.Ordinal));
        using var download = await GetAsync(client, cookie, Assert.Single(thisMonth, l => l.Contains("format=csv", StringComparison.Ordinal)));
        var csv = await download.Content.ReadAsStringAsync();
        Assert.True(download.StatusCode == HttpStatusCode.OK, csv);
        var total = csv.Split("\r\n", StringSplitOptions.RemoveEmptyEntries)[^1].Split(',');
        Assert.Equal(("EUR", "TOTAL", "2"), (total[1], total[4], total[5]));
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
