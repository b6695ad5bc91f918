using System.Threading.Channels;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// <c>sovereign audit verify</c> tells whether a server runs by trying the server's lock on the SQLite file for an
/// instant (<see cref="ServerDatabaseLock.AnyServerHoldsAsync"/>): a server starting in that instant stopped as if
/// another server used the file. A start now tries again a few times, briefly, before it says so: a probe lets go at
/// once, a running server never does, so one server per file still holds. The waits run on a clock the test moves.
/// </summary>
public sealed class ServerLockProbeTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-lock-probe-").FullName;

    private string DatabasePath => Path.Combine(_directory, "sovereign.db");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task AStart_WhileAProbeHoldsTheLock_TakesItOnceTheProbeLetsGo()
    {
        var database = SqlDatabase.Sqlite(DatabasePath);
        var probe = await database.TryLockAsync(ServerDatabaseLock.LockName); // what AnyServerHoldsAsync holds for an instant
        Assert.NotNull(probe);
        var clock = new ManualClock();
        await using var server = new ServerDatabaseLock(clock);

        var start = server.TakeSqliteAsync(database, DatabasePath);
        var wait = clock.NextWaitAsync();
        await Task.WhenAny(start, wait);
        Assert.False(start.IsCompleted, $"the start ended while the probe held the lock: {start.Exception?.InnerException?.Message}");

        await probe.DisposeAsync();
        (await wait)();
        await start.WaitAsync(TimeSpan.FromSeconds(30));

        // It holds the file now: another start (or a probe) finds it taken.
        Assert.Null(await database.TryLockAsync(ServerDatabaseLock.LockName));
    }

    [Fact]
    public async Task AStart_WhileAServerHoldsTheLock_StopsAfterItsFewTries()
    {
        var database = SqlDatabase.Sqlite(DatabasePath);
        await using var running = new ServerDatabaseLock();
        await running.TakeSqliteAsync(database, DatabasePath);
        var clock = new ManualClock();
        await using var second = new ServerDatabaseLock(clock);

        var start = second.TakeSqliteAsync(database, DatabasePath);
        var waits = 0;
        while (!start.IsCompleted)
        {
            var wait = clock.NextWaitAsync();
            if (await Task.WhenAny(start, wait) == wait)
            {
                Assert.True(++waits <= 100, "the start kept trying");
                (await wait)();
            }
        }

        var refused = await Assert.ThrowsAsync<DataDirectoryInUseException>(() => start);
        Assert.Contains("another sovereign server is using the database", refused.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// <c>sovereign database copy</c> takes the same lock, so that no server writes to the file while it is copied; it
    /// tried once and refused ("a sovereign server is using ...", nothing copied) when it met the probe of an
    /// <c>audit verify</c>. It tries as a start does now.
    /// </summary>
    [Fact]
    public async Task ACopy_WhileAProbeHoldsTheLock_TakesItOnceTheProbeLetsGo()
    {
        var database = SqlDatabase.Sqlite(DatabasePath);
        var probe = await database.TryLockAsync(ServerDatabaseLock.LockName);
        Assert.NotNull(probe);
        var clock = new ManualClock();

        var copy = Sovereign.Cli.Commands.DatabaseCommand.LockSourceAsync(database, DatabasePath, clock, CancellationToken.None);
        var wait = clock.NextWaitAsync();
        await Task.WhenAny(copy, wait);
        Assert.False(copy.IsCompleted, $"the copy ended while the probe held the lock: {copy.Exception?.InnerException?.Message}");

        await probe.DisposeAsync();
        (await wait)();
        await using var held = await copy.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Null(await database.TryLockAsync(ServerDatabaseLock.LockName));
    }

    [Fact]
    public async Task ACopy_WhileAServerHoldsTheLock_IsRefusedAfterItsFewTries()
    {
        var database = SqlDatabase.Sqlite(DatabasePath);
        await using var running = new ServerDatabaseLock();
        await running.TakeSqliteAsync(database, DatabasePath);
        var clock = new ManualClock();

        var copy = Sovereign.Cli.Commands.DatabaseCommand.LockSourceAsync(database, DatabasePath, clock, CancellationToken.None);
        var waits = 0;
        while (!copy.IsCompleted)
        {
            var wait = clock.NextWaitAsync();
            if (await Task.WhenAny(copy, wait) == wait)
            {
                Assert.True(++waits <= 100, "the copy kept trying");
                (await wait)();
            }
        }

        var refused = await Assert.ThrowsAnyAsync<Exception>(() => copy);
        Assert.Contains("a sovereign server is using", refused.Message, StringComparison.Ordinal);
    }

    /// <summary>A clock whose timers fire when the test says: each wait the code under test starts is handed over.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private readonly Channel<Action> _waits = Channel.CreateUnbounded<Action>();

        public async Task<Action> NextWaitAsync() => await _waits.Reader.ReadAsync();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            if (dueTime != Timeout.InfiniteTimeSpan)
            {
                _waits.Writer.TryWrite(() => callback(state));
            }

            return new Inert();
        }

        private sealed class Inert : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}
