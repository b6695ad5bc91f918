using Sovereign.Metering.Ledger;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

/// <summary>The durable per-tenant and per-key period aggregates budgets are rebuilt from.</summary>
public sealed class BudgetSpendTests
{
    private static readonly string[] Keys = ["key-1", "key-2", "key-3"];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task GetSpendAsync_EveryScopeAndPeriod_MatchesTheRecords_InItsCurrencyOnly(bool portable)
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync(new UsageLedgerOptions { PortableCommands = portable });

        // Three days around a month end, three keys, two currencies.
        var start = new DateTimeOffset(2025, 3, 30, 0, 0, 0, TimeSpan.Zero);
        var random = new Random(11);
        var records = Enumerable.Range(0, 600).Select(i => Record($"r{i:D4}", at: start.AddMinutes(random.Next(0, 3 * 24 * 60)),
                cost: random.Next(0, 3_000_000) / 1_000_000m, currency: i % 5 == 0 ? "USD" : "EUR") with { KeyId = Keys[random.Next(Keys.Length)] })
            .ToList();
        await Task.WhenAll(records.Select(r => ledger.AppendAsync(r)));

        foreach (var at in new[] { start.AddHours(5), start.AddDays(1).AddHours(23), start.AddDays(2).AddHours(1) })
        {
            foreach (var currency in new[] { "EUR", "USD" })
            {
                foreach (var key in Keys.Append(null))
                {
                    var mine = records.Where(r => r.Currency == currency && (key is null || r.KeyId == key)).ToList();
                    Assert.Equal(mine.Where(r => r.Timestamp.UtcDateTime.Date == at.UtcDateTime.Date).Sum(r => r.Cost), await ledger.GetSpendAsync("acme", key, UsagePeriod.Day, at, currency));
                    Assert.Equal(mine.Where(r => r.Timestamp.Month == at.Month).Sum(r => r.Cost), await ledger.GetSpendAsync("acme", key, UsagePeriod.Month, at, currency));
                    Assert.Equal(mine.Sum(r => r.Cost), await ledger.GetSpendAsync("acme", key, UsagePeriod.Total, at, currency));
                }
            }
        }

        Assert.Equal(0m, await ledger.GetSpendAsync("nobody", null, UsagePeriod.Total, start, "EUR"));
    }

    [Fact]
    public async Task GetSpendAsync_SurvivesRetention_AndAReplayIsNeverCountedTwice()
    {
        using var db = new TempDatabase();
        var old = Record("old", at: Day0, cost: 4m);
        var recent = Record("recent", at: Day0.AddDays(100), cost: 1.5m);
        await using (var ledger = await db.OpenLedgerAsync())
        {
            Assert.True(await ledger.AppendAsync(old));
            Assert.True(await ledger.AppendAsync(recent));
            Assert.False(await ledger.AppendAsync(recent with { Cost = 9m }));
            Assert.Equal(1, await ledger.PurgeAsync(Day0.AddDays(90)));
        }

        // Reopened (a restart): the raw row is gone, the totals are not.
        await using var reopened = await db.OpenLedgerAsync();
        Assert.Null(await reopened.GetAsync("old"));
        await Assert.ThrowsAsync<InvalidOperationException>(() => reopened.AppendAsync(old));
        Assert.Equal(5.5m, await reopened.GetSpendAsync("acme", null, UsagePeriod.Total, Day0.AddDays(100), "EUR"));
        Assert.Equal(5.5m, await reopened.GetSpendAsync("acme", "key-1", UsagePeriod.Total, Day0.AddDays(100), "EUR"));
        Assert.Equal(1.5m, await reopened.GetSpendAsync("acme", "key-1", UsagePeriod.Day, Day0.AddDays(100), "EUR"));
        Assert.Equal(0m, await reopened.GetSpendAsync("acme", null, UsagePeriod.Month, Day0.AddDays(100), "USD"));
    }

    [Fact]
    public async Task Migration_BackfillsTenantTotalsFromDailyAggregates_AndKeyPeriodsFromRetainedRows()
    {
        using var db = new TempDatabase();
        await db.Database.MigrateAsync([UsageLedger.Migrations[0]]);

        // What the first schema held: a purged day survives only in the daily aggregate; two days still have raw rows.
        await using (var connection = await db.Database.OpenAsync())
        {
            await ExecuteAsync(connection, """
                INSERT INTO metering_usage_daily (tenant, day_start, model, jurisdiction, currency, requests, completed, refused, cancelled, failed,
                    prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros) VALUES
                ('acme', 1741564800000, 'm', 'EU', 'EUR', 1, 1, 0, 0, 0, 10, 5, 0, 0, 7000000),
                ('acme', 1749340800000, 'm', 'EU', 'EUR', 2, 2, 0, 0, 0, 20, 10, 0, 0, 3000000)
                """);
            await ExecuteAsync(connection, """
                INSERT INTO metering_usage (request_id, ts, tenant, key_id, model, node, jurisdiction, language, prompt_tokens, completion_tokens,
                    cached_tokens, queue_ms, ttft_ms, duration_ms, compute_us, outcome, refusal_code, cost_micros, currency, price_version) VALUES
                ('a', 1749340800000 + 3600000, 'acme', 'key-1', 'm', 'n', 'EU', NULL, 10, 5, 0, 0, NULL, 0, 0, 0, NULL, 1000000, 'EUR', 'v'),
                ('b', 1749340800000 + 7200000, 'acme', 'key-2', 'm', 'n', 'EU', NULL, 10, 5, 0, 0, NULL, 0, 0, 0, NULL, 2000000, 'EUR', 'v')
                """);
        }

        await using var ledger = await db.OpenLedgerAsync();
        var day = DateTimeOffset.FromUnixTimeMilliseconds(1749340800000).AddHours(12);
        Assert.Equal(10m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Total, day, "EUR"));
        Assert.Equal(1m, await ledger.GetSpendAsync("acme", "key-1", UsagePeriod.Total, day, "EUR"));
        Assert.Equal(2m, await ledger.GetSpendAsync("acme", "key-2", UsagePeriod.Day, day, "EUR"));
        Assert.Equal(2m, await ledger.GetSpendAsync("acme", "key-2", UsagePeriod.Month, day, "EUR"));

        // New records add to the backfilled rows.
        Assert.True(await ledger.AppendAsync(Record("c", at: day, cost: 0.5m)));
        Assert.Equal(10.5m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Total, day, "EUR"));
        Assert.Equal(1.5m, await ledger.GetSpendAsync("acme", "key-1", UsagePeriod.Total, day, "EUR"));
    }

    private static async Task ExecuteAsync(System.Data.Common.DbConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}
