using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// An OpenAI-compatible engine that speaks chat completions only, as vLLM, llama-server and Ollama do for tools
/// (Kestrel on a free loopback port): it answers deterministically and keeps every body it received, so tests can
/// see what the gateway sent. With tools it calls the first one; otherwise it writes <see cref="Words"/> up to
/// max_tokens (<see cref="ManyWords"/> for a last user message starting "many:", more than the Responses API's least
/// limit of 16). A last user message "refuse" gets a 400 of its own, "hold" a stream that stops after its words and
/// holds until the client leaves; /v1/responses does not exist here (404). With tools, a last user message "twin calls"
/// gets two calls of the first tool under one id (<see cref="CallId"/>), as some engines give them.
/// </summary>
public sealed class FakeChatEngine : IAsyncLifetime
{
    public const int PromptTokens = 11;
    public const string CallId = "call_fake_0001";
    public const string CallArguments = """{"city":"Bangkok"}""";

    /// <summary>The second call's arguments when the last message is "interleaved calls".</summary>
    public const string SecondCallArguments = """{"city":"Hanoi"}""";
    public static readonly string[] Words = ["Hello", " from", " the", " upstream", "."];

    /// <summary><see cref="Words"/> four times over: 20 words.</summary>
    public static readonly string[] ManyWords = [.. Words, .. Words, .. Words, .. Words];

    private WebApplication _app = null!;

    /// <summary>Every chat-completions body received, in order.</summary>
    public ConcurrentQueue<JsonObject> Received { get; } = new();

    /// <summary>Paths requested that this engine does not serve.</summary>
    public ConcurrentQueue<string> Unknown { get; } = new();

    public string BaseUrl { get; private set; } = null!;

    /// <summary>
    /// The key /metrics asks for, as llama-server started with --api-key does (401 without it); it then reports
    /// <see cref="KvCacheUse"/> as llama-server's KV-cache ratio. Null: no /metrics (404, as Ollama).
    /// </summary>
    public string? MetricsKey { get; init; }

    public const double KvCacheUse = 0.25;

    /// <summary>
    /// Whether it presents itself as vLLM: /metrics (no key) shows a <c>vllm:</c> sample, and a stream asked for
    /// <c>stream_options.continuous_usage_stats</c> carries the usage so far on every content event, as vLLM's does.
    /// </summary>
    public bool Vllm { get; init; }

    private int _metricsPages;

