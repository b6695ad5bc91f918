using System.Data.Common;
using System.Globalization;
using Sovereign.Storage;

namespace Sovereign.Metering.Ledger;

/// <summary>
/// Tables and statements of the usage ledger, in SQL both SQLite and PostgreSQL accept. Money (<c>cost_micros</c>) and
/// compute (<c>compute_us</c>) are BIGINT millionths, times BIGINT unix milliseconds, day/month keys the unix
/// milliseconds of the UTC day/month start. The raw table has only the indexes the write path can afford: the
/// request id (idempotency) and the timestamp (retention, time-range reads); operators read the aggregates.
/// </summary>
internal static class LedgerSchema
{
    public static readonly IReadOnlyList<SqlMigration> Migrations =
    [
        new("metering-ledger-001-usage",
        [
            """
            CREATE TABLE metering_usage (
                request_id TEXT NOT NULL PRIMARY KEY,
                ts BIGINT NOT NULL,
                tenant TEXT NOT NULL,
                key_id TEXT NOT NULL,
                model TEXT NOT NULL,
                node TEXT NOT NULL,
                jurisdiction TEXT NOT NULL,
                language TEXT NULL,
                prompt_tokens INTEGER NOT NULL,
                completion_tokens INTEGER NOT NULL,
                cached_tokens INTEGER NOT NULL,
                queue_ms BIGINT NOT NULL,
                ttft_ms BIGINT NULL,
                duration_ms BIGINT NOT NULL,
                compute_us BIGINT NOT NULL,
                outcome INTEGER NOT NULL,
                refusal_code TEXT NULL,
                cost_micros BIGINT NOT NULL,
                currency TEXT NOT NULL,
                price_version TEXT NULL
            )
            """,
            "CREATE INDEX metering_usage_ts ON metering_usage (ts)",
            """
            CREATE TABLE metering_usage_daily (
                tenant TEXT NOT NULL,
                day_start BIGINT NOT NULL,
                model TEXT NOT NULL,
                jurisdiction TEXT NOT NULL,
                currency TEXT NOT NULL,
                requests BIGINT NOT NULL,
                completed BIGINT NOT NULL,
                refused BIGINT NOT NULL,
                cancelled BIGINT NOT NULL,
                failed BIGINT NOT NULL,
                prompt_tokens BIGINT NOT NULL,
                completion_tokens BIGINT NOT NULL,
                cached_tokens BIGINT NOT NULL,
                compute_us BIGINT NOT NULL,
                cost_micros BIGINT NOT NULL,
                PRIMARY KEY (tenant, day_start, model, jurisdiction, currency)
            )
            """,
            "CREATE INDEX metering_usage_daily_day ON metering_usage_daily (day_start)",
            """
            CREATE TABLE metering_tenant_periods (
                tenant TEXT NOT NULL,
                period TEXT NOT NULL,
                period_start BIGINT NOT NULL,
                currency TEXT NOT NULL,
                requests BIGINT NOT NULL,
                prompt_tokens BIGINT NOT NULL,
                completion_tokens BIGINT NOT NULL,
                compute_us BIGINT NOT NULL,
                cost_micros BIGINT NOT NULL,
                PRIMARY KEY (tenant, period, period_start, currency)
            )
            """,
            "CREATE TABLE metering_ledger_state (state_key TEXT NOT NULL PRIMARY KEY, state_value BIGINT NOT NULL)",
        ]),

        // Budgets are rebuilt from these durable aggregates, never from raw rows (which retention purges): a tenant's
        // all-time total, and per key its days and all-time total (a key's month is the sum of its days). The
        // tenant totals are backfilled from the daily aggregates (complete); the key rows from the raw rows still
        // retained (older key spend was never aggregated per key, so it cannot be recovered).
        new("metering-ledger-002-budget-periods",
        [
            """
            INSERT INTO metering_tenant_periods (tenant, period, period_start, currency, requests, prompt_tokens, completion_tokens, compute_us, cost_micros)
            SELECT tenant, 'total', 0, currency, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(compute_us), SUM(cost_micros)
            FROM metering_usage_daily GROUP BY tenant, currency
            """,
            """
            CREATE TABLE metering_key_periods (
                tenant TEXT NOT NULL,
                key_id TEXT NOT NULL,
                period TEXT NOT NULL,
                period_start BIGINT NOT NULL,
                currency TEXT NOT NULL,
                requests BIGINT NOT NULL,
                cost_micros BIGINT NOT NULL,
                PRIMARY KEY (tenant, key_id, period, period_start, currency)
            )
            """,
            """
            INSERT INTO metering_key_periods (tenant, key_id, period, period_start, currency, requests, cost_micros)
            SELECT tenant, key_id, 'day', ts - (ts % 86400000), currency, COUNT(*), SUM(cost_micros)
            FROM metering_usage GROUP BY tenant, key_id, ts - (ts % 86400000), currency
            """,
            """
            INSERT INTO metering_key_periods (tenant, key_id, period, period_start, currency, requests, cost_micros)
            SELECT tenant, key_id, 'total', 0, currency, COUNT(*), SUM(cost_micros)
            FROM metering_usage GROUP BY tenant, key_id, currency
            """,
        ]),

        // Pools: every record names its node's pool and device class (NULL on older rows), and the daily aggregates
        // (which invoices and usage read) are keyed by them too. A key column cannot be added in place on SQLite, so
        // the aggregate table is rebuilt; older aggregates get '' (no pool), read back as null.
        new("metering-ledger-003-pools",
        [
            "ALTER TABLE metering_usage ADD COLUMN pool TEXT NULL",
            "ALTER TABLE metering_usage ADD COLUMN device_class TEXT NULL",
            """
            CREATE TABLE metering_usage_daily_pools (
                tenant TEXT NOT NULL,
                day_start BIGINT NOT NULL,
                model TEXT NOT NULL,
                jurisdiction TEXT NOT NULL,
                pool TEXT NOT NULL,
                device_class TEXT NOT NULL,
                currency TEXT NOT NULL,
                requests BIGINT NOT NULL,
                completed BIGINT NOT NULL,
                refused BIGINT NOT NULL,
                cancelled BIGINT NOT NULL,
                failed BIGINT NOT NULL,
                prompt_tokens BIGINT NOT NULL,
                completion_tokens BIGINT NOT NULL,
                cached_tokens BIGINT NOT NULL,
                compute_us BIGINT NOT NULL,
                cost_micros BIGINT NOT NULL,
                PRIMARY KEY (tenant, day_start, model, jurisdiction, pool, device_class, currency)
            )
            """,
            """
            INSERT INTO metering_usage_daily_pools (tenant, day_start, model, jurisdiction, pool, device_class, currency, requests, completed,
                refused, cancelled, failed, prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros)
            SELECT tenant, day_start, model, jurisdiction, '', '', currency, requests, completed, refused, cancelled, failed,
                prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros
            FROM metering_usage_daily
            """,
            "DROP TABLE metering_usage_daily",
            "ALTER TABLE metering_usage_daily_pools RENAME TO metering_usage_daily",
            "CREATE INDEX metering_usage_daily_day ON metering_usage_daily (day_start)",
        ]),

        // Keys: the daily aggregates are keyed by the API key too, so usage can be read per key (an operator's or a
        // tenant's view of each application's spend) after retention purged the raw rows. Rebuilt as for pools; older
        // aggregates get '' (aggregated before keys were a dimension), read back as null.
        new("metering-ledger-004-key-dimension",
        [
            """
            CREATE TABLE metering_usage_daily_keys (
                tenant TEXT NOT NULL,
                day_start BIGINT NOT NULL,
                model TEXT NOT NULL,
                jurisdiction TEXT NOT NULL,
                pool TEXT NOT NULL,
                device_class TEXT NOT NULL,
                key_id TEXT NOT NULL,
                currency TEXT NOT NULL,
                requests BIGINT NOT NULL,
                completed BIGINT NOT NULL,
                refused BIGINT NOT NULL,
                cancelled BIGINT NOT NULL,
                failed BIGINT NOT NULL,
                prompt_tokens BIGINT NOT NULL,
                completion_tokens BIGINT NOT NULL,
                cached_tokens BIGINT NOT NULL,
                compute_us BIGINT NOT NULL,
                cost_micros BIGINT NOT NULL,
                PRIMARY KEY (tenant, day_start, model, jurisdiction, pool, device_class, key_id, currency)
            )
            """,
            """
            INSERT INTO metering_usage_daily_keys (tenant, day_start, model, jurisdiction, pool, device_class, key_id, currency, requests, completed,
                refused, cancelled, failed, prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros)
            SELECT tenant, day_start, model, jurisdiction, pool, device_class, '', currency, requests, completed, refused, cancelled, failed,
                prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros
            FROM metering_usage_daily
            """,
            "DROP TABLE metering_usage_daily",
            "ALTER TABLE metering_usage_daily_keys RENAME TO metering_usage_daily",
            "CREATE INDEX metering_usage_daily_day ON metering_usage_daily (day_start)",
        ]),

        // The language tax's waiver on the record: the basis a request was billed on (the waived language is the
        // record's language; the letters and ratio are those the audit entry gives) and the tokens it waived, which
        // the daily aggregates sum so usage and invoices show billed tokens beside counted ones. Columns added in
        // place (no key changes), after the key dimension's rebuild; older rows read as billed per token (NULL basis, 0 waived).
        new("metering-ledger-005-billing-basis",
        [
            "ALTER TABLE metering_usage ADD COLUMN waiver_ratio_to_english DOUBLE PRECISION NULL",
            "ALTER TABLE metering_usage ADD COLUMN waiver_method TEXT NULL",
            "ALTER TABLE metering_usage ADD COLUMN waiver_prompt_language_letters BIGINT NULL",
            "ALTER TABLE metering_usage ADD COLUMN waiver_prompt_letters BIGINT NULL",
            "ALTER TABLE metering_usage ADD COLUMN waiver_completion_language_letters BIGINT NULL",
            "ALTER TABLE metering_usage ADD COLUMN waiver_completion_letters BIGINT NULL",
            "ALTER TABLE metering_usage ADD COLUMN waived_prompt_tokens INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE metering_usage ADD COLUMN waived_completion_tokens INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE metering_usage_daily ADD COLUMN waived_requests BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE metering_usage_daily ADD COLUMN waived_prompt_tokens BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE metering_usage_daily ADD COLUMN waived_completion_tokens BIGINT NOT NULL DEFAULT 0",
        ]),

        // The carry of sub-millionth remainders (CostCarry): per writer (node id), tenant and currency, what the
        // tenant's requests cost beyond what they were billed, in 1e-18 units (within half a millionth either way).
        // A table only: processes starting together create it once, under the migration lock.
        new("metering-ledger-006-cost-carry",
        [
            """
            CREATE TABLE metering_cost_carry (
                writer TEXT NOT NULL,
                tenant TEXT NOT NULL,
                currency TEXT NOT NULL,
                carry_atto BIGINT NOT NULL,
                PRIMARY KEY (writer, tenant, currency)
            )
            """,
        ]),

        // Period aggregates folded behind a watermark (session 55): a record's commit no longer upserts the daily,
        // tenant-period and key-period rows; a fold (UsageLedger.FoldAsync) adds every record with a sequence above
        // aggregated_through (W) and raises W in one transaction, and every reader adds the records above W. The
        // sequence is SQLite's rowid (commit order: one writer at a time) and on PostgreSQL an identity column
        // (nextval order; the fold locks out inserts, so no lower value commits after it). Every record stored before
        // this migration was aggregated inline, so W starts at the highest sequence there is.
        new("metering-ledger-007-fold-watermark",
        [
            "ALTER TABLE metering_usage ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY",
            "CREATE UNIQUE INDEX metering_usage_seq ON metering_usage (seq)",
            "INSERT INTO metering_ledger_state (state_key, state_value) SELECT '" + FoldedThroughKey + "', COALESCE(MAX(seq), 0) FROM metering_usage",
        ])
        {
            SqliteStatements =
            [
                "INSERT INTO metering_ledger_state (state_key, state_value) SELECT '" + FoldedThroughKey + "', COALESCE(MAX(rowid), 0) FROM metering_usage",
            ],
        },
    ];

