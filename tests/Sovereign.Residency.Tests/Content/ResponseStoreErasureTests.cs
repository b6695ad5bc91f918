using System.Text;
using Microsoft.Data.Sqlite;
using Sovereign.Residency.Content;
using Sovereign.Storage;

namespace Sovereign.Residency.Tests.Content;

/// <summary>
/// A stored response is the only prompt and completion text Sovereign keeps: once deleted (by its tenant, by a policy
/// that stops retaining, by expiry) its text must be gone from the database file too, not left in free pages for
/// anyone who reads the file (a backup, a copied disk) to recover.
/// </summary>
public sealed class ResponseStoreErasureTests : IAsyncLifetime
{
    private const string Marker = "ERASE-ME-7f3a9c";
    private const long Now = 1_750_000_000_000;
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-erasure-").FullName;
    private SqlDatabase _database = null!;
    private ResponseStore _store = null!;

    private string DatabasePath => Path.Combine(_directory, "sovereign.db");

    public async Task InitializeAsync()
    {
        _database = SqlDatabase.Sqlite(DatabasePath);
        await _database.MigrateAsync(ResponseStore.Migrations);
        _store = new ResponseStore(_database);
    }

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    public static TheoryData<string> Deletions => ["tenant", "policy", "expiry"];

    [Theory]
    [MemberData(nameof(Deletions))]
    public async Task DeletedResponse_LeavesNoTextInTheDatabaseFile(string deletion)
    {
        // One small row and one long enough to spill into overflow pages.
        await _store.InsertAsync(Stored("resp_small", Marker + " small"));
        await _store.InsertAsync(Stored("resp_large", string.Concat(Enumerable.Repeat(Marker + " large ", 2000))));
        await _store.InsertAsync(Stored("resp_kept", "kept text"));
        Assert.True(Occurrences() > 0);

        switch (deletion)
        {
            case "tenant":
                Assert.True(await _store.DeleteAsync("acme", "resp_small"));
                Assert.True(await _store.DeleteAsync("acme", "resp_large"));
                break;
            case "policy":
                Assert.Equal(3, await _store.DeleteTenantAsync("acme"));
                break;
            default:
                Assert.Equal(3, await _store.PurgeExpiredAsync(DateTimeOffset.FromUnixTimeMilliseconds(Now + 1)));
                break;
        }

        Assert.Equal(0, Occurrences());
    }

    /// <summary>
    /// The WAL itself: the frames that wrote the text stayed in the -wal file after the delete (until later commits
    /// overwrote them, up to 64 MiB), readable by anyone who copies the data directory.
    /// </summary>
    [Theory]
    [MemberData(nameof(Deletions))]
    public async Task DeletedResponse_LeavesNoTextInTheWal_WithoutAnyoneCheckpointing(string deletion)
    {
        await _store.InsertAsync(Stored("resp_small", Marker + " small"));
        await _store.InsertAsync(Stored("resp_kept", "kept text"));
        Assert.True(Occurrences(checkpointFirst: false) > 0);

        _ = deletion switch
        {
            "tenant" => await _store.DeleteAsync("acme", "resp_small") ? 1 : 0,
            "policy" => await _store.DeleteTenantAsync("acme"),
            _ => await _store.PurgeExpiredAsync(DateTimeOffset.FromUnixTimeMilliseconds(Now + 1)),
        };

        Assert.Equal(0, Occurrences(checkpointFirst: false));
    }

    /// <summary>
    /// Many responses, as a tenant stores them: an insert that fills a page moves cells between pages (SQLite balances
    /// its tree) and, without <c>secure_delete</c>, left their old copies in free space, which deleting the row later did
    /// not reach. Found on a running server: 40 stored, 40 deleted, one conversation still in <c>sovereign.db</c>.
    /// </summary>
    [Theory]
    [InlineData(37, 900)]
    [InlineData(137, 6000)] // overflow pages too
    public async Task ManyResponsesDeleted_LeaveNoTextWhereInsertsMovedThem(int step, int most)
    {
        for (var i = 0; i < 60; i++)
        {
            await _store.InsertAsync(Stored($"resp_{i}", Marker + " " + new string('p', i * step % most)));
        }

        Assert.Equal(60, await _store.DeleteTenantAsync("acme"));

        Assert.Equal(0, Occurrences());
    }

    private static StoredResponse Stored(string id, string text) =>
        new(id, "acme", "TH", "local", Now - 1000, Now, $$"""{"id":"{{id}}","output_text":"{{text}}"}""", $$"""[{"role":"user","content":"{{text}}"}]""");

    /// <summary>How often the marker appears in the database file and its WAL, after the WAL is copied in and emptied.</summary>
    private int Occurrences(bool checkpointFirst = true)
    {
        if (checkpointFirst)
        {
            using var connection = new SqliteConnection($"Data Source={DatabasePath};Pooling=False");
            connection.Open();
            using var checkpoint = connection.CreateCommand();
            checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
            checkpoint.ExecuteNonQuery();
        }

        var marker = Encoding.UTF8.GetBytes(Marker);
        var count = 0;
        foreach (var path in new[] { DatabasePath, DatabasePath + "-wal" }.Where(File.Exists))
        {
            var bytes = File.ReadAllBytes(path).AsSpan();
            int at;
            while ((at = bytes.IndexOf(marker)) >= 0)
            {
                count++;
                bytes = bytes[(at + marker.Length)..];
            }
        }

        return count;
    }
}
