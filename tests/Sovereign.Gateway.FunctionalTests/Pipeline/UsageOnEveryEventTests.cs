using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A stream through a fronted vLLM that ends before its usage event (the client stopped reading) is billed the prompt
/// vLLM counted: the node asks it for the usage so far on every event (<c>continuous_usage_stats</c>) once its metrics
/// show it is vLLM. Such a stream was billed its chunks and 0 prompt tokens: a long prompt stopped early cost nothing.
/// </summary>
public sealed class UsageOnEveryEventTests
{
    /// <summary>A content event; with the usage so far when the engine was asked for it, as vLLM does.</summary>
    private static string Event(string delta, int completion, bool withUsage) =>
        $$$"""data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"delta":{{{delta}}},"finish_reason":null}]{{{(withUsage ? $",\"usage\":{{\"prompt_tokens\":11,\"completion_tokens\":{completion},\"total_tokens\":{11 + completion}}}" : "")}}}}""" + "\n\n";

    [Theory]
    [InlineData("vllm:kv_cache_usage_perc{model_name=\"up\"} 0.25", true)]
    [InlineData("llamacpp:kv_cache_usage_ratio 0.25", false)]
    public async Task AStreamTheClientLeaves_IsBilledThePromptVllmCounted(string metrics, bool vllm)
    {
        var pages = 0;
        var asked = new TaskCompletionSource<JsonNode?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var engine = builder.Build();
        engine.MapGet("/metrics", async context =>
        {
            await context.Response.WriteAsync("# HELP x\n" + metrics + "\n");
            Interlocked.Increment(ref pages);
        });
        engine.MapPost("/v1/chat/completions", async context =>
        {
            var options = (await JsonNode.ParseAsync(context.Request.Body))?["stream_options"];
            asked.TrySetResult(options);
            var withUsage = options?["continuous_usage_stats"]?.GetValue<bool>() == true;
            context.Response.ContentType = "text/event-stream";
            // Asked for it, the usage so far on every event (vLLM). Then the engine holds until the client leaves.
            await context.Response.WriteAsync(Event("""{"role":"assistant","content":""}""", 0, withUsage) + Event("""{"content":"Once"}""", 1, withUsage)
                + Event("""{"content":" upon"}""", 2, withUsage) + Event("""{"content":" a"}""", 3, withUsage));
            await context.Response.Body.FlushAsync();
            await Task.Delay(Timeout.Infinite, context.RequestAborted).ContinueWith(_ => { });
        });
        await engine.StartAsync();

        await using var node = await FrontedNode.StartAsync(engine.Urls.First(), "fronted");
        // The probe reads one page after another: once the engine served the second, the node has read the first.
        using (var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(1)))
        {
            while (Volatile.Read(ref pages) < 2)
            {
                await Task.Delay(50, deadline.Token);
            }
        }

        var client = node.Client;
        string requestId;
        var received = new StringBuilder();
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"fronted","messages":[{"role":"user","content":"Tell me a long story"}],"stream":true}""", Encoding.UTF8, "application/json"),
        })
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            requestId = response.Headers.GetValues("x-sovereign-audit-id").Single();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            for (var contents = 0; contents < 3;)
            {
                var line = await reader.ReadLineAsync() ?? throw new InvalidOperationException("the stream ended: " + received);
                received.AppendLine(line);
                contents += line.Contains("\"content\":\"", StringComparison.Ordinal) && !line.Contains("\"content\":\"\"", StringComparison.Ordinal) ? 1 : 0;
            }
        }

        // The client asked for no usage: it is sent none, whatever the engine was asked for.
        Assert.DoesNotContain("usage", received.ToString(), StringComparison.Ordinal);
        var streamOptions = await asked.Task.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(vllm, streamOptions?["continuous_usage_stats"]?.GetValue<bool>() == true);

        var ledger = node.App.Services.GetRequiredService<UsageLedger>();
        UsageRecord? record = null;
        using (var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(1)))
        {
            while ((record = await ledger.GetAsync(requestId)) is null)
            {
                await Task.Delay(50, deadline.Token);
            }
        }

        Assert.Equal(UsageOutcome.Cancelled, record.Outcome);
        // Another engine states its prompt only in its usage event, which never came: 0 (architecture.md, known gaps).
        Assert.Equal((vllm ? 11 : 0, 3), (record.PromptTokens, record.CompletionTokens));
    }
}
