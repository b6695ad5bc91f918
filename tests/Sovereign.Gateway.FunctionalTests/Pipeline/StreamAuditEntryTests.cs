using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using OpenAI.Chat;
using Sovereign.Gateway.FunctionalTests.Metering;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A stream's headers leave before its end is known, so <c>x-sovereign-audit-entry</c> could not name its outcome and a
/// stream was bound to no entry. Now a stream that ends as it should, whose client asked
/// (<c>x-sovereign-stream-audit-entry: comment</c>), states it as an event-stream comment,
/// <c>: x-sovereign-audit-entry [CHAIN:]SEQUENCE:HASH</c>, just before its last event (<c>data: [DONE]</c>, Responses'
/// <c>response.completed</c>), once the outcome is committed (the books closed there already, so the client's last
/// content byte waits for nothing more). A relay passes on only its own: an upstream's comment is dropped. OpenAI's
/// .NET SDK reads such a stream as before; a client that did not ask gets none (OpenAI's streams carry no comments).
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class StreamAuditEntryTests(MeteringFixture fixture)
{
    private const string Comment = ": x-sovereign-audit-entry ";

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Once"}],"max_tokens":3,"stream":true}""", "data: [DONE]")]
    [InlineData("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Once"}],"max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}""", "data: [DONE]")]
    [InlineData("/v1/completions", """{"model":"stories","prompt":"Once","max_tokens":3,"stream":true}""", "data: [DONE]")]
    [InlineData("/v1/responses", """{"model":"stories","input":"Once","max_output_tokens":16,"stream":true}""", "event: response.")]
    public async Task ThisEnginesStream_NamesItsOutcomeEntry_InACommentBeforeItsLastEvent(string path, string body, string lastEvent)
    {
        var (_, key) = await fixture.NewTenantAsync();
        using var client = fixture.TenantClient(key);
        using (var unasked = await client.PostAsync(path, Json(body)))
        {
            var plain = await unasked.Content.ReadAsStringAsync();
            Assert.True(unasked.StatusCode == HttpStatusCode.OK, plain);
            Assert.DoesNotContain(Comment, plain, StringComparison.Ordinal);
        }

        client.DefaultRequestHeaders.Add("x-sovereign-stream-audit-entry", "comment");
        using var response = await client.PostAsync(path, Json(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        Assert.False(response.Headers.Contains("x-sovereign-audit-entry"));

        var blocks = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        var named = Assert.Single(blocks, b => b.StartsWith(Comment, StringComparison.Ordinal));
        Assert.Equal(blocks.Length - 2, Array.IndexOf(blocks, named));
        Assert.StartsWith(lastEvent, blocks[^1], StringComparison.Ordinal);
        Assert.Equal(await OutcomeEntryAsync(response.Headers.GetValues("x-sovereign-audit-id").Single()), named[Comment.Length..]);
    }

    [Fact]
    public async Task RelayedStream_NamesTheGatewaysOwnOutcome_NotTheUpstreams()
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(
                """data: {"id":"chatcmpl-up","object":"chat.completion.chunk","created":1,"model":"upstream","choices":[{"index":0,"delta":{"role":"assistant","content":"Once"},"finish_reason":"stop"}]}""" + "\n\n"
                + """data: {"id":"chatcmpl-up","object":"chat.completion.chunk","created":1,"model":"upstream","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}""" + "\n\n"
                + ": x-sovereign-audit-entry 1:" + new string('0', 64) + "\n\n"
                + "data: [DONE]\n\n");
        });
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "named-node", jurisdiction = "DE", base_url = engine.Url, models = new[] { new { id = "named", upstream = "upstream", capacity = 4 } } }, 201);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/standard/prices", new { model = "named", input_per_million = 1m, output_per_million = 1m }, 201);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "streamnamed", plan = "standard", policy = new { allowed_jurisdictions = new[] { "DE" }, allow_external_providers = true } }, 201);
        var key = (await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants/streamnamed/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        using var client = fixture.TenantClient(key);
        client.DefaultRequestHeaders.Add("x-sovereign-stream-audit-entry", "comment");

        using var response = await client.PostAsync("/v1/chat/completions", Json("""{"model":"named","messages":[{"role":"user","content":"Once"}],"max_tokens":3,"stream":true}"""));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        var blocks = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        var named = Assert.Single(blocks, b => b.StartsWith(Comment, StringComparison.Ordinal));
        Assert.Equal(["data: [DONE]"], blocks[(Array.IndexOf(blocks, named) + 1)..]);
        Assert.Equal(await OutcomeEntryAsync(response.Headers.GetValues("x-sovereign-audit-id").Single()), named[Comment.Length..]);
    }

    [Fact]
    public async Task OpenAIsDotNetSdk_ReadsAStreamWithTheComment()
    {
        var (_, key) = await fixture.NewTenantAsync();
        var options = new global::OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.Address, "/v1") };
        options.AddPolicy(new StreamAuditEntryPolicy(), System.ClientModel.Primitives.PipelinePosition.PerCall);
        var chat = new global::OpenAI.OpenAIClient(new System.ClientModel.ApiKeyCredential(key), options).GetChatClient(MeteringFixture.Model);
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Once upon a time")], new ChatCompletionOptions { MaxOutputTokenCount = 4 }))
        {
            text.Append(string.Concat(update.ContentUpdate.Select(p => p.Text)));
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }

        Assert.NotEqual(0, text.Length);
        Assert.NotNull(finish);
        Assert.True(usage?.OutputTokenCount > 0);
        Assert.True(StreamAuditEntryPolicy.Sent > 0);
    }

    /// <summary>Asks every request of the SDK's client for the comment, as a tenant would.</summary>
    private sealed class StreamAuditEntryPolicy : System.ClientModel.Primitives.PipelinePolicy
    {
        public static int Sent;

        public override void Process(System.ClientModel.Primitives.PipelineMessage message, IReadOnlyList<System.ClientModel.Primitives.PipelinePolicy> pipeline, int currentIndex)
        {
            Ask(message);
            ProcessNext(message, pipeline, currentIndex);
        }

        public override ValueTask ProcessAsync(System.ClientModel.Primitives.PipelineMessage message, IReadOnlyList<System.ClientModel.Primitives.PipelinePolicy> pipeline, int currentIndex)
        {
            Ask(message);
            return ProcessNextAsync(message, pipeline, currentIndex);
        }

        private static void Ask(System.ClientModel.Primitives.PipelineMessage message)
        {
            message.Request.Headers.Set("x-sovereign-stream-audit-entry", "comment");
            Interlocked.Increment(ref Sent);
        }
    }

    /// <summary>The request's outcome entry as the header would name it: <c>[CHAIN:]SEQUENCE:HASH</c>.</summary>
    private async Task<string> OutcomeEntryAsync(string auditId)
    {
        var outcome = Assert.Single((await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?id={auditId}", null, 200)).GetProperty("data").EnumerateArray(),
            e => e.GetProperty("action").GetString() == "inference.completed");
        var chain = outcome.TryGetProperty("chain", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() + ":" : "";
        return $"{chain}{outcome.GetProperty("sequence").GetInt64()}:{outcome.GetProperty("hash").GetString()}";
    }
}
