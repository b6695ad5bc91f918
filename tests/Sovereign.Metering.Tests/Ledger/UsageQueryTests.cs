using Sovereign.Metering.Ledger;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

public sealed class UsageQueryTests
{
    [Fact]
    public async Task QueryUsageAsync_GroupByEveryDimension_MatchesRawRecords()
    {
        using var db = new TempDatabase();
        var records = Many(1500);
        await using var ledger = await db.OpenLedgerAsync();
        await Task.WhenAll(records.Select(r => ledger.AppendAsync(r)));

        var rows = await ledger.QueryUsageAsync(new UsageQuery
        {
            From = Day0,
            To = Day0.AddDays(3),
            GroupBy = UsageGroupBy.Day | UsageGroupBy.Tenant | UsageGroupBy.Model | UsageGroupBy.Jurisdiction,
        });

        var expected = records
            .GroupBy(r => (Day: DateOnly.FromDateTime(r.Timestamp.UtcDateTime), r.Tenant, r.Model, r.Jurisdiction))
            .ToDictionary(g => g.Key, g => g.ToList());
        Assert.Equal(expected.Count, rows.Count);
        foreach (var row in rows)
        {
            var group = expected[(row.Day!.Value, row.Tenant!, row.Model!, row.Jurisdiction!)];
            Assert.Equal(group.Count, row.Requests);
            Assert.Equal(group.Count(r => r.Outcome == UsageOutcome.Refused), row.Refused);
            Assert.Equal(group.Sum(r => (long)r.CachedTokens), row.CachedTokens);
            Assert.Equal(group.Sum(r => r.ComputeSeconds), row.ComputeSeconds);
            Assert.Equal(group.Sum(r => r.Cost), row.Cost);
            Assert.Equal("EUR", row.Currency);
        }
    }

    [Fact]
    public async Task QueryUsageAsync_FiltersAndSingleDimension_SumOnlyMatchingRows()
    {
        using var db = new TempDatabase();
        var records = Many(800);
        await using var ledger = await db.OpenLedgerAsync();
        await Task.WhenAll(records.Select(r => ledger.AppendAsync(r)));

        var rows = await ledger.QueryUsageAsync(new UsageQuery
        {
            Tenant = "globex",
            Jurisdiction = "DE",
            From = Day0.AddDays(1),
            To = Day0.AddDays(2),
            GroupBy = UsageGroupBy.Model,
        });

        var matching = records.Where(r => r.Tenant == "globex" && r.Jurisdiction == "DE" && r.Timestamp >= Day0.AddDays(1) && r.Timestamp < Day0.AddDays(2)).ToList();
        Assert.Equal(["llama-3-8b", "mistral-7b", "qwen-2.5-7b"], rows.Select(r => r.Model));
        Assert.All(rows, r => Assert.Null(r.Tenant));
        Assert.All(rows, r => Assert.Null(r.Day));
        Assert.Equal(matching.Count, rows.Sum(r => r.Requests));
        Assert.Equal(matching.Sum(r => r.Cost), rows.Sum(r => r.Cost));
    }

    /// <summary>
    /// A cluster node's record of relayed work (under its relay caller) and the gateway's record of the same request
    /// share the database: totals across tenants counted the request twice. Named explicitly, the node's rows are there.
    /// </summary>
    [Fact]
    public async Task QueryUsageAsync_AcrossTenants_LeavesOutTheExcludedTenant_UnlessItIsNamed()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(Record("gateway-record", tenant: "acme"));
        await ledger.AppendAsync(Record("node-record", tenant: "cluster-relay", cost: 0m));

