using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// An OpenAI-compatible engine for the gateway benchmarks: <c>POST /v1/chat/completions</c> answers one fixed
/// completion with its usage. Without a service time it answers at once; with one, it runs <c>slots</c> requests at a
/// time for that long each and the rest wait in its queue, like an I/O-bound engine.
/// </summary>
internal sealed class MockEngine : IAsyncDisposable
{
    private static readonly byte[] Answer = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-mock","object":"chat.completion","created":1,"model":"mock","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}""");

    private readonly WebApplication _app;
    private int _served;

    private MockEngine(WebApplication app) => _app = app;

    /// <summary>The engine's base URL (loopback, a free port).</summary>
    public string Url => _app.Urls.First();

    /// <summary>Requests answered since the start or the last <see cref="ResetServed"/>.</summary>
    public int Served => Volatile.Read(ref _served);

    public void ResetServed() => Volatile.Write(ref _served, 0);

    public static async Task<MockEngine> StartAsync(int slots = 1, TimeSpan? service = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var engine = new MockEngine(app);
        var running = new SemaphoreSlim(slots, slots);
        app.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            // Drain the request body as a real engine would.
            await context.Request.Body.CopyToAsync(Stream.Null);
            if (service is { } time)
            {
                await running.WaitAsync();
                try
                {
                    await Task.Delay(time);
                }
                finally
                {
                    running.Release();
                }
            }

            Interlocked.Increment(ref engine._served);
            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(Answer);
        });
        await app.StartAsync();
        return engine;
    }

    /// <summary>
    /// A plan with a price for <paramref name="model"/>, a tenant allowed in the server's jurisdiction with external
    /// providers, a large budget and rate limits that never refuse; returns the tenant's key.
    /// </summary>
    public static async Task<string> SetUpTenantAsync(BenchServer server, string tenant, string model)
    {
        await server.AdminAsync(HttpMethod.Put, "/admin/v1/plans/standard", new { currency = "USD", weight = 1 });
        await server.AdminAsync(HttpMethod.Post, "/admin/v1/plans/standard/prices", new { model, input_per_million = 1m, output_per_million = 2m });
        await server.AdminAsync(HttpMethod.Post, "/admin/v1/tenants", new
        {
            id = tenant,
            plan = "standard",
            policy = new { allowed_jurisdictions = new[] { BenchServer.Jurisdiction }, allow_external_providers = true },
        });
        await server.AdminAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new
        {
            budgets = new[] { new { period = "day", amount = 1_000_000m } },
            rate_limits = new[] { new { requests_per_minute = 100_000_000L, tokens_per_minute = 100_000_000_000L } },
        });
        var key = await server.AdminAsync(HttpMethod.Post, $"/admin/v1/tenants/{tenant}/keys", new { name = "bench" });
        return key.GetProperty("secret").GetString()!;
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();
}
