using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Sovereign.Metering.Ledger;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.Metering;

/// <summary>
/// Checks the usage ledger against the audit chain. The chain is hash-linked and signed; the ledger (usage records,
/// their daily totals, which invoices read, and the period totals budgets are rebuilt from) is plain rows, so a record
/// or a total changed in the database moved a tenant's bill while <c>audit verify</c> still said the log was intact.
/// Each request's outcome entry states its tokens (and, since it was added, its cost): a usage record must agree with
/// it, a record must have an entry, and the totals must be the sums of what they total. One snapshot, so a live
/// server's appends are seen whole or not at all.
/// </summary>
internal static class LedgerReconciliation
{
    private const string LedgerTable = "metering_usage";

    /// <summary>Reads the ledger and the chain in one snapshot and returns every disagreement (at most <see cref="AuditVerifier.MaxProblems"/>).</summary>
    public static async Task<IReadOnlyList<AuditProblem>> CheckAsync(SqlDatabase database, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(database);
        await using var connection = await database.OpenAsync(cancellationToken);
        if (!await HasLedgerAsync(connection, cancellationToken))
        {
            // A database without the ledger's tables (a node's, or one never served): nothing to reconcile.
            return [];
        }

        await using var snapshot = await AuditStore.BeginSnapshotAsync(connection, cancellationToken);
        var problems = new List<AuditProblem>();
        void Report(long? sequence, string message)
        {
            if (problems.Count < AuditVerifier.MaxProblems)
            {
                problems.Add(new AuditProblem(sequence, AuditProblemKind.LedgerMismatch, message));
            }
        }

        var purgedBefore = await ScalarAsync(connection, snapshot, $"SELECT state_value FROM metering_ledger_state WHERE state_key = '{LedgerSchema.PurgedBeforeKey}'", cancellationToken) ?? long.MinValue;
        var memberChains = await AuditChainScope.TablesExistAsync(connection, snapshot, cancellationToken);
        var firstEntryAt = await ScalarAsync(connection, snapshot, memberChains
            ? "SELECT COALESCE((SELECT at_ms FROM audit_entries ORDER BY seq LIMIT 1), (SELECT MIN(at_ms) FROM audit_chain_entries))"
            : "SELECT at_ms FROM audit_entries ORDER BY seq LIMIT 1", cancellationToken);

        // Records against their requests' entries: the entries of requests whose records the ledger still keeps (an
        // entry is written after its request arrived, the record's time) go, by request id, into a scratch SQLite file
        // of this process's own, which each record then looks up. A dictionary of them held 1.87 GB for 1,000,000
        // records; the file keeps memory flat however long the log (its pages are the operating system's cache).
        await using (var index = await EntryIndex.CreateAsync(cancellationToken))
        {
            await index.FillAsync(connection, snapshot, purgedBefore, memberChains, cancellationToken);
            await using var command = Command(connection, snapshot,
                $"SELECT request_id, ts, tenant, model, prompt_tokens, completion_tokens, cost_micros, currency, refusal_code FROM {LedgerTable} ORDER BY ts, request_id");
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var record = new LedgerRow(reader.GetString(0), AuditStore.ToInt64(reader.GetValue(1)), reader.GetString(2), reader.GetString(3),
                    AuditStore.ToInt64(reader.GetValue(4)), AuditStore.ToInt64(reader.GetValue(5)), AuditStore.ToInt64(reader.GetValue(6)), reader.GetString(7));
                if (index.Find(record.RequestId) is { } entry)
                {
                    if (Disagreement(record, entry) is { } difference)
                    {
                        Report(entry.Sequence, $"usage record {record.RequestId} disagrees with its audit entry: {difference}.");
                    }
                }
                else if (firstEntryAt is { } first && record.Timestamp >= first
                    && !(reader.GetValue(8) is string code && code == OpenAI.OpenAIErrorResults.AuditUnavailableCode && record.CostMicros == 0))
                {
                    // Every request the gateway records was decided (and audited) first; only archived entries are gone,
                    // and the refusals of requests whose decision the log could not record (503 audit_unavailable, at no cost).
                    Report(null, string.Create(CultureInfo.InvariantCulture,
                        $"usage record {record.RequestId} (tenant '{record.Tenant}', {MicroUnits.ToDecimal(record.CostMicros):0.000000} {record.Currency}) has no audit entry: a record added outside the server."));
                }
            }
        }

