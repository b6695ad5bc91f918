using System.Net.Http.Json;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// Found closing a month as the operator's accountant: a server whose machine is set to Bangkok time read a price's
/// <c>effective_from</c> sent without an offset in that zone (System.Text.Json's reading), so a price sent to start
/// on "2031-01-01T00:00:00" started at 2030-12-31T17:00:00Z, and the last seven hours of December were billed at
/// January's price (invoices count UTC days); it was listed and audited as "+07:00". Every other time the API takes
/// (usage periods, audit ranges, key expiry, a price's withdrawal) is UTC unless it states an offset; so is this one.
/// </summary>
public sealed class PriceStartTimeZoneTests : IDisposable
{
    private const string AdminToken = "price-start-admin-token";
    private readonly string _root = Directory.CreateTempSubdirectory("sovereign-price-tz-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task AnEffectiveFromWithoutAnOffset_IsUtc_OnAServerInAnotherTimeZone()
    {
        var environment = new Dictionary<string, string> { ["Sovereign__AdminToken"] = AdminToken, ["TZ"] = "Asia/Bangkok" };
        var server = await ServeProcess.StartAsync(["--model", $"{TestModels.Stories260K}=stories", "--threads", "1", "--ctx-size", "256", "--parallel", "1", "--data-dir", _root], environment);
        var port = server.Port;
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            http.DefaultRequestHeaders.Authorization = new("Bearer", AdminToken);
            using (var plan = await http.PutAsJsonAsync("/admin/v1/plans/standard", new { currency = "EUR", weight = 1 }))
            {
                Assert.True(plan.IsSuccessStatusCode, await plan.Content.ReadAsStringAsync());
            }

            using (var price = await http.PostAsJsonAsync("/admin/v1/plans/standard/prices",
                new { model = "stories", input_per_million = 1m, output_per_million = 2m, effective_from = "2031-01-01T00:00:00" }))
            {
                Assert.True(price.IsSuccessStatusCode, await price.Content.ReadAsStringAsync());
            }

            using (var compute = await http.PostAsJsonAsync("/admin/v1/plans/standard/compute-prices",
                new { pool = "de-local", per_compute_second = 0.001m, effective_from = "2031-02-01T00:00:00+07:00" }))
            {
                Assert.True(compute.IsSuccessStatusCode, await compute.Content.ReadAsStringAsync());
            }

            var plans = JsonDocument.Parse(await http.GetStringAsync("/admin/v1/plans")).RootElement;
            var standard = plans.GetProperty("data").EnumerateArray().Single(p => p.GetProperty("name").GetString() == "standard");
            var start = standard.GetProperty("prices")[0].GetProperty("effective_from").GetDateTimeOffset();
            var computeStart = standard.GetProperty("compute_prices")[0].GetProperty("effective_from").GetDateTimeOffset();

            // An offset stated is kept as the instant it names; either is shown in UTC.
            Assert.Equal((new DateTimeOffset(2031, 1, 1, 0, 0, 0, TimeSpan.Zero), TimeSpan.Zero), (start, start.Offset));
            Assert.Equal((new DateTimeOffset(2031, 1, 31, 17, 0, 0, TimeSpan.Zero), TimeSpan.Zero), (computeStart, computeStart.Offset));

            // The price is withdrawn by the same words.
            using var withdrawn = await http.DeleteAsync("/admin/v1/plans/standard/prices?model=stories&effective_from=2031-01-01T00:00:00");
            Assert.True(withdrawn.IsSuccessStatusCode, await withdrawn.Content.ReadAsStringAsync());
        }
        finally
        {
            await ServeProcess.StopAsync(server);
        }
    }
}
