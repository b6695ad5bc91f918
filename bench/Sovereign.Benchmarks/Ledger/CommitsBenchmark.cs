using System.Diagnostics;
using System.Globalization;
using Sovereign.Metering.Ledger;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Benchmarks.Ledger;

/// <summary>
/// The two durable commits of one governed request, alone: an allowed decision's audit entry, then the outcome's entry
/// with its usage record carried in the same transaction (as the gateway writes them), one request after another on a
/// fresh SQLite file, each timed. Isolates what the pipeline benchmark measures as its SQLite share from HTTP, grains
/// and the thread pool, so a change to the statements or pages of a commit reads in microseconds.
/// </summary>
public static class CommitsBenchmark
{
    /// <summary>Command-line help.</summary>
    public const string Usage = "commits [--requests N (5000)] [--warmup N (2000)] [--rounds R (3)] [--dir PATH] [--keep] [--random-ids] [--wal-checkpoint-commits N] [--floor] [--fold N[,N...] (then the cost of folding the period aggregates, N records per fold, with the session-53 probe of the fold the ledger now runs)]";

    /// <summary>Runs the benchmark and prints a report; returns the process exit code.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var requests = 5_000;
        var warmup = 2_000;
        var rounds = 3;
        string? dir = null;
        var floor = false;
        var keep = false;
        var randomIds = false;
        var checkpointCommits = 0;
        int[] fold = [];
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--requests": requests = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--warmup": warmup = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--dir": dir = args[++i]; break;
                case "--floor": floor = true; break;
                case "--fold": fold = [.. args[++i].Split(',').Select(n => int.Parse(n, CultureInfo.InvariantCulture))]; break;
                case "--keep": keep = true; break;
                case "--random-ids": randomIds = true; break;
                case "--wal-checkpoint-commits": checkpointCommits = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                default:
                    Console.Error.WriteLine($"commits: unknown option '{args[i]}'\nusage: {Usage}");
                    return 2;
            }
        }

        dir ??= Path.Combine(Path.GetTempPath(), "sovereign-commits-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            var database = SqlDatabase.Sqlite(Path.Combine(dir, "sovereign.db"));
            if (floor)
            {
                await FloorAsync(database, dir, requests, rounds);
                return 0;
            }

            var key = OperatorSigningKey.LoadOrCreate(Path.Combine(dir, "operator.key"));
            await using var audit = await AuditLog.OpenAsync(database, key, new AuditLogOptions
            {
                CheckpointMaxAge = TimeSpan.FromSeconds(60),
                // Never checkpointed while it runs: the WAL's growth counts the pages each commit writes. With
                // --wal-checkpoint-commits, as the gateway runs (200: every 100 requests), for what the checkpoints
                // beside the commits do to their slowest 1% (the page counts then read nothing).
                SqliteWalCheckpointCommits = checkpointCommits > 0 ? checkpointCommits : int.MaxValue,
            });
            // The ledger's fold commits too (since session 55): without --wal-checkpoint-commits its connection must
            // not checkpoint either, or the WAL starts over and the page counts read nothing.
            await using var ledger = await UsageLedger.OpenAsync(database, new UsageLedgerOptions { CheckpointPages = checkpointCommits > 0 ? 10_000 : int.MaxValue });
            var load = File.ReadAllText("/proc/loadavg").Split(' ')[..3];
            Console.WriteLine($"## commits (load {string.Join(' ', load)}, {DateTime.UtcNow:HH:mm} UTC)");
            Console.WriteLine();
            Console.WriteLine("| round | requests | decision p50 us | decision mean us | outcome+ledger p50 us | outcome+ledger mean us | both mean us | WAL pages per decision | WAL pages per outcome | decision p99 us | outcome+ledger p99 us | WAL pages per request, all writers (the fold's too) |");
            Console.WriteLine("|------:|---------:|----------------:|-----------------:|----------------------:|-----------------------:|-------------:|-----------------------:|----------------------:|----------------:|----------------------:|---:|");
            var wal = new FileInfo(Path.Combine(dir, "sovereign.db-wal"));
            await RunRoundAsync(audit, ledger, wal, warmup, randomIds);
            var split = new List<(double Both, bool Beside)>();
            for (var round = 1; round <= rounds; round++)
            {
                wal.Refresh();
                var roundStart = wal.Exists ? wal.Length : 0;
                var (decisions, outcomes, decisionPages, outcomePages, beside) = await RunRoundAsync(audit, ledger, wal, requests, randomIds);
                await ledger.FoldAsync();
                wal.Refresh();
                var allPages = (wal.Length - roundStart) / (4096.0 + 24) / requests;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {round} | {requests:N0} | {Percentile(decisions, 0.5):F1} | {decisions.Average():F1} | {Percentile(outcomes, 0.5):F1} | {outcomes.Average():F1} | {decisions.Average() + outcomes.Average():F1} | {decisionPages:F2} | {outcomePages:F2} | {Percentile(decisions, 0.99):F1} | {Percentile(outcomes, 0.99):F1} | {allPages:F2} |"));
                split.AddRange(decisions.Select((d, i) => (d + outcomes[i], beside[i])));
            }

            if (checkpointCommits > 0)
            {
                // Requests whose commits ran while the WAL checkpoint (AuditLog.WalHousekeeping) was in flight, against
                // the rest of the same run: the same machine load on both sides, so the difference is the checkpoint's.
                var near = split.Where(s => s.Beside).Select(s => s.Both).ToArray();
                var apart = split.Where(s => !s.Beside).Select(s => s.Both).ToArray();
                var all = split.Select(s => s.Both).ToArray();
                var p99 = Percentile(all, 0.99);
                Console.WriteLine();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"beside a WAL checkpoint: {near.Length} requests ({100.0 * near.Length / all.Length:F2}%), both-commits p50 {(near.Length > 0 ? Percentile(near, 0.5) : 0):F1} us, p99 {(near.Length > 0 ? Percentile(near, 0.99) : 0):F1} us; " +
                    $"apart: {apart.Length}, p50 {Percentile(apart, 0.5):F1} us, p99 {Percentile(apart, 0.99):F1} us; " +
                    $"of the slowest 1% (>= {p99:F0} us) {split.Count(s => s.Both >= p99 && s.Beside)} of {split.Count(s => s.Both >= p99)} were beside one"));
            }

            if (fold.Length > 0)
            {
                await FoldProbe.RunAsync(database, fold);
            }

            if (keep)
            {
                // For bench/wal-pages.py, before the last connection closes (which checkpoints and removes the WAL).
                var kept = Directory.CreateDirectory(Path.Combine(dir, "kept")).FullName;
                File.Copy(Path.Combine(dir, "sovereign.db"), Path.Combine(kept, "sovereign.db"));
                File.Copy(wal.FullName, Path.Combine(kept, "sovereign.db-wal"));
                Console.WriteLine($"kept {kept}");
            }

            return 0;
        }
        finally
        {
            try
            {
                if (!keep)
                {
                    Directory.Delete(dir, recursive: true);
                }
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<(double[] Decisions, double[] Outcomes, double DecisionPages, double OutcomePages, bool[] Beside)> RunRoundAsync(
        AuditLog audit, UsageLedger ledger, FileInfo wal, int requests, bool randomIds)
    {
        const double Frame = 4096 + 24; // a WAL frame: the page and its header
        var decisions = new double[requests];
        var outcomes = new double[requests];
        var beside = new bool[requests];
        long decisionBytes = 0, outcomeBytes = 0;
        for (var i = 0; i < requests; i++)
        {
            // By default time-ordered, as the gateway makes them since session 49 (RequestIds.New: the time, then random
            // bits), so the request-id index grows at its end; --random-ids: 24 random hex digits, as it made them before,
            // each landing on a random page of the index.
            var requestId = randomIds
                ? "req_" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(12))
                : Sovereign.Gateway.Hosting.RequestIds.New(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
            wal.Refresh();
            var before = wal.Exists ? wal.Length : 0;
            var housekeeping = audit.WalHousekeeping;
            var running = !housekeeping.IsCompleted;
            var started = Stopwatch.GetTimestamp();
            await audit.AppendAsync(Decision(requestId));
            var decided = Stopwatch.GetTimestamp();
            wal.Refresh();
            var between = wal.Length;
            var resumed = Stopwatch.GetTimestamp();
            var carried = ledger.Carry(UsageOf(requestId)) ?? throw new InvalidOperationException("the ledger does not carry");
            await audit.AppendAsync(Outcome(requestId), carried);
            await carried.Stored;
            var done = Stopwatch.GetTimestamp();
            wal.Refresh();
            decisionBytes += between - before;
            outcomeBytes += wal.Length - between;
            decisions[i] = Stopwatch.GetElapsedTime(started, decided).TotalMicroseconds;
            outcomes[i] = Stopwatch.GetElapsedTime(resumed, done).TotalMicroseconds;
            beside[i] = running || !ReferenceEquals(housekeeping, audit.WalHousekeeping) || !audit.WalHousekeeping.IsCompleted;
        }

        return (decisions, outcomes, decisionBytes / Frame / requests, outcomeBytes / Frame / requests, beside);
    }

    // As the gateway's entries for a chat completion over an external route (InferenceRouter.Allow and CompleteAsync).
    private static AuditRecord Decision(string requestId) => new()
    {
        Kind = AuditKind.Inference,
        Actor = "key_0123456789abcdef",
        Action = AuditActions.InferenceAllowed,
        Tenant = "bench-tenant",
        KeyId = "key_0123456789abcdef",
        Model = "mock-model",
        Gateway = "gateway-1",
        Node = "mock-engine",
        Jurisdiction = "TH",
        Decision = AuditDecision.Allowed,
        Reasons = ["tenant policy allows TH", "node mock-engine (TH) serves mock-model", "selected mock-engine"],
        Details = new Dictionary<string, string>(StringComparer.Ordinal) { ["request_id"] = requestId, ["gateway_jurisdiction"] = "TH", ["endpoint"] = "/v1/chat/completions" },
    };

    private static AuditRecord Outcome(string requestId) => new()
    {
        Kind = AuditKind.Inference,
        Actor = "key_0123456789abcdef",
        Action = AuditActions.InferenceCompleted,
        Tenant = "bench-tenant",
        KeyId = "key_0123456789abcdef",
        Model = "mock-model",
        Gateway = "gateway-1",
        Node = "mock-engine",
        Jurisdiction = "TH",
        Decision = AuditDecision.Allowed,
        PromptTokens = 9,
        CompletionTokens = 1,
        Details = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["request_id"] = requestId, ["outcome"] = "completed", ["language"] = "und", ["cost"] = "0.000012", ["currency"] = "USD", ["endpoint"] = "/v1/chat/completions",
        },
    };

    private static UsageRecord UsageOf(string requestId) => new()
    {
        RequestId = requestId,
        Timestamp = DateTimeOffset.UtcNow,
        Tenant = "bench-tenant",
        KeyId = "key_0123456789abcdef",
        Model = "mock-model",
        Node = "mock-engine",
        Jurisdiction = "TH",
        PromptTokens = 9,
        CompletionTokens = 1,
        DurationMs = 1,
        Outcome = UsageOutcome.Completed,
        Cost = 0.000012m,
        Currency = "USD",
        PriceVersion = "v1",
    };

    // What a decision-shaped transaction costs in SQLite itself: one entry and the head's move, begun and committed
    // through Microsoft.Data.Sqlite's transaction (as the audit log does) or through statements prepared once.
    private static async Task FloorAsync(SqlDatabase database, string dir, int requests, int rounds)
    {
        var key = OperatorSigningKey.LoadOrCreate(Path.Combine(dir, "operator.key"));
        await (await AuditLog.OpenAsync(database, key)).DisposeAsync();
        await using var connection = (Microsoft.Data.Sqlite.SqliteConnection)await database.OpenAsync();
        using (var pragma = connection.CreateCommand())
        {
            pragma.CommandText = "PRAGMA wal_autocheckpoint=0";
            pragma.ExecuteNonQuery();
        }

        var db = connection.Handle!;
        using var insert = PreparedStatement.Create(connection,
            "INSERT INTO audit_entries (" + "seq, at_ms, kind, tenant, key_id, actor, action, model, gateway, node, jurisdiction, decision, decision_code, reasons, prompt_tokens, completion_tokens, details, format, previous_hash, hash" + ") " +
            "VALUES (@seq, @at, @kind, @tenant, @keyId, @actor, @action, @model, @gateway, @node, @jurisdiction, @decision, @decisionCode, " +
            "@reasons, @promptTokens, @completionTokens, @details, @format, @previousHash, @hash)");
        using var head = PreparedStatement.Create(connection, "UPDATE audit_head SET seq = @seq, hash = @hash, updated_at = @at WHERE id = 1");
        SQLitePCL.raw.sqlite3_prepare_v3(db, "BEGIN IMMEDIATE", SQLitePCL.raw.SQLITE_PREPARE_PERSISTENT, out var begin);
        SQLitePCL.raw.sqlite3_prepare_v3(db, "COMMIT", SQLitePCL.raw.SQLITE_PREPARE_PERSISTENT, out var commit);
        long seq = 0;
        var hash = new string('a', 64);
        async Task Entry(Microsoft.Data.Sqlite.SqliteTransaction? transaction, bool withEntry)
        {
            seq++;
            var at = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            if (withEntry)
            {
                insert.Set(0, seq); insert.Set(1, at); insert.Set(2, "inference"); insert.Set(3, "bench-tenant"); insert.Set(4, "key_0123456789abcdef");
                insert.Set(5, "key_0123456789abcdef"); insert.Set(6, "inference.allowed"); insert.Set(7, "mock-model"); insert.Set(8, "gateway-1");
                insert.Set(9, "mock-engine"); insert.Set(10, "TH"); insert.Set(11, "allowed"); insert.Set(12, (string?)null);
                insert.Set(13, "[\"tenant policy allows TH\",\"node mock-engine (TH) serves mock-model\",\"selected mock-engine\"]");
                insert.Set(14, (string?)null); insert.Set(15, (string?)null);
                insert.Set(16, "{\"request_id\":\"req_0123456789abcdef0123\",\"gateway_jurisdiction\":\"TH\",\"endpoint\":\"/v1/chat/completions\"}");
                insert.Set(17, 1L); insert.Set(18, hash); insert.Set(19, hash);
                await insert.ExecuteAsync(transaction!);
            }

            head.Set(0, seq); head.Set(1, hash); head.Set(2, at);
            await head.ExecuteAsync(transaction!);
        }

        var modes = new (string Name, Func<Task> Run)[]
        {
            ("Microsoft.Data.Sqlite transaction, entry + head", async () =>
            {
                await using var transaction = (Microsoft.Data.Sqlite.SqliteTransaction)await connection.BeginTransactionAsync();
                await Entry(transaction, true);
                await transaction.CommitAsync();
            }),
            ("prepared BEGIN IMMEDIATE/COMMIT, entry + head", async () =>
            {
                SQLitePCL.raw.sqlite3_step(begin); SQLitePCL.raw.sqlite3_reset(begin);
                await Entry(null, true);
                SQLitePCL.raw.sqlite3_step(commit); SQLitePCL.raw.sqlite3_reset(commit);
            }),
            ("prepared BEGIN IMMEDIATE/COMMIT, head only", async () =>
            {
                SQLitePCL.raw.sqlite3_step(begin); SQLitePCL.raw.sqlite3_reset(begin);
                await Entry(null, false);
                SQLitePCL.raw.sqlite3_step(commit); SQLitePCL.raw.sqlite3_reset(commit);
            }),
            ("prepared BEGIN IMMEDIATE/COMMIT, nothing written", () =>
            {
                SQLitePCL.raw.sqlite3_step(begin); SQLitePCL.raw.sqlite3_reset(begin);
                SQLitePCL.raw.sqlite3_step(commit); SQLitePCL.raw.sqlite3_reset(commit);
                return Task.CompletedTask;
            }),
        };

        var times = modes.Select(_ => new List<double>()).ToArray();
        for (var round = 0; round < rounds * 10; round++)
        {
            for (var m = 0; m < modes.Length; m++)
            {
                for (var i = 0; i < requests / 10; i++)
                {
                    var started = Stopwatch.GetTimestamp();
                    await modes[m].Run();
                    if (round > 0)
                    {
                        times[m].Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
                    }
                }
            }

            if (round % 5 == 4)
            {
                using var checkpoint = connection.CreateCommand();
                checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
                checkpoint.ExecuteNonQuery();
            }
        }

        Console.WriteLine($"## commits --floor (load {string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ')[..3])})");
        for (var m = 0; m < modes.Length; m++)
        {
            var values = times[m].ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {modes[m].Name} | p50 {Percentile(values, 0.5):F1} us | p25 {Percentile(values, 0.25):F1} us | mean {values.Average():F1} us |"));
        }

        begin.Dispose();
        commit.Dispose();
    }

    private static double Percentile(double[] values, double p)
    {
        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        return sorted[Math.Clamp((int)(p * (sorted.Length - 1)), 0, sorted.Length - 1)];
    }
}
