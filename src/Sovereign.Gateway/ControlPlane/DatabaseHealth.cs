using System.Data.Common;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Sovereign.Storage;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Whether this server's database can record requests now, for <c>/ready</c>, the log and <c>/metrics</c>. A request
/// that meets the database down (PostgreSQL stopped or unreachable, a full disk under SQLite) is refused 503
/// (<c>audit_unavailable</c>, <c>storage_unavailable</c>); before, <c>/ready</c> still said ready, so a load balancer kept
/// sending every request to a server that could only refuse it, and each refusal logged three lines with two stack
/// traces (about 170 lines a request). Now the first failure starts an outage: logged once (event 4160, the cause and
/// the database, never the password), <c>/ready</c> answers 503 <c>database_unavailable</c>, the gauge
/// <c>sovereign_database_available</c> is 0; the refusals meanwhile are counted and logged at Debug only. It ends when
/// a request's books commit again or a probe write commits (event 4161, with the count): a probe runs for <c>/ready</c>
/// (at most one at a time, its answer kept a second) and every few seconds while the outage lasts, since a load balancer
/// sends no more requests to prove it over. While none is known, <c>/ready</c> asks PostgreSQL whether it takes writes (<c>transaction_read_only</c>), so a
/// server cut off from it is taken out before requests fail, and for SQLite the file system's free space
/// (<see cref="MinimumFreeBytes"/>), so a disk filling up takes it out before its commits fail.
/// </summary>
internal sealed partial class DatabaseHealth : BackgroundService
{
    /// <summary>The longest a probe may take: <c>/ready</c> answers within it whatever the network does.</summary>
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(3);

    /// <summary>How often the outage is probed while it lasts, with or without <c>/ready</c> being asked.</summary>
    public static readonly TimeSpan OutageProbeInterval = TimeSpan.FromSeconds(5);

    // A probe's answer serves every /ready within this: a load balancer's checks never queue on the database.
    private static readonly TimeSpan ProbeReuse = TimeSpan.FromSeconds(1);

    private readonly Lazy<SqlDatabase> _database;
    private readonly TimeProvider _time;
    private readonly ILogger<DatabaseHealth> _logger;
    private readonly Counter<long> _refusals;
    private readonly Lock _gate = new();
    private readonly Lock _transitions = new();
    private Outage? _outage;
    private string? _damaged;
    private Task? _probe;
    private long _probedAt = long.MinValue;

    public DatabaseHealth(Lazy<SqlDatabase> database, TimeProvider time, IMeterFactory meters, ILogger<DatabaseHealth> logger)
    {
        _database = database;
        _time = time;
        _logger = logger;
        var meter = meters.Create(Inference.Engine.EngineMetrics.MeterName);
        meter.CreateObservableGauge("sovereign.database.available", () => Volatile.Read(ref _outage) is null ? 1 : 0, null,
            "1 while this server's database records requests, 0 while requests are refused because it cannot (see /ready).");
        _refusals = meter.CreateCounter<long>("sovereign.database.refusals", "{request}",
            "Requests answered 503 because the database could not record them (audit_unavailable, storage_unavailable).");
        // Exported at 0 from the start: a counter that first appears at 1 hides its first increase from Prometheus'
        // rate() and increase(), so an alert on the outage's refusals missed the first one after every restart.
        _refusals.Add(0);
    }

    /// <summary>Null while the database records requests; else what failed, for <c>/ready</c>.</summary>
    public string? Problem => Damaged ?? (Volatile.Read(ref _outage) is { } outage
        ? $"The database ({outage.Database}) cannot record requests since {outage.Since:O}: {outage.Cause}"
        : null);

    /// <summary>
    /// Null unless a request found the database's stored data damaged (<see cref="DatabaseFailures.IsDamaged"/>); then
    /// what was found, for <c>/ready</c>. It does not end by itself: every request is refused 503
    /// <c>database_damaged</c> at once, before anything is decided, reserved or run, until the server restarts on a
    /// sound database (a probe's write can still succeed on a file damaged elsewhere, and would have ended the outage).
    /// </summary>
    public string? Damaged => Volatile.Read(ref _damaged);

