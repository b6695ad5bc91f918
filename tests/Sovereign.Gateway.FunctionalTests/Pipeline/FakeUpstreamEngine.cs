using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// An external OpenAI-compatible engine for tests: a real Kestrel server on a free loopback port whose
/// <c>/v1/chat/completions</c> answers as the test says (a well-formed answer, a malformed one, a dropped connection).
/// </summary>
internal sealed class FakeUpstreamEngine : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _requests;

    private FakeUpstreamEngine(WebApplication app) => _app = app;

    /// <summary>The engine's base URL, as an operator registers it.</summary>
    public string Url => _app.Urls.First();

    /// <summary>Chat (and embeddings) requests the engine received.</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>
    /// Starts an engine whose chat completions answer as <paramref name="chat"/> says, its embeddings as
    /// <paramref name="embeddings"/>, its text completions as <paramref name="completions"/> and a node's
    /// <c>/tokenize</c> and <c>/detokenize</c> as <paramref name="tokenizer"/> (none: 404).
    /// </summary>
    public static async Task<FakeUpstreamEngine> StartAsync(Func<HttpContext, Task> chat, Func<HttpContext, Task>? embeddings = null, Func<HttpContext, Task>? completions = null,
        Func<HttpContext, Task>? tokenizer = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var engine = new FakeUpstreamEngine(app);
        app.MapPost("/v1/chat/completions", context =>
        {
            Interlocked.Increment(ref engine._requests);
            return chat(context);
        });
        if (embeddings is not null)
        {
            app.MapPost("/v1/embeddings", context =>
            {
                Interlocked.Increment(ref engine._requests);
                return embeddings(context);
            });
        }

        if (completions is not null)
        {
            app.MapPost("/v1/completions", context =>
            {
                Interlocked.Increment(ref engine._requests);
                return completions(context);
            });
        }

        if (tokenizer is not null)
        {
            foreach (var path in new[] { "/tokenize", "/detokenize" })
            {
                app.MapPost(path, context =>
                {
                    Interlocked.Increment(ref engine._requests);
                    return tokenizer(context);
                });
            }
        }

        await app.StartAsync();
        return engine;
    }

    /// <summary>A well-formed non-streamed chat answer with the given usage object (raw JSON, so tests can break it).</summary>
    public static Task AnswerAsync(HttpContext context, string usageJson, string content = "Hello")
    {
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(
            $$"""{"id":"chatcmpl-fake","object":"chat.completion","created":1,"model":"upstream","choices":[{"index":0,"message":{"role":"assistant","content":"{{content}}"},"finish_reason":"stop"}],"usage":{{usageJson}}}""");
    }

    /// <summary>A URL nothing listens on: connections to it are refused.</summary>
    public static string RefusingUrl() => $"http://127.0.0.1:{Sovereign.Tests.LoopbackPorts.Unused()}";

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
