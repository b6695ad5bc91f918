using Sovereign.Metering.Ledger;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

/// <summary>
/// The outcome's commit upserts no aggregate row since session 55 (the ledger folds them behind a watermark): a lone
/// record's commit is its insert alone, and the fold upserts each touched aggregate row once, whatever the batches
/// that committed the records; the sums are the records' either way.
/// </summary>
public sealed class MultiRowUpsertTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WriteAsync_OneRecord_UpsertsNoAggregateRow_TheFoldUpsertsItsSixRows(bool portable)
    {
        using var db = new TempDatabase();
        var options = new UsageLedgerOptions { PortableCommands = portable };
        await using (await db.OpenLedgerAsync(options))
        {
            // The ledger's migrations ran; the writer below writes into its tables.
        }

        await using var writer = await LedgerWriter.OpenAsync(db.Database, options, CancellationToken.None);
        await writer.CommitAsync([Pending(Record("r1", cost: 1.25m))]);

        // The record's commit: its insert alone (six aggregate statements before session 54, three in it).
        Assert.Equal(0, writer.AggregateStatements);

        // The fold: daily 1, tenant periods (day, month, total) 3, key periods (day, total) 2, each once.
        Assert.Equal(1, await writer.InTransactionAsync(t => writer.FoldAsync(t, 100)));
        Assert.Equal(6, writer.AggregateStatements);
        await using var ledger = await db.OpenLedgerAsync(options);
        Assert.Equal(1.25m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Day, Day0.AddHours(10), "EUR"));
        Assert.Equal(1.25m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Month, Day0.AddHours(10), "EUR"));
        Assert.Equal(1.25m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Total, Day0.AddHours(10), "EUR"));
        Assert.Equal(1.25m, await ledger.GetSpendAsync("acme", "key-1", UsagePeriod.Day, Day0.AddHours(10), "EUR"));
        Assert.Equal(1.25m, await ledger.GetSpendAsync("acme", "key-1", UsagePeriod.Total, Day0.AddHours(10), "EUR"));
    }

    /// <summary>
    /// Batches whose tenant-period and key-period row counts are not multiples of a statement's rows (two tenants, two
    /// currencies, three keys, days on both sides of a month end): every period's spend, requests and tokens equal the
    /// records', whichever rows shared a statement and whichever went alone.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task WriteAsync_BatchesOfEverySize_SumsEqualTheRecords(bool portable)
    {
        using var db = new TempDatabase();
        var options = new UsageLedgerOptions { PortableCommands = portable };
        await using (await db.OpenLedgerAsync(options))
        {
        }

        var start = new DateTimeOffset(2025, 3, 30, 0, 0, 0, TimeSpan.Zero);
        var random = new Random(54);
        string[] tenants = ["acme", "globex"];
        string[] keys = ["key-1", "key-2", "key-3"];
        var records = Enumerable.Range(0, 140).Select(i => Record($"r{i:D4}", at: start.AddMinutes(random.Next(0, 3 * 24 * 60)),
                tenant: tenants[random.Next(tenants.Length)], cost: random.Next(0, 3_000_000) / 1_000_000m,
                prompt: random.Next(0, 500), completion: random.Next(0, 500), currency: i % 4 == 0 ? "USD" : "EUR")
            with { KeyId = keys[random.Next(keys.Length)] })
            .ToList();

        var statements = new HashSet<int>();
        await using (var writer = await LedgerWriter.OpenAsync(db.Database, options, CancellationToken.None))
        {
            var next = 0;
            for (var size = 1; next < records.Count; size = size % 9 + 1)
            {
                await writer.CommitAsync([.. records.Skip(next).Take(size).Select(Pending)]);
                statements.Add(writer.AggregateStatements);
                next += size;
            }

            // A replayed batch inserts nothing (and no batch upserts an aggregate row: the fold does).
            await writer.CommitAsync([.. records.Take(5).Select(Pending)]);
            Assert.Equal(0, writer.AggregateStatements);
        }

        Assert.Equal([0], statements);
        await using var ledger = await db.OpenLedgerAsync(options);
        foreach (var at in new[] { start.AddHours(5), start.AddDays(1).AddHours(23), start.AddDays(2).AddHours(1) })
        {
            foreach (var tenant in tenants)
            {
                foreach (var currency in new[] { "EUR", "USD" })
                {
                    var mine = records.Where(r => r.Tenant == tenant && r.Currency == currency).ToList();
                    foreach (var key in keys.Append(null))
                    {
                        var byKey = mine.Where(r => key is null || r.KeyId == key).ToList();
                        Assert.Equal(byKey.Where(r => r.Timestamp.UtcDateTime.Date == at.UtcDateTime.Date).Sum(r => r.Cost), await ledger.GetSpendAsync(tenant, key, UsagePeriod.Day, at, currency));
                        Assert.Equal(byKey.Where(r => r.Timestamp.Month == at.Month).Sum(r => r.Cost), await ledger.GetSpendAsync(tenant, key, UsagePeriod.Month, at, currency));
                        Assert.Equal(byKey.Sum(r => r.Cost), await ledger.GetSpendAsync(tenant, key, UsagePeriod.Total, at, currency));
                    }

                    foreach (var period in new[] { UsagePeriod.Day, UsagePeriod.Month, UsagePeriod.Total })
                    {
                        var inPeriod = mine.Where(r => period switch
                        {
                            UsagePeriod.Day => r.Timestamp.UtcDateTime.Date == at.UtcDateTime.Date,
                            UsagePeriod.Month => r.Timestamp.Month == at.Month,
                            _ => true,
                        }).ToList();
                        var totals = (await ledger.GetTenantTotalsAsync(tenant, period, at)).SingleOrDefault(t => t.Currency == currency);
                        Assert.Equal(inPeriod.Count, totals?.Requests ?? 0);
                        Assert.Equal(inPeriod.Sum(r => (long)r.PromptTokens), totals?.PromptTokens ?? 0);
                        Assert.Equal(inPeriod.Sum(r => (long)r.CompletionTokens), totals?.CompletionTokens ?? 0);
                        Assert.Equal(inPeriod.Sum(r => r.Cost), totals?.Cost ?? 0m);
                    }
                }
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Fold_OneTenantsDayWithTwoKeys_EachAggregateRowOnce(bool portable)
    {
        using var db = new TempDatabase();
        var options = new UsageLedgerOptions { PortableCommands = portable };
        await using (await db.OpenLedgerAsync(options))
        {
        }

        await using (var writer = await LedgerWriter.OpenAsync(db.Database, options, CancellationToken.None))
        {
            await writer.CommitAsync([Pending(Record("a1", at: Day0.AddHours(1), cost: 1m))]);
            await writer.CommitAsync([
                Pending(Record("a2", at: Day0.AddHours(2), cost: 2m)),
                Pending(Record("a3", at: Day0.AddHours(3), cost: 4m) with { KeyId = "key-2" }),
            ]);
            Assert.Equal(3, await writer.InTransactionAsync(t => writer.FoldAsync(t, 100)));

            // Daily: one row per key (2); tenant periods: day, month, total (3); key periods: two keys' day and total (4).
            Assert.Equal(2 + 3 + 4, writer.AggregateStatements);
        }

        await using var ledger = await db.OpenLedgerAsync(options);
        Assert.Equal(7m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Month, Day0, "EUR"));
        Assert.Equal(3m, await ledger.GetSpendAsync("acme", "key-1", UsagePeriod.Total, Day0, "EUR"));
        Assert.Equal(4m, await ledger.GetSpendAsync("acme", "key-2", UsagePeriod.Day, Day0, "EUR"));
        var totals = Assert.Single(await ledger.GetTenantTotalsAsync("acme", UsagePeriod.Total, Day0));
        Assert.Equal(3, totals.Requests);
        Assert.Equal(300, totals.PromptTokens);
    }

    private static PendingAppend Pending(UsageRecord record) =>
        new(record, record.Timestamp.ToUnixTimeMilliseconds(), MicroUnits.FromRounded(record.ComputeSeconds), MicroUnits.FromRounded(record.Cost));
}
