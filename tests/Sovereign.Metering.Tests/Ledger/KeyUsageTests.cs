using Sovereign.Metering.Ledger;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

/// <summary>The daily aggregates are keyed by API key: usage reads per key, after retention too, and invoices still add up.</summary>
public sealed class KeyUsageTests
{
    private static UsageRecord OfKey(string id, string key, decimal cost, string tenant = "acme") =>
        Record(id, tenant: tenant, cost: cost) with { KeyId = key };

    [Fact]
    public async Task QueryUsageAsync_GroupedByKey_SplitsATenantsUsagePerKey_AndFiltersByKey()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(OfKey("a", "key-app", 1m));
        await ledger.AppendAsync(OfKey("b", "key-app", 2m));
        await ledger.AppendAsync(OfKey("c", "key-batch", 0.5m));
        await ledger.AppendAsync(OfKey("d", "key-app", 4m, tenant: "globex"));

        var perKey = await ledger.QueryUsageAsync(new UsageQuery { Tenant = "acme", From = Day0, To = Day0.AddDays(1), GroupBy = UsageGroupBy.Key });
        var oneKey = await ledger.QueryUsageAsync(new UsageQuery { Tenant = "acme", KeyId = "key-app", From = Day0, To = Day0.AddDays(1) });
        var perTenant = await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1), GroupBy = UsageGroupBy.Tenant });

        Assert.Equal([("key-app", 2L, 3m, 200L), ("key-batch", 1L, 0.5m, 100L)], perKey.Select(r => (r.KeyId, r.Requests, r.Cost, r.PromptTokens)));
        Assert.Equal((2L, 3m), (Assert.Single(oneKey).Requests, oneKey[0].Cost));
        Assert.Null(oneKey[0].KeyId); // not grouped by key: the dimension is not named
        Assert.Equal([("acme", 3.5m), ("globex", 4m)], perTenant.Select(r => (r.Tenant, r.Cost)));
    }

    [Fact]
    public async Task QueryUsageAsync_PerKey_SurvivesRetention()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(OfKey("a", "key-app", 1m));
        await ledger.AppendAsync(OfKey("b", "key-batch", 2m));

        await ledger.PurgeAsync(Day0.AddDays(2));
        var perKey = await ledger.QueryUsageAsync(new UsageQuery { Tenant = "acme", From = Day0, To = Day0.AddDays(1), GroupBy = UsageGroupBy.Key });

        Assert.Null(await ledger.GetAsync("a"));
        Assert.Equal([("key-app", 1m), ("key-batch", 2m)], perKey.Select(r => (r.KeyId, r.Cost)));
    }

    [Fact]
    public async Task Migration_AggregatesWrittenBeforeKeys_ReadAsNoKey_AndInvoicesStillAddUp()
    {
        using var db = new TempDatabase();
        await db.Database.MigrateAsync([.. UsageLedger.Migrations.Take(3)]);
        await using (var connection = await db.Database.OpenAsync())
        {
            using var command = connection.CreateCommand();
            command.CommandText = """
                INSERT INTO metering_usage_daily (tenant, day_start, model, jurisdiction, pool, device_class, currency, requests, completed, refused,
                    cancelled, failed, prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros) VALUES
                ('acme', 1749340800000, 'llama-3-8b', 'EU', '', '', 'EUR', 2, 2, 0, 0, 0, 20, 10, 0, 0, 3000000);
                """;
            await command.ExecuteNonQueryAsync();
        }

        await using var ledger = await db.OpenLedgerAsync();
        var day = DateTimeOffset.FromUnixTimeMilliseconds(1749340800000);
        await ledger.AppendAsync(Record("new", at: day.AddHours(2), cost: 1m) with { KeyId = "key-app" });

        var perKey = await ledger.QueryUsageAsync(new UsageQuery { Tenant = "acme", From = day, To = day.AddDays(1), GroupBy = UsageGroupBy.Key });
        var invoice = await new InvoiceBuilder(ledger).BuildAsync("acme", day, day.AddDays(1));

        Assert.Equal([(null, 2L, 3m), ("key-app", 1L, 1m)], perKey.Select(r => (r.KeyId, r.Requests, r.Cost)).OrderBy(r => r.KeyId ?? "", StringComparer.Ordinal));
        Assert.Equal((3L, 4m), (invoice.Lines.Sum(l => l.Requests), invoice.Total));
    }
}
