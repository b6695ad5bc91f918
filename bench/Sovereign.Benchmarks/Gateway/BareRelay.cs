using System.Net;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// The ceiling of any gateway of this shape on this machine: a bare minimal-API Kestrel endpoint that passes
/// <c>POST /v1/chat/completions</c> to the mock engine with a plain <see cref="HttpClient"/> (one pooled HTTP/1.1
/// connection per caller, TCP_NODELAY as the gateway's relay) and returns the engine's JSON answer as it came. No key,
/// no decision, no audit, no money: what the two extra loopback hops, Kestrel and HttpClient cost by themselves, so the
/// governed path's cost can be split into the proxy's floor and the governance above it.
/// </summary>
internal sealed class BareRelay : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpMessageInvoker _client;

    private BareRelay(WebApplication app, HttpMessageInvoker client) => (_app, _client) = (app, client);

    public string Url => _app.Urls.First();

    public static async Task<BareRelay> StartAsync(string engineUrl)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var client = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ConnectCallback = async (context, ct) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(context.DnsEndPoint, ct);
                return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
            },
        });
        var target = new Uri(engineUrl.TrimEnd('/') + "/v1/chat/completions");
        var json = new MediaTypeHeaderValue("application/json");
        app.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            var length = (int)(context.Request.ContentLength ?? 0);
            var body = new byte[length];
            await context.Request.Body.ReadExactlyAsync(body, context.RequestAborted);
            using var request = new HttpRequestMessage(HttpMethod.Post, target) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = json;
            using var answer = await client.SendAsync(request, context.RequestAborted);
            var bytes = await answer.Content.ReadAsByteArrayAsync(context.RequestAborted);
            context.Response.StatusCode = (int)answer.StatusCode;
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = bytes.Length;
            await context.Response.Body.WriteAsync(bytes, context.RequestAborted);
        });
        await app.StartAsync();
        return new BareRelay(app, client);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        _client.Dispose();
    }
}