    /// <summary>The state row holding W: every record with a sequence up to it is in the aggregates, none above it.</summary>
    public const string FoldedThroughKey = "aggregated_through";

    /// <summary>
    /// PostgreSQL: W set to the last sequence there is, for a copy whose source was folded whole first (the copied W is
    /// the source's rowid, not the target's sequence; <c>sovereign database copy</c>).
    /// </summary>
    public const string FoldedThroughAll =
        "UPDATE metering_ledger_state SET state_value = (SELECT COALESCE(MAX(seq), 0) FROM metering_usage) WHERE state_key = '" + FoldedThroughKey + "'";

    /// <summary>The ledger's own monotonic id of a record: SQLite's rowid, PostgreSQL's identity column.</summary>
    public static string Sequence(bool sqlite) => sqlite ? "rowid" : "seq";

    /// <summary>
    /// W as a scalar subquery (a snapshot's W, read in the statement that uses it); a file without the row (written
    /// before the fold, every record aggregated inline) has no record above it.
    /// </summary>
    public const string FoldedThrough =
        "COALESCE((SELECT state_value FROM metering_ledger_state WHERE state_key = '" + FoldedThroughKey + "'), 9223372036854775807)";

    /// <summary>
    /// The condition of the records not yet folded (above W), for a reader that adds them to the stored aggregates in
    /// the same statement (one snapshot: a record is on exactly one side of W in it).
    /// </summary>
    public static string Unfolded(bool sqlite) => Sequence(sqlite) + " > " + FoldedThrough;

