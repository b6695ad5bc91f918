using System.Data.Common;
using Sovereign.Storage;

namespace Sovereign.Residency.Audit;

/// <summary>
/// The audit log's SQLite WAL checkpoints (<see cref="AuditLogOptions.SqliteWalCheckpointCommits"/>), one pass at a
/// time on a thread of its own with a connection of its own, both kept for the log's life.
/// </summary>
/// <remarks>
/// A pass is a PASSIVE checkpoint: it copies committed frames into the database file and fsyncs both files, and
/// never takes a lock a commit waits for. It is synchronous I/O for as long as the copy and the two fsyncs take. On a
/// pool thread (as before) it held one of the pool's threads that long, every 200 commits, on a machine whose pool has
/// as many threads as cores, while requests' continuations queued for the rest; here it holds only its own thread,
/// and opens no connection per pass. Past <see cref="AuditLogOptions.SqliteWalRestartBytes"/> a pass copies the last
/// frames during this process's writers' turn, so the WAL starts over and stays bounded (unchanged).
/// </remarks>
internal sealed class WalCheckpointer : IAsyncDisposable
{
    private readonly SqlDatabase _database;
    private readonly long _restartBytes;
    private readonly Lock _gate = new();
    // Set when a pass is asked for, and to stop. An event, not a SemaphoreSlim: SemaphoreSlim.Wait spins (140 rounds,
    // most of them sched_yield or Sleep(0)) each time the thread goes idle before it blocks: a median 49-69 us of a
    // core per wait at load 40 on the 2-core dev VM, against 8-12 us for this event's (the wake-up included). Sets while the thread runs leave it set: the loop reads what was
    // asked for under _gate before every wait, so none is lost.
    private readonly AutoResetEvent _wake = new(false);
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource? _requested; // a pass asked for and not yet started (under _gate)
    private Task _latest = Task.CompletedTask; // the pass asked for last: complete once it ran
    private Thread? _thread;
    private bool _stopping;
    private DbConnection? _connection; // only the checkpointer's thread touches it
    private long _pageSize;

    public WalCheckpointer(SqlDatabase database, long restartBytes)
    {
        _database = database;
        _restartBytes = restartBytes;
    }

    /// <summary>The pass asked for last (complete when it ran, or when none was asked for).</summary>
    public Task Latest => Volatile.Read(ref _latest);

    /// <summary>Called on the checkpointer's thread before each pass (tests hold a pass here).</summary>
    internal Action? BeforePass { get; set; }

    /// <summary>Whether the last pass ran on a thread-pool thread (for tests).</summary>
    internal bool LastPassOnPoolThread { get; private set; }

    /// <summary>Asks for one pass and returns at once; false (nothing asked) while the previous pass has not ended.</summary>
    public bool TryRequest()
    {
        lock (_gate)
        {
            if (_stopping || !_latest.IsCompleted)
            {
                return false;
            }

            var pass = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _requested = pass;
            Volatile.Write(ref _latest, pass.Task);
            if (_thread is null)
            {
                // Started at the first pass: a log that never checkpoints (tests, short commands) holds no thread.
                _thread = new Thread(Run) { IsBackground = true, Name = "sovereign-wal-checkpoint" };
                _thread.Start();
            }

            _wake.Set();
        }

        return true;
    }

    /// <summary>Runs the pass already asked for, if any, then ends the thread and closes its connection.</summary>
    public async ValueTask DisposeAsync()
    {
        bool started;
        lock (_gate)
        {
            _stopping = true;
            started = _thread is not null;
            if (started)
            {
                _wake.Set();
            }
        }

        if (started)
        {
            await _exited.Task;
        }

        _wake.Dispose();
    }

    private void Run()
    {
        try
        {
            while (true)
            {
                TaskCompletionSource? pass;
                lock (_gate)
                {
                    pass = _requested;
                    _requested = null;
                    if (pass is null && _stopping)
                    {
                        return;
                    }
                }

                if (pass is null)
                {
                    _wake.WaitOne();
                    continue;
                }

                try
                {
                    BeforePass?.Invoke();
                    LastPassOnPoolThread = Thread.CurrentThread.IsThreadPoolThread;
                    RunPass();
                }
                catch (Exception)
                {
                    // Housekeeping only: the WAL keeps every commit; the next pass (or any other connection) catches up.
                    // A connection that failed is opened afresh next time.
                    CloseConnection();
                }
                finally
                {
                    pass.SetResult();
                }
            }
        }
        finally
        {
            CloseConnection();
            _exited.SetResult();
        }
    }

    private void RunPass()
    {
        // Synchronous on this thread: Microsoft.Data.Sqlite's async calls complete synchronously anyway.
        var connection = _connection ??= _database.OpenAsync().GetAwaiter().GetResult();
        if (_pageSize == 0)
        {
            using var size = connection.CreateCommand();
            size.CommandText = "PRAGMA page_size";
            _pageSize = Convert.ToInt64(size.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }

        var frames = Checkpoint(connection);
        if (frames * _pageSize > _restartBytes)
        {
            // Commits ran beside the copy, so the WAL holds frames it did not copy and will not start over. With this
            // process's writers held back, copying those few leaves none, and the next commit restarts it.
            using var turn = _database.EnterWriteAsync().AsTask().GetAwaiter().GetResult();
            Checkpoint(connection);
        }
    }

    /// <summary>A passive checkpoint (it never waits for readers or writers); returns the frames the WAL holds.</summary>
    private static long Checkpoint(DbConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA wal_checkpoint(PASSIVE)";
        using var reader = command.ExecuteReader();
        return reader.Read() ? reader.GetInt64(1) : 0;
    }

    private void CloseConnection()
    {
        try
        {
            _connection?.Dispose();
        }
        catch (DbException)
        {
        }

        _connection = null;
    }
}
