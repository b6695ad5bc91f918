using Sovereign.Metering.Ledger;
using Sovereign.Storage;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

public sealed class LedgerDurabilityTests
{
    [Fact]
    public async Task AppendAsync_CompletedThenDisposedAndReopened_EveryRecordIsThere()
    {
        using var db = new TempDatabase();
        var records = Many(500);
        var ledger = await db.OpenLedgerAsync();
        await Task.WhenAll(records.Select(r => ledger.AppendAsync(r)));
        await ledger.DisposeAsync();

        await using var reopened = await UsageLedger.OpenAsync(Sovereign.Storage.SqlDatabase.Sqlite(db.Path));

        foreach (var record in records.Take(50))
        {
            Assert.Equal(record, await reopened.GetAsync(record.RequestId));
        }

        var rows = await reopened.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(10) });
        Assert.Equal(records.Count, Assert.Single(rows).Requests);
        Assert.Equal(records.Sum(r => r.Cost), rows[0].Cost);
    }

    [Fact]
    public async Task AppendAsync_ProcessKilledAfterCompletion_CommittedRecordsSurviveInTheFiles()
    {
        using var db = new TempDatabase();
        var records = Many(400);
        var ledger = await db.OpenLedgerAsync();
        await Task.WhenAll(records.Select(r => ledger.AppendAsync(r)));

        // A kill leaves only what is in the files: copy the database and its WAL while the ledger still holds them
        // open (nothing is flushed, closed or checkpointed), and recover from the copy as a restarted process would.
        using var crashed = new TempDatabase();
        File.Copy(db.Path, crashed.Path, overwrite: true);
        File.Copy(db.Path + "-wal", crashed.Path + "-wal", overwrite: true);
        await using (var recovered = await crashed.OpenLedgerAsync())
        {
            var rows = await recovered.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(10) });
            Assert.Equal(records.Count, Assert.Single(rows).Requests);
            Assert.Equal(records.Sum(r => r.Cost), rows[0].Cost);
            Assert.Equal(records[123], await recovered.GetAsync(records[123].RequestId));
        }

        await ledger.DisposeAsync();
    }

    [Fact]
    public async Task AppendAsync_ReplayAfterReopen_CountsAndAggregatesUnchanged()
    {
        using var db = new TempDatabase();
        var records = Many(600);
        await using (var first = await db.OpenLedgerAsync())
        {
            await Task.WhenAll(records.Select(r => first.AppendAsync(r)));
        }

        await using var second = await UsageLedger.OpenAsync(SqlDatabase.Sqlite(db.Path));
        var query = new UsageQuery { From = Day0, To = Day0.AddDays(10), GroupBy = UsageGroupBy.Day | UsageGroupBy.Tenant | UsageGroupBy.Model | UsageGroupBy.Jurisdiction };
        var before = await second.QueryUsageAsync(query);
        var monthBefore = await second.GetTenantTotalsAsync("acme", UsagePeriod.Month, Day0);

        // The replay a crashed gateway would do on restart: every request id again, some of them twice.
        var inserted = await Task.WhenAll(records.Concat(records.Take(100)).Select(r => second.AppendAsync(r)));

        Assert.DoesNotContain(true, inserted);
        Assert.Equal(before, await second.QueryUsageAsync(query));
        Assert.Equal(monthBefore, await second.GetTenantTotalsAsync("acme", UsagePeriod.Month, Day0));
        Assert.Equal(records.Count(r => r.Tenant == "acme"), (await ReadAllAsync(second, "acme", Day0, Day0.AddDays(10))).Count);
        Assert.Equal(new UsageLedgerStatistics(0, 700, second.Statistics.Batches, 0), second.Statistics);
    }

    [Fact]
    public async Task AppendAsync_PowerLossDurability_StoresLikeTheDefault()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync(new UsageLedgerOptions { Durability = LedgerDurability.PowerLoss });

        Assert.True(await ledger.AppendAsync(Record("r1")));

        Assert.NotNull(await ledger.GetAsync("r1"));
    }
}
