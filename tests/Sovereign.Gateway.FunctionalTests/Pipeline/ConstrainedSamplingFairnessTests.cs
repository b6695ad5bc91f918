using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.FunctionalTests.Metering;
using Sovereign.Gateway.Models;
using Sovereign.Inference.Engine;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// One tenant's structured output cannot hold back another tenant's tokens on the same model: its grammar sampling
/// runs off the decode loop. A gate holds that sampling (no slow grammar, nothing timed), and meanwhile another tenant's
/// request is answered; both are billed for exactly the tokens they got, and a client that leaves while its sampling is
/// held frees its slot at once.
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class ConstrainedSamplingFairnessTests(MeteringFixture fixture) : IDisposable
{
    // Created with the test, before any request: it sees every request's books close.
    private readonly BooksClosedListener _books = new();

    public void Dispose() => _books.Dispose();

    // Generous: reached only when the behaviour under test is broken (the loop waits on the held sampling).
    private static readonly TimeSpan Broken = TimeSpan.FromSeconds(60);

    private const string Schema =
        """{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer","minimum":0,"maximum":99}},"required":["name","age"],"additionalProperties":false}""";

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static string StructuredBody(bool stream) =>
        """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":80,"temperature":1,"seed":7,"logprobs":true,"stream":"""
        + (stream ? "true" : "false")
        + ""","response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":""" + Schema + "}}}";

    private ContinuousBatcher Batcher => fixture.App.Services.GetRequiredService<ModelCatalog>().TryGet(MeteringFixture.Model, out var served)
        ? served.Batcher! : throw new InvalidOperationException();

    /// <summary>Holds <paramref name="tenant"/>'s constrained tokens until <paramref name="open"/> completes.</summary>
    private static Func<GenerationRequest, ValueTask> Hold(string tenant, TaskCompletionSource entered, Task open) => async request =>
    {
        if (request.Tenant == tenant)
        {
            entered.TrySetResult();
            await open;
        }
    };

    [Fact]
    public async Task StructuredOutputSamplingHeld_AnotherTenantsRequestIsAnswered_BothBilledForTheirTokens()
    {
        var (slowTenant, slowKey) = await fixture.NewTenantAsync();
        var (_, otherKey) = await fixture.NewTenantAsync();
        using var slow = fixture.TenantClient(slowKey);
        using var other = fixture.TenantClient(otherKey);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var batcher = Batcher;
        batcher.BeforeConstrainedSample = Hold(slowTenant, entered, open.Task);
        try
        {
            var structured = slow.PostAsync("/v1/chat/completions", Json(StructuredBody(stream: false)));
            await entered.Task.WaitAsync(Broken);

            var plain = await other.PostAsync("/v1/chat/completions",
                Json("""{"model":"stories","messages":[{"role":"user","content":"The little dog"}],"max_tokens":20,"temperature":0}""")).WaitAsync(Broken);

            Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
            Assert.False(structured.IsCompleted);
            await AssertBilledAsync(plain);

            open.TrySetResult();
            var answer = await structured.WaitAsync(Broken);
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            var body = JsonDocument.Parse(await answer.Content.ReadAsStringAsync()).RootElement;
            var choice = body.GetProperty("choices")[0];
            var content = choice.GetProperty("message").GetProperty("content").GetString()!;
            using var document = JsonDocument.Parse(content);
            Assert.InRange(document.RootElement.GetProperty("age").GetInt32(), 0, 99);
            Assert.Equal(JsonValueKind.String, document.RootElement.GetProperty("name").ValueKind);

            // The tokens came back in order: the logprobs spell the content, one entry per token that printed.
            var tokens = choice.GetProperty("logprobs").GetProperty("content").EnumerateArray().Select(t => t.GetProperty("token").GetString()).ToList();
            Assert.Equal(content, string.Concat(tokens));
            Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
            // ...plus the end-of-generation token, which is counted and prints nothing.
            Assert.Equal(tokens.Count + 1, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
            await AssertBilledAsync(answer);
        }
        finally
        {
            open.TrySetResult();
            batcher.BeforeConstrainedSample = null;
        }
    }

    [Fact]
    public async Task StructuredOutputSamplingHeld_ClientLeaves_SlotFreedAtOnceAndPromptBilled()
    {
        var (slowTenant, slowKey) = await fixture.NewTenantAsync();
        using var slow = fixture.TenantClient(slowKey);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var open = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var batcher = Batcher;
        batcher.BeforeConstrainedSample = Hold(slowTenant, entered, open.Task);
        try
        {
            using var leave = new CancellationTokenSource();
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Json(StructuredBody(stream: true)) };
            var response = await slow.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, leave.Token);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var requestId = response.Headers.GetValues("x-sovereign-audit-id").Single();
            await entered.Task.WaitAsync(Broken);
            Assert.Equal(1, batcher.RunningCount);

            // The first token is held: the client leaves before it.
            await leave.CancelAsync();
            response.Dispose();

            var record = await WaitForRecordAsync(requestId);
            Assert.Equal(UsageOutcome.Cancelled, record.Outcome);
            Assert.Equal(0, record.CompletionTokens);
            Assert.True(record.PromptTokens > 0);
            Assert.Equal(ExpectedCost(record), record.Cost);
            Assert.Equal(0, batcher.RunningCount);
            Assert.Equal(0.0, batcher.KvCacheUsage);
        }
        finally
        {
            open.TrySetResult();
            batcher.BeforeConstrainedSample = null;
        }
    }

    private async Task AssertBilledAsync(HttpResponseMessage response)
    {
        var usage = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("usage");
        var record = await WaitForRecordAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal(UsageOutcome.Completed, record.Outcome);
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32(), record.PromptTokens);
        Assert.Equal(usage.GetProperty("completion_tokens").GetInt32(), record.CompletionTokens);
        Assert.True(record.ComputeSeconds > 0m);
        Assert.Equal(ExpectedCost(record), record.Cost);
    }

    private static decimal ExpectedCost(UsageRecord record) =>
        Math.Round((record.PromptTokens * MeteringFixture.InputPerMillion + record.CompletionTokens * MeteringFixture.OutputPerMillion) / 1_000_000m, 6);

    /// <summary>
    /// The request's usage record, read once its books have closed (its record committed, its reservation settled);
    /// the server closes them when the request ends, a client that left included. The listener's bound only turns a
    /// hang into a failure.
    /// </summary>
    private async Task<UsageRecord> WaitForRecordAsync(string requestId)
    {
        await _books.ClosedForRequestAsync(requestId);
        return await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(requestId) ?? throw new Xunit.Sdk.XunitException($"No usage record for {requestId} after its books closed.");
    }
}
