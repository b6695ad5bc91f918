using System.IO.Pipelines;
using System.Runtime.ExceptionServices;

namespace Sovereign.Gateway.Routing;

/// <summary>
/// Reads an engine's answer ahead of the client that receives it, up to a bound, and says when the engine's answer has
/// been read to its end (<paramref name="ended"/>), so the relay gives the route's slot back when the engine is done,
/// not when a client that reads slowly has taken the last byte. Without it a client reading at a trickle (Kestrel only
/// cuts one below 240 bytes a second) held an engine slot for as long as it liked while the engine sat idle, and other
/// tenants waited behind it in the route's queue.
/// </summary>
/// <remarks>
/// What the engine sent is read here as it arrives, into a pipe that pauses the engine once <paramref name="aheadBytes"/>
/// are waiting for the client (then the slot stays held until the client has read half of them, as before: memory per
/// relay is bounded). Reads return what the pipe holds; the engine's failure (a connection lost mid-answer) reaches the
/// reader as the same exception, after what came before it. Disposing stops the reading and closes the engine's stream.
/// </remarks>
internal sealed class ReadAheadStream : Stream
{
    private const int ReadSize = 16 * 1024;

    private readonly Stream _engine;
    private readonly Pipe _pipe;
    private readonly Stream _reader;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pump;
    private readonly ReadAheadBudget? _budget;
    private volatile ExceptionDispatchInfo? _failure;
    private long _buffered; // flushed to the pipe, not yet read by the client
    private long _charged; // of those, bytes taken from the budget
    private TaskCompletionSource? _drained;

    /// <param name="engine">The engine's answer stream; this stream owns it.</param>
    /// <param name="aheadBytes">Bytes read ahead of the client at most (at least 64 KiB).</param>
    /// <param name="ended">Told once, on the reading task, when the engine's answer has been read to its end.</param>
    /// <param name="budget">What all relays may hold ahead of their clients together; null: only this relay's bound.</param>
    public ReadAheadStream(Stream engine, long aheadBytes, Action ended, ReadAheadBudget? budget = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        ArgumentNullException.ThrowIfNull(ended);
        _engine = engine;
        _budget = budget;
        var pause = Math.Max(64 * 1024, aheadBytes);
        // Inline: the relay's reader goes on on the thread that read the engine's bytes, as it did when it read them
        // itself, so read-ahead adds no thread-pool hop to an event's way to the client.
        _pipe = new Pipe(new PipeOptions(
            readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, pauseWriterThreshold: pause, resumeWriterThreshold: pause / 2,
            minimumSegmentSize: ReadSize, useSynchronizationContext: false));
        _reader = _pipe.Reader.AsStream();
        _pump = Task.Run(() => PumpAsync(ended));
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Ended(Taken(_reader.Read(buffer, offset, count)));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Ended(Taken(await _reader.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)));

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            StopAsync().AsTask().GetAwaiter().GetResult();
        }

        base.Dispose(disposing);
    }

    private async ValueTask StopAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        await _pipe.Reader.CompleteAsync().ConfigureAwait(false);

        // The pump ends at once: its read is cancelled (closing the engine's connection) or its flush sees the reader gone.
        await _pump.ConfigureAwait(false);
        await _engine.DisposeAsync().ConfigureAwait(false);
        _budget?.Return(Interlocked.Exchange(ref _charged, 0));
        _stop.Dispose();
    }

    /// <summary>The client took <paramref name="read"/> bytes: the budget gets back what they held of it.</summary>
    private int Taken(int read)
    {
        if (read > 0)
        {
            if (_budget is not null)
            {
                long charged, back;
                do
                {
                    charged = Volatile.Read(ref _charged);
                    back = Math.Min(charged, read);
                }
                while (Interlocked.CompareExchange(ref _charged, charged - back, charged) != charged);

                _budget.Return(back);
            }

            if (Interlocked.Add(ref _buffered, -read) == 0)
            {
                Interlocked.Exchange(ref _drained, null)?.TrySetResult();
            }
        }

        return read;
    }

    /// <summary>
    /// Whether the next read is charged to the budget. Refused, it waits until the client has taken all this relay
    /// holds, and then reads one piece uncharged: the engine goes at the client's pace, as it did without read-ahead.
    /// </summary>
    private async ValueTask<bool> ChargeAsync()
    {
        if (_budget is null || _budget.TryTake(ReadSize))
        {
            return true;
        }

        var drained = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _drained, drained);
        if (Volatile.Read(ref _buffered) != 0)
        {
            await drained.Task.WaitAsync(_stop.Token).ConfigureAwait(false);
        }

        Volatile.Write(ref _drained, null);
        return false;
    }

    /// <summary>The end of what the engine sent: its failure, if it failed, once everything before it has been read.</summary>
    private int Ended(int read)
    {
        if (read == 0 && _failure is { } failure)
        {
            failure.Throw();
        }

        return read;
    }

    private async Task PumpAsync(Action ended)
    {
        try
        {
            while (true)
            {
                var charged = await ChargeAsync().ConfigureAwait(false);
                var memory = _pipe.Writer.GetMemory(ReadSize)[..ReadSize];
                int read;
                try
                {
                    read = await _engine.ReadAsync(memory, _stop.Token).ConfigureAwait(false);
                }
                catch when (charged)
                {
                    _budget?.Return(ReadSize);
                    throw;
                }

                if (charged)
                {
                    _budget?.Return(ReadSize - read);
                    Interlocked.Add(ref _charged, read);
                }

                if (read == 0)
                {
                    break;
                }

                _pipe.Writer.Advance(read);
                Interlocked.Add(ref _buffered, read);
                if ((await _pipe.Writer.FlushAsync(_stop.Token).ConfigureAwait(false)).IsCompleted)
                {
                    // The reader left (the client is gone, or the relay stopped): nothing more is read.
                    return;
                }
            }

            ended();
        }
        catch (Exception ex)
        {
            // The reader gets it after what came before it (a pipe completed with it would throw at once, losing what
            // the client had not read yet); after a stop nobody reads it.
            _failure = ExceptionDispatchInfo.Capture(ex);
        }
        finally
        {
            await _pipe.Writer.CompleteAsync().ConfigureAwait(false);
        }
    }
}
