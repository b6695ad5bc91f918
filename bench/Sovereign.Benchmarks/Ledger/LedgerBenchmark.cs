using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Sovereign.Metering.Ledger;
using Sovereign.Storage;

namespace Sovereign.Benchmarks.Ledger;

/// <summary>
/// Durable append throughput of the usage ledger on SQLite: N records from C concurrent callers, each awaiting its
/// own AppendAsync (so every counted record is committed), against a baseline that bulk-inserts the same rows in one
/// prepared transaction with no aggregates and no per-caller completion (the floor of what SQLite can do), plus one
/// caller appending alone (one commit per record: what group commit saves).
/// </summary>
public static class LedgerBenchmark
{
    /// <summary>Command-line help.</summary>
    public const string Usage =
        "ledger [--records N (200000)] [--concurrency C[,C...] (256)] [--batch B (2048)] [--durability process|power|both (both)] " +
        "[--ids random|ordered (random)] [--dir PATH] [--keep]";

    /// <summary>Runs the benchmark and prints a report; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var records = 200_000;
        int[] concurrency = [256];
        var orderedIds = false;
        var batch = 2048;
        var durability = "both";
        string? dir = null;
        var keep = false;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--records": records = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--concurrency": concurrency = [.. args[++i].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture))]; break;
                case "--ids": orderedIds = args[++i] == "ordered"; break;
                case "--batch": batch = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--durability": durability = args[++i]; break;
                case "--dir": dir = args[++i]; break;
                case "--keep": keep = true; break;
                default:
                    Console.Error.WriteLine($"ledger: unknown option '{args[i]}'\nusage: {Usage}");
                    return 2;
            }
        }

        if (records < 1 || concurrency.Any(c => c < 1) || batch < 1 || durability is not ("process" or "power" or "both"))
        {
            Console.Error.WriteLine("usage: " + Usage);
            return 2;
        }

        dir ??= Path.Combine(Path.GetTempPath(), "sovereign-ledger-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var data = Generate(records, orderedIds);
            Console.WriteLine($"ledger benchmark: {records:N0} records ({(orderedIds ? "time-ordered" : "random")} request ids), batch <= {batch}");
            Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}, SQLite {await SqliteVersionAsync(dir)}");
            Console.WriteLine($"database: {dir}; load average before: {LoadAverage()}");

            // Warm-up (JIT, SQLite page cache code paths), not reported.
            await RunLedgerAsync(Generate(5_000, orderedIds, "warm"), Path.Combine(dir, "warm.db"), 64, batch, LedgerDurability.ProcessCrash);

            var baseline = await RunBaselineAsync(data, Path.Combine(dir, "baseline.db"));
            Console.WriteLine();
            Console.WriteLine($"{"run",-52} {"records/s",12} {"vs baseline",12} {"p50 ms",8} {"p99 ms",8} {"max ms",8} {"avg batch",10} {"cpu us/rec",11}");
            Print("baseline: one-transaction bulk insert (raw)", baseline, baseline.PerSecond, null);
            foreach (var mode in Modes(durability))
            {
                foreach (var callers in concurrency)
                {
                    var result = await RunLedgerAsync(data, Path.Combine(dir, $"ledger-{mode}-{callers}.db"), callers, batch, mode);
                    Print($"ledger, {callers} callers, {Label(mode)}", result, baseline.PerSecond, result.Latencies);
                }
            }

            var alone = data.Take(Math.Min(records, 3_000)).ToList();
            var single = await RunLedgerAsync(alone, Path.Combine(dir, "ledger-single.db"), 1, batch, LedgerDurability.ProcessCrash);
            Print($"ledger, 1 caller ({alone.Count:N0} records), {Label(LedgerDurability.ProcessCrash)}", single, baseline.PerSecond, single.Latencies);
            Console.WriteLine();
            Console.WriteLine("records/s counts only records whose AppendAsync completed (committed); 'vs baseline' = ledger / raw bulk insert;");
            Console.WriteLine("cpu us/rec = process CPU time (all threads) per record: unlike records/s, it does not depend on other load on the machine.");
            Console.WriteLine($"load average after: {LoadAverage()}");
            return 0;
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            if (!keep)
            {
                try
                {
                    Directory.Delete(dir, recursive: true);
                }
                catch (IOException)
                {
                    Console.Error.WriteLine($"could not delete {dir}");
                }
            }
        }
    }

    private static IEnumerable<LedgerDurability> Modes(string durability) => durability switch
    {
        "process" => [LedgerDurability.ProcessCrash],
        "power" => [LedgerDurability.PowerLoss],
        _ => [LedgerDurability.ProcessCrash, LedgerDurability.PowerLoss],
    };

    private static string Label(LedgerDurability mode) => mode == LedgerDurability.PowerLoss ? "synchronous=FULL" : "synchronous=NORMAL";

    private static void Print(string name, RunResult result, double baseline, double[]? latencies)
    {
        var ratio = (result.PerSecond / baseline).ToString("0.00x", CultureInfo.InvariantCulture);
        string Ms(double q) => latencies is null ? "-" : Percentile(latencies, q).ToString("0.00", CultureInfo.InvariantCulture);
        var avgBatch = result.Batches > 0 ? ((double)result.Records / result.Batches).ToString("0.0", CultureInfo.InvariantCulture) : "-";
        var cpu = (result.Cpu.TotalMicroseconds / result.Records).ToString("0.0", CultureInfo.InvariantCulture);
        Console.WriteLine($"{name,-52} {result.PerSecond,12:N0} {ratio,12} {Ms(0.50),8} {Ms(0.99),8} {Ms(1.0),8} {avgBatch,10} {cpu,11}");
    }

    private static async Task<RunResult> RunLedgerAsync(List<UsageRecord> records, string path, int concurrency, int batch, LedgerDurability durability)
    {
        var database = SqlDatabase.Sqlite(path);
        var ledger = await UsageLedger.OpenAsync(database, new UsageLedgerOptions { MaxBatchSize = batch, Durability = durability, QueueCapacity = Math.Max(batch * 4, concurrency) });
        var latencies = new double[records.Count];
        var next = -1;
        var cpu = Environment.CpuUsage.TotalTime;
        var clock = Stopwatch.StartNew();
        var callers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < records.Count)
            {
                var start = Stopwatch.GetTimestamp();
                await ledger.AppendAsync(records[i]);
                latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }));
        await Task.WhenAll(callers);
        clock.Stop();
        cpu = Environment.CpuUsage.TotalTime - cpu;
        var stats = ledger.Statistics;
        await ledger.DisposeAsync();
        if (stats.Stored != records.Count)
        {
            throw new InvalidOperationException($"stored {stats.Stored} of {records.Count} records");
        }

        Array.Sort(latencies);
        return new RunResult(records.Count, clock.Elapsed, cpu, stats.Batches, latencies);
    }

    private static async Task<RunResult> RunBaselineAsync(List<UsageRecord> records, string path)
    {
        var database = SqlDatabase.Sqlite(path);
        await database.MigrateAsync(UsageLedger.Migrations);
        await using var connection = await database.OpenAsync();
        using (var pragma = connection.CreateCommand())
        {
            pragma.CommandText = "PRAGMA cache_size=-65536";
            await pragma.ExecuteNonQueryAsync();
        }

        // The same prepared statement and page cache as the ledger's writer, minus aggregates, batching and callers.
        using var insert = PreparedStatement.Create(connection, LedgerSchema.InsertRecord);
        var cpu = Environment.CpuUsage.TotalTime;
        var clock = Stopwatch.StartNew();
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            foreach (var record in records)
            {
                LedgerSchema.BindRecord(insert, record, record.Timestamp.ToUnixTimeMilliseconds(), MicroUnits.FromRounded(record.ComputeSeconds), MicroUnits.FromExact(record.Cost, "cost"));
                await insert.ExecuteAsync(transaction);
            }

            await transaction.CommitAsync();
        }

        clock.Stop();
        cpu = Environment.CpuUsage.TotalTime - cpu;
        return new RunResult(records.Count, clock.Elapsed, cpu, 1, null);
    }

    private static async Task<string> SqliteVersionAsync(string dir)
    {
        await using var connection = await SqlDatabase.Sqlite(Path.Combine(dir, "version.db")).OpenAsync();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT sqlite_version()";
        return (string)(await command.ExecuteScalarAsync())!;
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    private static double Percentile(double[] sorted, double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];

    /// <summary>
    /// Realistic rows: random request ids (like real ones; or time-ordered, like UUIDv7), arrival times increasing over 3 days with jitter,
    /// 50 tenants, 6 models, 3 jurisdictions, 2% refused.
    /// </summary>
    private static List<UsageRecord> Generate(int count, bool orderedIds, string prefix = "bench")
    {
        var random = new Random(42);
        var start = new DateTimeOffset(2025, 3, 10, 0, 0, 0, TimeSpan.Zero);
        string[] models = ["llama-3.1-8b", "llama-3.1-70b", "mistral-small-24b", "qwen-2.5-7b", "qwen-2.5-72b", "gemma-3-27b"];
        string[] jurisdictions = ["EU", "DE", "FR"];
        var list = new List<UsageRecord>(count);
        for (var i = 0; i < count; i++)
        {
            var refused = random.Next(50) == 0;
            var prompt = random.Next(20, 8000);
            var completion = refused ? 0 : random.Next(1, 1500);
            list.Add(new UsageRecord
            {
                RequestId = orderedIds ? $"{prefix}-{i:D10}" : $"{prefix}-{random.NextInt64():x16}-{i:x}",
                Timestamp = start.AddMilliseconds((3L * 86_400_000 * i / count) + random.Next(0, 2_000)),
                Tenant = $"tenant-{random.Next(50):D2}",
                KeyId = $"key-{random.Next(200):D3}",
                Model = models[random.Next(models.Length)],
                Node = $"node-{random.Next(8)}",
                Jurisdiction = jurisdictions[random.Next(jurisdictions.Length)],
                Language = random.Next(3) == 0 ? null : "en",
                PromptTokens = prompt,
                CompletionTokens = completion,
                CachedTokens = random.Next(0, prompt / 2),
                QueueTimeMs = random.Next(0, 200),
                TimeToFirstTokenMs = refused ? null : random.Next(20, 900),
                DurationMs = random.Next(50, 30_000),
                ComputeSeconds = refused ? 0m : random.Next(0, 5_000_000) / 1_000_000m,
                Outcome = refused ? UsageOutcome.Refused : UsageOutcome.Completed,
                RefusalCode = refused ? "rate_limited" : null,
                Cost = refused ? 0m : random.Next(0, 20_000) / 1_000_000m,
                Currency = "EUR",
                PriceVersion = refused ? null : "standard:model@2025-01-01T00:00:00.000Z",
            });
        }

        return list;
    }

    private sealed record RunResult(int Records, TimeSpan Elapsed, TimeSpan Cpu, long Batches, double[]? Latencies)
    {
        public double PerSecond => Records / Elapsed.TotalSeconds;
    }
}