        // Daily totals (what invoices and usage read): the sums of their folded records (at or below the watermark W:
        // the records above it are not in them yet, and every reader adds them), on days no record was purged from.
        // Both sides are summed by the database and come sorted by tenant, day and currency, each day's two sums next to
        // each other, so only the day at hand is held.
        var sequence = LedgerSchema.Sequence(connection is SqliteConnection);
        await using (var command = Command(connection, snapshot,
            $"SELECT tenant, day_start, currency, side, requests, prompt_tokens, completion_tokens, cost_micros FROM (" +
            $"SELECT tenant, {DayStartSql} AS day_start, currency, 0 AS side, COUNT(*) AS requests, SUM(prompt_tokens) AS prompt_tokens, SUM(completion_tokens) AS completion_tokens, SUM(cost_micros) AS cost_micros " +
            $"FROM {LedgerTable} WHERE {sequence} <= {LedgerSchema.FoldedThrough} GROUP BY tenant, {DayStartSql}, currency " +
            "UNION ALL SELECT tenant, day_start, currency, 1, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_micros) FROM metering_usage_daily GROUP BY tenant, day_start, currency" +
            ") sums WHERE day_start >= @purged ORDER BY tenant, day_start, currency, side"))
        {
            SqlDatabase.AddParameter(command, "@purged", purgedBefore);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            (string Tenant, long Day, string Currency)? key = null;
            Sums raw = default, daily = default;
            void Compare()
            {
                if (key is { } k && daily != raw)
                {
                    Report(null, $"the daily usage totals of tenant '{k.Tenant}' on {Day(k.Day)} in {k.Currency} ({daily}) are not the sum of its usage records ({raw}).");
                }
            }

            while (await reader.ReadAsync(cancellationToken))
            {
                var next = (reader.GetString(0), AuditStore.ToInt64(reader.GetValue(1)), reader.GetString(2));
                if (key != next)
                {
                    Compare();
                    (key, raw, daily) = (next, default, default);
                }

                var sums = ReadSums(reader, 4);
                if (AuditStore.ToInt64(reader.GetValue(3)) == 0)
                {
                    raw += sums;
                }
                else
                {
                    daily += sums;
                }
            }

            Compare();
        }

        // Period totals (what budgets' spend is rebuilt from): the sums of the daily totals, which are never purged. One
        // tenant and currency at a time (its days, months and all-time), from one query sorted by them.
        await using (var command = Command(connection, snapshot,
            "SELECT tenant, currency, 0 AS side, CAST(NULL AS TEXT) AS period, day_start AS period_start, SUM(requests) AS requests, SUM(prompt_tokens) AS prompt_tokens, " +
            "SUM(completion_tokens) AS completion_tokens, SUM(cost_micros) AS cost_micros FROM metering_usage_daily GROUP BY tenant, currency, day_start " +
            "UNION ALL SELECT tenant, currency, 1, period, period_start, requests, prompt_tokens, completion_tokens, cost_micros FROM metering_tenant_periods " +
            "ORDER BY 1, 2"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            (string Tenant, string Currency)? key = null;
            var periods = new Dictionary<(string Period, long Start), Sums>();
            var stored = new Dictionary<(string Period, long Start), Sums>();
            void Compare()
            {
                if (key is not { } k)
                {
                    return;
                }

                foreach (var at in stored.Keys.Union(periods.Keys).Order())
                {
                    var total = stored.GetValueOrDefault(at);
                    var sum = periods.GetValueOrDefault(at);
                    if (total != sum)
                    {
                        var period = at.Period == UsagePeriodNames.Total ? "all-time" : $"{at.Period} {Day(at.Start)}";
                        Report(null, $"the {period} spend totals of tenant '{k.Tenant}' in {k.Currency} ({total}), which budgets count, are not the sum of its daily totals ({sum}).");
                    }
                }
            }

            while (await reader.ReadAsync(cancellationToken))
            {
                var next = (reader.GetString(0), reader.GetString(1));
                if (key != next)
                {
                    Compare();
                    key = next;
                    periods.Clear();
                    stored.Clear();
                }

                var start = AuditStore.ToInt64(reader.GetValue(4));
                var sums = ReadSums(reader, 5);
                if (AuditStore.ToInt64(reader.GetValue(2)) == 0)
                {
                    Add(periods, (UsagePeriodNames.Day, start), sums);
                    Add(periods, (UsagePeriodNames.Month, UtcCalendar.MonthStart(start)), sums);
                    Add(periods, (UsagePeriodNames.Total, 0L), sums);
                }
                else
                {
                    Add(stored, (reader.GetString(3), start), sums);
                }
            }

            Compare();
        }

        return problems;
    }

