using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Connections;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.Hosting;

/// <summary>
/// Gives Kestrel's own rejections OpenAI's error body. A request Kestrel refuses before the application sees it (431
/// headers too large, 400 for a malformed request line or header, 414, 505...) is answered by Kestrel alone, with the
/// right status and an empty body: no middleware runs, and ASP.NET Core has no hook for it. So a connection
/// middleware watches what the connection writes: a response that starts while no application response is under way
/// (<see cref="MarkApplicationResponses"/> marks those), has no body, an error status and <c>Connection: close</c> is
/// one of Kestrel's rejections, and is rewritten with the same status line and headers plus the error JSON.
/// </summary>
/// <remarks>
/// It sees HTTP/1.x in clear text only: on a TLS endpoint it sits outside the TLS layer (endpoint defaults are applied
/// before <c>UseHttps</c>) and passes the records through untouched, as it passes HTTP/2 frames.
/// </remarks>
internal static class KestrelRejections
{
    /// <summary>The connection item present while an application response is being written on the connection.</summary>
    private static readonly object ApplicationResponse = new();

    /// <summary>The connection middleware (<c>ListenOptions.Use</c>).</summary>
    public static ConnectionDelegate Wrap(ConnectionDelegate next) => async connection =>
    {
        var transport = connection.Transport;
        var output = new RejectionBodyWriter(transport.Output, connection.Items);
        connection.Transport = new Transport(transport.Input, output);
        try
        {
            await next(connection);
        }
        finally
        {
            connection.Transport = transport;
        }
    };

    /// <summary>
    /// Marks every application response on its connection from its start to its end, so that only what Kestrel
    /// writes on its own is ever looked at. The first middleware.
    /// </summary>
    public static Task MarkApplicationResponses(HttpContext context, RequestDelegate next)
    {
        if (context.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionItemsFeature>()?.Items is { } items
            && context.Request.Protocol.StartsWith("HTTP/1", StringComparison.Ordinal))
        {
            context.Response.OnStarting(static state =>
            {
                ((IDictionary<object, object?>)state)[ApplicationResponse] = true;
                return Task.CompletedTask;
            }, items);
            context.Response.OnCompleted(static state =>
            {
                ((IDictionary<object, object?>)state).Remove(ApplicationResponse);
                return Task.CompletedTask;
            }, items);
        }

        return next(context);
    }

    /// <summary>The response with an error body, or null when <paramref name="response"/> is not a bodiless rejection.</summary>
    internal static byte[]? WithBody(ReadOnlySpan<byte> response)
    {
        if (!response.StartsWith("HTTP/1."u8) || !response.EndsWith("\r\n\r\n"u8) || response.Length > 4096)
        {
            return null;
        }

        var head = Encoding.ASCII.GetString(response[..^4]);
        if (head.Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            return null;
        }

        var lines = head.Split("\r\n");
        var statusLine = lines[0].Split(' ', 3);
        if (statusLine.Length < 2 || !int.TryParse(statusLine[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var status) || status < 400)
        {
            return null;
        }

        var headers = lines.Skip(1).ToList();
        bool Has(string name, string value) => headers.Any(h =>
            h.StartsWith(name + ":", StringComparison.OrdinalIgnoreCase) && h[(name.Length + 1)..].Trim().Equals(value, StringComparison.OrdinalIgnoreCase));
        if (!Has("Content-Length", "0") || !Has("Connection", "close") || headers.Any(h => h.StartsWith("Content-Type:", StringComparison.OrdinalIgnoreCase)))
        {
            return null;
        }

        var error = Error(status);
        var body = JsonSerializer.SerializeToUtf8Bytes(new OpenAIErrorEnvelope(error.ToError()), OpenAIJson.Options);
        var text = new StringBuilder(lines[0]).Append("\r\n");
        foreach (var header in headers.Where(h => !h.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)))
        {
            text.Append(header).Append("\r\n");
        }

        // OpenAI's headers, as on every answer of the application (SovereignGateway.UseEvidenceHeaders): a client that
        // reads them (.NET's GetValues("Openai-Processing-Ms") throws without it) read none here. Refused as the request
        // was read, before the gateway handled any of it: 0 ms of processing.
        if (!headers.Any(h => h.StartsWith(SovereignGateway.OpenAIVersionHeader + ":", StringComparison.OrdinalIgnoreCase)))
        {
            text.Append(SovereignGateway.OpenAIVersionHeader).Append(": ").Append(SovereignGateway.OpenAIVersion).Append("\r\n");
            text.Append(SovereignGateway.ProcessingMsHeader).Append(": 0\r\n");
        }

        text.Append("Content-Type: ").Append(OpenAIJson.ContentType).Append("\r\nContent-Length: ").Append(body.Length).Append("\r\n\r\n");
        return [.. Encoding.ASCII.GetBytes(text.ToString()), .. body];
    }

