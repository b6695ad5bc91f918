using System.Data.Common;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Sovereign.Storage;

/// <summary>
/// BEGIN IMMEDIATE, COMMIT and ROLLBACK prepared once on one SQLite connection and stepped through SQLitePCL, for a hot
/// writer that commits on every request (the audit log: two commits per governed request). Microsoft.Data.Sqlite's
/// transaction parses, steps and finalizes "BEGIN IMMEDIATE;" and "COMMIT;" again for every transaction (about 6 us of
/// a 31 us decision-shaped commit, measured by <c>bench ... commits --floor</c>). The transaction is the same SQLite
/// transaction: the same write lock, the same durability at COMMIT. Statements run in it are given no
/// <see cref="DbTransaction"/> (null): Microsoft.Data.Sqlite then sees none on the connection either, and accepts them.
/// </summary>
public sealed class PreparedTransaction : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _begin;
    private readonly sqlite3_stmt _commit;
    private readonly sqlite3_stmt _rollback;

    private PreparedTransaction(sqlite3 db)
    {
        _db = db;
        _begin = Prepare(db, "BEGIN IMMEDIATE");
        _commit = Prepare(db, "COMMIT");
        _rollback = Prepare(db, "ROLLBACK");
    }

    /// <summary>The statements on <paramref name="connection"/>, or null where it is not an open SQLite connection (PostgreSQL).</summary>
    public static PreparedTransaction? Create(DbConnection connection) =>
        connection is SqliteConnection { Handle: { } handle } ? new PreparedTransaction(handle) : null;

    /// <summary>
    /// Whether the connection is inside a transaction (begun here or anywhere else): SQLite's own answer, not a flag
    /// kept here, so a transaction SQLite rolled back by itself (a full disk, an I/O error) reads as none.
    /// </summary>
    public bool IsOpen => raw.sqlite3_get_autocommit(_db) == 0;

    /// <summary>Begins a write transaction: waits for the write lock as any BEGIN IMMEDIATE does (the connection's busy timeout).</summary>
    public void Begin() => Step(_begin);

    /// <summary>Commits the transaction begun with <see cref="Begin"/>; it is durable (at the connection's synchronous level) once this returns.</summary>
    public void Commit() => Step(_commit);

    /// <summary>Rolls back an open transaction; does nothing when none is open (SQLite may already have rolled it back).</summary>
    public void Rollback()
    {
        if (IsOpen)
        {
            Step(_rollback);
        }
    }

    /// <summary>Finalizes the statements (a connection closes cleanly only once they are).</summary>
    public void Dispose()
    {
        _begin.Dispose();
        _commit.Dispose();
        _rollback.Dispose();
    }

    private static sqlite3_stmt Prepare(sqlite3 db, string sql)
    {
        var rc = raw.sqlite3_prepare_v3(db, sql, raw.SQLITE_PREPARE_PERSISTENT, out var statement);
        SqliteException.ThrowExceptionForRC(rc, db);
        return statement;
    }

    private void Step(sqlite3_stmt statement)
    {
        var rc = raw.sqlite3_step(statement);
        raw.sqlite3_reset(statement);
        if (rc != raw.SQLITE_DONE)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }
}
