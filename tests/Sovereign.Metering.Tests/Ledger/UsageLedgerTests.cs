using System.Data.Common;
using Sovereign.Metering.Ledger;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

public sealed class UsageLedgerTests
{
    [Fact]
    public async Task AppendAsync_NewRecord_StoresEveryFieldExactly()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        var record = Record("r1", cost: 1.234567m, compute: 0.000042m) with { Language = null, TimeToFirstTokenMs = null };

        Assert.True(await ledger.AppendAsync(record));

        Assert.Equal(record, await ledger.GetAsync("r1"));
    }

    [Fact]
    public async Task AppendAsync_RefusedAndCancelledRecords_AreStoredAndCountedByOutcome()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();

        await ledger.AppendAsync(Record("ok", outcome: UsageOutcome.Completed));
        await ledger.AppendAsync(Record("no", cost: 0, prompt: 0, completion: 0, compute: 0, outcome: UsageOutcome.Refused));
        await ledger.AppendAsync(Record("gone", outcome: UsageOutcome.Cancelled));
        await ledger.AppendAsync(Record("boom", cost: 0, outcome: UsageOutcome.Failed));

        Assert.Equal("budget_exceeded", (await ledger.GetAsync("no"))!.RefusalCode);
        var row = Assert.Single(await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1) }));
        Assert.Equal((4, 1, 1, 1, 1), (row.Requests, row.Completed, row.Refused, row.Cancelled, row.Failed));
    }

    [Fact]
    public async Task AppendAsync_SameRequestIdTwice_StoredAndCountedOnce()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();

        Assert.True(await ledger.AppendAsync(Record("r1", cost: 2m)));
        Assert.False(await ledger.AppendAsync(Record("r1", cost: 2m)));
        Assert.False(await ledger.AppendAsync(Record("r1", cost: 9m)));

        var row = Assert.Single(await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1) }));
        Assert.Equal(1, row.Requests);
        Assert.Equal(2m, row.Cost);
        Assert.Equal(2m, (await ledger.GetAsync("r1"))!.Cost);
        Assert.Equal(new UsageLedgerStatistics(1, 2, ledger.Statistics.Batches, 0), ledger.Statistics);
    }

    [Fact]
    public async Task AppendAsync_DuplicatesInOneBatch_CountedOnce()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync(new UsageLedgerOptions { MaxBatchDelay = TimeSpan.FromMilliseconds(50) });

        var results = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => ledger.AppendAsync(Record("same", cost: 1m))));

        Assert.Single(results, inserted => inserted);
        var row = Assert.Single(await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1) }));
        Assert.Equal((1L, 1m), (row.Requests, row.Cost));
    }

    [Fact]
    public async Task AppendAsync_ManyConcurrentCallers_EveryRecordCommittedAndAggregatesMatch()
    {
        using var db = new TempDatabase();
        var records = Many(3000);
        await using var ledger = await db.OpenLedgerAsync(new UsageLedgerOptions { MaxBatchSize = 64 });

        await Parallel.ForEachAsync(records, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (r, _) => await ledger.AppendAsync(r));

        var rows = await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(10), GroupBy = UsageGroupBy.Tenant });
        foreach (var row in rows)
        {
            var mine = records.Where(r => r.Tenant == row.Tenant).ToList();
            Assert.Equal(mine.Count, row.Requests);
            Assert.Equal(mine.Sum(r => r.Cost), row.Cost);
            Assert.Equal(mine.Sum(r => (long)r.PromptTokens), row.PromptTokens);
            Assert.Equal(mine.Sum(r => (long)r.CompletionTokens), row.CompletionTokens);
            Assert.Equal(mine.Sum(r => r.ComputeSeconds), row.ComputeSeconds);
        }

        Assert.Equal(records.Count, rows.Sum(r => r.Requests));
        Assert.True(ledger.Statistics.Batches > 1);
        Assert.Equal(records.Count, ledger.Statistics.Stored);
    }

    [Theory]
    [InlineData("cost-precision")]
    [InlineData("negative-tokens")]
    [InlineData("refused-without-code")]
    [InlineData("unknown-currency")]
    [InlineData("cost-without-version")]
    [InlineData("empty-tenant")]
    [InlineData("cached-above-prompt")]
    public async Task AppendAsync_InvalidRecord_ThrowsArgumentException(string problem)
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        var valid = Record("r1");
        var record = problem switch
        {
            "cost-precision" => valid with { Cost = 0.0000001m },
            "negative-tokens" => valid with { PromptTokens = -1 },
            "refused-without-code" => valid with { Outcome = UsageOutcome.Refused, RefusalCode = null },
            "unknown-currency" => valid with { Currency = "EURO" },
            "cost-without-version" => valid with { PriceVersion = null },
            "empty-tenant" => valid with { Tenant = " " },
            _ => valid with { CachedTokens = valid.PromptTokens + 1 },
        };

        await Assert.ThrowsAnyAsync<ArgumentException>(() => ledger.AppendAsync(record));

        Assert.Null(await ledger.GetAsync("r1"));
    }

    [Fact]
    public async Task AppendAsync_ComputeSecondsFinerThanMicroseconds_RoundedHalfEven()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();

        await ledger.AppendAsync(Record("a", compute: 0.0000025m));
        await ledger.AppendAsync(Record("b", compute: 0.0000035m));

        Assert.Equal(0.000002m, (await ledger.GetAsync("a"))!.ComputeSeconds);
        Assert.Equal(0.000004m, (await ledger.GetAsync("b"))!.ComputeSeconds);
    }

    [Fact]
    public async Task AppendAsync_AfterDispose_ThrowsObjectDisposed()
    {
        using var db = new TempDatabase();
        var ledger = await db.OpenLedgerAsync();
        await ledger.DisposeAsync();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => ledger.AppendAsync(Record("late")));
    }

    [Fact]
    public async Task AppendAsync_CommitFails_FaultsThatBatchAndLaterAppendsSucceed()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(Record("before"));

        await Rename(db, "metering_usage", "metering_usage_away");
        await Assert.ThrowsAnyAsync<DbException>(() => ledger.AppendAsync(Record("during")));
        await Rename(db, "metering_usage_away", "metering_usage");

        Assert.True(await ledger.AppendAsync(Record("after")));
        Assert.Null(await ledger.GetAsync("during"));
        var row = Assert.Single(await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1) }));
        Assert.Equal(2, row.Requests);
        Assert.Equal(1, ledger.Statistics.FailedBatches);

        static async Task Rename(TempDatabase db, string from, string to)
        {
            await using var connection = await db.Database.OpenAsync();
            using var command = connection.CreateCommand();
            command.CommandText = $"ALTER TABLE {from} RENAME TO {to}";
            await command.ExecuteNonQueryAsync();
        }
    }

    [Fact]
    public async Task AppendAsync_WithBatchDelay_GroupsConcurrentAppendsIntoFewTransactions()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync(new UsageLedgerOptions { MaxBatchDelay = TimeSpan.FromMilliseconds(200), MaxBatchSize = 100 });

        await Task.WhenAll(Many(100).Select(r => ledger.AppendAsync(r)));

        Assert.Equal(100, ledger.Statistics.Stored);
        Assert.True(ledger.Statistics.Batches < 100);
    }

    [Fact]
    public async Task AppendAsync_PortableCommandPath_GivesTheSameAggregatesAsTheSqliteFastPath()
    {
        var records = Many(800);
        records.AddRange(records.Take(50));
        var query = new UsageQuery { From = Day0, To = Day0.AddDays(3), GroupBy = UsageGroupBy.Day | UsageGroupBy.Tenant | UsageGroupBy.Model | UsageGroupBy.Jurisdiction };
        async Task<(IReadOnlyList<UsageRow> Rows, UsageLedgerStatistics Stats)> RunAsync(bool portable)
        {
            using var db = new TempDatabase();
            await using var ledger = await db.OpenLedgerAsync(new UsageLedgerOptions { PortableCommands = portable });
            await Task.WhenAll(records.Select(r => ledger.AppendAsync(r)));
            return (await ledger.QueryUsageAsync(query), ledger.Statistics);
        }

        var fast = await RunAsync(portable: false);
        var portable = await RunAsync(portable: true);

        Assert.Equal(fast.Rows, portable.Rows);
        Assert.Equal((800L, 50L), (portable.Stats.Stored, portable.Stats.Duplicates));
    }

    [Fact]
    public async Task OpenAsync_InvalidOptions_Throws()
    {
        using var db = new TempDatabase();

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => db.OpenLedgerAsync(new UsageLedgerOptions { MaxBatchSize = 0 }));
    }
}
