using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Sovereign.Benchmarks.Inference;

/// <summary>
/// Drives the real server over loopback HTTP with POST /v1/completions (prompt as token ids, so every route decodes
/// the same tokens; temperature 0). Streaming requests read the SSE stream line by line: TTFT is the first chunk
/// that carries text, and the token count comes from the usage chunk (stream_options.include_usage).
/// </summary>
internal sealed class HttpRunner : IRunner, IDisposable
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");
    private readonly HttpClient _client;
    private readonly string _model;

    public HttpRunner(Uri baseAddress, string model)
    {
        _model = model;
        _client = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 1024,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
        })
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromMinutes(10),
        };
    }

    public Route Route => Route.Http;

    public Task<RunSample> RunAsync(int[] prompt, int concurrency, int maxTokens, bool stream, CancellationToken cancellationToken) =>
        RunAsync(Enumerable.Repeat(prompt, concurrency).ToArray(), maxTokens, stream, cancellationToken);

    /// <summary>One request per prompt, all sent at once.</summary>
    public async Task<RunSample> RunAsync(IReadOnlyList<int[]> prompts, int maxTokens, bool stream, CancellationToken cancellationToken)
    {
        // Bodies are serialized before the clock starts, so JSON writing is not part of the run.
        var bodies = prompts.Select(p => Body(p, maxTokens, stream)).ToArray();
        var start = Stopwatch.GetTimestamp();
        var tasks = new Task<RequestSample>[bodies.Length];
        for (var i = 0; i < bodies.Length; i++)
        {
            tasks[i] = stream ? StreamAsync(bodies[i], start, cancellationToken) : CompleteAsync(bodies[i], cancellationToken);
        }

        var samples = await Task.WhenAll(tasks);
        return new RunSample(Clock.Since(start), samples);
    }

    public void Dispose() => _client.Dispose();

    /// <summary>Round trips of GET /health, in ms: the floor of any HTTP request here (Kestrel, client, loopback), without the gateway's /v1 work.</summary>
    public async Task<double[]> PingAsync(int count)
    {
        var times = new double[count];
        for (var i = 0; i < count; i++)
        {
            var start = Stopwatch.GetTimestamp();
            using var response = await _client.GetAsync("health");
            _ = await response.Content.ReadAsByteArrayAsync();
            response.EnsureSuccessStatusCode();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        return times;
    }

    /// <summary>Whether one non-streaming request for <paramref name="prompt"/> succeeds (any error status: false).</summary>
    public async Task<bool> SucceedsAsync(int[] prompt, int maxTokens, CancellationToken cancellationToken)
    {
        using var response = await _client.PostAsync("v1/completions", Content(Body(prompt, maxTokens, stream: false)), cancellationToken);
        _ = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        return response.IsSuccessStatusCode;
    }

    private async Task<RequestSample> CompleteAsync(byte[] body, CancellationToken cancellationToken)
    {
        using var response = await _client.PostAsync("v1/completions", Content(body), cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"HTTP {(int)response.StatusCode}: {text}");
        }

        using var json = JsonDocument.Parse(text);
        return new RequestSample(null, null, json.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    private async Task<RequestSample> StreamAsync(byte[] body, long start, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = Content(body) };
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync(cancellationToken)}");
        }

        await using var content = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var reader = new StreamReader(content, Encoding.UTF8);
        TimeSpan? first = null;
        TimeSpan? end = null;
        int? tokens = null;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal))
            {
                continue;
            }

            if (line.AsSpan(6).SequenceEqual("[DONE]"))
            {
                break;
            }

            var now = Clock.Since(start);
            using var json = JsonDocument.Parse(line.AsMemory(6));
            var root = json.RootElement;
            if (root.TryGetProperty("error", out var error))
            {
                throw new InvalidOperationException("stream error: " + error.GetRawText());
            }

            if (root.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0)
            {
                var choice = choices[0];
                if (choice.TryGetProperty("text", out var text) && text.GetString() is { Length: > 0 })
                {
                    first ??= now;
                }

                if (choice.TryGetProperty("finish_reason", out var finish) && finish.ValueKind == JsonValueKind.String)
                {
                    end = now;
                }
            }

            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
            {
                tokens = usage.GetProperty("completion_tokens").GetInt32();
            }
        }

        var last = end ?? Clock.Since(start);
        first ??= last;
        return new RequestSample(first, last - first, tokens ?? throw new InvalidOperationException("The stream carried no usage chunk."));
    }

    private static ByteArrayContent Content(byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = Json;
        return content;
    }

    private byte[] Body(int[] prompt, int maxTokens, bool stream)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("model", _model);
            writer.WriteStartArray("prompt");
            foreach (var token in prompt)
            {
                writer.WriteNumberValue(token);
            }

            writer.WriteEndArray();
            writer.WriteNumber("max_tokens", maxTokens);
            writer.WriteNumber("temperature", 0);
            writer.WriteBoolean("stream", stream);
            if (stream)
            {
                writer.WriteStartObject("stream_options");
                writer.WriteBoolean("include_usage", true);
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }
}