    /// <summary>
    /// The damaged-data error inside <paramref name="exception"/> (however wrapped: an audit log's or a grain's
    /// failure), or null when it holds none.
    /// </summary>
    public static Exception? Damage(Exception? exception) =>
        Inside(exception, e => e is DbException db && DatabaseFailures.IsDamaged(db) || e is Cluster.Grains.StorageUnavailableException { IsDamaged: true });

    /// <summary>
    /// Null unless the outage is a database that does not answer (a probe or a statement timed out: PostgreSQL paused,
    /// its host hung, packets dropped); then what failed. While it lasts a request is refused at once
    /// (<see cref="Pipeline.RequestPipeline"/>): tried, it waited for the driver's timeouts, three attempts of the audit
    /// log's batch and a reconnect each, then its outcome's and its usage record's, on the gateway and again on the node:
    /// more than two minutes before its 503 with <c>Command Timeout=5</c>, ten with the default. A database that refuses
    /// connections answers at once, so its requests still try (and end the outage when one commits).
    /// </summary>
    public string? NotAnswering => Volatile.Read(ref _outage) is { Unresponsive: true } ? Problem : null;

    /// <summary>
    /// The database failure inside <paramref name="exception"/> (a driver's error, or a grain's
    /// <see cref="Cluster.Grains.StorageUnavailableException"/>, however wrapped), or null when the exception is not one.
    /// </summary>
    public static Exception? StorageFault(Exception? exception) =>
        Inside(exception, e => e is DbException or Cluster.Grains.StorageUnavailableException);

    /// <summary>The first exception matching <paramref name="match"/> along <paramref name="exception"/>'s inner ones (an aggregate's first), eight deep at most.</summary>
    private static Exception? Inside(Exception? exception, Func<Exception, bool> match)
    {
        for (var depth = 0; exception is not null && depth < 8; depth++)
        {
            if (match(exception))
            {
                return exception;
            }

            exception = exception is AggregateException { InnerExceptions.Count: > 0 } aggregate ? aggregate.InnerExceptions[0] : exception.InnerException;
        }

        return null;
    }

    /// <summary>
    /// Whether <paramref name="exception"/> is a database failure. If so it is part of an outage now: the first one
    /// begins it (logged at once, at Error), so the caller logs its own line at Debug.
    /// </summary>
    public bool IsOutage(Exception exception)
    {
        if (StorageFault(exception) is not { } fault)
        {
            return false;
        }

        if (Damage(exception) is { } damage && Interlocked.CompareExchange(ref _damaged, $"The database ({DatabaseName()}) is damaged since {_time.GetUtcNow():O}: {Describe(damage)}. Restore it from a backup (sovereign database restore; keep the damaged file for inspection) and restart this server: it refuses every request until then", null) is null)
        {
            DatabaseDamaged(_logger, DatabaseName(), Describe(damage));
        }

        Begin(fault);
        return true;
    }

    /// <summary>A request answered 503 because the database could not record it: counted, for the metric and the end's line.</summary>
    public void CountRefusal()
    {
        _refusals.Add(1);
        if (Volatile.Read(ref _outage) is { } outage)
        {
            outage.CountRefusal();
        }
    }

    /// <summary>
    /// Below this much free space on a SQLite file's file system the database counts as full. A commit that fits in
    /// the WAL file's space already written still succeeds on a full disk (the probe's one page, a small request's
    /// books): without this, a full disk's outage ended and began again with the next larger commit, and <c>/ready</c>
    /// said ready between them.
    /// </summary>
    public const long MinimumFreeBytes = 1024 * 1024;

    /// <summary>A request's books committed: the database records requests again (on SQLite, once its disk has room).</summary>
    public void ReportRecorded()
    {
        if (Volatile.Read(ref _outage) is not null && DiskFull() is null)
        {
            End();
        }
    }

