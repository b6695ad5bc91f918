using Microsoft.AspNetCore.Http;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// A client that ends its side of the connection (FIN) before the body it announced is complete: Kestrel both ends the
/// body early and aborts the request, and which of the two the body's read saw first was up to the thread pool. Seen
/// as the end of the body it was the 400 malformed_request, logged; seen as the abort, an OperationCanceledException,
/// a client gone, logged nowhere (<c>HostileInputTests.BodyCutShortByTheClientsEndOfStream_IsA400WithACode</c> failed
/// under load). The rest of the body decides: here Kestrel's order is played back deterministically, abort first.
/// </summary>
public sealed class BodyEndedByTheClientTests
{
    [Fact]
    public async Task TheAbortSeenBeforeTheBodysEnd_IsStillTheMalformedBody_NotAClientGone()
    {
        using var aborted = new CancellationTokenSource();
        aborted.Cancel();
        var context = new DefaultHttpContext { RequestAborted = aborted.Token };
        context.Request.ContentType = "application/json";
        context.Request.Body = new KestrelAfterAFin(new BadHttpRequestException("Unexpected end of request content.", StatusCodes.Status400BadRequest));

        var refused = await Assert.ThrowsAsync<BadHttpRequestException>(() => RequestReader.ReadAsync<System.Text.Json.Nodes.JsonObject>(context));
        Assert.Equal(StatusCodes.Status400BadRequest, refused.StatusCode);
    }

    [Fact]
    public async Task TheAbortSeenBeforeAReset_IsStillAClientThatLeft()
    {
        using var aborted = new CancellationTokenSource();
        aborted.Cancel();
        var context = new DefaultHttpContext { RequestAborted = aborted.Token };
        context.Request.ContentType = "application/json";
        context.Request.Body = new KestrelAfterAFin(new Microsoft.AspNetCore.Connections.ConnectionResetException("reset"));

        await Assert.ThrowsAsync<Microsoft.AspNetCore.Connections.ConnectionResetException>(() => RequestReader.ReadAsync<System.Text.Json.Nodes.JsonObject>(context));
    }

    /// <summary>
    /// A body as Kestrel's reads it once the client's side has ended: a read given the aborted request's token is
    /// cancelled; any read after it finds the input's end (<paramref name="end"/>).
    /// </summary>
    private sealed class KestrelAfterAFin(Exception end) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            cancellationToken.IsCancellationRequested ? ValueTask.FromException<int>(new OperationCanceledException(cancellationToken)) : ValueTask.FromException<int>(end);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
