using Sovereign.Metering.Ledger;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

/// <summary>
/// Period aggregates folded behind a watermark (session 55): a record's commit writes no aggregate row, a fold adds
/// the records above W and raises W in one transaction, and every reader adds the records above W in the same
/// statement. So budgets, usage and invoices read exactly the stored records at every instant: before any fold, after
/// one, after a process died between its commits and its fold, and while folds and appends race.
/// </summary>
public sealed class FoldedAggregatesTests
{
    // No fold but the ones a test asks for (and the one at open): what readers see before a fold is the point.
    private static readonly UsageLedgerOptions NeverByItself = new()
    {
        AggregateFoldInterval = TimeSpan.FromDays(1),
        AggregateFoldRecords = int.MaxValue,
    };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Readers_RightAfterAppend_BeforeAnyFold_AreExact_AndTheFoldChangesNothingTheyRead(bool portable)
    {
        using var db = new TempDatabase();
        var options = Options(portable);
        await using var ledger = await db.OpenLedgerAsync(options);
        var records = Many(120, seed: 55);
        foreach (var record in records)
        {
            Assert.True(await ledger.AppendAsync(record));
        }

        // Nothing folded: the aggregate tables are empty (before session 55 each commit upserted its rows).
        Assert.Equal(0, await CountAsync(db, "metering_tenant_periods"));
        Assert.Equal(0, await CountAsync(db, "metering_usage_daily"));
        Assert.Equal(0, await CountAsync(db, "metering_key_periods"));
        var before = await ReadEverythingAsync(ledger, records);
        AssertExact(records, before);

        Assert.Equal(records.Count, await ledger.FoldAsync());
        Assert.True(await CountAsync(db, "metering_tenant_periods") > 0);
        Assert.Equal(before, await ReadEverythingAsync(ledger, records));

        // A second fold finds nothing; a record appended now is read at once, on top of the folded rows.
        Assert.Equal(0, await ledger.FoldAsync());
        var late = Record("late-1", at: Day0.AddHours(1), cost: 0.5m);
        Assert.True(await ledger.AppendAsync(late));
        records.Add(late);
        AssertExact(records, await ReadEverythingAsync(ledger, records));
        Assert.Equal(1, await ledger.FoldAsync());
        AssertExact(records, await ReadEverythingAsync(ledger, records));
    }

    /// <summary>
    /// A process that committed records and died before folding them (kill -9: the records are durable, the fold never
    /// ran): the next open folds them before the ledger answers, each counted once, and another open folds nothing.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Open_AfterCommitsWithNoFold_FoldsThemOnce(bool portable)
    {
        using var db = new TempDatabase();
        var options = Options(portable);
        await using (await db.OpenLedgerAsync(options))
        {
        }

        var records = Many(60, seed: 9);
        await using (var writer = await LedgerWriter.OpenAsync(db.Database, options, CancellationToken.None))
        {
            // The commits a killed process made: records only (no Dispose of a ledger, so no fold at its close).
            for (var i = 0; i < records.Count; i += 7)
            {
                await writer.CommitAsync([.. records.Skip(i).Take(7).Select(Pending)]);
            }
        }

        Assert.Equal(0, await CountAsync(db, "metering_tenant_periods"));
        await using (var ledger = await db.OpenLedgerAsync(options))
        {
            // Folded at open: the aggregate rows hold them, the tail is empty, and the sums are the records'.
            Assert.True(await CountAsync(db, "metering_tenant_periods") > 0);
            Assert.Equal(0, await ledger.FoldAsync());
            AssertExact(records, await ReadEverythingAsync(ledger, records));

            // Replayed after the restart (a client's retry): stored already, never counted again.
            foreach (var record in records.Take(10))
            {
                Assert.False(await ledger.AppendAsync(record));
            }

            Assert.Equal(0, await ledger.FoldAsync());
            AssertExact(records, await ReadEverythingAsync(ledger, records));
        }

        await using var again = await db.OpenLedgerAsync(options);
        Assert.Equal(0, await again.FoldAsync());
        AssertExact(records, await ReadEverythingAsync(again, records));
    }

