using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Security;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.AspNetCore.Connections.Features;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.Console;

/// <summary>
/// The console's only way to data: the same HTTP API the CLI uses (/admin/v1 with the operator token, /v1 with a
/// tenant key), called on this very server. Requests connect to the local endpoint the browser reached and carry the
/// browser's Host header (so host checks see what the browser sent); on a TLS endpoint the connection speaks TLS with
/// the browser's host name (so the server picks the certificate the browser got, and it is validated as usual).
/// </summary>
/// <remarks>
/// The connection pool is keyed by the local endpoint alone, never by the Host header. The handler pools by the
/// request URI's scheme, host and port (and, for https, by the TLS name, which it takes from the Host header), so a
/// URI or TLS name built from the browser's Host made the server open and keep one loopback connection per host name
/// a client chose to send: unbounded file descriptors for anyone who can post a console login. Hence the URI names the
/// endpoint, the scheme is always http for the handler, and TLS is done here in the connect callback.
/// </remarks>
internal sealed class ConsoleApiClient
{
    private static readonly HttpRequestOptionsKey<LoopbackTarget> Target = new("sovereign.console.target");

    private static readonly HttpClient Shared = new(new SocketsHttpHandler
    {
        // This server itself, on loopback: never through a proxy the environment names (sessions' tokens, usage).
        UseProxy = false,
        AllowAutoRedirect = false,
        PooledConnectionLifetime = TimeSpan.FromMinutes(2),
        ConnectCallback = ConnectAsync,
    })
    {
        Timeout = TimeSpan.FromSeconds(100),
    };

    private readonly Uri _base;
    private readonly LoopbackTarget _target;
    private readonly string _host;
    private readonly string _credential;

    public ConsoleApiClient(HttpContext context, string credential)
    {
        var local = context.Connection.LocalIpAddress ?? IPAddress.Loopback;
        var endpoint = new IPEndPoint(local.IsIPv4MappedToIPv6 ? local.MapToIPv4() : local, context.Connection.LocalPort);

        // An HTTP/1.0 request may come without a Host header: then name the endpoint itself.
        _host = context.Request.Host.HasValue ? context.Request.Host.Value : endpoint.ToString();
        _target = new LoopbackTarget(endpoint, context.Request.IsHttps ? TlsName(context, _host) : null);
        _base = new Uri($"http://{endpoint}/");
        _credential = credential;
    }

    public Task<ApiAnswer> GetAsync(string path, CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, path, null, cancellationToken);

    /// <summary>Sends one request; with <paramref name="ifMatch"/> it is applied only if the resource is still at that ETag (else 412).</summary>
    public async Task<ApiAnswer> SendAsync(HttpMethod method, string path, object? body, CancellationToken cancellationToken, string? ifMatch = null)
    {
        using var request = new HttpRequestMessage(method, new Uri(_base, path.TrimStart('/')))
        {
            Content = body is null ? null : JsonContent.Create(body, options: OpenAIJson.Options),
        };
        if (ifMatch is not null)
        {
            request.Headers.TryAddWithoutValidation("If-Match", ifMatch);
        }

        request.Options.Set(Target, _target);
        SetHost(request, _host);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _credential);
        using var response = await Shared.SendAsync(request, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        var contentType = response.Content.Headers.ContentType?.MediaType ?? "";
        JsonElement json = default;
        if (contentType.Contains("json", StringComparison.OrdinalIgnoreCase) && text.Length > 0)
        {
            using var document = JsonDocument.Parse(text);
            json = document.RootElement.Clone();
        }

        return new ApiAnswer((int)response.StatusCode, json, text, contentType, response.Headers.ETag?.ToString());
    }

    private static void SetHost(HttpRequestMessage request, string host)
    {
        try
        {
            request.Headers.Host = host;
        }
        catch (FormatException)
        {
            // Kestrel's and HttpClient's rules for a host differ at the edges: a host Kestrel let through but this
            // client cannot send is the browser's mistake, not a 500.
            throw OpenAIException.BadRequest("The request's Host header is not a host name this server can use.", null, "invalid_host");
        }
    }

    /// <summary>The name to open TLS with: the browser's own (SNI) if it sent one, else the Host header's name.</summary>
    private static string TlsName(HttpContext context, string host)
    {
        if (context.Features.Get<ITlsHandshakeFeature>()?.HostName is { Length: > 0 } sni)
        {
            return sni;
        }

        var name = HostString.FromUriComponent(host).Host;
        return name.StartsWith('[') && name.EndsWith(']') ? name[1..^1] : name;
    }

    private static async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        if (!context.InitialRequestMessage.Options.TryGetValue(Target, out var target))
        {
            throw new InvalidOperationException("A console request without its target endpoint.");
        }

        var socket = new Socket(target.Endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        Stream stream;
        try
        {
            await socket.ConnectAsync(target.Endpoint, cancellationToken);
            stream = new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        if (target.TlsName is not { } name)
        {
            return stream;
        }

        // The endpoint is https (one endpoint speaks one protocol, so pooling by endpoint never mixes them). The
        // connection is validated for the name of the request that opened it; later requests on it may carry other
        // host names, as a browser's requests on one TLS connection may.
        var tls = new SslStream(stream, leaveInnerStreamOpen: false);
        try
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = name,
                ApplicationProtocols = [SslApplicationProtocol.Http11],
            }, cancellationToken);
            return tls;
        }
        catch
        {
            await tls.DisposeAsync();
            throw;
        }
    }

    /// <summary>Where a console request connects: the local endpoint, and the TLS name when that endpoint is https.</summary>
    private sealed record LoopbackTarget(IPEndPoint Endpoint, string? TlsName);
}

/// <summary>One answer of the API: status, JSON (when it was JSON), the raw text and its media type.</summary>
internal sealed record ApiAnswer(int Status, JsonElement Json, string Text, string ContentType, string? ETag = null)
{
    public bool Ok => Status is >= 200 and < 300;

    /// <summary>OpenAI's error.message, or the status.</summary>
    public string ErrorMessage =>
        Json.ValueKind == JsonValueKind.Object && Json.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object && e.TryGetProperty("message", out var m)
            ? m.GetString() ?? $"HTTP {Status}"
            : $"HTTP {Status}";

    /// <summary>The "data" array of a list answer (empty when absent).</summary>
    public IEnumerable<JsonElement> Data =>
        Json.ValueKind == JsonValueKind.Object && Json.TryGetProperty("data", out var d) && d.ValueKind == JsonValueKind.Array ? d.EnumerateArray() : [];
}