    /// <summary>Outcome counters of one record, as the daily aggregates count them (<see cref="Totals.Add"/>).</summary>
    public const string RecordOutcomeColumns =
        "CASE WHEN outcome = 0 THEN 1 ELSE 0 END, CASE WHEN outcome = 1 THEN 1 ELSE 0 END, CASE WHEN outcome = 2 THEN 1 ELSE 0 END, " +
        "CASE WHEN outcome IN (0, 1, 2) THEN 0 ELSE 1 END";

    public const string UpsertCarry =
        "INSERT INTO metering_cost_carry (writer, tenant, currency, carry_atto) VALUES (@writer, @tenant, @currency, @carry_atto) " +
        "ON CONFLICT (writer, tenant, currency) DO UPDATE SET carry_atto = metering_cost_carry.carry_atto + excluded.carry_atto";

    public const string SelectCarry = "SELECT tenant, currency, carry_atto FROM metering_cost_carry WHERE writer = @writer";

    public const string RecordColumns =
        "request_id, ts, tenant, key_id, model, node, jurisdiction, language, prompt_tokens, completion_tokens, cached_tokens, " +
        "queue_ms, ttft_ms, duration_ms, compute_us, outcome, refusal_code, cost_micros, currency, price_version, pool, device_class, " +
        "waiver_ratio_to_english, waiver_method, waiver_prompt_language_letters, waiver_prompt_letters, waiver_completion_language_letters, " +
        "waiver_completion_letters, waived_prompt_tokens, waived_completion_tokens";