    /// <summary>
    /// Appends and folds racing (folds of any size, between or beside any commits): every read lies between the records
    /// completed before it started and those started before it ended, and once all are in, the sums are exact: no
    /// record is folded twice or skipped.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task FoldsRacingAppends_NeverCountARecordTwiceOrSkipIt(bool portable)
    {
        using var db = new TempDatabase();
        var options = new UsageLedgerOptions { PortableCommands = portable, AggregateFoldInterval = TimeSpan.FromDays(1), AggregateFoldRecords = 5 };
        await using var ledger = await db.OpenLedgerAsync(options);
        var records = Enumerable.Range(0, 400).Select(i => Record($"race-{i:D4}", at: Day0.AddMinutes(i), cost: 0.000001m * (i + 1))).ToList();
        long completedMicros = 0, startedMicros = 0;
        var appending = Task.Run(async () =>
        {
            await Parallel.ForEachAsync(records, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (record, _) =>
            {
                var micros = (long)(record.Cost * 1_000_000m);
                Interlocked.Add(ref startedMicros, micros);
                Assert.True(await ledger.AppendAsync(record));
                Interlocked.Add(ref completedMicros, micros);
            });
        });

        var folds = 0L;
        var reads = 0;
        while (!appending.IsCompleted || reads == 0)
        {
            folds += await ledger.FoldAsync();
            var low = Interlocked.Read(ref completedMicros);
            var read = await ledger.GetSpendAsync("acme", null, UsagePeriod.Total, Day0, "EUR");
            var high = Interlocked.Read(ref startedMicros);
            Assert.InRange(read, low / 1_000_000m, high / 1_000_000m);
            reads++;
        }

        await appending;
        AssertExact(records, await ReadEverythingAsync(ledger, records));
        await ledger.FoldAsync();
        AssertExact(records, await ReadEverythingAsync(ledger, records));
        Assert.Equal(records.Count, await ScalarAsync(db, "SELECT SUM(requests) FROM metering_tenant_periods WHERE period = 'total'"));
    }

