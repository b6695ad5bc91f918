using System.Collections.Concurrent;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Sovereign.Storage;

/// <summary>Which SQL engine holds the state.</summary>
public enum SqlProvider
{
    /// <summary>One file, the embedded default (WAL mode).</summary>
    Sqlite,

    /// <summary>PostgreSQL, for clusters.</summary>
    PostgreSql,
}

/// <summary>
/// The durable store of tenants, keys, policies, nodes, the audit log and the usage ledger. Every schema is written
/// in the SQL both engines accept (BIGINT, TEXT, INTEGER; ON CONFLICT; named @parameters), so the same statements
/// run on SQLite on one machine and on PostgreSQL in a cluster.
/// </summary>
public sealed class SqlDatabase
{
    // One per SQLite file in this process, whichever SqlDatabase instance opened it.
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> SqliteWriteGates = new(StringComparer.Ordinal);

    private readonly string _connectionString;
    private readonly NpgsqlDataSource? _postgres;
    private readonly SemaphoreSlim? _writeGate;
    private readonly string? _sqlitePath;

    private SqlDatabase(SqlProvider provider, string connectionString, string? sqlitePath = null)
    {
        Provider = provider;
        _connectionString = connectionString;
        if (provider == SqlProvider.PostgreSql)
        {
            _postgres = NpgsqlDataSource.Create(connectionString);
        }

        if (sqlitePath is not null)
        {
            _sqlitePath = sqlitePath;
            _writeGate = SqliteWriteGates.GetOrAdd(sqlitePath, static _ => new SemaphoreSlim(1, 1));
        }
    }

    /// <summary>The size a SQLite WAL file is truncated to when a commit starts the WAL over (64 MiB).</summary>
    public const long WalSizeLimitBytes = 64L * 1024 * 1024;

    /// <summary>The engine behind this database.</summary>
    public SqlProvider Provider { get; }

    /// <summary>The SQLite file (null for PostgreSQL): what a readiness check asks the file system about.</summary>
    public string? SqlitePath => _sqlitePath;

    /// <summary>
    /// Where the database is, for an operator's error message: PostgreSQL's host, port and database (never the
    /// password or the rest of the connection string), or SQLite's file.
    /// </summary>
    public string Location
    {
        get
        {
            if (_sqlitePath is not null)
            {
                return "SQLite file " + _sqlitePath;
            }

            var builder = new NpgsqlConnectionStringBuilder(_connectionString);
            return $"PostgreSQL at {builder.Host}:{builder.Port}, database {builder.Database ?? builder.Username}";
        }
    }