    /// <summary>
    /// The result with the ledger's disagreements added: any makes the verdict <c>tampered</c>, as a changed entry
    /// does, since the bill no longer rests on the evidence.
    /// </summary>
    public static AuditVerificationResult With(AuditVerificationResult result, IReadOnlyList<AuditProblem> ledgerProblems)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (ledgerProblems.Count == 0)
        {
            return result;
        }

        var reason = string.Create(CultureInfo.InvariantCulture,
            $"The usage ledger disagrees with the audit log in {ledgerProblems.Count} place(s): usage records or totals were changed outside the server, so invoices and budgets no longer rest on the evidence.");
        return result with
        {
            Valid = false,
            Problems = [.. result.Problems, .. ledgerProblems.Take(Math.Max(0, AuditVerifier.MaxProblems - result.Problems.Count))],
            Verdict = AuditVerdict.Tampered,
            VerdictReason = result.Verdict == AuditVerdict.Tampered ? result.VerdictReason + " " + reason : reason,
        };
    }

    /// <summary>What a record states that its request's outcome entry states otherwise, or null when they agree.</summary>
    private static string? Disagreement(LedgerRow record, EntryFacts entry)
    {
        var differences = new List<string>();
        if (!string.Equals(record.Tenant, entry.Tenant, StringComparison.Ordinal))
        {
            differences.Add($"tenant '{record.Tenant}' in the ledger, '{entry.Tenant}' in the log");
        }

        if (entry.Model is not null && !string.Equals(record.Model, entry.Model, StringComparison.Ordinal))
        {
            differences.Add($"model '{record.Model}' in the ledger, '{entry.Model}' in the log");
        }

        // A refusal ran nothing: its record bills nothing.
        var (prompt, completion) = entry.Refused ? (0L, 0L) : (entry.PromptTokens, entry.CompletionTokens);
        if (prompt is { } p && p != record.PromptTokens)
        {
            differences.Add(string.Create(CultureInfo.InvariantCulture, $"prompt_tokens {record.PromptTokens} in the ledger, {p} in the log"));
        }

        if (completion is { } c && c != record.CompletionTokens)
        {
            differences.Add(string.Create(CultureInfo.InvariantCulture, $"completion_tokens {record.CompletionTokens} in the ledger, {c} in the log"));
        }

        var cost = entry.Refused ? 0L : entry.CostMicros;
        if (cost is { } micros && (micros != record.CostMicros || (entry.Currency is { } currency && !string.Equals(currency, record.Currency, StringComparison.Ordinal))))
        {
            differences.Add(string.Create(CultureInfo.InvariantCulture,
                $"cost {MicroUnits.ToDecimal(record.CostMicros):0.000000} {record.Currency} in the ledger, {MicroUnits.ToDecimal(micros):0.000000} {entry.Currency ?? record.Currency} in the log"));
        }

        return differences.Count == 0 ? null : string.Join("; ", differences);
    }

    private static async Task<bool> HasLedgerAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT 1 FROM {LedgerTable} WHERE 1 = 0";
        try
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            return true;
        }
        catch (DbException)
        {
            return false;
        }
    }

    private static async Task<long?> ScalarAsync(DbConnection connection, DbTransaction snapshot, string sql, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, snapshot, sql);
        return await command.ExecuteScalarAsync(cancellationToken) is { } value and not DBNull ? AuditStore.ToInt64(value) : null;
    }

    private static DbCommand Command(DbConnection connection, DbTransaction snapshot, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = snapshot;
        command.CommandText = sql;
        return command;
    }

    private static void Add<TKey>(Dictionary<TKey, Sums> map, TKey key, long requests, long prompt, long completion, long costMicros)
        where TKey : notnull =>
        Add(map, key, new Sums(requests, prompt, completion, costMicros));

    private static void Add<TKey>(Dictionary<TKey, Sums> map, TKey key, Sums sums)
        where TKey : notnull =>
        map[key] = map.GetValueOrDefault(key) + sums;

    /// <summary>The UTC day a ledger time falls on, as <see cref="UtcCalendar.DayStart"/> computes it, in SQL both databases run.</summary>
    private const string DayStartSql = LedgerSchema.DayStartSql;

    private static Sums ReadSums(DbDataReader reader, int first) => new(
        AuditStore.ToInt64(reader.GetValue(first)), AuditStore.ToInt64(reader.GetValue(first + 1)), AuditStore.ToInt64(reader.GetValue(first + 2)), AuditStore.ToInt64(reader.GetValue(first + 3)));

    private static string Day(long unixMs) => UtcCalendar.ToDate(unixMs).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private readonly record struct LedgerRow(string RequestId, long Timestamp, string Tenant, string Model, long PromptTokens, long CompletionTokens, long CostMicros, string Currency);

    /// <summary>
    /// The inference entries written from a time on, by request: its outcome (completed or interrupted) or refusal where
    /// there is one, else its decision (which states no usage). Kept in a scratch SQLite file in a folder only this
    /// account can read (they name tenants and models), removed when disposed.
    /// </summary>
    private sealed class EntryIndex : IAsyncDisposable
    {
        private readonly string _folder;
        private readonly SqliteConnection _connection;
        private SqliteCommand? _find;

        private EntryIndex(string folder, SqliteConnection connection)
        {
            _folder = folder;
            _connection = connection;
        }

        public static async Task<EntryIndex> CreateAsync(CancellationToken cancellationToken)
        {
            var folder = Directory.CreateTempSubdirectory("sovereign-reconcile-").FullName;
            var connection = new SqliteConnection($"Data Source={Path.Combine(folder, "entries.db")};Pooling=False");
            try
            {
                await connection.OpenAsync(cancellationToken);
                await using var setup = connection.CreateCommand();
                // Scratch: nothing to recover after a crash, so no journal and no fsync.
                setup.CommandText = "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-8192; PRAGMA temp_store=FILE; " +
                    "CREATE TABLE entries (request_id TEXT NOT NULL PRIMARY KEY, seq INTEGER NOT NULL, tenant TEXT, model TEXT, prompt INTEGER, completion INTEGER, " +
                    "cost INTEGER, currency TEXT, refused INTEGER NOT NULL) WITHOUT ROWID";
                await setup.ExecuteNonQueryAsync(cancellationToken);
                return new EntryIndex(folder, connection);
            }
            catch
            {
                await connection.DisposeAsync();
                Directory.Delete(folder, recursive: true);
                throw;
            }
        }

        public async Task FillAsync(DbConnection connection, DbTransaction snapshot, long fromMs, bool memberChains, CancellationToken cancellationToken)
        {
            await using var command = Command(connection, snapshot, memberChains
                // Every chain: members with their own chains (Sovereign:Audit:MemberChains) write each request's entries to
                // the chain of the member that served it, so a request's decision and outcome are in one chain, in order.
                ? "SELECT seq, at_ms, kind, action, tenant, model, prompt_tokens, completion_tokens, details, '' AS chain FROM audit_entries WHERE at_ms >= @from " +
                  "UNION ALL SELECT seq, at_ms, kind, action, tenant, model, prompt_tokens, completion_tokens, details, chain FROM audit_chain_entries WHERE at_ms >= @from " +
                  "ORDER BY chain, seq"
                : "SELECT seq, at_ms, kind, action, tenant, model, prompt_tokens, completion_tokens, details FROM audit_entries WHERE at_ms >= @from ORDER BY seq");
            SqlDatabase.AddParameter(command, "@from", fromMs);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await using var transaction = (SqliteTransaction)await _connection.BeginTransactionAsync(cancellationToken);
            // An outcome or refusal replaces what its request had; a decision only starts one.
            await using var replace = Insert(transaction, "INSERT OR REPLACE");
            await using var keep = Insert(transaction, "INSERT OR IGNORE");
            while (await reader.ReadAsync(cancellationToken))
            {
                if (reader.IsDBNull(2) || reader.GetValue(2) is not string kind || kind != "inference" || reader.IsDBNull(8) || reader.GetValue(8) is not string json)
                {
                    continue;
                }

                Dictionary<string, string> details;
                try
                {
                    details = AuditStore.DecodeDetails(json);
                }
                catch (System.Text.Json.JsonException)
                {
                    // The chain's verifier reports the entry; nothing to compare here.
                    continue;
                }

                if (!details.TryGetValue("request_id", out var requestId))
                {
                    continue;
                }

                var action = reader.IsDBNull(3) ? string.Empty : reader.GetString(3);
                // A correction (a refused request a late commit had billed) states the request's outcome from then on.
                var outcome = action is AuditActions.InferenceCompleted or AuditActions.InferenceInterrupted or AuditActions.InferenceCorrected;
                var refused = action == AuditActions.InferenceRefused;
                long? cost = details.TryGetValue(LedgerAuditDetails.Cost, out var amount)
                    && decimal.TryParse(amount, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value)
                    ? decimal.ToInt64(value * MicroUnits.PerUnit)
                    : null;
                var insert = outcome || refused ? replace : keep;
                var values = insert.Parameters;
                values[0].Value = requestId;
                values[1].Value = AuditStore.ToInt64(reader.GetValue(0));
                values[2].Value = reader.IsDBNull(4) ? DBNull.Value : reader.GetString(4);
                // The outcome's model is the record's (a decision's or an interruption's may name an alias's choice otherwise).
                values[3].Value = (action is AuditActions.InferenceCompleted or AuditActions.InferenceCorrected) && !reader.IsDBNull(5) ? reader.GetString(5) : DBNull.Value;
                values[4].Value = outcome && !reader.IsDBNull(6) ? AuditStore.ToInt64(reader.GetValue(6)) : DBNull.Value;
                values[5].Value = outcome && !reader.IsDBNull(7) ? AuditStore.ToInt64(reader.GetValue(7)) : DBNull.Value;
                values[6].Value = outcome && cost is { } micros ? micros : DBNull.Value;
                values[7].Value = outcome && details.TryGetValue(LedgerAuditDetails.Currency, out var currency) ? currency : DBNull.Value;
                values[8].Value = refused ? 1 : 0;
                await insert.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        public EntryFacts? Find(string requestId)
        {
            if (_find is null)
            {
                _find = _connection.CreateCommand();
                _find.CommandText = "SELECT seq, tenant, model, prompt, completion, cost, currency, refused FROM entries WHERE request_id = $id";
                _find.Parameters.Add("$id", SqliteType.Text);
                _find.Prepare();
            }

            _find.Parameters[0].Value = requestId;
            using var reader = _find.ExecuteReader();
            if (!reader.Read())
            {
                return null;
            }

            return new EntryFacts(reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2),
                reader.IsDBNull(3) ? null : reader.GetInt64(3), reader.IsDBNull(4) ? null : reader.GetInt64(4), reader.IsDBNull(5) ? null : reader.GetInt64(5),
                reader.IsDBNull(6) ? null : reader.GetString(6), reader.GetInt64(7) != 0);
        }

        public async ValueTask DisposeAsync()
        {
            if (_find is not null)
            {
                await _find.DisposeAsync();
            }

            await _connection.DisposeAsync();
            try
            {
                Directory.Delete(_folder, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A scratch file in the temporary folder; the verdict is what matters.
            }
        }

        private SqliteCommand Insert(SqliteTransaction transaction, string verb)
        {
            var command = _connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = verb + " INTO entries (request_id, seq, tenant, model, prompt, completion, cost, currency, refused) VALUES ($r, $s, $t, $m, $p, $c, $x, $u, $f)";
            foreach (var name in new[] { "$r", "$s", "$t", "$m", "$p", "$c", "$x", "$u", "$f" })
            {
                command.Parameters.Add(new SqliteParameter { ParameterName = name });
            }

            command.Prepare();
            return command;
        }
    }

    private readonly record struct EntryFacts(long Sequence, string? Tenant, string? Model, long? PromptTokens, long? CompletionTokens, long? CostMicros, string? Currency, bool Refused);

    private readonly record struct Sums(long Requests, long PromptTokens, long CompletionTokens, long CostMicros)
    {
        public static Sums operator +(Sums a, Sums b) =>
            new(a.Requests + b.Requests, a.PromptTokens + b.PromptTokens, a.CompletionTokens + b.CompletionTokens, a.CostMicros + b.CostMicros);

        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"{Requests} requests, {PromptTokens} prompt and {CompletionTokens} completion tokens, {MicroUnits.ToDecimal(CostMicros):0.000000}");
    }
}
