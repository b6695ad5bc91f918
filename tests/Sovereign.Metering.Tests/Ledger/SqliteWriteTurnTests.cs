using Sovereign.Storage;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

/// <summary>
/// Writers of one process take turns on a SQLite file instead of meeting SQLite's busy handler, which sleeps
/// 1, 2, 5 ms and longer before it retries a writer that found the file locked.
/// </summary>
public sealed class SqliteWriteTurnTests
{
    [Fact]
    public async Task EnterWriteAsync_WhileAnotherInstanceOnTheSameFileHoldsItsTurn_WaitsUntilThatTurnEnds()
    {
        using var temp = new TempDatabase();
        var other = SqlDatabase.Sqlite(temp.Path);
        var first = await temp.Database.EnterWriteAsync();

        var second = other.EnterWriteAsync().AsTask();
        Assert.False(second.IsCompleted);

        first.Dispose();
        (await second).Dispose();
    }

    [Fact]
    public async Task EnterWriteAsync_OnAnotherFile_DoesNotWait()
    {
        using var one = new TempDatabase();
        using var two = new TempDatabase();
        using var held = await one.Database.EnterWriteAsync();

        var other = two.Database.EnterWriteAsync();

        Assert.True(other.IsCompleted);
        (await other).Dispose();
    }

    [Fact]
    public async Task LedgerAppend_CommitsOnlyInItsTurn()
    {
        using var temp = new TempDatabase();
        await using var ledger = await temp.OpenLedgerAsync();
        var turn = await temp.Database.EnterWriteAsync();

        var append = ledger.AppendAsync(Record("waits-its-turn"));
        Assert.False(append.IsCompleted);
        Assert.Null(await ledger.GetAsync("waits-its-turn"));

        turn.Dispose();
        Assert.True(await append);
        Assert.NotNull(await ledger.GetAsync("waits-its-turn"));
    }
}
