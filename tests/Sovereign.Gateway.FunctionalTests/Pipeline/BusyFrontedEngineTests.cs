using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A fronted engine too busy to answer the node's probe of its /metrics in time, while it streams to the node, is busy,
/// not down. llama-server serves /metrics on the HTTP threads its streams hold: under load the probe timed out, the
/// node called the engine down, and new requests got 503 no_compliant_capacity while the engine was generating.
/// </summary>
public sealed class BusyFrontedEngineTests
{
    private const string Chunk = """data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}""" + "\n\n";
    private const string Whole =
        """{"id":"c","object":"chat.completion","created":1,"model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}""";

    [Fact]
    public async Task AnEngineThatStreamsButDoesNotAnswerTheProbe_KeepsTakingRequests()
    {
        var streaming = 0;
        var firstProbeAbandoned = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var probedAfterIt = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var releaseStream = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var engine = builder.Build();
        engine.MapGet("/metrics", async context =>
        {
            // Answered until a stream flows; then never, as by an engine whose HTTP threads are all streaming (the node
            // gives up after 2 s). An engine that answered no probe at all is down until one answers: each failed probe
            // marks it down again, and a loaded machine's first probe can fail before the test's first request.
            if (firstProbeAbandoned.Task.IsCompleted)
            {
                probedAfterIt.TrySetResult();
            }

            var duringStream = Volatile.Read(ref streaming) == 1;
            if (!duringStream)
            {
                await context.Response.WriteAsync("# no samples yet\n");
                return;
            }

            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                firstProbeAbandoned.TrySetResult();
            }
        });
        engine.MapPost("/v1/chat/completions", async context =>
        {
            using var body = new StreamReader(context.Request.Body);
            if (!(await body.ReadToEndAsync()).Contains("\"stream\":true", StringComparison.Ordinal))
            {
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(Whole);
                return;
            }

            // A stream that keeps coming, an event every 50 ms, until the test has seen what it needs.
            context.Response.ContentType = "text/event-stream";
            Volatile.Write(ref streaming, 1);
            while (!releaseStream.Task.IsCompleted && !context.RequestAborted.IsCancellationRequested)
            {
                await context.Response.WriteAsync(Chunk);
                await context.Response.Body.FlushAsync();
                await Task.WhenAny(releaseStream.Task, Task.Delay(50));
            }

            await context.Response.WriteAsync(
                """data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"up","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}""" + "\n\ndata: [DONE]\n\n");
        });
        await engine.StartAsync();

        await using var node = await FrontedNode.StartAsync(engine.Urls.First(), "busy");
        var client = node.Client;
        try
        {
            // Listed before its first probe answered, the engine may still be held down a moment (503 with Retry-After).
            HttpResponseMessage stream;
            for (var attempt = 1; ; attempt++)
            {
                using var streamRequest = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
                {
                    Content = new StringContent("""{"model":"busy","messages":[{"role":"user","content":"Hello"}],"stream":true}""", Encoding.UTF8, "application/json"),
                };
                stream = await client.SendAsync(streamRequest, HttpCompletionOption.ResponseHeadersRead);
                if (stream.StatusCode == HttpStatusCode.OK)
                {
                    break;
                }

                Assert.True(stream.StatusCode == HttpStatusCode.ServiceUnavailable && attempt < 120, await stream.Content.ReadAsStringAsync());
                stream.Dispose();
                await Task.Delay(500);
            }

            using var _ = stream;

            // The probe gave up while the stream flowed, and the node probed again: it has judged the engine by then.
            await firstProbeAbandoned.Task.WaitAsync(TimeSpan.FromMinutes(1));
            await probedAfterIt.Task.WaitAsync(TimeSpan.FromMinutes(1));
            using var next = await client.PostAsync("/v1/chat/completions",
                new StringContent("""{"model":"busy","messages":[{"role":"user","content":"Hello"}]}""", Encoding.UTF8, "application/json"));

            Assert.True(next.StatusCode == HttpStatusCode.OK, await next.Content.ReadAsStringAsync());
            releaseStream.TrySetResult();
            Assert.EndsWith("data: [DONE]\n\n", await stream.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        finally
        {
            releaseStream.TrySetResult();
        }
    }
}
