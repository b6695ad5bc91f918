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
    public static string? Explain(SqliteException exception, string database) => Explain(exception, database, null);

    /// <summary>
    /// As <see cref="Explain(SqliteException, string)"/>, for the file at <paramref name="path"/>: an I/O error with its
    /// file system out of space is said to be a full disk (ENOSPC), naming its folder. SQLite reports most writes that
    /// meet a full disk as SQLITE_IOERR ("disk I/O error": the shared-memory file, the WAL), not SQLITE_FULL, so a start
    /// on a full disk told the operator to check the disk and the file system instead of to free space.
    /// </summary>
    public static string? Explain(SqliteException exception, string database, string? path) => Explain(exception, database, path, FreeBytes);

    /// <summary>Below this many free bytes, an I/O error on a file system is taken for a full disk.</summary>
    public const long FullBelowBytes = 1024 * 1024;

    /// <summary>
    /// As <see cref="Explain(SqliteException, string, string?)"/>, with <paramref name="freeBytes"/> telling the bytes
    /// free on the file system holding a folder (null: unknown).
    /// </summary>
    public static string? Explain(SqliteException exception, string database, string? path, Func<string, long?> freeBytes)
    {
        ArgumentNullException.ThrowIfNull(exception);
        ArgumentNullException.ThrowIfNull(freeBytes);
        var reason = exception.Message.TrimEnd().TrimEnd('.');
        return exception.SqliteErrorCode switch
        {
            // SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN. A WAL database is read with its -wal and -shm files beside
            // it, so even reading needs the folder writable.
            3 or 8 or 14 => $"{database} cannot be opened for writing ({reason}): its folder and files must be writable by this user, " +
                "on a file system mounted read-write (a read-only copy: copy the folder somewhere writable first)",
            // SQLITE_FULL
            13 => $"the disk holding {database} is full (no space left on device, ENOSPC; {reason}): free space there",
            // SQLITE_IOERR on a file system without room: what a full disk mostly gives.
            10 when Folder(path) is { } folder && freeBytes(folder) is { } free and < FullBelowBytes =>
                $"the disk holding {database} is full: no space left on device (ENOSPC) in {folder}, {free} bytes free (SQLite said: {reason}): free space there",
            // SQLITE_IOERR
            10 => $"{database} could not be read or written ({reason}): check the disk and the file system",
            // SQLITE_CORRUPT, SQLITE_NOTADB
            11 or 26 => $"{database} is not a readable Sovereign database ({reason}): restore it from a backup",
            _ => null,
        };
    }

    private static string? Folder(string? path) =>
        string.IsNullOrEmpty(path) ? null : Path.GetDirectoryName(Path.GetFullPath(path));

    /// <summary>The bytes free to this user on the file system holding <paramref name="folder"/>; null when it cannot be told.</summary>
    private static long? FreeBytes(string folder)
    {
        try
        {
            return new DriveInfo(folder).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }
}
