using Microsoft.Data.Sqlite;
using Sovereign.Residency.ControlPlane;
using Sovereign.Storage;

namespace Sovereign.Residency.Tests.ControlPlane;

/// <summary>
/// Join tokens: the lookup every join starts with is a read, so a guessed token never waits for or takes the
/// writers' lock; spending a token is a write in the process's write turn.
/// </summary>
public sealed class JoinTokenStoreTests : IAsyncLifetime
{
    private const long Now = 1_750_000_000_000;
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-join-tokens-").FullName;
    private SqlDatabase _database = null!;
    private ControlPlaneStore _store = null!;

    public async Task InitializeAsync()
    {
        _database = SqlDatabase.Sqlite(Path.Combine(_directory, "sovereign.db"));
        await _database.MigrateAsync(ControlPlaneStore.Migrations);
        _store = new ControlPlaneStore(_database);
        await _store.InsertJoinTokenAsync(new JoinTokenRecord("jt_1", "hash-usable", "TH", "th-cpu", Now - 1000, Now + 60_000, null));
        await _store.InsertJoinTokenAsync(new JoinTokenRecord("jt_2", "hash-expired", "TH", null, Now - 120_000, Now - 60_000, null));
    }

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Lookup_WhileAnotherWriterHoldsTheFile_AnswersWithoutTheWriteLock()
    {
        // Another connection holds SQLite's write lock on the file, and this process's write turn is taken: a lookup
        // that needed either would wait (the busy timeout is 10 s, the turn forever). A read needs neither.
        await using var writer = new SqliteConnection($"Data Source={Path.Combine(_directory, "sovereign.db")}");
        await writer.OpenAsync();
        await using (var begin = writer.CreateCommand())
        {
            begin.CommandText = "BEGIN IMMEDIATE";
            await begin.ExecuteNonQueryAsync();
        }

        using (await _database.EnterWriteAsync())
        {
            // Bounded, so a lookup that did wait fails here instead of hanging the run.
            Assert.Null(await _store.FindUsableJoinTokenAsync("hash-guessed", Now).WaitAsync(TimeSpan.FromSeconds(60)));
            Assert.Null(await _store.FindUsableJoinTokenAsync("hash-expired", Now));
            Assert.Equal("th-cpu", (await _store.FindUsableJoinTokenAsync("hash-usable", Now))?.Pool);
        }

        await using (var rollback = writer.CreateCommand())
        {
            rollback.CommandText = "ROLLBACK";
            await rollback.ExecuteNonQueryAsync();
        }
    }

    [Fact]
    public async Task Consume_WaitsForTheWriteTurn_SpendsTheTokenOnce()
    {
        var turn = await _database.EnterWriteAsync();
        var consume = _store.ConsumeJoinTokenAsync("hash-usable", "node-a", Now);
        Assert.False(consume.IsCompleted);
        Assert.NotNull(await _store.FindUsableJoinTokenAsync("hash-usable", Now));

        turn.Dispose();
        Assert.Equal("jt_1", (await consume)?.Id);
        Assert.Null(await _store.FindUsableJoinTokenAsync("hash-usable", Now));
        Assert.Null(await _store.ConsumeJoinTokenAsync("hash-usable", "node-b", Now));
    }

    [Fact]
    public async Task Withdraw_AnUnusedToken_IsRefusedByTheLookupAndTheConsume_AndAUsedOneNamesItsNode()
    {
        Assert.Equal((JoinTokenWithdrawal.Withdrawn, (long?)Now, (string?)null), await _store.WithdrawJoinTokenAsync("jt_1", Now));
        Assert.Null(await _store.FindUsableJoinTokenAsync("hash-usable", Now));
        Assert.Null(await _store.ConsumeJoinTokenAsync("hash-usable", "node-a", Now));

        // Again: the first withdrawal's time, unchanged.
        Assert.Equal((JoinTokenWithdrawal.AlreadyWithdrawn, (long?)Now, (string?)null), await _store.WithdrawJoinTokenAsync("jt_1", Now + 5));

        await _store.InsertJoinTokenAsync(new JoinTokenRecord("jt_3", "hash-spent", "TH", null, Now - 1000, Now + 60_000, null));
        Assert.NotNull(await _store.ConsumeJoinTokenAsync("hash-spent", "node-b", Now));
        Assert.Equal((JoinTokenWithdrawal.Used, (long?)null, (string?)"node-b"), await _store.WithdrawJoinTokenAsync("jt_3", Now));
        Assert.Equal(JoinTokenWithdrawal.NotFound, (await _store.WithdrawJoinTokenAsync("jt_none", Now)).Outcome);
    }
}