    /// <summary>
    /// Retention never loses money: a purge folds first and deletes only folded records, the aggregates keep their money,
    /// and a purge that deleted the newest rowid (a late record with an early arrival) resets W, so the next record
    /// (which SQLite gives that rowid again) is folded once.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Purge_NeverLosesMoney_AndTheNextRecordAfterTheNewestRowidWentIsFoldedOnce(bool portable)
    {
        using var db = new TempDatabase();
        var options = Options(portable);
        await using var ledger = await db.OpenLedgerAsync(options);
        var old = Record("old-1", at: Day0.AddHours(1), cost: 1m);
        var recent = Record("new-1", at: Day0.AddDays(200), cost: 2m);
        Assert.True(await ledger.AppendAsync(recent));
        Assert.True(await ledger.AppendAsync(old));
        Assert.Equal(2, await ledger.FoldAsync());
        Assert.True(await ledger.AppendAsync(Record("old-2", at: Day0.AddHours(2), cost: 4m)));

        // old-2 is unfolded and the newest rowid: the purge folds it, then deletes it and old-1.
        Assert.Equal(2, await ledger.PurgeAsync(Day0.AddDays(1)));
        Assert.Equal(7m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Total, Day0, "EUR"));
        Assert.Equal(5m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Day, Day0, "EUR"));
        Assert.Equal(5m, await ledger.GetSpendAsync("acme", "key-1", UsagePeriod.Month, Day0, "EUR"));
        Assert.Equal(1, await ScalarAsync(db, "SELECT COUNT(*) FROM metering_usage"));

        // The next record takes the rowid old-2 had: above W (reset to new-1's), so folded once.
        var next = Record("new-2", at: Day0.AddDays(200).AddHours(1), cost: 8m);
        Assert.True(await ledger.AppendAsync(next));
        Assert.Equal(15m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Total, Day0, "EUR"));
        Assert.Equal(1, await ledger.FoldAsync());
        Assert.Equal(15m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Total, Day0, "EUR"));
        Assert.Equal(10m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Day, Day0.AddDays(200), "EUR"));
        Assert.Equal(0, await ledger.FoldAsync());
    }

    /// <summary>A void of a record not folded yet corrects the record only (the fold adds it corrected); of a folded one, moves its rows.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Void_BeforeAndAfterTheFold_CountsTheCorrectedRecordOnce(bool portable)
    {
        using var db = new TempDatabase();
        var options = Options(portable);
        await using var ledger = await db.OpenLedgerAsync(options);
        Assert.True(await ledger.AppendAsync(Record("v-1", cost: 3m)));
        Assert.True(await ledger.AppendAsync(Record("v-2", cost: 5m)));
        Assert.NotNull(await ledger.VoidAsync("v-1", "context_length_exceeded"));
        Assert.Equal(5m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Total, Day0, "EUR"));
        Assert.Equal(2, await ledger.FoldAsync());
        Assert.Equal(5m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Total, Day0, "EUR"));
        Assert.NotNull(await ledger.VoidAsync("v-2", "context_length_exceeded"));
        Assert.Equal(0m, await ledger.GetSpendAsync("acme", null, UsagePeriod.Total, Day0, "EUR"));
        Assert.Equal(0m, await ledger.GetSpendAsync("acme", "key-1", UsagePeriod.Day, Day0, "EUR"));
        var totals = Assert.Single(await ledger.GetTenantTotalsAsync("acme", UsagePeriod.Total, Day0));
        Assert.Equal(2, totals.Requests);
        var row = Assert.Single(await ledger.QueryUsageAsync(new UsageQuery { From = Day0, To = Day0.AddDays(1), Tenant = "acme" }));
        Assert.Equal(2, row.Refused);
        Assert.Equal(0m, row.Cost);
    }

    /// <summary>A fold whose transaction fails midway commits nothing: W and the sums are as they were, and the next fold does it.</summary>
    [Fact]
    public async Task Fold_FailingMidway_ChangesNothing()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync(NeverByItself);
        var records = Many(30, seed: 3);
        foreach (var record in records)
        {
            Assert.True(await ledger.AppendAsync(record));
        }

        // The last aggregate statement fails (a trigger refuses the key-period rows): the fold's transaction rolls back.
        await ExecuteAsync(db, "CREATE TRIGGER refuse_key_periods BEFORE INSERT ON metering_key_periods BEGIN SELECT RAISE(ABORT, 'refused'); END");
        var w = await ScalarAsync(db, "SELECT state_value FROM metering_ledger_state WHERE state_key = 'aggregated_through'");
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => ledger.FoldAsync());
        Assert.Equal(w, await ScalarAsync(db, "SELECT state_value FROM metering_ledger_state WHERE state_key = 'aggregated_through'"));
        Assert.Equal(0, await CountAsync(db, "metering_usage_daily"));
        AssertExact(records, await ReadEverythingAsync(ledger, records));

        await ExecuteAsync(db, "DROP TRIGGER refuse_key_periods");
        Assert.Equal(records.Count, await ledger.FoldAsync());
        AssertExact(records, await ReadEverythingAsync(ledger, records));
    }

    /// <summary>
    /// The background fold keeps trying after any failure and reports it once per run of failures (a server logs event
    /// 4193): before, a failure of a type its filter did not list ended the loop silently, and nothing was ever reported.
    /// </summary>
    [Fact]
    public async Task BackgroundFold_Failing_IsReportedOncePerRun_AndKeepsTrying()
    {
        using var db = new TempDatabase();
        var reported = new List<Exception>();
        var firstReport = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var options = new UsageLedgerOptions
        {
            AggregateFoldInterval = TimeSpan.FromMilliseconds(1),
            AggregateFoldRecords = 1,
            FoldFailed = ex =>
            {
                lock (reported)
                {
                    reported.Add(ex);
                }

                firstReport.TrySetResult();
            },
        };
        await using var ledger = await db.OpenLedgerAsync(options);
        await ExecuteAsync(db, "CREATE TRIGGER refuse_key_periods BEFORE INSERT ON metering_key_periods BEGIN SELECT RAISE(ABORT, 'refused'); END");
        var records = Many(10, seed: 8);
        foreach (var record in records)
        {
            Assert.True(await ledger.AppendAsync(record));
        }

        await firstReport.Task.WaitAsync(TimeSpan.FromMinutes(2));
        var failedAtReport = ledger.FoldCounters.Failed;
        await WaitUntilAsync(() => ledger.FoldCounters.Failed >= failedAtReport + 3);
        lock (reported)
        {
            Assert.IsAssignableFrom<System.Data.Common.DbException>(Assert.Single(reported));
        }

        AssertExact(records, await ReadEverythingAsync(ledger, records));

        // The cause goes away: the loop, still running, folds everything by itself.
        await ExecuteAsync(db, "DROP TRIGGER refuse_key_periods");
        await WaitUntilAsync(async () => await CountAsync(db, "metering_key_periods") > 0);
        AssertExact(records, await ReadEverythingAsync(ledger, records));
        lock (reported)
        {
            Assert.Single(reported);
        }
    }

    private static async Task WaitUntilAsync(Func<bool> done) => await WaitUntilAsync(() => Task.FromResult(done()));

    private static async Task WaitUntilAsync(Func<Task<bool>> done)
    {
        // A bound for a hang, not a pace: the fold loop retries every millisecond here.
        using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        while (!await done())
        {
            await Task.Delay(10, bound.Token);
        }
    }

    [Fact]
    public async Task Options_FoldSettingsOutOfRange_AreRefusedNamingThem()
    {
        using var db = new TempDatabase();
        var interval = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => db.OpenLedgerAsync(new UsageLedgerOptions { AggregateFoldInterval = TimeSpan.Zero }));
        Assert.Equal(nameof(UsageLedgerOptions.AggregateFoldInterval), interval.ParamName);
        var records = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => db.OpenLedgerAsync(new UsageLedgerOptions { AggregateFoldRecords = 0 }));
        Assert.Equal(nameof(UsageLedgerOptions.AggregateFoldRecords), records.ParamName);
    }

    private static UsageLedgerOptions Options(bool portable) => new()
    {
        PortableCommands = portable,
        AggregateFoldInterval = NeverByItself.AggregateFoldInterval,
        AggregateFoldRecords = NeverByItself.AggregateFoldRecords,
    };

    private static PendingAppend Pending(UsageRecord record) =>
        new(record, record.Timestamp.ToUnixTimeMilliseconds(), MicroUnits.FromRounded(record.ComputeSeconds), MicroUnits.FromRounded(record.Cost));

    /// <summary>Everything a reader of the aggregates answers for the records' tenants, days and keys, as one comparable string list.</summary>
    private static async Task<List<string>> ReadEverythingAsync(UsageLedger ledger, List<UsageRecord> records)
    {
        var read = new List<string>();
        foreach (var tenant in records.Select(r => r.Tenant).Distinct().Order(StringComparer.Ordinal))
        {
            foreach (var day in records.Select(r => r.Timestamp.UtcDateTime.Date).Distinct().Order())
            {
                var at = new DateTimeOffset(day, TimeSpan.Zero).AddHours(12);
                foreach (var period in new[] { UsagePeriod.Day, UsagePeriod.Month, UsagePeriod.Total })
                {
                    read.Add($"{tenant} {day:yyyy-MM-dd} {period} spend {await ledger.GetSpendAsync(tenant, null, period, at, "EUR")}");
                    read.Add($"{tenant} {day:yyyy-MM-dd} {period} key spend {await ledger.GetSpendAsync(tenant, "key-1", period, at, "EUR")}");
                    foreach (var t in await ledger.GetTenantTotalsAsync(tenant, period, at))
                    {
                        read.Add($"{tenant} {day:yyyy-MM-dd} {period} totals {t.Currency} {t.Requests} {t.PromptTokens} {t.CompletionTokens} {t.ComputeSeconds} {t.Cost}");
                    }
                }
            }

            read.Add($"{tenant} first {await ledger.GetFirstUsageDayAsync(tenant):O}");
            read.Add($"{tenant} currencies {string.Join(',', await ledger.GetUsageCurrenciesAsync(tenant))}");
        }

        foreach (var row in await ledger.QueryUsageAsync(new UsageQuery
        {
            From = Day0.AddDays(-1),
            To = Day0.AddDays(400),
            GroupBy = UsageGroupBy.Day | UsageGroupBy.Tenant | UsageGroupBy.Model | UsageGroupBy.Jurisdiction | UsageGroupBy.Key,
        }))
        {
            read.Add($"usage {row.Day} {row.Tenant} {row.Model} {row.Jurisdiction} {row.KeyId} {row.Currency} {row.Requests} {row.Completed} {row.Refused} {row.Cancelled} {row.Failed} " +
                $"{row.PromptTokens} {row.CompletionTokens} {row.CachedTokens} {row.ComputeSeconds} {row.Cost} {row.WaivedRequests}");
        }

        return read;
    }

    /// <summary>What <see cref="ReadEverythingAsync"/> must say for <paramref name="records"/>, computed from them alone.</summary>
    private static void AssertExact(List<UsageRecord> records, List<string> read)
    {
        var expected = new List<string>();
        foreach (var tenant in records.Select(r => r.Tenant).Distinct().Order(StringComparer.Ordinal))
        {
            var mine = records.Where(r => r.Tenant == tenant).ToList();
            foreach (var day in records.Select(r => r.Timestamp.UtcDateTime.Date).Distinct().Order())
            {
                foreach (var period in new[] { UsagePeriod.Day, UsagePeriod.Month, UsagePeriod.Total })
                {
                    var inPeriod = mine.Where(r => period switch
                    {
                        UsagePeriod.Day => r.Timestamp.UtcDateTime.Date == day,
                        UsagePeriod.Month => r.Timestamp.UtcDateTime.Year == day.Year && r.Timestamp.UtcDateTime.Month == day.Month,
                        _ => true,
                    }).ToList();
                    var eur = inPeriod.Where(r => r.Currency == "EUR").ToList();
                    expected.Add($"{tenant} {day:yyyy-MM-dd} {period} spend {eur.Sum(r => r.Cost)}");
                    expected.Add($"{tenant} {day:yyyy-MM-dd} {period} key spend {eur.Where(r => r.KeyId == "key-1").Sum(r => r.Cost)}");
                    foreach (var currency in inPeriod.Select(r => r.Currency).Distinct().Order(StringComparer.Ordinal))
                    {
                        var c = inPeriod.Where(r => r.Currency == currency).ToList();
                        expected.Add($"{tenant} {day:yyyy-MM-dd} {period} totals {currency} {c.Count} {c.Sum(r => (long)r.PromptTokens)} {c.Sum(r => (long)r.CompletionTokens)} " +
                            $"{c.Sum(r => r.ComputeSeconds)} {c.Sum(r => r.Cost)}");
                    }
                }
            }

            expected.Add($"{tenant} first {new DateTimeOffset(mine.Min(r => r.Timestamp.UtcDateTime.Date), TimeSpan.Zero):O}");
            expected.Add($"{tenant} currencies {string.Join(',', mine.Select(r => r.Currency).Distinct().Order(StringComparer.Ordinal))}");
        }

        // Normalize decimals (the ledger's have six places, sums of the records' fewer): compare as numbers.
        Assert.Equal(expected.Count(e => !e.StartsWith("usage ", StringComparison.Ordinal)), read.Count(r => !r.StartsWith("usage ", StringComparison.Ordinal)));
        var reads = read.Where(r => !r.StartsWith("usage ", StringComparison.Ordinal)).ToList();
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(Normalize(expected[i]), Normalize(reads[i]));
        }

        var usage = read.Where(r => r.StartsWith("usage ", StringComparison.Ordinal)).ToList();
        var groups = records.GroupBy(r => (r.Timestamp.UtcDateTime.Date, r.Tenant, r.Model, r.Jurisdiction, r.KeyId, r.Currency)).ToList();
        Assert.Equal(groups.Count, usage.Count);
        Assert.Equal(records.Count, usage.Sum(u => long.Parse(u.Split(' ')[7], System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(records.Sum(r => r.Cost), usage.Sum(u => decimal.Parse(u.Split(' ')[16], System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(records.Sum(r => (long)r.PromptTokens), usage.Sum(u => long.Parse(u.Split(' ')[12], System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(records.Count(r => r.Outcome == UsageOutcome.Refused), usage.Sum(u => long.Parse(u.Split(' ')[9], System.Globalization.CultureInfo.InvariantCulture)));

        static string Normalize(string line) => string.Join(' ', line.Split(' ').Select(part =>
            decimal.TryParse(part, System.Globalization.NumberStyles.Number, System.Globalization.CultureInfo.InvariantCulture, out var d) && part.Contains('.', StringComparison.Ordinal)
                ? d.ToString("0.######", System.Globalization.CultureInfo.InvariantCulture)
                : part));
    }

    private static async Task<long> CountAsync(TempDatabase db, string table) => await ScalarAsync(db, $"SELECT COUNT(*) FROM {table}");

    private static async Task<long> ScalarAsync(TempDatabase db, string sql)
    {
        await using var connection = await db.Database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var value = await command.ExecuteScalarAsync();
        return value is null or DBNull ? 0 : Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task ExecuteAsync(TempDatabase db, string sql)
    {
        await using var connection = await db.Database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }
}
