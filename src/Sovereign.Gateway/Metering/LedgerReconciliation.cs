using System.Data.Common;
using System.Globalization;
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

        // Only the entries of requests whose records the ledger still keeps (an entry is written after its request
        // arrived, the record's time): memory follows the ledger's retention, not the whole log's length.
        var entries = await ReadEntriesAsync(connection, snapshot, purgedBefore, memberChains, cancellationToken);

        // Raw records: each against its request's entries, and summed per tenant, day and currency for the daily totals.
        var rawDays = new Dictionary<(string Tenant, long Day, string Currency), Sums>();
        await using (var command = Command(connection, snapshot,
            $"SELECT request_id, ts, tenant, model, prompt_tokens, completion_tokens, cost_micros, currency, refusal_code FROM {LedgerTable} ORDER BY ts, request_id"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var record = new LedgerRow(reader.GetString(0), AuditStore.ToInt64(reader.GetValue(1)), reader.GetString(2), reader.GetString(3),
                    AuditStore.ToInt64(reader.GetValue(4)), AuditStore.ToInt64(reader.GetValue(5)), AuditStore.ToInt64(reader.GetValue(6)), reader.GetString(7));
                Add(rawDays, (record.Tenant, UtcCalendar.DayStart(record.Timestamp), record.Currency), 1, record.PromptTokens, record.CompletionTokens, record.CostMicros);
                if (entries.TryGetValue(record.RequestId, out var entry))
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

        // Daily totals (what invoices and usage read): the sums of their records, on days no record was purged from.
        var dailyDays = new Dictionary<(string Tenant, long Day, string Currency), Sums>();
        await using (var command = Command(connection, snapshot,
            "SELECT tenant, day_start, currency, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost_micros) FROM metering_usage_daily GROUP BY tenant, day_start, currency"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                Add(dailyDays, (reader.GetString(0), AuditStore.ToInt64(reader.GetValue(1)), reader.GetString(2)),
                    AuditStore.ToInt64(reader.GetValue(3)), AuditStore.ToInt64(reader.GetValue(4)), AuditStore.ToInt64(reader.GetValue(5)), AuditStore.ToInt64(reader.GetValue(6)));
            }
        }

        foreach (var key in dailyDays.Keys.Union(rawDays.Keys).Where(k => k.Day >= purgedBefore).Order())
        {
            var daily = dailyDays.GetValueOrDefault(key);
            var raw = rawDays.GetValueOrDefault(key);
            if (daily != raw)
            {
                Report(null, $"the daily usage totals of tenant '{key.Tenant}' on {Day(key.Day)} in {key.Currency} ({daily}) are not the sum of its usage records ({raw}).");
            }
        }

        // Period totals (what budgets' spend is rebuilt from): the sums of the daily totals, which are never purged.
        var periods = new Dictionary<(string Tenant, string Period, long Start, string Currency), Sums>();
        foreach (var ((tenant, day, currency), sums) in dailyDays)
        {
            Add(periods, (tenant, UsagePeriodNames.Day, day, currency), sums);
            Add(periods, (tenant, UsagePeriodNames.Month, UtcCalendar.MonthStart(day), currency), sums);
            Add(periods, (tenant, UsagePeriodNames.Total, 0, currency), sums);
        }

        var stored = new Dictionary<(string Tenant, string Period, long Start, string Currency), Sums>();
        await using (var command = Command(connection, snapshot,
            "SELECT tenant, period, period_start, currency, requests, prompt_tokens, completion_tokens, cost_micros FROM metering_tenant_periods"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                Add(stored, (reader.GetString(0), reader.GetString(1), AuditStore.ToInt64(reader.GetValue(2)), reader.GetString(3)),
                    AuditStore.ToInt64(reader.GetValue(4)), AuditStore.ToInt64(reader.GetValue(5)), AuditStore.ToInt64(reader.GetValue(6)), AuditStore.ToInt64(reader.GetValue(7)));
            }
        }

        foreach (var key in stored.Keys.Union(periods.Keys).Order())
        {
            var total = stored.GetValueOrDefault(key);
            var sum = periods.GetValueOrDefault(key);
            if (total != sum)
            {
                var period = key.Period == UsagePeriodNames.Total ? "all-time" : $"{key.Period} {Day(key.Start)}";
                Report(null, $"the {period} spend totals of tenant '{key.Tenant}' in {key.Currency} ({total}), which budgets count, are not the sum of its daily totals ({sum}).");
            }
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

    /// <summary>
    /// The inference entries written from <paramref name="fromMs"/> by request: its outcome (completed or interrupted) or
    /// refusal where there is one, else its decision (which states no usage).
    /// </summary>
    private static async Task<Dictionary<string, EntryFacts>> ReadEntriesAsync(DbConnection connection, DbTransaction snapshot, long fromMs, bool memberChains, CancellationToken cancellationToken)
    {
        var entries = new Dictionary<string, EntryFacts>(StringComparer.Ordinal);
        await using var command = Command(connection, snapshot, memberChains
            // Every chain: members with their own chains (Sovereign:Audit:MemberChains) write each request's entries to
            // the chain of the member that served it, so a request's decision and outcome are in one chain, in order.
            ? "SELECT seq, at_ms, kind, action, tenant, model, prompt_tokens, completion_tokens, details, '' AS chain FROM audit_entries WHERE at_ms >= @from " +
              "UNION ALL SELECT seq, at_ms, kind, action, tenant, model, prompt_tokens, completion_tokens, details, chain FROM audit_chain_entries WHERE at_ms >= @from " +
              "ORDER BY chain, seq"
            : "SELECT seq, at_ms, kind, action, tenant, model, prompt_tokens, completion_tokens, details FROM audit_entries WHERE at_ms >= @from ORDER BY seq");
        SqlDatabase.AddParameter(command, "@from", fromMs);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
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
            var outcome = action is AuditActions.InferenceCompleted or AuditActions.InferenceInterrupted;
            var refused = action == AuditActions.InferenceRefused;
            if (!outcome && !refused && entries.ContainsKey(requestId))
            {
                continue;
            }

            long? cost = details.TryGetValue(LedgerAuditDetails.Cost, out var amount)
                && decimal.TryParse(amount, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value)
                ? decimal.ToInt64(value * MicroUnits.PerUnit)
                : null;
            entries[requestId] = new EntryFacts(
                AuditStore.ToInt64(reader.GetValue(0)),
                reader.IsDBNull(4) ? null : reader.GetString(4),

                // The outcome's model is the record's (a decision's or an interruption's may name an alias's choice otherwise).
                action == AuditActions.InferenceCompleted && !reader.IsDBNull(5) ? reader.GetString(5) : null,
                outcome && !reader.IsDBNull(6) ? AuditStore.ToInt64(reader.GetValue(6)) : null,
                outcome && !reader.IsDBNull(7) ? AuditStore.ToInt64(reader.GetValue(7)) : null,
                outcome ? cost : null,
                outcome && details.TryGetValue(LedgerAuditDetails.Currency, out var currency) ? currency : null,
                refused);
        }

        return entries;
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

    private static string Day(long unixMs) => UtcCalendar.ToDate(unixMs).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private readonly record struct LedgerRow(string RequestId, long Timestamp, string Tenant, string Model, long PromptTokens, long CompletionTokens, long CostMicros, string Currency);

    private readonly record struct EntryFacts(long Sequence, string? Tenant, string? Model, long? PromptTokens, long? CompletionTokens, long? CostMicros, string? Currency, bool Refused);

    private readonly record struct Sums(long Requests, long PromptTokens, long CompletionTokens, long CostMicros)
    {
        public static Sums operator +(Sums a, Sums b) =>
            new(a.Requests + b.Requests, a.PromptTokens + b.PromptTokens, a.CompletionTokens + b.CompletionTokens, a.CostMicros + b.CostMicros);

        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"{Requests} requests, {PromptTokens} prompt and {CompletionTokens} completion tokens, {MicroUnits.ToDecimal(CostMicros):0.000000}");
    }
}
