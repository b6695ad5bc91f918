using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using Sovereign.Metering.Ledger;
using Sovereign.Storage;

namespace Sovereign.Benchmarks.Ledger;

/// <summary>
/// What folding the period aggregates behind a watermark would cost (docs/architecture.md, Known gaps, "Period
/// aggregates folded behind a watermark"; not built): on the file a <c>commits</c> run just wrote, windows of N
/// records are read by rowid once each, summed in memory per aggregate row (daily; tenant day, month, total; key day,
/// total) and upserted with the ledger's own statements, then the watermark row is written, in one
/// <c>BEGIN IMMEDIATE</c> transaction per fold, as the design's fold would. The file's aggregates already count these
/// records, so the probe adds them again: a throwaway file, timed only.
/// </summary>
internal static class FoldProbe
{
    private const string SelectWindow =
        "SELECT tenant, ts, model, jurisdiction, pool, device_class, key_id, currency, outcome, prompt_tokens, completion_tokens, cached_tokens, " +
        "compute_us, cost_micros, waiver_ratio_to_english, waived_prompt_tokens, waived_completion_tokens FROM metering_usage " +
        "WHERE rowid > @after AND rowid <= @through ORDER BY rowid";

    private const string SetWatermark =
        "INSERT INTO metering_ledger_state (state_key, state_value) VALUES ('aggregated_through', @value) " +
        "ON CONFLICT (state_key) DO UPDATE SET state_value = excluded.state_value";

