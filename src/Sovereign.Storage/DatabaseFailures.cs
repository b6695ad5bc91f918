using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Sovereign.Storage;

/// <summary>
/// Which database errors mean "the database cannot do this now; try again later" (a 503 with Retry-After, an outage
/// on <c>/ready</c>) rather than a defect (a 500). The driver's own <see cref="DbException.IsTransient"/> covers a
/// server that is down, restarting, out of connections or of disk. It leaves out a server that is up but refuses
/// writes or stops a statement, which an operator's PostgreSQL does during a failover or maintenance: a hot standby
/// or <c>default_transaction_read_only</c> (SQLSTATE 25006, <c>read_only_sql_transaction</c>), a
/// <c>statement_timeout</c> or an administrator's <c>pg_cancel_backend</c> (57014, <c>query_canceled</c>); and a
/// SQLite file that cannot be written now (read-only, its disk full, an I/O error). Those reached tenants and the
/// admin API as 500 internal_error, and crossed cluster members as a driver exception Orleans has no codec for.
/// </summary>
public static class DatabaseFailures
{
    /// <summary>PostgreSQL's SQLSTATE for a write refused by a read-only server or transaction.</summary>
    public const string ReadOnlySqlTransaction = "25006";

    /// <summary>PostgreSQL's SQLSTATE for a statement stopped by <c>statement_timeout</c> or a cancel request.</summary>
    public const string QueryCanceled = "57014";

    /// <summary>Whether <paramref name="exception"/> says the database cannot serve the statement now (see the class).</summary>
    public static bool IsUnavailable(DbException exception) => exception switch
    {
        { IsTransient: true } => true,
        PostgresException { SqlState: ReadOnlySqlTransaction or QueryCanceled } => true,
        // SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN: the file or its disk, which the operator mends.
        SqliteException { SqliteErrorCode: 8 or 10 or 13 or 14 } => true,
        _ => false,
    };

    /// <summary>PostgreSQL's SQLSTATE for data found corrupted.</summary>
    public const string DataCorrupted = "XX001";

    /// <summary>PostgreSQL's SQLSTATE for an index found corrupted.</summary>
    public const string IndexCorrupted = "XX002";

    /// <summary>
    /// Whether <paramref name="exception"/> says the database's stored data is damaged: SQLite's SQLITE_CORRUPT
    /// ("database disk image is malformed") or SQLITE_NOTADB, PostgreSQL's data_corrupted or index_corrupted. It does
    /// not heal by waiting: the operator restores the database from a backup. Such an error found while a server ran
    /// was answered 500 internal_error (an SDK retries it four times) and the server stayed "ready".
    /// </summary>
    public static bool IsDamaged(DbException exception) => exception switch
    {
        SqliteException { SqliteErrorCode: 11 or 26 } => true,
        PostgresException { SqlState: DataCorrupted or IndexCorrupted } => true,
        _ => false,
    };
}

/// <summary>
/// A writer gave up on the database after its own deadline (the audit log's commit timeout), whatever the driver's
/// timeouts say: the database did not answer in time. Transient, and its inner <see cref="TimeoutException"/> says it
/// did not answer (rather than refused), which is what takes a server out of rotation at once.
/// </summary>
public sealed class DatabaseTimeoutException : DbException
{
    /// <summary>Creates the exception; <paramref name="cause"/> is what the last try failed with, if anything.</summary>
    public DatabaseTimeoutException(string message, Exception? cause = null)
        : base(message, new TimeoutException(message, cause))
    {
    }

    /// <inheritdoc/>
    public override bool IsTransient => true;
}