    /// <summary>The idempotent insert: a request id already present inserts nothing (rows affected 0).</summary>
    public const string InsertRecord =
        "INSERT INTO metering_usage (" + RecordColumns + ") VALUES (@request_id, @ts, @tenant, @key_id, @model, @node, @jurisdiction, " +
        "@language, @prompt_tokens, @completion_tokens, @cached_tokens, @queue_ms, @ttft_ms, @duration_ms, @compute_us, @outcome, " +
        "@refusal_code, @cost_micros, @currency, @price_version, @pool, @device_class, @waiver_ratio_to_english, @waiver_method, " +
        "@waiver_prompt_language_letters, @waiver_prompt_letters, @waiver_completion_language_letters, @waiver_completion_letters, " +
        "@waived_prompt_tokens, @waived_completion_tokens) ON CONFLICT (request_id) DO NOTHING";

    public const string UpsertDaily =
        "INSERT INTO metering_usage_daily (tenant, day_start, model, jurisdiction, pool, device_class, key_id, currency, requests, completed, refused, cancelled, failed, " +
        "prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros, waived_requests, waived_prompt_tokens, waived_completion_tokens) " +
        "VALUES (@tenant, @day_start, @model, @jurisdiction, @pool, @device_class, @key_id, @currency, " +
        "@requests, @completed, @refused, @cancelled, @failed, @prompt_tokens, @completion_tokens, @cached_tokens, @compute_us, @cost_micros, " +
        "@waived_requests, @waived_prompt_tokens, @waived_completion_tokens) " +
        "ON CONFLICT (tenant, day_start, model, jurisdiction, pool, device_class, key_id, currency) DO UPDATE SET " +
        "requests = metering_usage_daily.requests + excluded.requests, completed = metering_usage_daily.completed + excluded.completed, " +
        "refused = metering_usage_daily.refused + excluded.refused, cancelled = metering_usage_daily.cancelled + excluded.cancelled, " +
        "failed = metering_usage_daily.failed + excluded.failed, prompt_tokens = metering_usage_daily.prompt_tokens + excluded.prompt_tokens, " +
        "completion_tokens = metering_usage_daily.completion_tokens + excluded.completion_tokens, " +
        "cached_tokens = metering_usage_daily.cached_tokens + excluded.cached_tokens, compute_us = metering_usage_daily.compute_us + excluded.compute_us, " +
        "cost_micros = metering_usage_daily.cost_micros + excluded.cost_micros, waived_requests = metering_usage_daily.waived_requests + excluded.waived_requests, " +
        "waived_prompt_tokens = metering_usage_daily.waived_prompt_tokens + excluded.waived_prompt_tokens, " +
        "waived_completion_tokens = metering_usage_daily.waived_completion_tokens + excluded.waived_completion_tokens";