    /// <summary>How many /metrics pages were asked for: once two were, a prober has read the first.</summary>
    public int MetricsPages => Volatile.Read(ref _metricsPages);

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        _app = builder.Build();
        _app.MapPost("/v1/chat/completions", HandleAsync);
        if (MetricsKey is { } metricsKey)
        {
            _app.MapGet("/metrics", (HttpContext context) => context.Request.Headers.Authorization == "Bearer " + metricsKey
                ? Results.Text(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"llamacpp:kv_cache_usage_ratio {KvCacheUse}\n"), "text/plain")
                : Results.StatusCode(401));
        }

        if (Vllm)
        {
            _app.MapGet("/metrics", () =>
            {
                Interlocked.Increment(ref _metricsPages);
                return Results.Text(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"vllm:kv_cache_usage_perc{{model_name=\"m\"}} {KvCacheUse}\n"), "text/plain");
            });
        }

        _app.MapFallback(context =>
        {
            Unknown.Enqueue(context.Request.Path);
            context.Response.StatusCode = 404;
            return Task.CompletedTask;
        });
        await _app.StartAsync();
        BaseUrl = _app.Urls.First();
    }

    /// <summary>The body of the last request whose last message has this content.</summary>
    public JsonObject LastWith(string lastContent) =>
        Received.Last(b => b["messages"]!.AsArray()[^1]!["content"]?.GetValue<string>() == lastContent);

    private async Task HandleAsync(HttpContext context)
    {
        var body = (await JsonNode.ParseAsync(context.Request.Body))!.AsObject();
        Received.Enqueue(body);
        var last = body["messages"]!.AsArray()[^1]!;
        if (last["content"]?.GetValue<string>() == "refuse")
        {
            context.Response.StatusCode = 400;
            await context.Response.WriteAsJsonAsync(new { error = new { message = "The engine refuses this.", type = "invalid_request_error", param = "messages", code = "engine_refused" } });
            return;
        }

        var stream = body["stream"]?.GetValue<bool>() == true;
        var toolName = body["tools"] is JsonArray { Count: > 0 } tools && last["role"]!.GetValue<string>() != "tool"
            ? tools[0]!["function"]!["name"]!.GetValue<string>()
            : null;
        var maxTokens = body["max_tokens"]?.GetValue<int>() ?? int.MaxValue;
        var all = last["content"]?.GetValueKind() == System.Text.Json.JsonValueKind.String && last["content"]!.GetValue<string>().StartsWith("many:", StringComparison.Ordinal)
            ? ManyWords
            : Words;
        var words = all.Take(maxTokens).ToArray();
        var twin = toolName is not null && last["content"]?.GetValueKind() == System.Text.Json.JsonValueKind.String && last["content"]!.GetValue<string>() == "twin calls";
        // "interleaved calls": two calls whose streamed fragments alternate (each delta says its call's index).
        var interleaved = toolName is not null && last["content"]?.GetValueKind() == System.Text.Json.JsonValueKind.String && last["content"]!.GetValue<string>() == "interleaved calls";
        var calls = twin || interleaved ? 2 : 1;
        var finish = toolName is not null ? "tool_calls" : words.Length < all.Length ? "length" : "stop";
        var completionTokens = toolName is not null ? 6 * calls : words.Length;
        var usage = new JsonObject { ["prompt_tokens"] = PromptTokens, ["completion_tokens"] = completionTokens, ["total_tokens"] = PromptTokens + completionTokens };
        if (!stream)
        {
            var message = toolName is null
                ? new JsonObject { ["role"] = "assistant", ["content"] = string.Concat(words) }
                : new JsonObject
                {
                    ["role"] = "assistant",
                    ["content"] = null,
                    ["tool_calls"] = new JsonArray([.. Enumerable.Range(0, calls).Select(_ =>
                        (JsonNode)new JsonObject { ["id"] = CallId, ["type"] = "function", ["function"] = new JsonObject { ["name"] = toolName, ["arguments"] = CallArguments } })]),
                };
            await context.Response.WriteAsJsonAsync(new JsonObject
            {
                ["id"] = "chatcmpl-fake",
                ["object"] = "chat.completion",
                ["model"] = body["model"]!.GetValue<string>(),
                ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["message"] = message, ["finish_reason"] = finish }),
                ["usage"] = usage,
            });
            return;
        }

        context.Response.ContentType = "text/event-stream";
        async Task Chunk(JsonObject? delta, string? finishReason, JsonObject? chunkUsage = null)
        {
            var chunk = new JsonObject
            {
                ["id"] = "chatcmpl-fake",
                ["object"] = "chat.completion.chunk",
                ["model"] = body["model"]!.GetValue<string>(),
                ["choices"] = delta is null ? new JsonArray() : new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = finishReason }),
            };
            if (chunkUsage is not null)
            {
                chunk["usage"] = chunkUsage;
            }

            await context.Response.WriteAsync("data: " + chunk.ToJsonString() + "\n\n");
            await context.Response.Body.FlushAsync();
        }

        var usageSoFar = Vllm && body["stream_options"]?["continuous_usage_stats"]?.GetValue<bool>() == true;
        JsonObject? SoFar(int completion) => usageSoFar
            ? new JsonObject { ["prompt_tokens"] = PromptTokens, ["completion_tokens"] = completion, ["total_tokens"] = PromptTokens + completion }
            : null;
        await Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, SoFar(0));
        if (toolName is null)
        {
            for (var i = 0; i < words.Length; i++)
            {
                await Chunk(new JsonObject { ["content"] = words[i] }, null, SoFar(i + 1));
            }

            if (last["content"]?.GetValue<string>() == "hold")
            {
                // A long answer still being generated: the engine holds until its client leaves.
                await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
                return;
            }
        }
        else
        {
            if (interleaved)
            {
                string[] ids = [CallId, CallId + "b"];
                string[] arguments = [CallArguments, SecondCallArguments];
                for (var call = 0; call < 2; call++)
                {
                    await Chunk(new JsonObject { ["tool_calls"] = new JsonArray(new JsonObject { ["index"] = call, ["id"] = ids[call], ["type"] = "function", ["function"] = new JsonObject { ["name"] = toolName, ["arguments"] = "" } }) }, null);
                }

                for (var part = 0; part < 2; part++)
                {
                    for (var call = 0; call < 2; call++)
                    {
                        var fragment = part == 0 ? arguments[call][..9] : arguments[call][9..];
                        await Chunk(new JsonObject { ["tool_calls"] = new JsonArray(new JsonObject { ["index"] = call, ["function"] = new JsonObject { ["arguments"] = fragment } }) }, null);
                    }
                }
            }

            // OpenAI's shape: the first delta names the call, the next ones carry fragments of its arguments.
            for (var call = 0; call < (interleaved ? 0 : calls); call++)
            {
                await Chunk(new JsonObject { ["tool_calls"] = new JsonArray(new JsonObject { ["index"] = call, ["id"] = CallId, ["type"] = "function", ["function"] = new JsonObject { ["name"] = toolName, ["arguments"] = "" } }) }, null);
                foreach (var fragment in new[] { CallArguments[..9], CallArguments[9..] })
                {
                    await Chunk(new JsonObject { ["tool_calls"] = new JsonArray(new JsonObject { ["index"] = call, ["function"] = new JsonObject { ["arguments"] = fragment } }) }, null);
                }
            }
        }

        await Chunk(new JsonObject(), finish);
        if (body["stream_options"]?["include_usage"]?.GetValue<bool>() == true)
        {
            await Chunk(null, null, usage);
        }

        await context.Response.WriteAsync("data: [DONE]\n\n");
    }

    public async Task DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
