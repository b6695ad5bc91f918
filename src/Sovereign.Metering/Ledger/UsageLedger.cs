using System.Collections.Concurrent;
using System.Data.Common;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using Sovereign.Metering.Pricing;
using Sovereign.Storage;

namespace Sovereign.Metering.Ledger;

/// <summary>
/// The append-only, durable usage ledger. <see cref="AppendAsync"/> hands the record to a single writer that commits
/// whatever is queued in one transaction (group commit) and completes each caller once its batch is committed.
/// Appends are idempotent by request id (a replayed record changes nothing). The aggregates (per tenant/model/UTC
/// day/jurisdiction; for budgets per tenant per day, month and all time, and per key per day and all time) are folded
/// from the stored records behind a watermark W (<see cref="FoldAsync"/>: every <see cref="UsageLedgerOptions.AggregateFoldInterval"/>,
/// past <see cref="UsageLedgerOptions.AggregateFoldRecords"/> records, at open and before a purge), and every reader
/// adds the records above W in the same statement, so what it reads is exact at every instant, a crash included. Raw
/// rows can be purged after a retention period (only folded ones) while the aggregates stay.
/// </summary>
public sealed class UsageLedger : IAsyncDisposable
{
    private const int MaxIdLength = 200;
    private const int PurgeChunk = 5_000;
    private const int FoldChunk = 10_000;
    private static readonly long NeverPurged = DateTimeOffset.MinValue.ToUnixTimeMilliseconds();

    private readonly SqlDatabase _database;
    private readonly UsageLedgerOptions _options;
    private readonly Channel<PendingAppend> _queue;
    private readonly Task _writerLoop;
    private LedgerWriter? _writer;
    private readonly CarriedLedgerWriter _carried;
    private long _purgedBeforeMs;
    private long _stored;
    private long _duplicates;
    private long _batches;
    private long _failedBatches;
    private long _unfolded;
    private long _folds;
    private long _failedFolds;
    private int _disposed;
    private readonly SemaphoreSlim _foldGate = new(1, 1);
    private readonly Channel<bool> _foldNow = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource _stopFolding = new();
    private readonly Task _foldLoop;
    private LedgerWriter? _folder;