    public const string UpsertTenantPeriod =
        "INSERT INTO metering_tenant_periods (tenant, period, period_start, currency, requests, prompt_tokens, completion_tokens, compute_us, cost_micros) " +
        "VALUES (@tenant, @period, @period_start, @currency, @requests, @prompt_tokens, @completion_tokens, @compute_us, @cost_micros) " +
        "ON CONFLICT (tenant, period, period_start, currency) DO UPDATE SET " +
        "requests = metering_tenant_periods.requests + excluded.requests, prompt_tokens = metering_tenant_periods.prompt_tokens + excluded.prompt_tokens, " +
        "completion_tokens = metering_tenant_periods.completion_tokens + excluded.completion_tokens, " +
        "compute_us = metering_tenant_periods.compute_us + excluded.compute_us, cost_micros = metering_tenant_periods.cost_micros + excluded.cost_micros";

    public const string UpsertKeyPeriod =
        "INSERT INTO metering_key_periods (tenant, key_id, period, period_start, currency, requests, cost_micros) " +
        "VALUES (@tenant, @key_id, @period, @period_start, @currency, @requests, @cost_micros) " +
        "ON CONFLICT (tenant, key_id, period, period_start, currency) DO UPDATE SET " +
        "requests = metering_key_periods.requests + excluded.requests, cost_micros = metering_key_periods.cost_micros + excluded.cost_micros";

    /// <summary>Raises W to the last record a fold read (<see cref="LedgerWriter.FoldAsync"/>).</summary>
    public const string SetFoldedThrough =
        "UPDATE metering_ledger_state SET state_value = @value WHERE state_key = '" + FoldedThroughKey + "'";

    /// <summary>The UTC day start of <c>ts</c> (floored, as <see cref="UtcCalendar.DayStart"/>), in SQL both engines accept.</summary>
    public const string DayStartSql = "(ts - (((ts % 86400000) + 86400000) % 86400000))";

    /// <summary>
    /// The records above W as rows of <c>metering_usage_daily</c> (same columns, same order): what a reader of the daily
    /// aggregates adds to them (<c>stored rows + fold(records above W)</c>) in the same statement.
    /// </summary>
    public static string UnfoldedDailyRows(bool sqlite) =>
        "SELECT tenant, " + DayStartSql + " AS day_start, model, jurisdiction, COALESCE(pool, '') AS pool, COALESCE(device_class, '') AS device_class, key_id, currency, " +
        "1 AS requests, " + RecordOutcomeColumns + ", prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros, " +
        "CASE WHEN waiver_ratio_to_english IS NULL THEN 0 ELSE 1 END AS waived_requests, waived_prompt_tokens, waived_completion_tokens " +
        "FROM metering_usage WHERE " + Unfolded(sqlite);

    /// <summary>The columns of <c>metering_usage_daily</c> in the order <see cref="UnfoldedDailyRows"/> gives them.</summary>
    public const string DailyColumns =
        "tenant, day_start, model, jurisdiction, pool, device_class, key_id, currency, requests, completed, refused, cancelled, failed, " +
        "prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros, waived_requests, waived_prompt_tokens, waived_completion_tokens";

    public const string PurgedBeforeKey = "purged_before_ms";

    /// <summary>Raises (never lowers) the purge watermark.</summary>
    public const string RaiseWatermark =
        "INSERT INTO metering_ledger_state (state_key, state_value) VALUES (@key, @value) ON CONFLICT (state_key) DO UPDATE SET " +
        "state_value = CASE WHEN excluded.state_value > metering_ledger_state.state_value THEN excluded.state_value ELSE metering_ledger_state.state_value END";

