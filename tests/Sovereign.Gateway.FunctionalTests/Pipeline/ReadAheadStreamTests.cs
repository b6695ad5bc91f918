using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>The relay's read-ahead of an engine's answer (<see cref="ReadAheadStream"/>): what the reader gets, and when the engine is done.</summary>
public sealed class ReadAheadStreamTests
{
    [Fact]
    public async Task TheReaderGetsEveryByte_AndTheEndIsToldOnceTheEnginesAnswerIsRead_BeforeTheReaderTookIt()
    {
        var answer = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 7)).ToArray();
        var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var told = 0;
        await using var stream = new ReadAheadStream(new MemoryStream(answer), 1024 * 1024, () =>
        {
            Interlocked.Increment(ref told);
            ended.TrySetResult();
        });

        // Told with nothing read yet: the whole answer fits the bound.
        await ended.Task.WaitAsync(TimeSpan.FromSeconds(30));
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        Assert.Equal(answer, copy.ToArray());
        Assert.Equal(1, told);
    }

    [Fact]
    public async Task AnEngineThatFailsMidAnswer_GivesTheReaderWhatCameFirst_ThenItsOwnException_AndNoEnd()
    {
        var failure = new IOException("connection reset by the engine");
        var told = false;
        await using var stream = new ReadAheadStream(new FailingStream(new byte[1000], failure), 1024 * 1024, () => told = true);
        var buffer = new byte[4096];
        var read = 0;
        var thrown = await Assert.ThrowsAsync<IOException>(async () =>
        {
            while (true)
            {
                var n = await stream.ReadAsync(buffer.AsMemory(read));
                if (n == 0)
                {
                    break;
                }

                read += n;
            }
        });

        Assert.Same(failure, thrown);
        Assert.Equal(1000, read);
        Assert.False(told);
    }

    [Fact]
    public async Task AReaderThatLeavesEarly_StopsTheReading_AndClosesTheEnginesStream()
    {
        var engine = new EndlessStream();
        var told = false;
        var stream = new ReadAheadStream(engine, 64 * 1024, () => told = true);
        var buffer = new byte[100];
        Assert.Equal(100, await stream.ReadAtLeastAsync(buffer, 100));
        await stream.DisposeAsync();
        Assert.True(engine.Disposed);
        Assert.False(told);
    }

    [Fact]
    public async Task RelaysTogether_HoldNoMoreThanTheBudget_ARefusedOneGoesAtItsClientsPace_AndEveryByteComesBack()
    {
        // One relay whose client reads nothing takes the whole budget (64 KiB) and no more of the engine, although its
        // own bound (1 MiB) has room: without the shared bound, stream after unread stream held 8 MiB each.
        var budget = new ReadAheadBudget(64 * 1024);
        var unread = new EndlessStream();
        var first = new ReadAheadStream(unread, 1024 * 1024, () => { }, budget);
        await budget.Refused.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(0, budget.Available);
        Assert.Equal(64 * 1024, unread.Sent);

        // Another relay, refused, still gives its client every byte, in the engine's order.
        var answer = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 7)).ToArray();
        var told = 0;
        using (var copy = new MemoryStream())
        {
            await using (var second = new ReadAheadStream(new MemoryStream(answer), 1024 * 1024, () => Interlocked.Increment(ref told), budget))
            {
                await second.CopyToAsync(copy);
            }

            Assert.Equal(answer, copy.ToArray());
            Assert.Equal(1, told);
        }

        // What the first held comes back when it ends, its client gone.
        await first.DisposeAsync();
        Assert.True(unread.Disposed);
        Assert.Equal(64 * 1024, budget.Available);
    }

    private sealed class FailingStream(byte[] first, Exception failure) : MemoryStream(first)
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await base.ReadAsync(buffer, cancellationToken);
            return read > 0 ? read : throw failure;
        }
    }

    /// <summary>An engine that never stops answering until its reader is cancelled.</summary>
    private sealed class EndlessStream : Stream
    {
        private long _sent;

        public bool Disposed { get; private set; }

        /// <summary>Bytes handed to the reader so far.</summary>
        public long Sent => Interlocked.Read(ref _sent);

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            buffer.Span.Fill(1);
            Interlocked.Add(ref _sent, buffer.Length);
            return ValueTask.FromResult(buffer.Length);
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            Disposed = true;
            base.Dispose(disposing);
        }
    }
}
