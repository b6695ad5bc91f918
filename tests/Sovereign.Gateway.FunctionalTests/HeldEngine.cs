using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// An OpenAI-compatible chat engine that sends the first chunk of a stream and then holds it until disposed: a
/// process killed after its client read that chunk is always killed mid-stream. <see cref="Finish"/> lets the held
/// streams end as an engine's do: a finish reason, the usage and <c>[DONE]</c>.
/// </summary>
internal sealed class HeldEngine : IAsyncDisposable
{
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _finish = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private WebApplication _app = null!;

    public string BaseUrl => _app.Urls.First();

    public static async Task<HeldEngine> StartAsync()
    {
        var engine = new HeldEngine();
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        engine._app = builder.Build();
        engine._app.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(
                """data: {"id":"chatcmpl-held","object":"chat.completion.chunk","created":1,"model":"held","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}""" + "\n\n");
            await context.Response.Body.FlushAsync();
            if (await Task.WhenAny(engine._release.Task, engine._finish.Task).WaitAsync(context.RequestAborted) == engine._finish.Task)
            {
                await context.Response.WriteAsync(
                    """data: {"id":"chatcmpl-held","object":"chat.completion.chunk","created":1,"model":"held","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}""" + "\n\n"
                    + """data: {"id":"chatcmpl-held","object":"chat.completion.chunk","created":1,"model":"held","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}""" + "\n\n"
                    + "data: [DONE]\n\n");
            }
        });
        await engine._app.StartAsync();
        return engine;
    }

    /// <summary>Ends every held stream, and every later one at once, with a finish reason, its usage and <c>[DONE]</c>.</summary>
    public void Finish() => _finish.TrySetResult();

    public async ValueTask DisposeAsync()
    {
        _release.TrySetResult();
        await _app.DisposeAsync();
    }
}
