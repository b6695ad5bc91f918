using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// The money on <c>/metrics</c> agrees with the ledger and the limits: spend is the invoice's exact sum, and the
/// remaining budget follows the operator's changes, not only settlements.
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class MoneyMetricsTests(MeteringFixture fixture)
{
    private const string Body = """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"temperature":0}""";

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>The value of the series <paramref name="name"/> of <paramref name="tenant"/>, or null without one.</summary>
    private async Task<double?> ScrapeAsync(string name, string tenant)
    {
        // A scrape joins a collection already running for another scrape; the one behind a second scrape begins after.
        await fixture.Admin.GetStringAsync("/metrics");
        var lines = (await fixture.Admin.GetStringAsync("/metrics")).Split('\n')
            .Where(line => line.StartsWith(name + "{", StringComparison.Ordinal) && line.Contains($"tenant=\"{tenant}\"", StringComparison.Ordinal))
            .ToList();
        return lines.Count switch
        {
            0 => null,
            1 => double.Parse(lines[0][(lines[0].LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture),
            _ => throw new InvalidOperationException($"several {name} series for {tenant}: {string.Join(" | ", lines)}"),
        };
    }

    private async Task<string> NewTenantAsync(string id, string plan)
    {
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan, policy = new { allowed_jurisdictions = new[] { "EU" } } }, 201);
        return (await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
    }

    [Fact]
    public async Task Spend_IsTheInvoicesExactSum_NotASumOfFloats()
    {
        // Each request costs a multiple of 0.025 EUR, which no binary float holds: a Counter<double> added them one by
        // one and read 0.9999999999999999 where the ledger says 1.000000 (found by explorer13: 60 requests at
        // 0.000006 EUR read 0.00035999999999999986).
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/tenths", new { currency = "EUR", weight = 1 }, 200);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/tenths/prices", new { model = MeteringFixture.Model, input_per_million = 0m, output_per_million = 25_000m }, 201);
        const string tenant = "spend-exact";
        using var client = fixture.TenantClient(await NewTenantAsync(tenant, "tenths"));
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(200, (int)(await client.PostAsync("/v1/chat/completions", Json(Body))).StatusCode);
        }

        var total = decimal.Parse(
            JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/tenants/{tenant}/invoice")).RootElement.GetProperty("total").GetString()!,
            CultureInfo.InvariantCulture);
        Assert.NotEqual(0m, total);
        Assert.Equal((double)total, await ScrapeAsync("sovereign_spend_total", tenant));
    }

    [Fact]
    public async Task RemainingBudget_FollowsTheLimits_RaisedLoweredAndCleared()
    {
        // The gauge was written only when a request settled: a budget raised still showed what was left under the old
        // one, and a budget cleared kept its last value for ever (an alert on it fired for a tenant without a budget).
        const string tenant = "remaining-follows";
        using var client = fixture.TenantClient(await NewTenantAsync(tenant, "standard"));
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "month", amount = 100m } } }, 200);
        Assert.Equal(200, (int)(await client.PostAsync("/v1/chat/completions", Json(Body))).StatusCode);

        foreach (var amount in new[] { 200m, 50m })
        {
            var set = await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "month", amount } } }, 200);
            var remaining = set.GetProperty("budgets").EnumerateArray().Single().GetProperty("remaining").GetDecimal();
            Assert.True(remaining < amount, $"the request's spend is counted: {remaining} of {amount}");
            Assert.Equal((double)remaining, await ScrapeAsync("sovereign_budget_remaining", tenant));
        }

        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = Array.Empty<object>() }, 200);
        Assert.Null(await ScrapeAsync("sovereign_budget_remaining", tenant));
        Assert.Equal(200, (int)(await client.PostAsync("/v1/chat/completions", Json(Body))).StatusCode);
        Assert.Null(await ScrapeAsync("sovereign_budget_remaining", tenant));
    }

    [Fact]
    public async Task Spend_HasASeriesForEveryTenant_PastTwoThousand()
    {
        // OpenTelemetry keeps at most 2,000 series of a metric unless told otherwise: the 2,001st tenant's spend (and
        // every later one's) went into one series labelled otel_metric_overflow="true", so a national cloud's
        // dashboards showed the first 2,000 tenants to spend since the start and lost the rest.
        var metering = fixture.App.Services.GetRequiredService<Sovereign.Gateway.Metering.RequestMetering>();
        const int tenants = 2_500;
        for (var i = 0; i < tenants; i++)
        {
            metering.CountWritten(new Sovereign.Metering.Ledger.UsageRecord
            {
                RequestId = $"cardinality-{i}", Timestamp = DateTimeOffset.UtcNow, Tenant = $"cardinality-{i:D4}", KeyId = "key_x", Model = MeteringFixture.Model,
                Node = "n", Jurisdiction = "TH", Cost = 1m, Currency = "EUR", PriceVersion = "v",
            });
        }

        await fixture.Admin.GetStringAsync("/metrics");
        var lines = (await fixture.Admin.GetStringAsync("/metrics")).Split('\n');
        Assert.DoesNotContain(lines, line => line.StartsWith("sovereign_spend", StringComparison.Ordinal) && line.Contains("otel_metric_overflow", StringComparison.Ordinal));
        var spent = lines.Where(line => line.StartsWith("sovereign_spend_total{", StringComparison.Ordinal) && line.Contains("tenant=\"cardinality-", StringComparison.Ordinal)).ToList();
        Assert.Equal(tenants, spent.Count);
    }
}