    /// <summary>Creates a command whose parameters are the @names of <paramref name="sql"/>, in order of first use.</summary>
    public static DbCommand Prepare(DbConnection connection, string sql)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var name in PreparedStatement.ParameterNames(sql))
        {
            SqlDatabase.AddParameter(command, name, null);
        }

        return command;
    }

    /// <summary>Binds a record to a statement made from <see cref="InsertRecord"/>.</summary>
    public static void BindRecord(PreparedStatement insert, UsageRecord record, long timestampMs, long computeUs, long costMicros)
    {
        insert.Set(0, record.RequestId);
        insert.Set(1, timestampMs);
        insert.Set(2, record.Tenant);
        insert.Set(3, record.KeyId);
        insert.Set(4, record.Model);
        insert.Set(5, record.Node);
        insert.Set(6, record.Jurisdiction);
        insert.Set(7, record.Language);
        insert.Set(8, record.PromptTokens);
        insert.Set(9, record.CompletionTokens);
        insert.Set(10, record.CachedTokens);
        insert.Set(11, record.QueueTimeMs);
        insert.Set(12, record.TimeToFirstTokenMs);
        insert.Set(13, record.DurationMs);
        insert.Set(14, computeUs);
        insert.Set(15, (long)record.Outcome);
        insert.Set(16, record.RefusalCode);
        insert.Set(17, costMicros);
        insert.Set(18, record.Currency);
        insert.Set(19, record.PriceVersion);
        insert.Set(20, record.Pool);
        insert.Set(21, record.DeviceClass);
        var basis = record.CharacterEquivalent;
        insert.Set(22, basis?.RatioToEnglish);
        insert.Set(23, basis?.Method);
        insert.Set(24, basis?.LanguageLetters);
        insert.Set(25, basis?.PromptLetters);
        insert.Set(26, basis?.CompletionLanguageLetters);
        insert.Set(27, basis?.CompletionLetters);
        insert.Set(28, record.WaivedPromptTokens);
        insert.Set(29, record.WaivedCompletionTokens);
    }

    /// <summary>Reads a row selected with <see cref="RecordColumns"/>.</summary>
    public static UsageRecord ReadRecord(DbDataReader reader) => new()
    {
        RequestId = reader.GetString(0),
        Timestamp = DateTimeOffset.FromUnixTimeMilliseconds(Int64(reader, 1)),
        Tenant = reader.GetString(2),
        KeyId = reader.GetString(3),
        Model = reader.GetString(4),
        Node = reader.GetString(5),
        Jurisdiction = reader.GetString(6),
        Language = reader.IsDBNull(7) ? null : reader.GetString(7),
        PromptTokens = checked((int)Int64(reader, 8)),
        CompletionTokens = checked((int)Int64(reader, 9)),
        CachedTokens = checked((int)Int64(reader, 10)),
        QueueTimeMs = Int64(reader, 11),
        TimeToFirstTokenMs = reader.IsDBNull(12) ? null : Int64(reader, 12),
        DurationMs = Int64(reader, 13),
        ComputeSeconds = MicroUnits.ToDecimal(Int64(reader, 14)),
        Outcome = (UsageOutcome)Int64(reader, 15),
        RefusalCode = reader.IsDBNull(16) ? null : reader.GetString(16),
        Cost = MicroUnits.ToDecimal(Int64(reader, 17)),
        Currency = reader.GetString(18),
        PriceVersion = reader.IsDBNull(19) ? null : reader.GetString(19),
        Pool = reader.IsDBNull(20) ? null : reader.GetString(20),
        DeviceClass = reader.IsDBNull(21) ? null : reader.GetString(21),
        CharacterEquivalent = reader.IsDBNull(22) ? null : new Pricing.CharacterEquivalentBasis(
            reader.IsDBNull(7) ? "und" : reader.GetString(7), reader.GetDouble(22), Int64(reader, 24), Int64(reader, 25), reader.IsDBNull(23) ? "" : reader.GetString(23))
        {
            CompletionLanguageLetters = Int64(reader, 26),
            CompletionLetters = Int64(reader, 27),
        },
        WaivedPromptTokens = checked((int)Int64(reader, 28)),
        WaivedCompletionTokens = checked((int)Int64(reader, 29)),
    };

    /// <summary>Any integer column or SUM (PostgreSQL's SUM(BIGINT) is NUMERIC) as a long.</summary>
    public static long Int64(DbDataReader reader, int ordinal) =>
        reader.IsDBNull(ordinal) ? 0 : Convert.ToInt64(reader.GetValue(ordinal), CultureInfo.InvariantCulture);
}
