using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.Console;

/// <summary>
/// The console's only way to data: the same HTTP API the CLI uses (/admin/v1 with the operator token, /v1 with a
/// tenant key), called on this very server. Requests keep the browser's scheme and host (so TLS and the host name
/// check work as usual) but connect to the local endpoint the browser reached.
/// </summary>
internal sealed class ConsoleApiClient
{
    private static readonly HttpRequestOptionsKey<IPEndPoint> Target = new("sovereign.console.target");

    private static readonly HttpClient Shared = new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        PooledConnectionLifetime = TimeSpan.FromMinutes(2),
        ConnectCallback = async (context, cancellationToken) =>
        {
            if (!context.InitialRequestMessage.Options.TryGetValue(Target, out var endpoint))
            {
                throw new InvalidOperationException("A console request without its target endpoint.");
            }

            var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(endpoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    {
        Timeout = TimeSpan.FromSeconds(100),
    };

    private readonly Uri _base;
    private readonly IPEndPoint _endpoint;
    private readonly string _credential;

    public ConsoleApiClient(HttpContext context, string credential)
    {
        var local = context.Connection.LocalIpAddress ?? IPAddress.Loopback;
        _endpoint = new IPEndPoint(local.IsIPv4MappedToIPv6 ? local.MapToIPv4() : local, context.Connection.LocalPort);
        // An HTTP/1.0 request may come without a Host header: then name the endpoint itself.
        _base = new Uri($"{context.Request.Scheme}://{(context.Request.Host.HasValue ? context.Request.Host.Value : _endpoint.ToString())}/");
        _credential = credential;
    }

    public Task<ApiAnswer> GetAsync(string path, CancellationToken cancellationToken) => SendAsync(HttpMethod.Get, path, null, cancellationToken);

    public async Task<ApiAnswer> SendAsync(HttpMethod method, string path, object? body, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, new Uri(_base, path.TrimStart('/')))
        {
            Content = body is null ? null : JsonContent.Create(body, options: OpenAIJson.Options),
        };
        request.Options.Set(Target, _endpoint);
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

        return new ApiAnswer((int)response.StatusCode, json, text, contentType);
    }
}

/// <summary>One answer of the API: status, JSON (when it was JSON), the raw text and its media type.</summary>
internal sealed record ApiAnswer(int Status, JsonElement Json, string Text, string ContentType)
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
