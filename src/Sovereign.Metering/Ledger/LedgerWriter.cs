using System.Data.Common;
using System.Globalization;
using Sovereign.Storage;

namespace Sovereign.Metering.Ledger;

/// <summary>An append waiting for its batch to commit; completes with true when stored now, false for a duplicate.</summary>
internal sealed class PendingAppend(UsageRecord record, long timestampMs, long computeUs, long costMicros, long carryAtto = 0)
    : TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously)
{
    /// <summary>What the record adds to its tenant's carry (<c>ExactCost - Cost</c>, 1e-18 units).</summary>
    public long CarryAtto { get; } = carryAtto;

    public UsageRecord Record { get; } = record;

    public long TimestampMs { get; } = timestampMs;

    public long ComputeUs { get; } = computeUs;

    public long CostMicros { get; } = costMicros;

    public bool Inserted { get; set; }
}

/// <summary>
/// The single writer's connection and prepared statements. One batch is one transaction: insert each record
/// (ON CONFLICT DO NOTHING) and the cost carry of those actually inserted; nothing else (a retried request id inserts
/// nothing, so it can never be counted twice). The aggregates are written only by <see cref="FoldAsync"/>: the records
/// above the watermark W, read in sequence order, summed per aggregate row, each row upserted once, W raised, in one
/// transaction. One way to write them, whatever batch or host committed the records.
/// </summary>
internal sealed class LedgerWriter : IAsyncDisposable
{
    private readonly SqlDatabase _database;
    private readonly DbConnection _connection;
    private readonly PreparedStatement _insert;
    private readonly PreparedStatement _daily;
    private readonly PreparedStatement _period;
    private readonly PreparedStatement _keyPeriod;
    private readonly PreparedStatement _foldedThrough;
    private readonly PreparedStatement _carry;
    private readonly string _writerName;
    private readonly SortedDictionary<(string Tenant, string Currency), long> _carryTotals = new(CarryKeyOrder.Instance);
    private readonly Dictionary<DailyKey, Totals> _dailyTotals = [];
    private readonly Dictionary<PeriodKey, Totals> _periodTotals = [];
    private readonly Dictionary<KeyPeriodKey, Totals> _keyPeriodTotals = [];

    // Every batch touches about six aggregate rows: their sums and the sorted order they are written in are kept for
    // the next batch instead of allocated again (a new Totals per row and a LINQ sort per table, every commit).
    private readonly Stack<Totals> _spareTotals = new();
    private readonly List<KeyValuePair<DailyKey, Totals>> _dailyOrder = [];
    private readonly List<KeyValuePair<PeriodKey, Totals>> _periodOrder = [];
    private readonly List<KeyValuePair<KeyPeriodKey, Totals>> _keyPeriodOrder = [];
    private readonly bool _sqlite;
    private readonly bool _ownsConnection;

    /// <summary>Aggregate upserts the last <see cref="WriteAsync"/> or <see cref="FoldAsync"/> ran (statement runs, not rows).</summary>
    internal int AggregateStatements { get; private set; }

    // A borrowed connection whose page cache Borrow changed, to give back SQLite's default in ReturnBorrowed.
    private bool _cacheTuned;

    private LedgerWriter(SqlDatabase database, DbConnection connection, bool sqlite, bool portable, string writerName, bool ownsConnection = true)
    {
        _writerName = writerName;
        _database = database;
        _connection = connection;
        _sqlite = sqlite;
        _ownsConnection = ownsConnection;
        _insert = PreparedStatement.Create(connection, LedgerSchema.InsertRecord, portable);
        _daily = PreparedStatement.Create(connection, LedgerSchema.UpsertDaily, portable);
        _period = PreparedStatement.Create(connection, LedgerSchema.UpsertTenantPeriod, portable);
        _keyPeriod = PreparedStatement.Create(connection, LedgerSchema.UpsertKeyPeriod, portable);
        _foldedThrough = PreparedStatement.Create(connection, LedgerSchema.SetFoldedThrough, portable);
        _carry = PreparedStatement.Create(connection, LedgerSchema.UpsertCarry, portable);
    }

