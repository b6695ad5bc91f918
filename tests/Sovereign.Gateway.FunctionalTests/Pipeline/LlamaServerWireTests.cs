using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// What llama-server (b4748, commit c392e5094, serving stories260K) sends where it differs from OpenAI, replayed byte
/// for byte by a scripted engine (CI has no llama-server): an error inside a 200 event stream (<c>error: {...}</c>, not a
/// <c>data:</c> line), a JSON array for several prompts, one usage per prompt in a stream. vLLM's in-stream error
/// (<c>data: {"error": {...}}</c>) is read the same way.
/// </summary>
public sealed class LlamaServerWireTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    private const decimal InputPerMillion = 1_000_000m; // 1 per prompt token
    private const decimal OutputPerMillion = 2_000_000m; // 2 per output token
    private static int _models;

    /// <summary>llama-server's answer to a prompt longer than its context with <c>--no-context-shift</c>, streamed: a 200, then this.</summary>
    private const string ContextOverflowEvent =
        "error: {\"code\":400,\"message\":\"the request exceeds the available context size. try increasing the context size or enable context shift\",\"type\":\"invalid_request_error\"}\n\ndata: [DONE]\n\n";

    /// <summary>vLLM's in-stream error (<c>create_streaming_error_response</c>): a data line holding an error object.</summary>
    private const string VllmErrorEvent =
        "data: {\"error\": {\"object\": \"error\", \"message\": \"This model's maximum context length is 2048 tokens. However, you requested 2100 tokens.\", \"type\": \"BadRequestError\", \"param\": null, \"code\": 400}}\n\ndata: [DONE]\n\n";

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>A model only <paramref name="engineUrl"/> serves, priced, and a tenant with a budget, whose client is returned.</summary>
    private async Task<(string Model, string Tenant, HttpClient Client)> ServedByAsync(string engineUrl)
    {
        var model = "ls-model-" + Interlocked.Increment(ref _models);
        await fixture.RegisterEngineAsync(model + "-node", engineUrl, model);
        var plan = model + "-plan";
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}", new { currency = "THB" }, 200);
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{plan}/prices", new { model, input_per_million = InputPerMillion, output_per_million = OutputPerMillion }, 201);
        var (tenant, client) = await fixture.NewTenantAsync(plan);
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "day", amount = 1000m } } }, 200);
        return (model, tenant, client);
    }

    private async Task<UsageRecord?> RecordOfAsync(HttpResponseMessage response) =>
        await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());

    private async Task<(decimal Settled, decimal Reserved)> BudgetOfAsync(string tenant)
    {
        var budget = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200)).GetProperty("budgets")[0];
        return (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal());
    }

    private static Func<HttpContext, Task> EventStream(string wire) => async context =>
    {
        context.Response.ContentType = "text/event-stream";
        await context.Response.WriteAsync(wire);
    };

    [Theory]
    [InlineData("llama-server", "chat/completions")]
    [InlineData("llama-server", "completions")]
    [InlineData("vllm", "chat/completions")]
    public async Task AStreamTheEngineRefusesInAnErrorEvent_IsTheEnginesOwn400_AtNoCost(string engineKind, string endpoint)
    {
        // Before: the error event was skipped as a line without data, and the stream "ended without a usage chunk": a
        // 502 upstream_invalid_usage telling the operator to check the engine, which SDKs retry, for the client's own
        // over-long prompt (the same prompt unstreamed was llama-server's 400).
        var wire = engineKind == "vllm" ? VllmErrorEvent : ContextOverflowEvent;
        await using var engine = await FakeUpstreamEngine.StartAsync(EventStream(wire), completions: EventStream(wire));
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;
        var body = endpoint == "completions"
            ? $$"""{"model":"{{model}}","prompt":"Once upon a time","max_tokens":8,"stream":true}"""
            : $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8,"stream":true}""";

        using var response = await client.PostAsync("/v1/" + endpoint, Json(body));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == System.Net.HttpStatusCode.BadRequest, text);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.StartsWith(engineKind == "vllm" ? "This model's maximum context length" : "the request exceeds the available context size", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(engineKind == "vllm" ? "BadRequestError" : "invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(model + "-node", response.Headers.GetValues("x-sovereign-node").Single());

        var record = await RecordOfAsync(response);
        Assert.Equal((UsageOutcome.Failed, 0, 0, 0m), (record?.Outcome, record?.PromptTokens, record?.CompletionTokens, record?.Cost));
        Assert.Equal((0m, 0m), await BudgetOfAsync(tenant));
    }

    [Fact]
    public async Task AnErrorEventMidStream_EndsTheStreamWithTheEnginesMessage_AndIsBilledForTheChunksRelayed()
    {
        // llama-server with --no-context-shift when the generation fills the context: content, then its 500 as an event.
        const string Wire =
            "data: {\"choices\":[{\"text\":\" friend\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"created\":1796416386,\"model\":\"gpt-3.5-turbo\",\"system_fingerprint\":\"b4748-c392e5094\",\"object\":\"text_completion\",\"id\":\"chatcmpl-mY19pK7yKIRzlYRTgOpj7G3LibIJORzU\"}\n\n"
            + "data: {\"choices\":[{\"text\":\"s\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"created\":1796416386,\"model\":\"gpt-3.5-turbo\",\"system_fingerprint\":\"b4748-c392e5094\",\"object\":\"text_completion\",\"id\":\"chatcmpl-mY19pK7yKIRzlYRTgOpj7G3LibIJORzU\"}\n\n"
            + "error: {\"code\":500,\"message\":\"context shift is disabled\",\"type\":\"server_error\"}\n\n"
            + "data: [DONE]\n\n";
        await using var engine = await FakeUpstreamEngine.StartAsync(EventStream(Wire), completions: EventStream(Wire));
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/completions", Json($$"""{"model":"{{model}}","prompt":"Once upon a time","max_tokens":100,"stream":true}"""));
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(2, events.Count(e => e.Contains("\"text\"", StringComparison.Ordinal)));
        var error = JsonDocument.Parse(events[^1]["data:".Length..]).RootElement.GetProperty("error");
        Assert.Equal(("context shift is disabled", "server_error"), (error.GetProperty("message").GetString(), error.GetProperty("type").GetString()));
        Assert.DoesNotContain(events, e => e.Contains("[DONE]", StringComparison.Ordinal));

        // Two content chunks reached the client: two output tokens (2 each), settled once.
        var record = await RecordOfAsync(response);
        Assert.Equal((UsageOutcome.Failed, 2, 4m), (record?.Outcome, record?.CompletionTokens, record?.Cost));
        Assert.Equal((4m, 0m), await BudgetOfAsync(tenant));
    }
}