    /// <summary>
    /// For <c>/ready</c>: null when ready, else the problem. Probes (bounded by <see cref="ProbeTimeout"/>) when the last
    /// probe is older than a second: a write while an outage is known, <c>SELECT 1</c> on PostgreSQL otherwise.
    /// </summary>
    public async Task<string?> CheckAsync(CancellationToken cancellationToken)
    {
        Task probe;
        lock (_gate)
        {
            var now = _time.GetTimestamp();
            if (_probe is { IsCompleted: false })
            {
                probe = _probe;
            }
            else if (_probedAt != long.MinValue && _time.GetElapsedTime(_probedAt, now) < ProbeReuse)
            {
                return Problem;
            }
            else
            {
                _probedAt = now;
                probe = _probe = ProbeAsync();
            }
        }

        try
        {
            // The probe's own timeout cancels the driver's call, but a server that takes the connection and then stops
            // answering (paused, its host hung, packets dropped) keeps Npgsql in that call until its Command Timeout
            // (30 s by default) and the cancel request's wait: /ready answered after 30 s, so a load balancer's probe
            // timed out instead of reading 503. The answer no longer waits for the driver past ProbeTimeout.
            await probe.WaitAsync(ProbeTimeout, _time, cancellationToken);
        }
        catch (TimeoutException)
        {
            Begin(new TimeoutException($"it did not answer within {ProbeTimeout.TotalSeconds:0} s"));
        }

        return Problem;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(OutageProbeInterval, _time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (Volatile.Read(ref _outage) is not null)
            {
                await CheckAsync(stoppingToken);
            }
        }
    }