    private static OpenAIException Error(int status)
    {
        var (message, code) = status switch
        {
            StatusCodes.Status400BadRequest => ("The HTTP request is malformed: its request line, a header or its body framing could not be read.", "malformed_request"),
            StatusCodes.Status408RequestTimeout => ("The request did not arrive in time.", "request_timeout"),
            StatusCodes.Status413PayloadTooLarge => ("The request body is larger than this server accepts.", "request_too_large"),
            StatusCodes.Status414UriTooLong => ("The request URL is longer than this server accepts.", "url_too_long"),
            StatusCodes.Status431RequestHeaderFieldsTooLarge => ("The request's headers are larger than this server accepts (too many, or too long).", "request_headers_too_large"),
            StatusCodes.Status505HttpVersionNotsupported => ("This HTTP version is not supported; use HTTP/1.1 or HTTP/2.", "http_version_not_supported"),
            _ => ($"The HTTP server refused the request with status {status}.", "request_refused"),
        };
        return new OpenAIException(status, message, status >= 500 ? "server_error" : "invalid_request_error", null, code);
    }

    private sealed class Transport(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;
        public PipeWriter Output { get; } = output;
    }

    /// <summary>
    /// Passes writes through, except that what is written between two flushes while no application response is under
    /// way (Kestrel's own answers; HTTP/2 and TLS framing) is held until the flush and checked there.
    /// </summary>
    private sealed class RejectionBodyWriter(PipeWriter inner, IDictionary<object, object?> items) : PipeWriter
    {
        private readonly ArrayBufferWriter<byte> _held = new(256);
        private bool _segmentStarted;
        private bool _holding;

        private IBufferWriter<byte> Target
        {
            get
            {
                if (!_segmentStarted)
                {
                    _segmentStarted = true;
                    _holding = !items.ContainsKey(ApplicationResponse);
                }

                return _holding ? _held : inner;
            }
        }

        // Kestrel's response body writer asks the transport's writer (System.Text.Json's async serializer reads it).
        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes + _held.WrittenCount;

        public override Memory<byte> GetMemory(int sizeHint = 0) => Target.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => Target.GetSpan(sizeHint);

        public override void Advance(int bytes) => Target.Advance(bytes);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            Release();
            return inner.FlushAsync(cancellationToken);
        }

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null)
        {
            Release();
            inner.Complete(exception);
        }

        public override ValueTask CompleteAsync(Exception? exception = null)
        {
            Release();
            return inner.CompleteAsync(exception);
        }

        /// <summary>Hands the held bytes on (rewritten when they are a bodiless rejection) and ends the segment.</summary>
        private void Release()
        {
            if (_held.WrittenCount > 0)
            {
                if (WithBody(_held.WrittenSpan) is { } rewritten)
                {
                    inner.Write(rewritten);
                }
                else
                {
                    inner.Write(_held.WrittenSpan);
                }

                _held.ResetWrittenCount();
            }

            _segmentStarted = false;
        }
    }
}