    private UsageLedger(SqlDatabase database, UsageLedgerOptions options, LedgerWriter writer, long purgedBeforeMs, CostCarry carry)
    {
        CostCarry = carry;
        _database = database;
        _options = options;
        _writer = writer;
        _purgedBeforeMs = purgedBeforeMs;
        _queue = Channel.CreateBounded<PendingAppend>(new BoundedChannelOptions(options.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _writerLoop = Task.Run(RunWriterAsync);
        _foldLoop = Task.Run(RunFoldLoopAsync);
        _carried = new CarriedLedgerWriter(this);
    }

    /// <summary>
    /// The schema (tables <c>metering_usage</c>, <c>metering_usage_daily</c>, <c>metering_tenant_periods</c>,
    /// <c>metering_key_periods</c>, <c>metering_ledger_state</c>).
    /// </summary>
    public static IReadOnlyList<SqlMigration> Migrations => LedgerSchema.Migrations;

    /// <summary>This writer's carry of sub-millionth remainders: bill a request's exact cost with it (<see cref="CostCarry.Bill"/>).</summary>
    public CostCarry CostCarry { get; }

    /// <summary>Folds committed (each one transaction) and folds that failed (retried at the next interval).</summary>
    internal (long Folds, long Failed) FoldCounters => (Interlocked.Read(ref _folds), Interlocked.Read(ref _failedFolds));

    /// <summary>The writer's counters.</summary>
    public UsageLedgerStatistics Statistics => new(
        Interlocked.Read(ref _stored), Interlocked.Read(ref _duplicates), Interlocked.Read(ref _batches), Interlocked.Read(ref _failedBatches));

    /// <summary>
    /// Raw records with a timestamp before this were purged (<see cref="DateTimeOffset.MinValue"/>: never); appending
    /// one of them again is refused, as it could not be deduplicated.
    /// </summary>
    public DateTimeOffset PurgedBefore => DateTimeOffset.FromUnixTimeMilliseconds(Interlocked.Read(ref _purgedBeforeMs));

    /// <summary>Applies the migrations, opens the writer's connection and starts it.</summary>
    public static async Task<UsageLedger> OpenAsync(SqlDatabase database, UsageLedgerOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        options ??= new UsageLedgerOptions();
        options.Validate();
        await database.MigrateAsync(Migrations, cancellationToken);
        var writer = await LedgerWriter.OpenAsync(database, options, cancellationToken);
        var writerOwned = true;
        UsageLedger ledger;
        try
        {
            await using var connection = await database.OpenAsync(cancellationToken);
            using var command = LedgerSchema.Prepare(connection, "SELECT state_value FROM metering_ledger_state WHERE state_key = @key");
            command.Parameters[0].Value = LedgerSchema.PurgedBeforeKey;
            var watermark = await command.ExecuteScalarAsync(cancellationToken);
            var purgedBefore = watermark is null or DBNull ? NeverPurged : Convert.ToInt64(watermark, System.Globalization.CultureInfo.InvariantCulture);
            using var carried = LedgerSchema.Prepare(connection, LedgerSchema.SelectCarry);
            carried.Parameters[0].Value = options.Writer;
            var stored = new List<(string, string, long)>();
            await using (var reader = await carried.ExecuteReaderAsync(cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    stored.Add((reader.GetString(0), reader.GetString(1), LedgerSchema.Int64(reader, 2)));
                }
            }

            writerOwned = false;
            ledger = new UsageLedger(database, options, writer, purgedBefore, new CostCarry(stored));
        }
        catch
        {
            if (writerOwned)
            {
                await writer.DisposeAsync();
            }

            throw;
        }

        try
        {
            // Before the ledger answers: what a killed process committed and never folded goes into the aggregates now.
            // Readers would add it anyway; this keeps the tail they add short.
            await ledger.FoldAsync(cancellationToken);
            return ledger;
        }
        catch
        {
            await ledger.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Folds every record committed above the watermark W into the aggregates and raises W, in the ledger's write turn,
    /// a transaction per <c>10,000</c> records; returns the records folded. Runs by itself (see
    /// <see cref="UsageLedgerOptions.AggregateFoldInterval"/>); readers never need it to be exact.
    /// </summary>
    public async Task<long> FoldAsync(CancellationToken cancellationToken = default)
    {
        await _foldGate.WaitAsync(cancellationToken);
        try
        {
            long total = 0;
            int folded;
            do
            {
                var folder = _folder ??= await LedgerWriter.OpenAsync(_database, _options, cancellationToken);
                try
                {
                    folded = await folder.InTransactionAsync(transaction => folder.FoldAsync(transaction, FoldChunk, cancellationToken), cancellationToken);
                }
                catch
                {
                    Interlocked.Increment(ref _failedFolds);
                    await CloseFolderAsync();
                    throw;
                }

                total += folded;
                Interlocked.Increment(ref _folds);
            }
            while (folded == FoldChunk);
            return total;
        }
        finally
        {
            _foldGate.Release();
        }
    }

    /// <summary>
    /// Folds every record of <paramref name="database"/> (migrated) on a connection of its own: for a tool that holds
    /// the file with no server (<c>sovereign database copy</c> folds its source first). Returns the records folded.
    /// </summary>
    public static async Task<long> FoldAllAsync(SqlDatabase database, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        await using var folder = await LedgerWriter.OpenAsync(database, new UsageLedgerOptions(), cancellationToken);
        long total = 0;
        int folded;
        do
        {
            folded = await folder.InTransactionAsync(transaction => folder.FoldAsync(transaction, FoldChunk, cancellationToken), cancellationToken);
            total += folded;
        }
        while (folded == FoldChunk);
        return total;
    }

    /// <summary>Records committed and not yet folded by this process: past the threshold, fold now.</summary>
    private void Unfolded(long records)
    {
        if (records > 0 && Interlocked.Add(ref _unfolded, records) >= _options.AggregateFoldRecords)
        {
            _foldNow.Writer.TryWrite(true);
        }
    }

    private async Task RunFoldLoopAsync()
    {
        var stopping = _stopFolding.Token;
        var failing = false;
        while (!stopping.IsCancellationRequested)
        {
            using (var wait = CancellationTokenSource.CreateLinkedTokenSource(stopping))
            {
                wait.CancelAfter(_options.AggregateFoldInterval);
                try
                {
                    await _foldNow.Reader.ReadAsync(wait.Token);
                }
                catch (OperationCanceledException)
                {
                    // The interval is over (or the ledger closes: checked below).
                }
            }

            if (stopping.IsCancellationRequested || Interlocked.Read(ref _unfolded) == 0)
            {
                continue;
            }

            var pending = Interlocked.Exchange(ref _unfolded, 0);
            try
            {
                await FoldAsync(stopping);
                failing = false;
            }
            catch (Exception ex)
            {
                // Nothing of a failed fold is committed (W and the aggregates move together): try again next interval,
                // whatever failed, so the loop never ends early (closing, the close folds what is left). Readers add
                // the unfolded records meanwhile, so nothing they read is wrong, only slower.
                Interlocked.Add(ref _unfolded, pending);
                if (!stopping.IsCancellationRequested && !failing)
                {
                    failing = true;
                    _options.FoldFailed?.Invoke(ex);
                }
            }
        }
    }

    private async Task CloseFolderAsync()
    {
        var folder = _folder;
        _folder = null;
        if (folder is not null)
        {
            try
            {
                await folder.DisposeAsync();
            }
            catch (DbException)
            {
                // A broken connection may fail to close; it is dropped either way.
            }
        }
    }

    /// <summary>
    /// Appends <paramref name="record"/> and completes once it is committed: true when stored now, false when a record
    /// with the same request id was already stored (nothing changes then). Invalid records throw
    /// <see cref="ArgumentException"/>; a failed commit faults the task (the record is not stored: retry it).
    /// <paramref name="cancellationToken"/> only cancels waiting for queue room; once queued, the record is written.
    /// </summary>
    public Task<bool> AppendAsync(UsageRecord record, CancellationToken cancellationToken = default)
    {
        var pending = Validate(record);
        if (pending.TimestampMs < Interlocked.Read(ref _purgedBeforeMs))
        {
            throw new InvalidOperationException(
                $"record '{record.RequestId}' is older than the retention cut-off {PurgedBefore:O}: its raw rows were purged, so it cannot be deduplicated");
        }

        if (_queue.Writer.TryWrite(pending))
        {
            return pending.Task;
        }

        return EnqueueSlowAsync(pending, cancellationToken);
    }

    /// <summary>
    /// <paramref name="record"/> as a write that another writer of this database (the audit log) commits in its own
    /// transaction, so the record and that writer's entry are durable together or not at all; its task completes as
    /// <see cref="AppendAsync"/>'s does. Null when this ledger must commit itself: its durability
    /// (<see cref="LedgerDurability.PowerLoss"/>) asks for more than another writer's commit promises.
    /// </summary>
    public CarriedUsageRecord? Carry(UsageRecord record)
    {
        if (_options.Durability == LedgerDurability.PowerLoss)
        {
            return null;
        }

        var pending = Validate(record);
        if (pending.TimestampMs < Interlocked.Read(ref _purgedBeforeMs))
        {
            throw new InvalidOperationException(
                $"record '{record.RequestId}' is older than the retention cut-off {PurgedBefore:O}: its raw rows were purged, so it cannot be deduplicated");
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return new CarriedUsageRecord(pending, _carried);
    }

    /// <summary>
    /// A correction of the stored record of <paramref name="requestId"/> to a refusal at no cost
    /// (<paramref name="refusalCode"/>), its totals moved by the difference, that another writer of this database (the
    /// audit log) commits in its transaction with the entry that says why; null when this ledger must commit itself
    /// (use <see cref="VoidAsync"/>). For a request answered as refused whose earlier commit, sent and never answered,
    /// was applied after all and billed it.
    /// </summary>
    public CarriedUsageVoid? CarryVoid(string requestId, string refusalCode)
    {
        ArgumentException.ThrowIfNullOrEmpty(requestId);
        ArgumentException.ThrowIfNullOrEmpty(refusalCode);
        if (_options.Durability == LedgerDurability.PowerLoss)
        {
            return null;
        }

        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return new CarriedUsageVoid(requestId, refusalCode, _carried);
    }

    /// <summary>
    /// As <see cref="CarryVoid"/>, committed by this ledger on its own: returns the record as it stood, or null when
    /// there is none or it is such a refusal already.
    /// </summary>
    public async Task<UsageRecord?> VoidAsync(string requestId, string refusalCode, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(requestId);
        ArgumentException.ThrowIfNullOrEmpty(refusalCode);
        await using var connection = await _database.OpenAsync(cancellationToken);
        var writer = LedgerWriter.Borrow(_database, connection, null, _options);
        try
        {
            using var turn = await _database.EnterWriteAsync();
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var voided = await writer.VoidAsync(requestId, refusalCode, transaction, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            return voided;
        }
        finally
        {
            writer.ReturnBorrowed();
        }
    }

    /// <summary>
    /// Aggregated usage (the daily aggregates, with the records not yet folded into them added in the same statement),
    /// grouped as asked, ordered by the grouped columns then currency.
    /// </summary>
    public async Task<IReadOnlyList<UsageRow>> QueryUsageAsync(UsageQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        var group = new List<string>();
        if (query.GroupBy.HasFlag(UsageGroupBy.Day))
        {
            group.Add("day_start");
        }

        if (query.GroupBy.HasFlag(UsageGroupBy.Tenant))
        {
            group.Add("tenant");
        }

        if (query.GroupBy.HasFlag(UsageGroupBy.Model))
        {
            group.Add("model");
        }

        if (query.GroupBy.HasFlag(UsageGroupBy.Jurisdiction))
        {
            group.Add("jurisdiction");
        }

        if (query.GroupBy.HasFlag(UsageGroupBy.Pool))
        {
            group.Add("pool");
        }

        if (query.GroupBy.HasFlag(UsageGroupBy.DeviceClass))
        {
            // Classes are one vocabulary in any case (stored in lower case since session 37): rows written before, as
            // an operator spelt them (H100), add up with the class derived from the GPU's name (h100).
            group.Add("LOWER(device_class)");
        }

        if (query.GroupBy.HasFlag(UsageGroupBy.Key))
        {
            group.Add("key_id");
        }

        group.Add("currency");
        var columns = string.Join(", ", group);
        var sql = new StringBuilder()
            .Append("SELECT ").Append(columns)
            .Append(", SUM(requests), SUM(completed), SUM(refused), SUM(cancelled), SUM(failed), SUM(prompt_tokens), SUM(completion_tokens), ")
            .Append("SUM(cached_tokens), SUM(compute_us), SUM(cost_micros), SUM(waived_requests), SUM(waived_prompt_tokens), SUM(waived_completion_tokens) ")
            .Append("FROM (SELECT ").Append(LedgerSchema.DailyColumns).Append(" FROM metering_usage_daily UNION ALL ")
            .Append(LedgerSchema.UnfoldedDailyRows(_database.Provider == SqlProvider.Sqlite))
            .Append(") daily WHERE day_start >= @from AND day_start < @to");

        // Filters are added only when given: PostgreSQL cannot type an untyped NULL parameter in "@x IS NULL".
        if (query.Tenant is not null)
        {
            sql.Append(" AND tenant = @tenant");
        }
        else if (query.ExcludedTenant is not null)
        {
            sql.Append(" AND tenant <> @excluded");
        }

        if (query.Model is not null)
        {
            sql.Append(" AND model = @model");
        }

        if (query.Jurisdiction is not null)
        {
            sql.Append(" AND jurisdiction = @jurisdiction");
        }

        if (query.Pool is not null)
        {
            sql.Append(" AND pool = @pool");
        }

        if (query.KeyId is not null)
        {
            sql.Append(" AND key_id = @key_id");
        }

        // A page after a row: the rows whose grouped values come after its values, in the order the answer is sorted
        // in (a row value compared as the ORDER BY sorts it), so pages walk every group exactly once.
        var after = query.After is null ? null : ParseCursor(query.After, group.Count, query.GroupBy.HasFlag(UsageGroupBy.Day));
        if (after is not null)
        {
            sql.Append(" AND (").Append(columns).Append(") > (")
                .Append(string.Join(", ", Enumerable.Range(0, group.Count).Select(i => "@after" + i.ToString(CultureInfo.InvariantCulture)))).Append(')');
        }

        sql.Append(" GROUP BY ").Append(columns).Append(" ORDER BY ").Append(columns);
        if (query.Limit is { } limit)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1, nameof(query));
            sql.Append(" LIMIT ").Append(limit.ToString(CultureInfo.InvariantCulture));
        }

        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText = sql.ToString();
        SqlDatabase.AddParameter(command, "@from", UtcCalendar.DayStart(query.From.ToUnixTimeMilliseconds()));
        SqlDatabase.AddParameter(command, "@to", query.To.ToUnixTimeMilliseconds());
        if (query.Tenant is not null)
        {
            SqlDatabase.AddParameter(command, "@tenant", query.Tenant);
        }
        else if (query.ExcludedTenant is not null)
        {
            SqlDatabase.AddParameter(command, "@excluded", query.ExcludedTenant);
        }

        if (query.Model is not null)
        {
            SqlDatabase.AddParameter(command, "@model", query.Model);
        }

        if (query.Jurisdiction is not null)
        {
            SqlDatabase.AddParameter(command, "@jurisdiction", query.Jurisdiction);
        }

        if (query.Pool is not null)
        {
            SqlDatabase.AddParameter(command, "@pool", query.Pool);
        }

        if (query.KeyId is not null)
        {
            SqlDatabase.AddParameter(command, "@key_id", query.KeyId);
        }

        for (var i = 0; after is not null && i < after.Count; i++)
        {
            SqlDatabase.AddParameter(command, "@after" + i.ToString(CultureInfo.InvariantCulture), after[i]);
        }

        var rows = new List<UsageRow>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var i = 0;
            DateOnly? day = query.GroupBy.HasFlag(UsageGroupBy.Day) ? UtcCalendar.ToDate(LedgerSchema.Int64(reader, i++)) : null;
            var tenant = query.GroupBy.HasFlag(UsageGroupBy.Tenant) ? reader.GetString(i++) : null;
            var model = query.GroupBy.HasFlag(UsageGroupBy.Model) ? reader.GetString(i++) : null;
            var jurisdiction = query.GroupBy.HasFlag(UsageGroupBy.Jurisdiction) ? reader.GetString(i++) : null;

            // '' is "no pool" in the aggregates' key (usage recorded before pools, refusals before routing).
            var pool = query.GroupBy.HasFlag(UsageGroupBy.Pool) ? NullIfEmpty(reader.GetString(i++)) : null;
            var deviceClass = query.GroupBy.HasFlag(UsageGroupBy.DeviceClass) ? NullIfEmpty(reader.GetString(i++)) : null;
            var keyId = query.GroupBy.HasFlag(UsageGroupBy.Key) ? NullIfEmpty(reader.GetString(i++)) : null;
            var currency = reader.GetString(i++);
            rows.Add(new UsageRow
            {
                Day = day,
                Tenant = tenant,
                Model = model,
                Jurisdiction = jurisdiction,
                Pool = pool,
                DeviceClass = deviceClass,
                KeyId = keyId,
                Currency = currency,
                Requests = LedgerSchema.Int64(reader, i),
                Completed = LedgerSchema.Int64(reader, i + 1),
                Refused = LedgerSchema.Int64(reader, i + 2),
                Cancelled = LedgerSchema.Int64(reader, i + 3),
                Failed = LedgerSchema.Int64(reader, i + 4),
                PromptTokens = LedgerSchema.Int64(reader, i + 5),
                CompletionTokens = LedgerSchema.Int64(reader, i + 6),
                CachedTokens = LedgerSchema.Int64(reader, i + 7),
                ComputeSeconds = MicroUnits.ToDecimal(LedgerSchema.Int64(reader, i + 8)),
                Cost = MicroUnits.ToDecimal(LedgerSchema.Int64(reader, i + 9)),
                WaivedRequests = LedgerSchema.Int64(reader, i + 10),
                WaivedPromptTokens = LedgerSchema.Int64(reader, i + 11),
                WaivedCompletionTokens = LedgerSchema.Int64(reader, i + 12),
            });
        }

        return rows;
    }

    /// <summary>
    /// The cursor of <paramref name="row"/> in an answer grouped by <paramref name="groupBy"/>, for
    /// <see cref="UsageQuery.After"/>: its grouped values in the answer's order, as base64url JSON (opaque to callers).
    /// </summary>
    public static string CursorOf(UsageRow row, UsageGroupBy groupBy)
    {
        ArgumentNullException.ThrowIfNull(row);
        var values = new List<string>();
        if (groupBy.HasFlag(UsageGroupBy.Day))
        {
            values.Add(UtcCalendar.DayStart(new DateTimeOffset(row.Day!.Value.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero).ToUnixTimeMilliseconds()).ToString(CultureInfo.InvariantCulture));
        }

        if (groupBy.HasFlag(UsageGroupBy.Tenant))
        {
            values.Add(row.Tenant ?? "");
        }

        if (groupBy.HasFlag(UsageGroupBy.Model))
        {
            values.Add(row.Model ?? "");
        }

        if (groupBy.HasFlag(UsageGroupBy.Jurisdiction))
        {
            values.Add(row.Jurisdiction ?? "");
        }

        if (groupBy.HasFlag(UsageGroupBy.Pool))
        {
            values.Add(row.Pool ?? "");
        }

        if (groupBy.HasFlag(UsageGroupBy.DeviceClass))
        {
            values.Add(row.DeviceClass ?? "");
        }

        if (groupBy.HasFlag(UsageGroupBy.Key))
        {
            values.Add(row.KeyId ?? "");
        }

        values.Add(row.Currency);
        return Convert.ToBase64String(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(values)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    /// <summary>A cursor's values as parameters (the day a number, the rest text); <see cref="ArgumentException"/> when it is not one of this grouping's.</summary>
    private static List<object> ParseCursor(string cursor, int columns, bool dayFirst)
    {
        List<string>? values = null;
        try
        {
            var base64 = cursor.Replace('-', '+').Replace('_', '/');
            var bytes = Convert.FromBase64String(base64.PadRight(base64.Length + ((4 - (base64.Length % 4)) % 4), '='));
            values = System.Text.Json.JsonSerializer.Deserialize<List<string>>(bytes);
        }
        catch (Exception ex) when (ex is FormatException or System.Text.Json.JsonException)
        {
        }

        if (values is null || values.Count != columns || values.Any(v => v is null))
        {
            throw new ArgumentException("not a cursor of this grouping (the last_id of a page with the same group_by)", nameof(cursor));
        }

        // The day, when grouped by it, is the first column and a number.
        var parameters = new List<object>(values);
        if (dayFirst)
        {
            parameters[0] = long.TryParse(values[0], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var day)
                ? day
                : throw new ArgumentException("not a cursor of this grouping (the last_id of a page with the same group_by)", nameof(cursor));
        }

        return parameters;
    }

    /// <summary>
    /// What a budget has spent: the settled cost in <paramref name="currency"/> of the tenant (or, with
    /// <paramref name="keyId"/>, of that key) in the day, month or all time containing <paramref name="at"/>, by
    /// arrival time. Read from durable aggregates, never from raw rows, so it survives retention; spend in other
    /// currencies is never included (a budget never mixes currencies).
    /// </summary>
    public async Task<decimal> GetSpendAsync(string tenant, string? keyId, UsagePeriod period, DateTimeOffset at, string currency, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(currency);
        var ms = at.ToUnixTimeMilliseconds();
        var (from, to) = PeriodRange(period, ms);
        var unfolded = LedgerSchema.Unfolded(_database.Provider == SqlProvider.Sqlite);
        var sql = (keyId, period) switch
        {
            (null, _) =>
                "SELECT SUM(cost_micros) FROM (SELECT cost_micros FROM metering_tenant_periods WHERE tenant = @tenant AND period = @period AND period_start = @start AND currency = @currency " +
                $"UNION ALL SELECT cost_micros FROM metering_usage WHERE {unfolded} AND tenant = @tenant AND currency = @currency AND ts >= @from AND ts < @to) spend",

            // A key's month is the sum of its days (at most 31 rows): day rows are all the migration could backfill.
            (_, UsagePeriod.Month) =>
                "SELECT SUM(cost_micros) FROM (SELECT cost_micros FROM metering_key_periods WHERE tenant = @tenant AND key_id = @key AND period = 'day' " +
                "AND period_start >= @from AND period_start < @to AND currency = @currency " +
                $"UNION ALL SELECT cost_micros FROM metering_usage WHERE {unfolded} AND tenant = @tenant AND key_id = @key AND currency = @currency AND ts >= @from AND ts < @to) spend",
            _ =>
                "SELECT SUM(cost_micros) FROM (SELECT cost_micros FROM metering_key_periods WHERE tenant = @tenant AND key_id = @key AND period = @period AND period_start = @start AND currency = @currency " +
                $"UNION ALL SELECT cost_micros FROM metering_usage WHERE {unfolded} AND tenant = @tenant AND key_id = @key AND currency = @currency AND ts >= @from AND ts < @to) spend",
        };

        // One statement, one snapshot: a record is either folded into the stored rows or above W in it, never both.
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        SqlDatabase.AddParameter(command, "@tenant", tenant);
        if (keyId is not null)
        {
            SqlDatabase.AddParameter(command, "@key", keyId);
        }

        if (sql.Contains("@period", StringComparison.Ordinal))
        {
            SqlDatabase.AddParameter(command, "@period", UsagePeriodNames.Of(period));
        }

        if (sql.Contains("@start", StringComparison.Ordinal))
        {
            SqlDatabase.AddParameter(command, "@start", PeriodStart(period, ms));
        }

        SqlDatabase.AddParameter(command, "@from", from);
        SqlDatabase.AddParameter(command, "@to", to);
        SqlDatabase.AddParameter(command, "@currency", currency);
        var sum = await command.ExecuteScalarAsync(cancellationToken);
        return MicroUnits.ToDecimal(sum is null or DBNull ? 0 : Convert.ToInt64(sum, System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>The arrival times [from, to) of the day, month or all time containing <paramref name="ms"/>.</summary>
    private static (long From, long To) PeriodRange(UsagePeriod period, long ms) => period switch
    {
        UsagePeriod.Day => (UtcCalendar.DayStart(ms), UtcCalendar.DayStart(ms) + 86_400_000),
        UsagePeriod.Month => (UtcCalendar.MonthStart(ms), DateTimeOffset.FromUnixTimeMilliseconds(UtcCalendar.MonthStart(ms)).AddMonths(1).ToUnixTimeMilliseconds()),
        _ => (long.MinValue, long.MaxValue),
    };

    private static long PeriodStart(UsagePeriod period, long ms) => period switch
    {
        UsagePeriod.Day => UtcCalendar.DayStart(ms),
        UsagePeriod.Month => UtcCalendar.MonthStart(ms),
        _ => 0,
    };

    /// <summary>The tenant's totals for the day, month or all time containing <paramref name="at"/>, one per currency (usually one; empty when no usage).</summary>
    public async Task<IReadOnlyList<TenantPeriodTotals>> GetTenantTotalsAsync(string tenant, UsagePeriod period, DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        var ms = at.ToUnixTimeMilliseconds();
        var start = PeriodStart(period, ms);
        var (from, to) = PeriodRange(period, ms);
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText =
            "SELECT currency, SUM(requests), SUM(prompt_tokens), SUM(completion_tokens), SUM(compute_us), SUM(cost_micros) FROM (" +
            "SELECT currency, requests, prompt_tokens, completion_tokens, compute_us, cost_micros FROM metering_tenant_periods " +
            "WHERE tenant = @tenant AND period = @period AND period_start = @start " +
            "UNION ALL SELECT currency, 1, prompt_tokens, completion_tokens, compute_us, cost_micros FROM metering_usage " +
            $"WHERE {LedgerSchema.Unfolded(_database.Provider == SqlProvider.Sqlite)} AND tenant = @tenant AND ts >= @from AND ts < @to) totals GROUP BY currency ORDER BY currency";
        SqlDatabase.AddParameter(command, "@tenant", tenant);
        SqlDatabase.AddParameter(command, "@period", UsagePeriodNames.Of(period));
        SqlDatabase.AddParameter(command, "@start", start);
        SqlDatabase.AddParameter(command, "@from", from);
        SqlDatabase.AddParameter(command, "@to", to);
        var totals = new List<TenantPeriodTotals>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            totals.Add(new TenantPeriodTotals
            {
                Tenant = tenant,
                Period = period,
                PeriodStart = DateTimeOffset.FromUnixTimeMilliseconds(start),
                Currency = reader.GetString(0),
                Requests = LedgerSchema.Int64(reader, 1),
                PromptTokens = LedgerSchema.Int64(reader, 2),
                CompletionTokens = LedgerSchema.Int64(reader, 3),
                ComputeSeconds = MicroUnits.ToDecimal(LedgerSchema.Int64(reader, 4)),
                Cost = MicroUnits.ToDecimal(LedgerSchema.Int64(reader, 5)),
            });
        }

        return totals;
    }

    /// <summary>
    /// The UTC midnight of the first day with usage of <paramref name="tenant"/>, or null when it has none. Read from
    /// the daily aggregates (keyed by tenant first), so it survives retention.
    /// </summary>
    public async Task<DateTimeOffset?> GetFirstUsageDayAsync(string tenant, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT MIN(day_start) FROM (SELECT day_start FROM metering_usage_daily WHERE tenant = @tenant " +
            $"UNION ALL SELECT {LedgerSchema.DayStartSql} FROM metering_usage WHERE {LedgerSchema.Unfolded(_database.Provider == SqlProvider.Sqlite)} AND tenant = @tenant) days";
        SqlDatabase.AddParameter(command, "@tenant", tenant);
        var first = await command.ExecuteScalarAsync(cancellationToken);
        return first is null or DBNull ? null : DateTimeOffset.FromUnixTimeMilliseconds(Convert.ToInt64(first, System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// The currencies <paramref name="tenant"/> has usage recorded in, at any time, from the daily aggregates (which
    /// survive retention).
    /// </summary>
    public async Task<IReadOnlyList<string>> GetUsageCurrenciesAsync(string tenant, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT currency FROM metering_usage_daily WHERE tenant = @tenant UNION " +
            $"SELECT currency FROM metering_usage WHERE {LedgerSchema.Unfolded(_database.Provider == SqlProvider.Sqlite)} AND tenant = @tenant ORDER BY 1";
        SqlDatabase.AddParameter(command, "@tenant", tenant);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var currencies = new List<string>();
        while (await reader.ReadAsync(cancellationToken))
        {
            currencies.Add(reader.GetString(0));
        }

        return currencies;
    }

    /// <summary>The stored record with this request id, or null (never stored, or purged).</summary>
    public async Task<UsageRecord?> GetAsync(string requestId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = LedgerSchema.Prepare(connection, $"SELECT {LedgerSchema.RecordColumns} FROM metering_usage WHERE request_id = @id");
        command.Parameters[0].Value = requestId;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken) ? LedgerSchema.ReadRecord(reader) : null;
    }

    /// <summary>
    /// The tenant's raw records with <paramref name="from"/> &lt;= timestamp &lt; <paramref name="to"/>, by timestamp, for
    /// audits and exports. Raw rows are indexed by time only (a per-tenant index would cost every append), so this scans
    /// the whole time range: keep ranges short.
    /// </summary>
    public async IAsyncEnumerable<UsageRecord> ReadRecordsAsync(string tenant, DateTimeOffset from, DateTimeOffset to, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = LedgerSchema.Prepare(connection,
            $"SELECT {LedgerSchema.RecordColumns} FROM metering_usage WHERE tenant = @tenant AND ts >= @from AND ts < @to ORDER BY ts, request_id");
        command.Parameters[0].Value = tenant;
        command.Parameters[1].Value = from.ToUnixTimeMilliseconds();
        command.Parameters[2].Value = to.ToUnixTimeMilliseconds();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            yield return LedgerSchema.ReadRecord(reader);
        }
    }

    /// <summary>
    /// Deletes raw records with a timestamp before <paramref name="olderThan"/> (in chunks, so appends are not held up);
    /// aggregates stay. Raises <see cref="PurgedBefore"/> first, so a late retry of a purged record is refused instead
    /// of being counted twice: to just past the newest record it deletes, not to <paramref name="olderThan"/>. A cut-off
    /// taken from a clock that read a year ahead (kept in the database) refused every new record, once the clock was
    /// right again, for months. Returns the number of records deleted.
    /// </summary>
    public async Task<long> PurgeAsync(DateTimeOffset olderThan, CancellationToken cancellationToken = default)
    {
        await using var connection = await _database.OpenAsync(cancellationToken);
        long cutoff;
        using (var newest = LedgerSchema.Prepare(connection, "SELECT MAX(ts) FROM metering_usage WHERE ts < @cutoff"))
        {
            newest.Parameters[0].Value = olderThan.ToUnixTimeMilliseconds();
            if (await newest.ExecuteScalarAsync(cancellationToken) is not { } found || found is DBNull)
            {
                return 0;
            }

            // Only what is older than that is deleted: a record appended meanwhile with an older time goes with them (and
            // its retry is refused), one between it and olderThan stays (and its retry is a duplicate id).
            cutoff = Convert.ToInt64(found, System.Globalization.CultureInfo.InvariantCulture) + 1;
        }

        long current;
        while ((current = Interlocked.Read(ref _purgedBeforeMs)) < cutoff && Interlocked.CompareExchange(ref _purgedBeforeMs, cutoff, current) != current)
        {
        }

        using (var mark = LedgerSchema.Prepare(connection, LedgerSchema.RaiseWatermark))
        using (await _database.EnterWriteAsync(cancellationToken))
        {
            mark.Parameters[0].Value = LedgerSchema.PurgedBeforeKey;
            mark.Parameters[1].Value = cutoff;
            await mark.ExecuteNonQueryAsync(cancellationToken);
        }

        long total = 0;
        int deleted;
        do
        {
            // A turn per chunk: appends go on between chunks of a long purge. Each chunk folds first, in its own
            // transaction, and deletes only folded records: the aggregates hold every deleted record's money.
            await _foldGate.WaitAsync(cancellationToken);
            try
            {
                var folder = _folder ??= await LedgerWriter.OpenAsync(_database, _options, cancellationToken);
                try
                {
                    deleted = await folder.InTransactionAsync(async transaction =>
                    {
                        while (await folder.FoldAsync(transaction, FoldChunk, cancellationToken) == FoldChunk)
                        {
                        }

                        return await folder.DeleteFoldedAsync(cutoff, PurgeChunk, transaction, cancellationToken);
                    }, cancellationToken);
                }
                catch
                {
                    await CloseFolderAsync();
                    throw;
                }
            }
            finally
            {
                _foldGate.Release();
            }

            total += deleted;
        }
        while (deleted > 0);
        return total;
    }

    /// <summary>Purges raw records older than <see cref="UsageLedgerOptions.RetentionDays"/> (run it daily).</summary>
    public Task<long> PurgeExpiredAsync(CancellationToken cancellationToken = default) =>
        PurgeAsync(_options.TimeProvider.GetUtcNow().AddDays(-_options.RetentionDays), cancellationToken);

    /// <summary>Stops taking appends, commits everything already queued, and closes the writer.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _queue.Writer.TryComplete();
        await _writerLoop;
        await CloseWriterAsync();
        await _stopFolding.CancelAsync();
        await _foldLoop;
        try
        {
            // What this process committed goes into the aggregates before it stops (the next open would fold it anyway).
            await FoldAsync();
        }
        catch (Exception ex) when (ex is DbException or InvalidOperationException)
        {
            // The next open folds it.
        }

        await CloseFolderAsync();
        _stopFolding.Dispose();
    }

    private async Task CloseWriterAsync()
    {
        var writer = _writer;
        _writer = null;
        if (writer is not null)
        {
            try
            {
                await writer.DisposeAsync();
            }
            catch (DbException)
            {
                // A broken connection may fail to close; it is dropped either way.
            }
        }
    }

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;

    private static PendingAppend Validate(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        Require(record.RequestId, nameof(record.RequestId));
        if (record.RequestId.Length > MaxIdLength)
        {
            throw new ArgumentException($"RequestId is longer than {MaxIdLength} characters", nameof(record));
        }

        Require(record.Tenant, nameof(record.Tenant));
        Require(record.KeyId, nameof(record.KeyId));
        Require(record.Model, nameof(record.Model));
        Require(record.Node, nameof(record.Node));
        Require(record.Jurisdiction, nameof(record.Jurisdiction));
        // XXX, ISO 4217's "no currency", is the currency of usage no plan prices, which costs nothing.
        if (!Iso4217.IsKnown(record.Currency) && !(record.Currency == InvoiceBuilder.NoCurrency && record.Cost == 0))
        {
            throw new ArgumentException($"Currency '{record.Currency}' is not an ISO 4217 code (XXX is taken for records that cost nothing)", nameof(record));
        }

        NotNegative(record.PromptTokens, nameof(record.PromptTokens));
        NotNegative(record.CompletionTokens, nameof(record.CompletionTokens));
        NotNegative(record.CachedTokens, nameof(record.CachedTokens));
        NotNegative(record.QueueTimeMs, nameof(record.QueueTimeMs));
        NotNegative(record.TimeToFirstTokenMs ?? 0, nameof(record.TimeToFirstTokenMs));
        NotNegative(record.DurationMs, nameof(record.DurationMs));
        if (record.CachedTokens > record.PromptTokens)
        {
            throw new ArgumentException("CachedTokens cannot exceed PromptTokens", nameof(record));
        }

        NotNegative(record.WaivedPromptTokens, nameof(record.WaivedPromptTokens));
        NotNegative(record.WaivedCompletionTokens, nameof(record.WaivedCompletionTokens));
        if (record.WaivedPromptTokens > record.PromptTokens || record.WaivedCompletionTokens > record.CompletionTokens)
        {
            throw new ArgumentException("waived tokens cannot exceed the tokens counted", nameof(record));
        }

        if (record.CharacterEquivalent is null && (record.WaivedPromptTokens | record.WaivedCompletionTokens) != 0)
        {
            // An invoice must be able to say why: no tokens are waived without the basis that waived them.
            throw new ArgumentException("waived tokens need the CharacterEquivalent basis that waived them", nameof(record));
        }

        if (record.ComputeSeconds < 0 || record.Cost < 0)
        {
            throw new ArgumentException("ComputeSeconds and Cost must not be negative", nameof(record));
        }

        if (!Enum.IsDefined(record.Outcome))
        {
            throw new ArgumentException($"unknown Outcome {(int)record.Outcome}", nameof(record));
        }

        if (record.Outcome == UsageOutcome.Refused && string.IsNullOrWhiteSpace(record.RefusalCode))
        {
            throw new ArgumentException("a Refused record needs a RefusalCode", nameof(record));
        }

        if (record.Cost != 0 && string.IsNullOrWhiteSpace(record.PriceVersion))
        {
            throw new ArgumentException("a record with a Cost needs the PriceVersion that priced it", nameof(record));
        }

        var costMicros = MicroUnits.FromExact(record.Cost, nameof(record.Cost));
        return new PendingAppend(record, record.Timestamp.ToUnixTimeMilliseconds(), MicroUnits.FromRounded(record.ComputeSeconds), costMicros, CostCarry.ShareOf(record));

        static void Require(string? value, string name)
        {
            if (string.IsNullOrWhiteSpace(value))
            {
                throw new ArgumentException($"{name} is required", nameof(record));
            }
        }

        static void NotNegative(long value, string name)
        {
            if (value < 0)
            {
                throw new ArgumentException($"{name} must not be negative, was {value}", nameof(record));
            }
        }
    }

    private async Task<bool> EnqueueSlowAsync(PendingAppend pending, CancellationToken cancellationToken)
    {
        try
        {
            await _queue.Writer.WriteAsync(pending, cancellationToken);
        }
        catch (ChannelClosedException)
        {
            throw new ObjectDisposedException(nameof(UsageLedger));
        }

        return await pending.Task;
    }

    private async Task RunWriterAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<PendingAppend>(Math.Min(_options.MaxBatchSize, 65_536));
        while (await reader.WaitToReadAsync())
        {
            while (batch.Count < _options.MaxBatchSize && reader.TryRead(out var item))
            {
                batch.Add(item);
            }

            if (_options.MaxBatchDelay > TimeSpan.Zero && batch.Count < _options.MaxBatchSize)
            {
                await FillAsync(reader, batch);
            }

            await CommitAsync(batch);
            batch.Clear();
        }
    }

    private async Task FillAsync(ChannelReader<PendingAppend> reader, List<PendingAppend> batch)
    {
        using var timeout = new CancellationTokenSource(_options.MaxBatchDelay);
        try
        {
            while (batch.Count < _options.MaxBatchSize && await reader.WaitToReadAsync(timeout.Token))
            {
                while (batch.Count < _options.MaxBatchSize && reader.TryRead(out var item))
                {
                    batch.Add(item);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The delay is over: commit what we have.
        }
    }

    private async Task CommitAsync(List<PendingAppend> batch)
    {
        try
        {
            _writer ??= await LedgerWriter.OpenAsync(_database, _options, CancellationToken.None);
            await _writer.CommitAsync(batch);
        }
        catch (Exception ex)
        {
            // The transaction rolled back: nothing of this batch is stored. Start over on a fresh connection.
            Interlocked.Increment(ref _failedBatches);
            await CloseWriterAsync();

            foreach (var item in batch)
            {
                item.TrySetException(ex);
            }

            return;
        }

        var stored = 0;
        foreach (var item in batch)
        {
            stored += item.Inserted ? 1 : 0;
            Settled(item);
            item.TrySetResult(item.Inserted);
        }

        Interlocked.Add(ref _stored, stored);
        Interlocked.Add(ref _duplicates, batch.Count - stored);
        Interlocked.Increment(ref _batches);
        Unfolded(stored);
    }

    /// <summary>A record whose request id was stored already added nothing to the carry: take its share back.</summary>
    private void Settled(PendingAppend item)
    {
        if (!item.Inserted && item.CarryAtto != 0)
        {
            CostCarry.Undo(item.Record.Tenant, item.Record.Currency, item.CarryAtto / CostCarry.AttoPerUnit);
        }
    }

    /// <summary>Writes carried records in a host's transaction, with statements prepared once per host connection.</summary>
    internal sealed class CarriedLedgerWriter(UsageLedger ledger) : ICarriedWriter
    {
        private readonly ConcurrentDictionary<DbConnection, LedgerWriter> _writers = new();

        public SqlDatabase Database => ledger._database;

        public async Task WriteAsync(IReadOnlyList<ICarriedWrite> items, DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken = default)
        {
            if (!_writers.TryGetValue(connection, out var writer))
            {
                writer = LedgerWriter.Borrow(ledger._database, connection, transaction, ledger._options);
                _writers[connection] = writer;
            }

            var batch = new List<PendingAppend>(items.Count);
            foreach (var item in items)
            {
                if (item is CarriedUsageVoid correction)
                {
                    // Read again in every attempt: a rolled-back one changed nothing.
                    correction.Voided = await writer.VoidAsync(correction.RequestId, correction.RefusalCode, transaction, cancellationToken);
                    continue;
                }

                batch.Add(((CarriedUsageRecord)item).Pending);
            }

            if (batch.Count > 0)
            {
                await writer.WriteAsync(batch, transaction, cancellationToken);
            }
        }

        public void Release(DbConnection connection)
        {
            if (_writers.TryRemove(connection, out var writer))
            {
                writer.ReturnBorrowed();
            }
        }

        public void Counted(PendingAppend item)
        {
            ledger.Settled(item);
            Interlocked.Increment(ref item.Inserted ? ref ledger._stored : ref ledger._duplicates);
            ledger.Unfolded(item.Inserted ? 1 : 0);
        }
    }
}

/// <summary>A usage record that commits in another writer's transaction (<see cref="UsageLedger.Carry"/>).</summary>
public sealed class CarriedUsageRecord : ICarriedWrite
{
    private readonly UsageLedger.CarriedLedgerWriter _writer;

    internal CarriedUsageRecord(PendingAppend pending, UsageLedger.CarriedLedgerWriter writer)
    {
        Pending = pending;
        _writer = writer;
    }

    /// <summary>Completes once the host's transaction has committed: true when stored now, false for a duplicate.</summary>
    public Task<bool> Stored => Pending.Task;

    ICarriedWriter ICarriedWrite.Writer => _writer;

    internal PendingAppend Pending { get; }

    void ICarriedWrite.Committed()
    {
        if (Pending.TrySetResult(Pending.Inserted))
        {
            _writer.Counted(Pending);
        }
    }

    void ICarriedWrite.Failed(Exception error) => Pending.TrySetException(error);
}

/// <summary>
/// A correction of a stored usage record to a refusal at no cost that commits in another writer's transaction
/// (<see cref="UsageLedger.CarryVoid"/>).
/// </summary>
public sealed class CarriedUsageVoid : ICarriedWrite
{
    private readonly UsageLedger.CarriedLedgerWriter _writer;
    private readonly TaskCompletionSource<UsageRecord?> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal CarriedUsageVoid(string requestId, string refusalCode, UsageLedger.CarriedLedgerWriter writer)
    {
        RequestId = requestId;
        RefusalCode = refusalCode;
        _writer = writer;
    }

    /// <summary>The request whose record is corrected.</summary>
    public string RequestId { get; }

    /// <summary>The refusal code the record states after the correction.</summary>
    public string RefusalCode { get; }

    /// <summary>Completes once the host's transaction has committed: the record as it stood, or null when nothing changed.</summary>
    public Task<UsageRecord?> Done => _done.Task;

    ICarriedWriter ICarriedWrite.Writer => _writer;

    /// <summary>What the latest attempt found (set in each attempt; the committed one's is the result).</summary>
    internal UsageRecord? Voided { get; set; }

    void ICarriedWrite.Committed() => _done.TrySetResult(Voided);

    void ICarriedWrite.Failed(Exception error) => _done.TrySetException(error);
}
