// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Sovereign.Inference.Tests.Registry;

/// <summary>One request the server saw.</summary>
internal sealed record RecordedRequest(string Method, string Path, string? Range, string? Authorization);

/// <summary>A file the server serves, and how it misbehaves.</summary>
internal sealed class ServedFile(byte[] content)
{
    private int _cutsLeft;

    public byte[] Content { get; } = content;

    /// <summary>Honour <c>Range: bytes=N-</c> with 206; otherwise always answer 200 with everything.</summary>
    public bool SupportsRange { get; set; } = true;

    /// <summary>Extra response headers (ETag, X-Linked-Etag, ...).</summary>
    public Dictionary<string, string> Headers { get; } = [];

    /// <summary>Bytes of the body sent before the connection is aborted, for the next <see cref="CutNext"/> GETs.</summary>
    public long CutAfterBytes { get; private set; }

    /// <summary>Abort the next <paramref name="times"/> GETs after <paramref name="bytes"/> bytes of body.</summary>
    public void CutNext(int times, long bytes)
    {
        CutAfterBytes = bytes;
        _cutsLeft = times;
    }

    internal bool TakeCut() => Interlocked.Decrement(ref _cutsLeft) >= 0;
}

/// <summary>
/// A Kestrel server on 127.0.0.1 with an ephemeral port serving in-memory files: Range requests, aborted connections,
/// redirects with headers (Hugging Face's 302 with X-Linked-Etag), and a record of every request.
/// </summary>
internal sealed class LoopbackFileServer : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, ServedFile> _files = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (string Location, Dictionary<string, string> Headers)> _redirects = new(StringComparer.Ordinal);
    private WebApplication? _app;

    public Uri BaseAddress { get; private set; } = null!;

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    public static async Task<LoopbackFileServer> StartAsync()
    {
        var server = new LoopbackFileServer();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.Run(server.HandleAsync);
        await app.StartAsync();
        server._app = app;
        server.BaseAddress = new Uri(app.Urls.First().TrimEnd('/') + "/");
        return server;
    }

    public ServedFile Serve(string path, byte[] content)
    {
        var file = new ServedFile(content);
        _files[path] = file;
        return file;
    }

    public void Redirect(string path, string location, Dictionary<string, string>? headers = null) =>
        _redirects[path] = (location, headers ?? []);

    public Uri Url(string path) => new(BaseAddress, path.TrimStart('/'));

    public IReadOnlyList<RecordedRequest> Gets(string path) =>
        [.. Requests.Where(r => r.Method == "GET" && r.Path == path)];

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        var path = request.Path.Value ?? "/";
        Requests.Enqueue(new RecordedRequest(request.Method, path, request.Headers.Range.FirstOrDefault(), request.Headers.Authorization.FirstOrDefault()));
        var response = context.Response;

        if (_redirects.TryGetValue(path, out var redirect))
        {
            response.StatusCode = StatusCodes.Status302Found;
            response.Headers.Location = redirect.Location;
            foreach (var (name, value) in redirect.Headers)
            {
                response.Headers[name] = value;
            }

            return;
        }

        if (!_files.TryGetValue(path, out var file))
        {
            response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        foreach (var (name, value) in file.Headers)
        {
            response.Headers[name] = value;
        }

        long length = file.Content.Length;
        long start = 0;
        var range = request.Headers.Range.FirstOrDefault();
        if (file.SupportsRange)
        {
            response.Headers.AcceptRanges = "bytes";
            if (range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
            {
                start = long.Parse(range["bytes=".Length..^1], CultureInfo.InvariantCulture);
                if (start >= length)
                {
                    response.StatusCode = StatusCodes.Status416RangeNotSatisfiable;
                    response.Headers.ContentRange = $"bytes */{length}";
                    return;
                }

                response.StatusCode = StatusCodes.Status206PartialContent;
                response.Headers.ContentRange = $"bytes {start}-{length - 1}/{length}";
            }
        }

        response.ContentLength = length - start;
        response.ContentType = "application/octet-stream";
        if (HttpMethods.IsHead(request.Method))
        {
            return;
        }

        if (file.TakeCut())
        {
            var sent = (int)Math.Min(file.CutAfterBytes, length - start);
            await response.Body.WriteAsync(file.Content.AsMemory((int)start, sent));
            await response.Body.FlushAsync();
            await CutAsync(context);
            return;
        }

        await response.Body.WriteAsync(file.Content.AsMemory((int)start));
    }

    /// <summary>
    /// Ends the connection mid-body without losing what was sent: FIN after the flushed bytes (an abort's RST could
    /// make the client's kernel drop bytes it had received but not yet read), then wait for the client to hang up.
    /// </summary>
    private static async Task CutAsync(HttpContext context)
    {
        var socket = context.Features.Get<IConnectionSocketFeature>()?.Socket
            ?? throw new InvalidOperationException("Kestrel did not expose the connection's socket.");
        socket.Shutdown(SocketShutdown.Send);
        try
        {
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            // The client saw the short body and closed the connection.
        }
    }
}