        var byModel = await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1), GroupBy = UsageGroupBy.Model, ExcludedTenant = "cluster-relay" });
        Assert.Equal((1, 100L), (Assert.Single(byModel).Requests, byModel[0].PromptTokens));

        var named = await ledger.QueryUsageAsync(new UsageQuery { Tenant = "cluster-relay", From = Day0, To = Day0.AddDays(1), ExcludedTenant = "cluster-relay" });
        Assert.Equal(1, Assert.Single(named).Requests);
    }

    [Fact]
    public async Task QueryUsageAsync_MidDayBounds_CoverEveryOverlappingDay()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(Record("d0", at: Day0.AddHours(1)));
        await ledger.AppendAsync(Record("d1", at: Day0.AddDays(1).AddHours(1)));
        await ledger.AppendAsync(Record("d2", at: Day0.AddDays(2).AddHours(1)));

        var rows = await ledger.QueryUsageAsync(new UsageQuery { From = Day0.AddHours(12), To = Day0.AddDays(1).AddHours(12), GroupBy = UsageGroupBy.Day });

        Assert.Equal([DateOnly.FromDateTime(Day0.UtcDateTime), DateOnly.FromDateTime(Day0.AddDays(1).UtcDateTime)], rows.Select(r => r.Day!.Value));
    }

    [Fact]
    public async Task QueryUsageAsync_SeveralCurrencies_SplitsRowsByCurrency()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(Record("e", cost: 1m, currency: "EUR"));
        await ledger.AppendAsync(Record("c", cost: 2m, currency: "CHF"));

        var rows = await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1) });

        Assert.Equal([("CHF", 2m), ("EUR", 1m)], rows.Select(r => (r.Currency, r.Cost)));
    }

    [Fact]
    public async Task GetTenantTotalsAsync_DayAndMonth_SumTheTenantsRecords()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        await ledger.AppendAsync(Record("a", at: Day0.AddHours(1), cost: 1.5m));
        await ledger.AppendAsync(Record("b", at: Day0.AddDays(1), cost: 2.25m));
        await ledger.AppendAsync(Record("c", at: Day0.AddMonths(1), cost: 100m));
        await ledger.AppendAsync(Record("d", at: Day0, tenant: "globex", cost: 7m));

        var day = Assert.Single(await ledger.GetTenantTotalsAsync("acme", UsagePeriod.Day, Day0.AddHours(23)));
        var month = Assert.Single(await ledger.GetTenantTotalsAsync("acme", UsagePeriod.Month, Day0));

        Assert.Equal((1L, 1.5m, Day0), (day.Requests, day.Cost, day.PeriodStart));
        Assert.Equal((2L, 3.75m, new DateTimeOffset(2025, 3, 1, 0, 0, 0, TimeSpan.Zero)), (month.Requests, month.Cost, month.PeriodStart));
        Assert.Equal(200, month.PromptTokens);
        Assert.Empty(await ledger.GetTenantTotalsAsync("nobody", UsagePeriod.Month, Day0));
    }

    [Fact]
    public async Task PurgeAsync_OlderRecords_DeletesRawRowsAndKeepsAggregates()
    {
        using var db = new TempDatabase();
        var records = Many(700);
        await using var ledger = await db.OpenLedgerAsync();
        await Task.WhenAll(records.Select(r => ledger.AppendAsync(r)));
        var query = new UsageQuery { From = Day0, To = Day0.AddDays(3), GroupBy = UsageGroupBy.Day | UsageGroupBy.Model };
        var before = await ledger.QueryUsageAsync(query);

        var deleted = await ledger.PurgeAsync(Day0.AddDays(2));

        Assert.Equal(records.Count(r => r.Timestamp < Day0.AddDays(2)), deleted);
        Assert.Equal(before, await ledger.QueryUsageAsync(query));
        Assert.Null(await ledger.GetAsync(records.First(r => r.Timestamp < Day0.AddDays(2)).RequestId));
        Assert.NotNull(await ledger.GetAsync(records.First(r => r.Timestamp >= Day0.AddDays(2)).RequestId));
        Assert.Equal(0, await ledger.PurgeAsync(Day0.AddDays(2)));
    }

    [Fact]
    public async Task PurgeAsync_ThenRetryOfPurgedRecord_IsRefusedEvenAfterReopen()
    {
        using var db = new TempDatabase();
        var old = Record("old", at: Day0);
        await using (var ledger = await db.OpenLedgerAsync())
        {
            Assert.Equal(DateTimeOffset.MinValue, ledger.PurgedBefore);
            await ledger.AppendAsync(old);
            await ledger.PurgeAsync(Day0.AddDays(1));

            await Assert.ThrowsAsync<InvalidOperationException>(() => ledger.AppendAsync(old));
        }

        // Just past the newest record deleted: no record was deleted after it, so none after it needs refusing.
        await using var reopened = await db.OpenLedgerAsync();
        Assert.Equal(Day0.AddMilliseconds(1), reopened.PurgedBefore);
        await Assert.ThrowsAsync<InvalidOperationException>(() => reopened.AppendAsync(old));
        Assert.True(await reopened.AppendAsync(Record("new", at: Day0.AddDays(1))));
        Assert.Equal(2, Assert.Single(await reopened.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(2) })).Requests);
    }

    [Fact]
    public async Task PurgeExpiredAsync_RetentionDays_PurgesRecordsOlderThanTheWindow()
    {
        using var db = new TempDatabase();
        var clock = new FixedClock(Day0.AddDays(30).AddHours(12));
        await using var ledger = await db.OpenLedgerAsync(new UsageLedgerOptions { RetentionDays = 30, TimeProvider = clock });
        await ledger.AppendAsync(Record("expired", at: Day0.AddHours(11)));
        await ledger.AppendAsync(Record("kept", at: Day0.AddHours(13)));

        Assert.Equal(1, await ledger.PurgeExpiredAsync());

        Assert.Null(await ledger.GetAsync("expired"));
        Assert.NotNull(await ledger.GetAsync("kept"));
    }

    /// <summary>
    /// A gateway whose clock read a year ahead for a while (a host's clock reset, a bad NTP answer) ran its daily purge
    /// then: the cut-off, a year ahead less 90 days, became the ledger's watermark, kept in the database, and once the
    /// clock was right again every new record was "older than the retention cut-off" and refused, after every restart,
    /// until the clock reached the watermark months later: nothing the gateway served could be recorded. The watermark
    /// is now just past the newest record the purge deleted, which is all a retry must be refused for.
    /// </summary>
    [Fact]
    public async Task PurgeExpiredAsync_WhileTheClockReadsAYearAhead_NewRecordsAreStillTakenOnceItIsRight()
    {
        using var db = new TempDatabase();
        var clock = new SetClock { Now = Day0.AddHours(12) };
        var options = new UsageLedgerOptions { RetentionDays = 90, TimeProvider = clock };
        var before = Record("before", at: Day0.AddHours(11));
        await using (var ledger = await db.OpenLedgerAsync(options))
        {
            await ledger.AppendAsync(before);

            clock.Now = Day0.AddYears(1);
            Assert.Equal(1, await ledger.PurgeExpiredAsync());

            // A retry of the record the purge deleted is still refused: it would be counted twice.
            await Assert.ThrowsAsync<InvalidOperationException>(() => ledger.AppendAsync(before));

            clock.Now = Day0.AddHours(12).AddMinutes(5);
            Assert.True(await ledger.AppendAsync(Record("after", at: clock.Now)));
        }

        await using var reopened = await db.OpenLedgerAsync(options);
        Assert.True(await reopened.AppendAsync(Record("after-restart", at: clock.Now.AddMinutes(1))));
        await Assert.ThrowsAsync<InvalidOperationException>(() => reopened.AppendAsync(before));
        Assert.Equal(3, Assert.Single(await reopened.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1) })).Requests);
    }

    private sealed class SetClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; }

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