    // Never throws: a failed probe begins or continues the outage, a successful one ends it.
    private async Task ProbeAsync()
    {
        var writing = Volatile.Read(ref _outage) is not null;
        using var timeout = new CancellationTokenSource(ProbeTimeout);
        try
        {
            if (DiskFull() is { } full)
            {
                Begin(full);
                return;
            }

            if (!writing && _database.Value.Provider == SqlProvider.Sqlite)
            {
                return;
            }

            await (writing ? ProbeWriteAsync(_database.Value, timeout.Token) : ProbeReadAsync(_database.Value, timeout.Token));
            ReportRecorded();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Whatever stops the probe's commit (the driver's error, a timeout, a file that cannot be opened) is the outage's cause.
            Begin(ex is OperationCanceledException ? new TimeoutException($"it did not answer within {ProbeTimeout.TotalSeconds:0} s") : ex);
        }
    }

    /// <summary>Why a SQLite database's disk counts as full (see <see cref="MinimumFreeBytes"/>); null when it has room, or for PostgreSQL.</summary>
    private IOException? DiskFull()
    {
        if (_database.Value.SqlitePath is not { } path || Path.GetDirectoryName(Path.GetFullPath(path)) is not { } directory)
        {
            return null;
        }

        var free = new DriveInfo(directory).AvailableFreeSpace;
        return free < MinimumFreeBytes
            ? new IOException($"the file system holding it has {free} bytes free, under the {MinimumFreeBytes} bytes it needs to record requests; free space there")
            : null;
    }

    private static async Task ProbeReadAsync(SqlDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = database.Provider == SqlProvider.PostgreSql ? ReadOnlyQuery : "SELECT 1";
        EnsureWritable(await command.ExecuteScalarAsync(cancellationToken));
    }

    // PostgreSQL that answers but takes no writes (a hot standby after a failover, default_transaction_read_only on for
    // maintenance) refuses every request's books (SQLSTATE 25006). SELECT 1 and a transaction id both succeed there, so
    // /ready said ready while every request was refused, and each refusal began an outage the next probe ended (4160
    // and 4161 again and again).
    private const string ReadOnlyQuery = "SELECT current_setting('transaction_read_only')";

    private static void EnsureWritable(object? transactionReadOnly)
    {
        if (transactionReadOnly is string setting && string.Equals(setting, "on", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException(
                "PostgreSQL accepts no writes (transaction_read_only is on: a hot standby, or default_transaction_read_only set); point the connection string at the primary, or turn that setting off");
        }
    }

    /// <summary>
    /// A commit that needs what a request's books need (a writable file with room, a server that accepts writes)
    /// without a table of its own: SQLite rewrites the file's header (its user_version, set to what it is);
    /// PostgreSQL commits a transaction that holds an id, which writes to its log.
    /// </summary>
    private static async Task ProbeWriteAsync(SqlDatabase database, CancellationToken cancellationToken)
    {
        using var turn = await database.EnterWriteAsync(cancellationToken);
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        if (database.Provider == SqlProvider.Sqlite)
        {
            command.CommandText = "PRAGMA user_version";
            var version = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
            command.CommandText = "PRAGMA user_version = " + version.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        else
        {
            command.CommandText = ReadOnlyQuery;
            EnsureWritable(await command.ExecuteScalarAsync(cancellationToken));
            command.CommandText = "SELECT txid_current()";
            await command.ExecuteScalarAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    // Beginning and ending take a lock (only then: a request in an outage returns at the first read), so the lines of
    // an outage that ends as another begins are written in the order they happened.
    private bool Begin(Exception fault)
    {
        if (Volatile.Read(ref _outage) is not null)
        {
            return false;
        }

        lock (_transitions)
        {
            if (_outage is not null)
            {
                return false;
            }

            var outage = new Outage(_time.GetUtcNow(), Describe(fault), DatabaseName(), fault is TimeoutException || fault.InnerException is TimeoutException);
            DatabaseUnavailable(_logger, outage.Database, outage.Cause);
            Volatile.Write(ref _outage, outage);
            return true;
        }
    }

    /// <summary>Told when an outage ends (after event 4161): what waited for the database can be written now (<see cref="DeferredOutcomes"/>).</summary>
    public event Action? Recovered;

    private void End()
    {
        if (Damaged is not null)
        {
            return; // damaged data does not mend itself: only a restart on a sound database ends it
        }

        var ended = false;
        lock (_transitions)
        {
            if (_outage is { } outage)
            {
                Volatile.Write(ref _outage, null);
                DatabaseAvailableAgain(_logger, outage.Database, (_time.GetUtcNow() - outage.Since).TotalSeconds, outage.Refused);
                ended = true;
            }
        }

        if (ended)
        {
            Recovered?.Invoke();
        }
    }

    private string DatabaseName()
    {
        try
        {
            return _database.Value.Location;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return "not opened";
        }
    }

    // The driver's own words (a SQLite code, a PostgreSQL SQLSTATE), without its stack: one line an operator can act on.
    private static string Describe(Exception fault) => $"{fault.GetType().Name}: {fault.Message.TrimEnd().TrimEnd('.')}";

    [LoggerMessage(EventId = 4160, EventName = "DatabaseUnavailable", Level = LogLevel.Error,
        Message = "The database ({Database}) cannot record requests: {Cause}. Requests that need it are refused 503 (audit_unavailable, storage_unavailable) and /ready answers 503 until it can; each refusal is logged at Debug only")]
    private static partial void DatabaseUnavailable(ILogger logger, string database, string cause);

    [LoggerMessage(EventId = 4155, EventName = "DatabaseDamaged", Level = LogLevel.Critical,
        Message = "The database ({Database}) is damaged: {Cause}. Every request is refused 503 database_damaged (nothing decided, reserved or billed) and /ready answers 503 until this server restarts on a sound database: stop it, restore the database from a backup (sovereign database restore; keep the damaged file for inspection), then start it")]
    private static partial void DatabaseDamaged(ILogger logger, string database, string cause);

    [LoggerMessage(EventId = 4161, EventName = "DatabaseAvailableAgain", Level = LogLevel.Information,
        Message = "The database ({Database}) records requests again after {Seconds:0.#} s; {Refused} requests were refused meanwhile")]
    private static partial void DatabaseAvailableAgain(ILogger logger, string database, double seconds, long refused);

    private sealed class Outage(DateTimeOffset since, string cause, string database, bool unresponsive)
    {
        /// <summary>Whether it began with the database not answering in time (see <see cref="NotAnswering"/>).</summary>
        public bool Unresponsive { get; } = unresponsive;

        public DateTimeOffset Since { get; } = since;

        public string Cause { get; } = cause;

        public string Database { get; } = database;

        private long _refused;

        public long Refused => Interlocked.Read(ref _refused);

        public void CountRefusal() => Interlocked.Increment(ref _refused);
    }
}