    public static async Task RunAsync(SqlDatabase database, IReadOnlyList<int> sizes)
    {
        await using var connection = await database.OpenAsync(CancellationToken.None);
        long last;
        using (var max = connection.CreateCommand())
        {
            max.CommandText = "SELECT MAX(rowid) FROM metering_usage";
            last = Convert.ToInt64(await max.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
        }

        using var daily = PreparedStatement.Create(connection, LedgerSchema.UpsertDaily);
        using var period = PreparedStatement.Create(connection, LedgerSchema.UpsertTenantPeriod);
        using var keyPeriod = PreparedStatement.Create(connection, LedgerSchema.UpsertKeyPeriod);
        using var mark = PreparedStatement.Create(connection, SetWatermark);
        using var begin = PreparedTransaction.Create(connection) ?? throw new InvalidOperationException("the fold probe needs SQLite");
        using var select = LedgerSchema.Prepare(connection, SelectWindow);
        Console.WriteLine();
        Console.WriteLine($"## the fold's cost (C#, one read per record, the ledger's upserts; {last:N0} records on the file; load {string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ')[..3])})");
        Console.WriteLine();
        Console.WriteLine("| records per fold | folds | p50 us per fold | p90 us per fold | p50 us per record | CPU us per record (process) |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|");
        foreach (var size in sizes)
        {
            var times = new List<double>();
            var cpu = TimeSpan.Zero;
            var records = 0L;
            for (var repeat = 0; repeat < 3; repeat++)
            {
                for (long after = 0; after + size <= last; after += size)
                {
                    var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
                    var started = Stopwatch.GetTimestamp();
                    using (await database.EnterWriteAsync())
                    {
                        begin.Begin();
                        try
                        {
                            records += await FoldAsync(select, daily, period, keyPeriod, after, after + size);
                            mark.Set(0, after + size);
                            await mark.ExecuteAsync(null);
                            begin.Commit();
                        }
                        catch
                        {
                            begin.Rollback();
                            throw;
                        }
                    }

                    times.Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
                    cpu += Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
                }
            }

            times.Sort();
            var p50 = times[times.Count / 2];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {size:N0} | {times.Count:N0} | {p50:F0} | {times[(int)(times.Count * 0.9)]:F0} | {p50 / size:F2} | {cpu.TotalMicroseconds / Math.Max(1, records):F2} |"));
        }
    }

    private static async Task<long> FoldAsync(DbCommand select, PreparedStatement daily, PreparedStatement period, PreparedStatement keyPeriod, long after, long through)
    {
        var dailyTotals = new Dictionary<(string, long, string, string, string, string, string, string), long[]>();
        var periodTotals = new Dictionary<(string, string, long, string), long[]>();
        var keyTotals = new Dictionary<(string, string, string, long, string), long[]>();
        select.Parameters[0].Value = after;
        select.Parameters[1].Value = through;
        long count = 0;
        await using (var reader = await select.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                count++;
                var tenant = reader.GetString(0);
                var ts = reader.GetInt64(1);
                var keyId = reader.GetString(6);
                var currency = reader.GetString(7);
                var day = UtcCalendar.DayStart(ts);
                var outcome = reader.GetInt64(8);
                long prompt = reader.GetInt64(9), completion = reader.GetInt64(10), cached = reader.GetInt64(11);
                long compute = reader.GetInt64(12), cost = reader.GetInt64(13);
                long waived = reader.IsDBNull(14) ? 0 : 1, waivedPrompt = reader.GetInt64(15), waivedCompletion = reader.GetInt64(16);
                var d = Sums(dailyTotals, (tenant, day, reader.GetString(2), reader.GetString(3), reader.IsDBNull(4) ? "" : reader.GetString(4), reader.IsDBNull(5) ? "" : reader.GetString(5), keyId, currency), 13);
                d[0]++;
                d[1 + (int)Math.Min(outcome, 3)]++;
                d[5] += prompt; d[6] += completion; d[7] += cached; d[8] += compute; d[9] += cost; d[10] += waived; d[11] += waivedPrompt; d[12] += waivedCompletion;
                foreach (var (name, start) in new[] { (UsagePeriodNames.Day, day), (UsagePeriodNames.Month, UtcCalendar.MonthStart(ts)), (UsagePeriodNames.Total, 0L) })
                {
                    var p = Sums(periodTotals, (tenant, name, start, currency), 5);
                    p[0]++; p[1] += prompt; p[2] += completion; p[3] += compute; p[4] += cost;
                }

                foreach (var (name, start) in new[] { (UsagePeriodNames.Day, day), (UsagePeriodNames.Total, 0L) })
                {
                    var k = Sums(keyTotals, (tenant, keyId, name, start, currency), 2);
                    k[0]++; k[1] += cost;
                }
            }
        }

        foreach (var (key, s) in dailyTotals)
        {
            daily.Set(0, key.Item1); daily.Set(1, key.Item2); daily.Set(2, key.Item3); daily.Set(3, key.Item4);
            daily.Set(4, key.Item5); daily.Set(5, key.Item6); daily.Set(6, key.Item7); daily.Set(7, key.Item8);
            for (var i = 0; i < 13; i++)
            {
                daily.Set(8 + i, s[i]);
            }

            await daily.ExecuteAsync(null);
        }

        foreach (var (key, s) in periodTotals)
        {
            period.Set(0, key.Item1); period.Set(1, key.Item2); period.Set(2, key.Item3); period.Set(3, key.Item4);
            for (var i = 0; i < 5; i++)
            {
                period.Set(4 + i, s[i]);
            }

            await period.ExecuteAsync(null);
        }

        foreach (var (key, s) in keyTotals)
        {
            keyPeriod.Set(0, key.Item1); keyPeriod.Set(1, key.Item2); keyPeriod.Set(2, key.Item3); keyPeriod.Set(3, key.Item4); keyPeriod.Set(4, key.Item5);
            keyPeriod.Set(5, s[0]); keyPeriod.Set(6, s[1]);
            await keyPeriod.ExecuteAsync(null);
        }

        return count;
    }

    private static long[] Sums<TKey>(Dictionary<TKey, long[]> map, TKey key, int width)
        where TKey : notnull
    {
        if (!map.TryGetValue(key, out var sums))
        {
            map[key] = sums = new long[width];
        }

        return sums;
    }
}
