using Microsoft.Data.Sqlite;

namespace Sovereign.Storage;

/// <summary>What an operator reads when SQLite cannot open or write a database file, instead of its bare error code.</summary>
public static class SqliteFailures
{
    /// <summary>
    /// One line for a file SQLite cannot use (a read-only file system or permissions, a full disk, an I/O error, a file
    /// that is not a database), naming <paramref name="database"/> (e.g. "the database /var/lib/sovereign/sovereign.db");
    /// null for any other error. They reached operators as "unexpected SqliteException ... a defect in sovereign", exit 70.
    /// </summary>
    public static string? Explain(SqliteException exception, string database)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var reason = exception.Message.TrimEnd().TrimEnd('.');
        return exception.SqliteErrorCode switch
        {
            // SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN. A WAL database is read with its -wal and -shm files beside
            // it, so even reading needs the folder writable.
            3 or 8 or 14 => $"{database} cannot be opened for writing ({reason}): its folder and files must be writable by this user, " +
                "on a file system mounted read-write (a read-only copy: copy the folder somewhere writable first)",
            // SQLITE_FULL
            13 => $"the disk holding {database} is full ({reason}): free space there",
            // SQLITE_IOERR
            10 => $"{database} could not be read or written ({reason}): check the disk and the file system",
            // SQLITE_CORRUPT, SQLITE_NOTADB
            11 or 26 => $"{database} is not a readable Sovereign database ({reason}): restore it from a backup",
            _ => null,
        };
    }
}