    public static async Task<LedgerWriter> OpenAsync(SqlDatabase database, UsageLedgerOptions options, CancellationToken cancellationToken)
    {
        var connection = await database.OpenAsync(cancellationToken);
        try
        {
            if (database.Provider == SqlProvider.Sqlite)
            {
                // Random request ids (the gateway's before session 49, RequestIds) dirtied one index page per record: a
                // larger page cache kept that index in memory. Time-ordered ids go to its end. Rarer, larger
                // checkpoints (each fsyncs) spread their cost over more commits.
                using var pragma = connection.CreateCommand();
                pragma.CommandText = string.Create(CultureInfo.InvariantCulture,
                    $"PRAGMA cache_size=-{options.CacheSizeMiB * 1024}; PRAGMA wal_autocheckpoint={options.CheckpointPages}")
                    + (options.Durability == LedgerDurability.PowerLoss ? "; PRAGMA synchronous=FULL" : string.Empty);
                await pragma.ExecuteNonQueryAsync(cancellationToken);
            }

            return new LedgerWriter(database, connection, database.Provider == SqlProvider.Sqlite, options.PortableCommands, options.Writer);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Statements prepared on another writer's connection, to write in its transactions (see
    /// <see cref="Sovereign.Storage.ICarriedWrite"/>); the connection stays that writer's to tune and close.
    /// </summary>
    public static LedgerWriter Borrow(SqlDatabase database, DbConnection connection, DbTransaction? transaction, UsageLedgerOptions options)
    {
        var sqlite = database.Provider == SqlProvider.Sqlite;
        var tuned = sqlite && options.CarriedCacheSizeMiB is not null;
        if (tuned)
        {
            // Only when asked (UsageLedgerOptions.CarriedCacheSizeMiB): the host's cache is scanned whole at the end of
            // every commit that rebalanced a b-tree page, so a larger one costs the host's commits in proportion.
            using var pragma = connection.CreateCommand();
            pragma.Transaction = transaction;
            pragma.CommandText = string.Create(CultureInfo.InvariantCulture, $"PRAGMA cache_size=-{options.CarriedCacheSizeMiB * 1024}");
            pragma.ExecuteNonQuery();
        }

        return new(database, connection, sqlite, options.PortableCommands, options.Writer, ownsConnection: false) { _cacheTuned = tuned };
    }

    /// <summary>Commits <paramref name="batch"/> in one transaction and sets each item's <see cref="PendingAppend.Inserted"/>.</summary>
    public async Task CommitAsync(List<PendingAppend> batch)
    {
        using var turn = await _database.EnterWriteAsync();
        await using var transaction = await _connection.BeginTransactionAsync();
        await WriteAsync(batch, transaction);
        await transaction.CommitAsync();
    }

    /// <summary>Runs <paramref name="work"/> in one transaction of this writer's connection, in the write turn, and commits it.</summary>
    public async Task<T> InTransactionAsync<T>(Func<DbTransaction, Task<T>> work, CancellationToken cancellationToken = default)
    {
        using var turn = await _database.EnterWriteAsync(cancellationToken);
        await using var transaction = await _connection.BeginTransactionAsync(cancellationToken);
        var result = await work(transaction);
        await transaction.CommitAsync(cancellationToken);
        return result;
    }

    /// <summary>
    /// Writes <paramref name="batch"/> in <paramref name="transaction"/> (open on this writer's connection) and sets
    /// each item's <see cref="PendingAppend.Inserted"/>; the caller commits.
    /// </summary>
    public async Task WriteAsync(List<PendingAppend> batch, DbTransaction? transaction, CancellationToken cancellationToken = default)
    {
        _carryTotals.Clear();
        AggregateStatements = 0;
        // Request-id order: neighbouring keys share index pages, and concurrent writers (PostgreSQL) lock in one order.
        batch.Sort(static (a, b) => string.CompareOrdinal(a.Record.RequestId, b.Record.RequestId));
        foreach (var item in batch)
        {
            LedgerSchema.BindRecord(_insert, item.Record, item.TimestampMs, item.ComputeUs, item.CostMicros);
            item.Inserted = await _insert.ExecuteAsync(transaction, cancellationToken) == 1;
            if (item.Inserted && item.CarryAtto != 0)
            {
                var r = item.Record;
                _carryTotals[(r.Tenant, r.Currency)] = _carryTotals.GetValueOrDefault((r.Tenant, r.Currency)) + item.CarryAtto;
            }
        }

        // The carry moves with the records it came from: a record stored adds its remainder, a duplicate nothing. It is
        // written with them (a record's exact remainder is not stored on it, so the fold could not add it later).
        foreach (var ((tenant, currency), atto) in _carryTotals)
        {
            if (atto == 0)
            {
                continue;
            }

            var p = _carry;
            p.Set(0, _writerName);
            p.Set(1, tenant);
            p.Set(2, currency);
            p.Set(3, atto);
            await p.ExecuteAsync(transaction, cancellationToken);
        }
    }

    /// <summary>
    /// Folds at most <paramref name="limit"/> records above the watermark W into the daily, tenant-period and
    /// key-period aggregates and raises W to the last one folded, in <paramref name="transaction"/> (open on this
    /// writer's connection; the caller holds the write turn and commits). On PostgreSQL it first locks the raw table
    /// against inserts (SHARE ROW EXCLUSIVE: it waits for every transaction that inserted a record, whatever gateway,
    /// and keeps new ones out until the commit; two folds exclude each other), so no record with a sequence at or
    /// below the new W can commit after it: sequence values are taken inside an insert, which holds the lock the fold
    /// waits for. On SQLite the write transaction excludes every other writer. Returns the records folded.
    /// </summary>
    public async Task<int> FoldAsync(DbTransaction? transaction, int limit, CancellationToken cancellationToken = default)
    {
        Recycle(_dailyTotals);
        Recycle(_periodTotals);
        Recycle(_keyPeriodTotals);
        AggregateStatements = 0;
        if (!_sqlite)
        {
            await using var lockTable = _connection.CreateCommand();
            lockTable.Transaction = transaction;
            lockTable.CommandText = "LOCK TABLE metering_usage IN SHARE ROW EXCLUSIVE MODE";
            await lockTable.ExecuteNonQueryAsync(cancellationToken);
        }

        var watermark = await FoldedThroughAsync(transaction, cancellationToken);
        var sequence = LedgerSchema.Sequence(_sqlite);
        var last = watermark;
        var folded = 0;
        await using (var select = _connection.CreateCommand())
        {
            select.Transaction = transaction;
            select.CommandText =
                $"SELECT {sequence}, ts, tenant, key_id, model, jurisdiction, pool, device_class, currency, outcome, prompt_tokens, completion_tokens, " +
                $"cached_tokens, compute_us, cost_micros, waiver_ratio_to_english, waived_prompt_tokens, waived_completion_tokens FROM metering_usage " +
                $"WHERE {sequence} > @w ORDER BY {sequence} LIMIT @limit";
            SqlDatabase.AddParameter(select, "@w", watermark);
            SqlDatabase.AddParameter(select, "@limit", (long)limit);
            await using var reader = await select.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                last = LedgerSchema.Int64(reader, 0);
                var ts = LedgerSchema.Int64(reader, 1);
                var row = new FoldedRow(
                    (UsageOutcome)LedgerSchema.Int64(reader, 9), LedgerSchema.Int64(reader, 10), LedgerSchema.Int64(reader, 11), LedgerSchema.Int64(reader, 12),
                    LedgerSchema.Int64(reader, 13), LedgerSchema.Int64(reader, 14), !reader.IsDBNull(15), LedgerSchema.Int64(reader, 16), LedgerSchema.Int64(reader, 17));
                Accumulate(ts, reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetString(5),
                    reader.IsDBNull(6) ? "" : reader.GetString(6), reader.IsDBNull(7) ? "" : reader.GetString(7), reader.GetString(8), row);
                folded++;
            }
        }

        if (folded == 0)
        {
            return 0;
        }

        await WriteAggregatesAsync(transaction, cancellationToken);
        var mark = _foldedThrough;
        mark.Set(0, last);
        if (await mark.ExecuteAsync(transaction, cancellationToken) != 1)
        {
            throw new InvalidOperationException("the usage ledger's fold watermark is missing (metering_ledger_state 'aggregated_through')");
        }

        return folded;
    }

    /// <summary>W, read in <paramref name="transaction"/>; the ledger stops (throws) when the row is missing.</summary>
    public async Task<long> FoldedThroughAsync(DbTransaction? transaction, CancellationToken cancellationToken = default)
    {
        await using var read = _connection.CreateCommand();
        read.Transaction = transaction;
        read.CommandText = "SELECT state_value FROM metering_ledger_state WHERE state_key = '" + LedgerSchema.FoldedThroughKey + "'";
        var value = await read.ExecuteScalarAsync(cancellationToken);
        return value is null or DBNull
            ? throw new InvalidOperationException("the usage ledger's fold watermark is missing (metering_ledger_state 'aggregated_through')")
            : Convert.ToInt64(value, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Deletes at most <paramref name="chunk"/> records with a timestamp before <paramref name="cutoffMs"/> that are
    /// folded (at or below W: never an unfolded one), then sets W to the highest sequence left (0 when none), in
    /// <paramref name="transaction"/> after a <see cref="FoldAsync"/> in it. SQLite gives a new row the highest rowid
    /// plus one: a purge that deleted the newest record (a long stream's carries its early arrival) would otherwise let
    /// the next record take a rowid at or below W and never be folded.
    /// </summary>
    public async Task<int> DeleteFoldedAsync(long cutoffMs, int chunk, DbTransaction? transaction, CancellationToken cancellationToken = default)
    {
        var sequence = LedgerSchema.Sequence(_sqlite);
        int deleted;
        await using (var delete = _connection.CreateCommand())
        {
            delete.Transaction = transaction;
            delete.CommandText =
                $"DELETE FROM metering_usage WHERE request_id IN (SELECT request_id FROM metering_usage WHERE ts < @cutoff AND {sequence} <= {LedgerSchema.FoldedThrough} " +
                $"LIMIT {chunk.ToString(CultureInfo.InvariantCulture)})";
            SqlDatabase.AddParameter(delete, "@cutoff", cutoffMs);
            deleted = await delete.ExecuteNonQueryAsync(cancellationToken);
        }

        if (deleted > 0)
        {
            await using var reset = _connection.CreateCommand();
            reset.Transaction = transaction;
            reset.CommandText =
                $"UPDATE metering_ledger_state SET state_value = (SELECT COALESCE(MAX({sequence}), 0) FROM metering_usage) " +
                $"WHERE state_key = '{LedgerSchema.FoldedThroughKey}' AND state_value >= (SELECT COALESCE(MAX({sequence}), 0) FROM metering_usage)";
            await reset.ExecuteNonQueryAsync(cancellationToken);
        }

        return deleted;
    }

    /// <summary>Upserts the sums <see cref="Accumulate"/> gathered, each aggregate row once, in key order.</summary>
    private async Task WriteAggregatesAsync(DbTransaction? transaction, CancellationToken cancellationToken)
    {
        // A fixed key order keeps concurrent writers (several nodes on PostgreSQL) from deadlocking on aggregate rows.
        foreach (var (key, totals) in InKeyOrder(_dailyTotals, _dailyOrder))
        {
            var p = _daily;
            p.Set(0, key.Tenant);
            p.Set(1, key.DayStart);
            p.Set(2, key.Model);
            p.Set(3, key.Jurisdiction);
            p.Set(4, key.Pool);
            p.Set(5, key.DeviceClass);
            p.Set(6, key.KeyId);
            p.Set(7, key.Currency);
            p.Set(8, totals.Requests);
            p.Set(9, totals.Completed);
            p.Set(10, totals.Refused);
            p.Set(11, totals.Cancelled);
            p.Set(12, totals.Failed);
            p.Set(13, totals.PromptTokens);
            p.Set(14, totals.CompletionTokens);
            p.Set(15, totals.CachedTokens);
            p.Set(16, totals.ComputeUs);
            p.Set(17, totals.CostMicros);
            p.Set(18, totals.WaivedRequests);
            p.Set(19, totals.WaivedPromptTokens);
            p.Set(20, totals.WaivedCompletionTokens);
            await p.ExecuteAsync(transaction, cancellationToken);
            AggregateStatements++;
        }

        foreach (var (key, totals) in InKeyOrder(_periodTotals, _periodOrder))
        {
            var p = _period;
            p.Set(0, key.Tenant);
            p.Set(1, key.Period);
            p.Set(2, key.PeriodStart);
            p.Set(3, key.Currency);
            p.Set(4, totals.Requests);
            p.Set(5, totals.PromptTokens);
            p.Set(6, totals.CompletionTokens);
            p.Set(7, totals.ComputeUs);
            p.Set(8, totals.CostMicros);
            await p.ExecuteAsync(transaction, cancellationToken);
            AggregateStatements++;
        }

        foreach (var (key, totals) in InKeyOrder(_keyPeriodTotals, _keyPeriodOrder))
        {
            var p = _keyPeriod;
            p.Set(0, key.Tenant);
            p.Set(1, key.KeyId);
            p.Set(2, key.Period);
            p.Set(3, key.PeriodStart);
            p.Set(4, key.Currency);
            p.Set(5, totals.Requests);
            p.Set(6, totals.CostMicros);
            await p.ExecuteAsync(transaction, cancellationToken);
            AggregateStatements++;
        }
    }

    /// <summary>
    /// Corrects the stored record of <paramref name="requestId"/> to a refusal at no cost (outcome Refused,
    /// <paramref name="refusalCode"/>, no tokens, no compute, cost 0) in <paramref name="transaction"/>, and moves its
    /// daily, period and key totals by the difference (the request still counts once, as refused). Returns the record as
    /// it stood, or null when there is none or it is such a refusal already (nothing is written then).
    /// </summary>
    public async Task<UsageRecord?> VoidAsync(string requestId, string refusalCode, DbTransaction? transaction, CancellationToken cancellationToken = default)
    {
        UsageRecord old;
        long computeUs, costMicros, timestampMs, sequence;
        await using (var select = LedgerSchema.Prepare(_connection,
            $"SELECT {LedgerSchema.RecordColumns}, {LedgerSchema.Sequence(_sqlite)} FROM metering_usage WHERE request_id = @id" + (_sqlite ? string.Empty : " FOR UPDATE")))
        {
            select.Transaction = transaction;
            select.Parameters[0].Value = requestId;
            await using var reader = await select.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken))
            {
                return null;
            }

            old = LedgerSchema.ReadRecord(reader);
            timestampMs = LedgerSchema.Int64(reader, 1);
            computeUs = LedgerSchema.Int64(reader, 14);
            costMicros = LedgerSchema.Int64(reader, 17);
            sequence = LedgerSchema.Int64(reader, 30);
        }

        if (old is { Outcome: UsageOutcome.Refused, PromptTokens: 0, CompletionTokens: 0, CachedTokens: 0, WaivedPromptTokens: 0, WaivedCompletionTokens: 0 }
            && computeUs == 0 && costMicros == 0 && old.RefusalCode == refusalCode)
        {
            return null;
        }

        await using (var update = LedgerSchema.Prepare(_connection,
            "UPDATE metering_usage SET outcome = @outcome, refusal_code = @code, prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0, " +
            "compute_us = 0, cost_micros = 0, price_version = NULL, waiver_ratio_to_english = NULL, waiver_method = NULL, " +
            "waiver_prompt_language_letters = NULL, waiver_prompt_letters = NULL, waiver_completion_language_letters = NULL, " +
            "waiver_completion_letters = NULL, waived_prompt_tokens = 0, waived_completion_tokens = 0 WHERE request_id = @id"))
        {
            update.Transaction = transaction;
            update.Parameters[0].Value = (long)UsageOutcome.Refused;
            update.Parameters[1].Value = refusalCode;
            update.Parameters[2].Value = requestId;
            await update.ExecuteNonQueryAsync(cancellationToken);
        }

        // W read after the update: on PostgreSQL the update holds the lock a fold waits for (or waited for a fold to
        // commit), so W is final for this record. Not folded yet: the fold adds the corrected row, nothing to move.
        if (sequence > await FoldedThroughAsync(transaction, cancellationToken))
        {
            return old;
        }

        // The same aggregate rows the record was folded into, moved by what it no longer bills: the request stays
        // counted once (requests unchanged), under refused instead of its outcome.
        var day = UtcCalendar.DayStart(timestampMs);
        var d = _daily;
        d.Set(0, old.Tenant);
        d.Set(1, day);
        d.Set(2, old.Model);
        d.Set(3, old.Jurisdiction);
        d.Set(4, old.Pool ?? "");
        d.Set(5, old.DeviceClass ?? "");
        d.Set(6, old.KeyId);
        d.Set(7, old.Currency);
        d.Set(8, 0L);
        d.Set(9, old.Outcome == UsageOutcome.Completed ? -1L : 0L);
        d.Set(10, old.Outcome == UsageOutcome.Refused ? 0L : 1L);
        d.Set(11, old.Outcome == UsageOutcome.Cancelled ? -1L : 0L);
        d.Set(12, old.Outcome is UsageOutcome.Completed or UsageOutcome.Refused or UsageOutcome.Cancelled ? 0L : -1L);
        d.Set(13, -(long)old.PromptTokens);
        d.Set(14, -(long)old.CompletionTokens);
        d.Set(15, -(long)old.CachedTokens);
        d.Set(16, -computeUs);
        d.Set(17, -costMicros);
        d.Set(18, old.CharacterEquivalent is null ? 0L : -1L);
        d.Set(19, -(long)old.WaivedPromptTokens);
        d.Set(20, -(long)old.WaivedCompletionTokens);
        await d.ExecuteAsync(transaction, cancellationToken);

        foreach (var (period, start) in new[] { (UsagePeriodNames.Day, day), (UsagePeriodNames.Month, UtcCalendar.MonthStart(timestampMs)), (UsagePeriodNames.Total, 0L) })
        {
            var p = _period;
            p.Set(0, old.Tenant);
            p.Set(1, period);
            p.Set(2, start);
            p.Set(3, old.Currency);
            p.Set(4, 0L);
            p.Set(5, -(long)old.PromptTokens);
            p.Set(6, -(long)old.CompletionTokens);
            p.Set(7, -computeUs);
            p.Set(8, -costMicros);
            await p.ExecuteAsync(transaction, cancellationToken);
        }

        foreach (var (period, start) in new[] { (UsagePeriodNames.Day, day), (UsagePeriodNames.Total, 0L) })
        {
            var k = _keyPeriod;
            k.Set(0, old.Tenant);
            k.Set(1, old.KeyId);
            k.Set(2, period);
            k.Set(3, start);
            k.Set(4, old.Currency);
            k.Set(5, 0L);
            k.Set(6, -costMicros);
            await k.ExecuteAsync(transaction, cancellationToken);
        }

        return old;
    }

    /// <summary>Finalizes the prepared statements (a connection closes cleanly only once they are).</summary>
    public void ReleaseStatements()
    {
        _insert.Dispose();
        _daily.Dispose();
        _period.Dispose();
        _keyPeriod.Dispose();
        _foldedThrough.Dispose();
        _carry.Dispose();
    }

    /// <summary>
    /// Done with a borrowed connection (<see cref="Borrow"/>): finalizes the statements and, when Borrow changed its page
    /// cache, gives the connection SQLite's default back before its owner closes it into the pool.
    /// </summary>
    public void ReturnBorrowed()
    {
        ReleaseStatements();
        if (_cacheTuned && _connection.State == System.Data.ConnectionState.Open)
        {
            try
            {
                using var pragma = _connection.CreateCommand();
                pragma.CommandText = "PRAGMA cache_size=-2000";
                pragma.ExecuteNonQuery();
            }
            catch (Exception ex) when (ex is DbException or InvalidOperationException)
            {
                // The owner closes it next; a pooled connection with a larger cache only holds more memory.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Statements first: a connection closes cleanly only once its prepared statements are finalized.
        ReleaseStatements();
        if (!_ownsConnection)
        {
            return;
        }

        try
        {
            if (_sqlite)
            {
                // The connection goes back to the pool: hand it on with SQLite's defaults, not the writer's tuning.
                using var pragma = _connection.CreateCommand();
                pragma.CommandText = "PRAGMA cache_size=-2000; PRAGMA wal_autocheckpoint=1000";
                await pragma.ExecuteNonQueryAsync();
            }
        }
        finally
        {
            await _connection.DisposeAsync();
        }
    }

    private void Accumulate(long timestampMs, string tenant, string keyId, string model, string jurisdiction, string pool, string deviceClass, string currency, in FoldedRow row)
    {
        var day = UtcCalendar.DayStart(timestampMs);
        Totals(_dailyTotals, new DailyKey(tenant, day, model, jurisdiction, pool, deviceClass, keyId, currency)).Add(row);
        Totals(_periodTotals, new PeriodKey(tenant, UsagePeriodNames.Day, day, currency)).Add(row);
        Totals(_periodTotals, new PeriodKey(tenant, UsagePeriodNames.Month, UtcCalendar.MonthStart(timestampMs), currency)).Add(row);
        Totals(_periodTotals, new PeriodKey(tenant, UsagePeriodNames.Total, 0, currency)).Add(row);
        Totals(_keyPeriodTotals, new KeyPeriodKey(tenant, keyId, UsagePeriodNames.Day, day, currency)).Add(row);
        Totals(_keyPeriodTotals, new KeyPeriodKey(tenant, keyId, UsagePeriodNames.Total, 0, currency)).Add(row);
    }

    /// <summary>Ordinal order of the carry's rows: concurrent writers lock in one order.</summary>
    private sealed class CarryKeyOrder : IComparer<(string Tenant, string Currency)>
    {
        public static readonly CarryKeyOrder Instance = new();

        public int Compare((string Tenant, string Currency) x, (string Tenant, string Currency) y)
        {
            var c = string.CompareOrdinal(x.Tenant, y.Tenant);
            return c != 0 ? c : string.CompareOrdinal(x.Currency, y.Currency);
        }
    }

    private Totals Totals<TKey>(Dictionary<TKey, Totals> map, TKey key)
        where TKey : notnull
    {
        if (!map.TryGetValue(key, out var totals))
        {
            map[key] = totals = _spareTotals.TryPop(out var spare) ? spare : new Totals();
        }

        return totals;
    }

    /// <summary>Empties <paramref name="map"/>, keeping its sums (zeroed) for the next batch.</summary>
    private void Recycle<TKey>(Dictionary<TKey, Totals> map)
        where TKey : notnull
    {
        foreach (var totals in map.Values)
        {
            totals.Reset();
            _spareTotals.Push(totals);
        }

        map.Clear();
    }

    /// <summary>The entries of <paramref name="map"/> in key order (as OrderBy's default comparer sorts), in <paramref name="order"/>.</summary>
    private static List<KeyValuePair<TKey, Totals>> InKeyOrder<TKey>(Dictionary<TKey, Totals> map, List<KeyValuePair<TKey, Totals>> order)
        where TKey : notnull
    {
        order.Clear();
        order.AddRange(map);
        order.Sort(static (a, b) => Comparer<TKey>.Default.Compare(a.Key, b.Key));
        return order;
    }

    private readonly record struct DailyKey(string Tenant, long DayStart, string Model, string Jurisdiction, string Pool, string DeviceClass, string KeyId, string Currency) : IComparable<DailyKey>
    {
        public int CompareTo(DailyKey other)
        {
            var c = string.CompareOrdinal(Tenant, other.Tenant);
            c = c != 0 ? c : DayStart.CompareTo(other.DayStart);
            c = c != 0 ? c : string.CompareOrdinal(Model, other.Model);
            c = c != 0 ? c : string.CompareOrdinal(Jurisdiction, other.Jurisdiction);
            c = c != 0 ? c : string.CompareOrdinal(Pool, other.Pool);
            c = c != 0 ? c : string.CompareOrdinal(DeviceClass, other.DeviceClass);
            c = c != 0 ? c : string.CompareOrdinal(KeyId, other.KeyId);
            return c != 0 ? c : string.CompareOrdinal(Currency, other.Currency);
        }
    }

    private readonly record struct KeyPeriodKey(string Tenant, string KeyId, string Period, long PeriodStart, string Currency) : IComparable<KeyPeriodKey>
    {
        public int CompareTo(KeyPeriodKey other)
        {
            var c = string.CompareOrdinal(Tenant, other.Tenant);
            c = c != 0 ? c : string.CompareOrdinal(KeyId, other.KeyId);
            c = c != 0 ? c : string.CompareOrdinal(Period, other.Period);
            c = c != 0 ? c : PeriodStart.CompareTo(other.PeriodStart);
            return c != 0 ? c : string.CompareOrdinal(Currency, other.Currency);
        }
    }

    private readonly record struct PeriodKey(string Tenant, string Period, long PeriodStart, string Currency) : IComparable<PeriodKey>
    {
        public int CompareTo(PeriodKey other)
        {
            var c = string.CompareOrdinal(Tenant, other.Tenant);
            c = c != 0 ? c : string.CompareOrdinal(Period, other.Period);
            c = c != 0 ? c : PeriodStart.CompareTo(other.PeriodStart);
            return c != 0 ? c : string.CompareOrdinal(Currency, other.Currency);
        }
    }
}

/// <summary>Sums of the inserted records for one aggregate row within one batch.</summary>
internal sealed class Totals
{
    public long Requests { get; private set; }

    public long Completed { get; private set; }

    public long Refused { get; private set; }

    public long Cancelled { get; private set; }

    public long Failed { get; private set; }

    public long PromptTokens { get; private set; }

    public long CompletionTokens { get; private set; }

    public long CachedTokens { get; private set; }

    public long ComputeUs { get; private set; }

    public long CostMicros { get; private set; }

    public long WaivedRequests { get; private set; }

    public long WaivedPromptTokens { get; private set; }

    public long WaivedCompletionTokens { get; private set; }

    public void Reset()
    {
        Requests = Completed = Refused = Cancelled = Failed = 0;
        PromptTokens = CompletionTokens = CachedTokens = ComputeUs = CostMicros = 0;
        WaivedRequests = WaivedPromptTokens = WaivedCompletionTokens = 0;
    }

    public void Add(in FoldedRow row)
    {
        Requests++;
        switch (row.Outcome)
        {
            case UsageOutcome.Completed: Completed++; break;
            case UsageOutcome.Refused: Refused++; break;
            case UsageOutcome.Cancelled: Cancelled++; break;
            default: Failed++; break;
        }

        PromptTokens += row.PromptTokens;
        CompletionTokens += row.CompletionTokens;
        CachedTokens += row.CachedTokens;
        ComputeUs += row.ComputeUs;
        CostMicros += row.CostMicros;
        WaivedRequests += row.Waived ? 1 : 0;
        WaivedPromptTokens += row.WaivedPromptTokens;
        WaivedCompletionTokens += row.WaivedCompletionTokens;
    }
}

/// <summary>What one stored record adds to each aggregate row it belongs to (a fold reads it from the raw row).</summary>
internal readonly record struct FoldedRow(
    UsageOutcome Outcome, long PromptTokens, long CompletionTokens, long CachedTokens, long ComputeUs, long CostMicros, bool Waived,
    long WaivedPromptTokens, long WaivedCompletionTokens);