    /// <summary>A SQLite database in one file (created if missing), in WAL mode.</summary>
    public static SqlDatabase Sqlite(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        CreateOwnerOnly(Path.GetFullPath(path));
        var builder = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Cache = SqliteCacheMode.Private, Pooling = true };
        return new SqlDatabase(SqlProvider.Sqlite, builder.ToString(), Path.GetFullPath(path));
    }

    /// <summary>Read and write for the owner only (600): the database's files and its lock files.</summary>
    public const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>
    /// Creates a missing database file empty (an empty file is an empty SQLite database) with <see cref="OwnerOnly"/>.
    /// SQLite would create it 644, readable by every user of the host, and its WAL and shared-memory files take the
    /// database file's mode: tenants, key hashes, the audit log and the ledger were all world-readable. An existing
    /// file keeps the mode its operator gave it.
    /// </summary>
    private static void CreateOwnerOnly(string path)
    {
        if (OperatingSystem.IsWindows() || File.Exists(path))
        {
            return;
        }

        try
        {
            using var created = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = OwnerOnly });
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Another process created it first, or the folder cannot take it (read-only, another user's, full): the
            // first open or lock says which, naming the file, as it did before this step existed.
        }
    }

    /// <summary>A PostgreSQL database (Npgsql connection string).</summary>
    public static SqlDatabase PostgreSql(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        return new SqlDatabase(SqlProvider.PostgreSql, connectionString);
    }

    /// <summary>Opens a connection; SQLite connections get WAL, a busy timeout and foreign keys.</summary>
    public async Task<DbConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        if (_postgres is not null)
        {
            return await _postgres.OpenConnectionAsync(cancellationToken);
        }

        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        using var pragma = connection.CreateCommand();

        // WAL + NORMAL survives a killed process (the OS still has the pages); FULL would add an fsync per commit. The
        // size limit truncates the WAL file when a commit starts it over, so one burst does not hold its disk space.
        pragma.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON; " +
            "PRAGMA journal_size_limit=" + WalSizeLimitBytes.ToString(System.Globalization.CultureInfo.InvariantCulture) + ";";
        await pragma.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    /// <summary>
    /// Waits for this process's turn to write; dispose the turn after the commit. SQLite lets one connection write
    /// at a time and makes any other sleep in its busy handler (1, 2, 5 ms and longer) before it tries again: two
    /// writers of one process (the audit chain and the usage ledger commit beside each other for every request)
    /// would meet that sleep on most requests. Queued here, the next writer starts the moment the last one commits.
    /// Writers in other processes still meet the busy timeout. PostgreSQL takes row locks itself: no wait there.
    /// </summary>
    public async ValueTask<WriteTurn> EnterWriteAsync(CancellationToken cancellationToken = default)
    {
        if (_writeGate is null)
        {
            return default;
        }

        await _writeGate.WaitAsync(cancellationToken);
        return new WriteTurn(_writeGate);
    }

    /// <summary>
    /// Applies each named migration once, in order, recording it in <c>schema_migrations</c>. Components call this
    /// at start with their own migrations; names must be globally unique (prefix them with the component).
    /// </summary>
    public async Task MigrateAsync(IEnumerable<SqlMigration> migrations, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenAsync(cancellationToken);

        // Several processes of a cluster start at once on one PostgreSQL: a session lock makes them migrate one after
        // the other (the later ones then find every migration applied). SQLite serialises writers by itself.
        if (Provider == SqlProvider.PostgreSql)
        {
            await ExecuteAsync(connection, null, $"SELECT pg_advisory_lock({MigrationLockKey})", cancellationToken);
        }

        try
        {
            using var turn = await EnterWriteAsync(cancellationToken);
            await ApplyAsync(connection, migrations, cancellationToken);
        }
        finally
        {
            if (Provider == SqlProvider.PostgreSql)
            {
                await ExecuteAsync(connection, null, $"SELECT pg_advisory_unlock({MigrationLockKey})", CancellationToken.None);
            }
        }
    }

    /// <summary>
    /// The migrations <c>schema_migrations</c> records that are not among <paramref name="known"/>, in the order they
    /// were applied: those of a newer release that ran on this database (empty for a new database). A release never
    /// applies them again nor knows what they keep, so a server started on such a database after a downgrade would
    /// run on a schema it only partly understands.
    /// </summary>
    public async Task<IReadOnlyList<string>> UnknownMigrationsAsync(IEnumerable<SqlMigration> known, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(known);
        var names = known.Select(m => m.Name).ToHashSet(StringComparer.Ordinal);
        await using var connection = await OpenAsync(cancellationToken);
        if (!await TableExistsAsync(connection, "schema_migrations", cancellationToken: cancellationToken))
        {
            return [];
        }

        using var command = connection.CreateCommand();
        command.CommandText = "SELECT name FROM schema_migrations ORDER BY applied_at, name";
        var unknown = new List<string>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            if (!names.Contains(reader.GetString(0)))
            {
                unknown.Add(reader.GetString(0));
            }
        }

        return unknown;
    }

    /// <summary>
    /// Takes a named lock that every process using this database sees, without waiting; null when another holder has
    /// it. PostgreSQL: a session advisory lock on its own connection, held until disposed (or until the connection
    /// drops, so a killed holder never keeps it). SQLite: an exclusive lock (flock) on the file <c>&lt;database&gt;.&lt;name&gt;.lock</c>
    /// beside it, which the kernel also releases with a killed process. For long jobs that two gateways (or a gateway
    /// and the CLI) must never run at once; the write turn is not that: it is per process and a no-op on PostgreSQL.
    /// </summary>
    public async Task<IAsyncDisposable?> TryLockAsync(string name, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (_sqlitePath is not null)
        {
            try
            {
                // FileShare.None is flock(LOCK_EX | LOCK_NB) on Unix: it conflicts across processes and across opens in one.
                // Owner-only like the database beside it (it was created 644, by the default mode).
                var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
                if (!OperatingSystem.IsWindows())
                {
                    options.UnixCreateMode = OwnerOnly;
                }

                return new FileStream(_sqlitePath + "." + name + ".lock", options);
            }
            catch (IOException ex) when (HeldByAnother(ex))
            {
                return null;
            }
        }

        var connection = await OpenAsync(cancellationToken);
        try
        {
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT pg_try_advisory_lock(@key)";
            AddParameter(command, "@key", LockKey(name));
            if (await command.ExecuteScalarAsync(cancellationToken) is true)
            {
                return new AdvisoryLock(connection, LockKey(name));
            }
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        await connection.DisposeAsync();
        return null;
    }

    /// <summary>
    /// Whether opening a lock file failed because someone holds its lock: EWOULDBLOCK from flock (11 on Linux, 35 on
    /// macOS), or a sharing or lock violation on Windows. Anything else (a read-only file system, a folder not writable,
    /// a full disk) is no answer to "is it taken?": it reached callers as "another process holds it".
    /// </summary>
    private static bool HeldByAnother(IOException exception) =>
        exception.GetType() == typeof(IOException) && (exception.HResult is 11 or 35 || (exception.HResult & 0xFFFF) is 32 or 33);

    // Named locks share PostgreSQL's one bigint key space with the constants below: take 8 bytes of a digest of the name.
    internal static long LockKey(string name) =>
        System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes("sovereign-lock:" + name)));

    private sealed class AdvisoryLock(DbConnection connection, long key) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                using var command = connection.CreateCommand();
                command.CommandText = "SELECT pg_advisory_unlock(@key)";
                AddParameter(command, "@key", key);
                await command.ExecuteNonQueryAsync(CancellationToken.None);
            }
            finally
            {
                // A pooled connection may keep its session: unlock explicitly rather than rely on the pool's reset.
                await connection.DisposeAsync();
            }
        }
    }

    /// <summary>The PostgreSQL advisory lock key that serialises migrations (any constant unique to Sovereign).</summary>
    internal const long MigrationLockKey = 0x50764D6967726174;

    private static async Task ApplyAsync(DbConnection connection, IEnumerable<SqlMigration> migrations, CancellationToken cancellationToken)
    {
        await ExecuteAsync(connection, null, "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)", cancellationToken);
        foreach (var migration in migrations)
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            using (var check = connection.CreateCommand())
            {
                check.Transaction = transaction;
                check.CommandText = "SELECT COUNT(*) FROM schema_migrations WHERE name = @name";
                AddParameter(check, "@name", migration.Name);
                if (Convert.ToInt64(await check.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture) > 0)
                {
                    continue;
                }
            }

            foreach (var statement in connection is SqliteConnection && migration.SqliteStatements is { } sqlite ? sqlite : migration.Statements)
            {
                await ExecuteAsync(connection, transaction, statement, cancellationToken);
            }

            using (var record = connection.CreateCommand())
            {
                record.Transaction = transaction;
                record.CommandText = "INSERT INTO schema_migrations (name, applied_at) VALUES (@name, @at)";
                AddParameter(record, "@name", migration.Name);
                AddParameter(record, "@at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                await record.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Whether <paramref name="table"/> exists (in PostgreSQL, on the search path). Asked, not tried: on PostgreSQL a
    /// failed statement would end the caller's transaction or snapshot.
    /// </summary>
    public static async Task<bool> TableExistsAsync(DbConnection connection, string table, DbTransaction? transaction = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(connection);
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = connection is SqliteConnection
            ? "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = @table"
            : "SELECT COUNT(*) FROM pg_catalog.pg_tables WHERE tablename = @table AND schemaname = ANY (current_schemas(false))";
        AddParameter(command, "@table", table);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken) ?? 0L, System.Globalization.CultureInfo.InvariantCulture) > 0;
    }

    /// <summary>Adds a named parameter (the same syntax on both engines).</summary>
    public static DbParameter AddParameter(DbCommand command, string name, object? value)
    {
        ArgumentNullException.ThrowIfNull(command);
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value ?? DBNull.Value;
        command.Parameters.Add(parameter);
        return parameter;
    }

    internal static async Task ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>A writer's turn on a SQLite file (see <see cref="SqlDatabase.EnterWriteAsync"/>); ends when disposed.</summary>
public readonly struct WriteTurn : IDisposable
{
    private readonly SemaphoreSlim? _gate;

    internal WriteTurn(SemaphoreSlim gate) => _gate = gate;

    /// <summary>Lets the next writer of this process in.</summary>
    public void Dispose() => _gate?.Release();
}

/// <summary>One schema change: a globally unique name and the statements that make it.</summary>
/// <param name="Name">e.g. <c>residency-001-tenants</c>.</param>
/// <param name="Statements">Portable SQL statements, run in one transaction.</param>
public sealed record SqlMigration(string Name, IReadOnlyList<string> Statements)
{
    /// <summary>
    /// Statements run instead of <see cref="Statements"/> on SQLite, where a layout only SQLite has pays (a table keyed
    /// by its rowid). A database records migrations by name only, so changing these later reaches new files alone.
    /// </summary>
    public IReadOnlyList<string>? SqliteStatements { get; init; }
}
