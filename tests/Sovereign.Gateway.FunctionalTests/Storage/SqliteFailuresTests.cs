using Microsoft.Data.Sqlite;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// What a start says when SQLite cannot use its file. Found in the restore drill (explorer32): on a full disk SQLite
/// mostly reports the write it could not make as SQLITE_IOERR ("disk I/O error"), not SQLITE_FULL, so the start told
/// the operator to check the disk and the file system, never that it was full.
/// </summary>
public sealed class SqliteFailuresTests
{
    private static readonly SqliteException IoError = new("SQLite Error 10: 'disk I/O error'.", 10, 4874); // SQLITE_IOERR_SHMSIZE

    [Fact]
    public void IoError_OnAFileSystemWithoutRoom_SaysTheDiskIsFull_NamingTheFolder()
    {
        string? asked = null;
        var line = SqliteFailures.Explain(IoError, "the database /srv/sovereign/sovereign.db", "/srv/sovereign/sovereign.db", folder => { asked = folder; return 4096; });

        Assert.Equal("/srv/sovereign", asked);
        Assert.Equal(
            "the disk holding the database /srv/sovereign/sovereign.db is full: no space left on device (ENOSPC) in /srv/sovereign, 4096 bytes free " +
            "(SQLite said: SQLite Error 10: 'disk I/O error'): free space there",
            line);
    }

    [Theory]
    [InlineData(SqliteFailures.FullBelowBytes)]
    [InlineData(null)] // the free space cannot be told
    public void IoError_WithRoomOrUnknown_StaysAnIoError(long? free)
    {
        var line = SqliteFailures.Explain(IoError, "the database /srv/sovereign/sovereign.db", "/srv/sovereign/sovereign.db", _ => free);

        Assert.Equal("the database /srv/sovereign/sovereign.db could not be read or written (SQLite Error 10: 'disk I/O error'): check the disk and the file system", line);
    }

    [Fact]
    public void Full_SaysEnospc()
    {
        var line = SqliteFailures.Explain(new SqliteException("SQLite Error 13: 'database or disk is full'.", 13), "the database /d/sovereign.db", "/d/sovereign.db", _ => 0);

        Assert.Equal("the disk holding the database /d/sovereign.db is full (no space left on device, ENOSPC; SQLite Error 13: 'database or disk is full'): free space there", line);
    }

    [Fact]
    public void IoError_WithoutAPath_StaysAnIoError()
    {
        Assert.Equal("the database could not be read or written (SQLite Error 10: 'disk I/O error'): check the disk and the file system",
            SqliteFailures.Explain(IoError, "the database"));
    }
}
