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
    [InlineData("chat/completions", "0")]
    [InlineData("completions", "0")]
    [InlineData("responses", "0")]
    [InlineData("responses", "0.5")]
    public async Task TopPZero_ReachesTheEngineAsTemperatureZero(string endpoint, string topP)
    {
        // OpenAI takes top_p 0 (the most likely token alone) and this server serves it greedy; vLLM refuses it (400
        // "top_p must be in (0, 1]"), so a relay that sent it as is failed where a local model answered.
        System.Text.Json.Nodes.JsonObject? received = null;
        const string Usage = """{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}""";
        await using var engine = await FakeUpstreamEngine.StartAsync(
            async context =>
            {
                received = (System.Text.Json.Nodes.JsonObject?)await System.Text.Json.Nodes.JsonNode.ParseAsync(context.Request.Body);
                await FakeUpstreamEngine.AnswerAsync(context, Usage);
            },
            completions: async context =>
            {
                received = (System.Text.Json.Nodes.JsonObject?)await System.Text.Json.Nodes.JsonNode.ParseAsync(context.Request.Body);
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(
                    $$"""{"id":"cmpl-fake","object":"text_completion","created":1,"model":"upstream","choices":[{"index":0,"text":" there","logprobs":null,"finish_reason":"stop"}],"usage":{{Usage}}}""");
            });
        var (model, _, client) = await ServedByAsync(engine.Url);
        using var _ = client;
        var body = endpoint switch
        {
            "completions" => $$"""{"model":"{{model}}","prompt":"Once upon a time","max_tokens":8,"top_p":{{topP}},"temperature":0.8}""",
            "responses" => $$"""{"model":"{{model}}","input":"Once upon a time","max_output_tokens":16,"top_p":{{topP}},"temperature":0.8}""",
            _ => $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8,"top_p":{{topP}},"temperature":0.8}""",
        };

        using var response = await client.PostAsync("/v1/" + endpoint, Json(body));

        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        if (topP == "0")
        {
            Assert.False(received!.ContainsKey("top_p"));
            Assert.Equal(0, received["temperature"]!.GetValue<double>());
        }
        else
        {
            // Any other value passes as it is (a Responses body's top_p was a 500 while this rule read it as a double).
            Assert.Equal(0.5, received!["top_p"]!.GetValue<double>());
        }
    }

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
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.StartsWith(engineKind == "vllm" ? "This model's maximum context length" : "the request exceeds the available context size", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(engineKind == "vllm" ? "BadRequestError" : "invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(model + "-node", response.Headers.GetValues("x-sovereign-node").Single());

        var record = await RecordOfAsync(response);
        Assert.Equal((UsageOutcome.Failed, 0, 0, 0m), (record?.Outcome, record?.PromptTokens, record?.CompletionTokens, record?.Cost));
        Assert.Equal((0m, 0m), await BudgetOfAsync(tenant));
    }

    /// <summary>
    /// The same error event, before any content, gives the request back to the tenant's requests per minute, as the
    /// engine's 400 before its stream does (<c>UpstreamProxy.RefusedAsInvalid</c>): it stayed counted, so a client whose
    /// prompt was too long for a llama-server spent its minute's requests on refusals. Three refusals under a limit of
    /// two, then a fourth whose answer shows both still there.
    /// </summary>
    [Theory]
    [InlineData("chat/completions")]
    [InlineData("responses")]
    public async Task AnErrorEventBeforeAnyContent_GivesTheRequestBackToTheRateLimit(string endpoint)
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(EventStream(ContextOverflowEvent));
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits",
            new { budgets = new[] { new { period = "day", amount = 1000m } }, rate_limits = new[] { new { requests_per_minute = 2 } } }, 200);
        var chat = $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8,"stream":true}""";
        var body = endpoint == "responses" ? $$"""{"model":"{{model}}","input":"Once upon a time","max_output_tokens":16,"stream":true}""" : chat;
        for (var i = 0; i < 3; i++)
        {
            using var refused = await client.PostAsync("/v1/" + endpoint, Json(body));
            var text = await refused.Content.ReadAsStringAsync();
            Assert.Contains("the request exceeds the available context size", text, StringComparison.Ordinal);
            var record = await RecordOfAsync(refused);
            Assert.Equal((0, 0, 0m), (record?.PromptTokens, record?.CompletionTokens, record?.Cost));
        }

        using var last = await client.PostAsync("/v1/chat/completions", Json(chat));
        Assert.True(last.StatusCode == System.Net.HttpStatusCode.BadRequest, await last.Content.ReadAsStringAsync());
        Assert.Equal("2", last.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        Assert.Equal((0m, 0m), await BudgetOfAsync(tenant));
    }

    /// <summary>
    /// llama-server answers a request it cannot parse with a 500 when the check threw <c>std::runtime_error</c> (or
    /// nlohmann's JSON exceptions) rather than <c>std::invalid_argument</c>: its handler wrapper maps only the latter to
    /// 400. The body is its error object, <c>{"error": {"code": 500, "message": ..., "type": "server_error"}}</c>.
    /// </summary>
    private static Func<HttpContext, Task> LlamaServer500(string message) => async context =>
    {
        context.Response.StatusCode = 500;
        context.Response.ContentType = "application/json; charset=utf-8";
        await context.Response.WriteAsync(JsonSerializer.Serialize(new { error = new { code = 500, message, type = "server_error" } }));
    };

    [Theory]
    [InlineData("JSON schema conversion failed:\nUnrecognized schema: {\"type\":\"strange\"}", false)]
    [InlineData("[json.exception.type_error.302] type must be string, but is number", false)]
    [InlineData("input is too large to process. increase the physical batch size", false)]
    [InlineData("Unsupported param: best_of", false)]
    [InlineData("Conversation roles must alternate user/assistant/user/assistant/...", false)]
    [InlineData("tools param requires --jinja flag", false)]
    [InlineData("Input prompt is too big compared to KV size. Please try increasing KV size.", false)]
    [InlineData("Cannot use both json_schema and grammar", false)]
    [InlineData("\"prompt\" must not be empty", false)]
    [InlineData("JSON schema conversion failed:\nUnrecognized schema: {\"type\":\"strange\"}", true)]
    public async Task ALlamaServer500ForTheClientsMistake_IsThe400WithItsMessage_AtNoCost(string message, bool stream)
    {
        // Before: a 502 upstream_error, which SDKs retry (4 requests for one mistake) and which told the operator to
        // look at the engine. The request did no work there: nothing is billed.
        var answer = stream
            ? EventStream("error: " + JsonSerializer.Serialize(new { code = 500, message, type = "server_error" }) + "\n\ndata: [DONE]\n\n")
            : LlamaServer500(message);
        await using var engine = await FakeUpstreamEngine.StartAsync(answer);
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8,"stream":{{(stream ? "true" : "false")}}}"""));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == System.Net.HttpStatusCode.BadRequest, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal(message, error.GetProperty("message").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("upstream_invalid_request", error.GetProperty("code").GetString());
        Assert.Equal(1, engine.Requests);

        var record = await RecordOfAsync(response);
        Assert.Equal((UsageOutcome.Failed, 0, 0, 0m), (record?.Outcome, record?.PromptTokens, record?.CompletionTokens, record?.Cost));
        Assert.Equal((0m, 0m), await BudgetOfAsync(tenant));
    }

    [Theory]
    [InlineData("Failed to decode the batch, n_batch = 2048, ret = -3")]
    [InlineData("CUDA error: out of memory")]
    [InlineData("")]
    public async Task ALlamaServer500ForItsOwnFailure_StaysA502(string message)
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(LlamaServer500(message));
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}"""));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == System.Net.HttpStatusCode.BadGateway, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        // llama-server's numeric code is its HTTP status, not an error code: the client gets a stable one (it got "500").
        Assert.Equal("upstream_error", error.GetProperty("code").GetString());
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

    /// <summary>llama-server's answer to <c>"prompt":["Once upon a time","The dog"],"max_tokens":3</c>: one completion per prompt, in an array.</summary>
    private const string TwoPromptsAnswer =
        """[{"choices":[{"text":", there was","index":0,"logprobs":null,"finish_reason":"length"}],"created":1796416378,"model":"stories","system_fingerprint":"b4748-c392e5094","object":"text_completion","usage":{"completion_tokens":3,"prompt_tokens":5,"total_tokens":8},"id":"chatcmpl-2oJwyBRzGQqgYNbmV2aia9lbvNv9xwfp","timings":{"prompt_n":4,"prompt_ms":3.133,"prompt_per_token_ms":0.78325,"prompt_per_second":1276.7315671879987,"predicted_n":3,"predicted_ms":17.313,"predicted_per_token_ms":5.771,"predicted_per_second":173.28019407381737}},{"choices":[{"text":" and Ma","index":1,"logprobs":null,"finish_reason":"length"}],"created":1796416378,"model":"stories","system_fingerprint":"b4748-c392e5094","object":"text_completion","usage":{"completion_tokens":3,"prompt_tokens":4,"total_tokens":7},"id":"chatcmpl-2oJwyBRzGQqgYNbmV2aia9lbvNv9xwfp","timings":{"prompt_n":3,"prompt_ms":3.072,"prompt_per_token_ms":1.024,"prompt_per_second":976.5625,"predicted_n":3,"predicted_ms":17.309,"predicted_per_token_ms":5.769666666666667,"predicted_per_second":173.32023802646023}}]""";

    /// <summary>The same request streamed: each prompt's last chunk carries that prompt's usage (and no chunk the total).</summary>
    private const string TwoPromptsStream =
        "data: {\"choices\":[{\"text\":\",\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"created\":1796416287,\"model\":\"stories\",\"system_fingerprint\":\"b4748-c392e5094\",\"object\":\"text_completion\",\"id\":\"chatcmpl-3ohGDhjHrCn7nxPayl55v1x2StsPXK6S\"}\n\n"
        + "data: {\"choices\":[{\"text\":\" lo\",\"index\":1,\"logprobs\":null,\"finish_reason\":null}],\"created\":1796416287,\"model\":\"stories\",\"system_fingerprint\":\"b4748-c392e5094\",\"object\":\"text_completion\",\"id\":\"chatcmpl-3ohGDhjHrCn7nxPayl55v1x2StsPXK6S\"}\n\n"
        + "data: {\"choices\":[{\"text\":\" there\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"created\":1796416287,\"model\":\"stories\",\"system_fingerprint\":\"b4748-c392e5094\",\"object\":\"text_completion\",\"id\":\"chatcmpl-3ohGDhjHrCn7nxPayl55v1x2StsPXK6S\"}\n\n"
        + "data: {\"choices\":[{\"text\":\"ved\",\"index\":1,\"logprobs\":null,\"finish_reason\":null}],\"created\":1796416287,\"model\":\"stories\",\"system_fingerprint\":\"b4748-c392e5094\",\"object\":\"text_completion\",\"id\":\"chatcmpl-3ohGDhjHrCn7nxPayl55v1x2StsPXK6S\"}\n\n"
        + "data: {\"choices\":[{\"text\":\" was\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}],\"created\":1796416287,\"model\":\"stories\",\"system_fingerprint\":\"b4748-c392e5094\",\"object\":\"text_completion\",\"id\":\"chatcmpl-3ohGDhjHrCn7nxPayl55v1x2StsPXK6S\"}\n\n"
        + "data: {\"choices\":[{\"text\":\"\",\"index\":0,\"logprobs\":null,\"finish_reason\":\"length\"}],\"created\":1796416287,\"model\":\"stories\",\"system_fingerprint\":\"b4748-c392e5094\",\"object\":\"text_completion\",\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":5,\"total_tokens\":8},\"id\":\"chatcmpl-3ohGDhjHrCn7nxPayl55v1x2StsPXK6S\",\"timings\":{\"prompt_n\":1,\"prompt_ms\":0.611,\"prompt_per_token_ms\":0.611,\"prompt_per_second\":1636.6612111292964,\"predicted_n\":3,\"predicted_ms\":0.813,\"predicted_per_token_ms\":0.27099999999999996,\"predicted_per_second\":3690.036900369004}}\n\n"
        + "data: {\"choices\":[{\"text\":\" to\",\"index\":1,\"logprobs\":null,\"finish_reason\":null}],\"created\":1796416287,\"model\":\"stories\",\"system_fingerprint\":\"b4748-c392e5094\",\"object\":\"text_completion\",\"id\":\"chatcmpl-3ohGDhjHrCn7nxPayl55v1x2StsPXK6S\"}\n\n"
        + "data: {\"choices\":[{\"text\":\"\",\"index\":1,\"logprobs\":null,\"finish_reason\":\"length\"}],\"created\":1796416287,\"model\":\"stories\",\"system_fingerprint\":\"b4748-c392e5094\",\"object\":\"text_completion\",\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":4,\"total_tokens\":7},\"id\":\"chatcmpl-3ohGDhjHrCn7nxPayl55v1x2StsPXK6S\",\"timings\":{\"prompt_n\":1,\"prompt_ms\":0.508,\"prompt_per_token_ms\":0.508,\"prompt_per_second\":1968.503937007874,\"predicted_n\":3,\"predicted_ms\":1.002,\"predicted_per_token_ms\":0.334,\"predicted_per_second\":2994.0119760479042}}\n\n"
        + "data: [DONE]\n\n";

    private const string TwoPrompts = """["Once upon a time","The dog"]""";

    [Fact]
    public async Task SeveralPromptsStreamed_AreBilledEveryPromptsUsage_NotTheLastOnly()
    {
        // Before: each usage replaced the one before, so the request was billed 4 + 3 tokens of the 9 + 6 generated.
        await using var engine = await FakeUpstreamEngine.StartAsync(EventStream(TwoPromptsStream), completions: EventStream(TwoPromptsStream));
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/completions", Json($$"""{"model":"{{model}}","prompt":{{TwoPrompts}},"max_tokens":3,"stream":true}"""));
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("data: [DONE]", events[^1]);
        Assert.Equal(6, events.Count(e => e.Contains("\"finish_reason\":null", StringComparison.Ordinal)));
        Assert.DoesNotContain(events, e => e.Contains("\"usage\"", StringComparison.Ordinal));
        var record = await RecordOfAsync(response);
        Assert.Equal((UsageOutcome.Completed, 9, 6), (record?.Outcome, record?.PromptTokens, record?.CompletionTokens));
        Assert.Equal((9m + 12m, 0m), await BudgetOfAsync(tenant));
    }

    [Fact]
    public async Task SeveralPromptsNotStreamed_AreOneCompletionWithEveryChoice_BilledTheirSum()
    {
        // Before: llama-server's array was "a response that is not a JSON object", a 502 that SDKs retry (the engine had
        // done the work each time), billed nothing.
        await using var engine = await FakeUpstreamEngine.StartAsync(_ => Task.CompletedTask, completions: context =>
        {
            context.Response.ContentType = "application/json; charset=utf-8";
            return context.Response.WriteAsync(TwoPromptsAnswer);
        });
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/completions", Json($$"""{"model":"{{model}}","prompt":{{TwoPrompts}},"max_tokens":3}"""));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == System.Net.HttpStatusCode.OK, text);
        var body = JsonDocument.Parse(text).RootElement;
        Assert.Equal(("text_completion", model), (body.GetProperty("object").GetString(), body.GetProperty("model").GetString()));
        var choices = body.GetProperty("choices").EnumerateArray().ToArray();
        Assert.Equal([(0, ", there was"), (1, " and Ma")], choices.Select(c => (c.GetProperty("index").GetInt32(), c.GetProperty("text").GetString())));
        var usage = body.GetProperty("usage");
        Assert.Equal((9, 6, 15), (usage.GetProperty("prompt_tokens").GetInt32(), usage.GetProperty("completion_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32()));
        var record = await RecordOfAsync(response);
        Assert.Equal((UsageOutcome.Completed, 9, 6), (record?.Outcome, record?.PromptTokens, record?.CompletionTokens));
        Assert.Equal((9m + 12m, 0m), await BudgetOfAsync(tenant));
    }

    /// <summary>
    /// A newer llama-server reports each prompt's <c>prompt_tokens_details.cached_tokens</c>: the one completion made
    /// of its array states and records their sum. The merged usage had only the three counts, so the client read no
    /// cached tokens and the ledger recorded none (billed at the full input rate where a cached rate is lower).
    /// </summary>
    [Fact]
    public async Task SeveralPromptsNotStreamed_KeepTheirCachedTokens()
    {
        var answer = TwoPromptsAnswer
            .Replace("\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":5,\"total_tokens\":8}", "\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":5,\"total_tokens\":8,\"prompt_tokens_details\":{\"cached_tokens\":2}}", StringComparison.Ordinal)
            .Replace("\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":4,\"total_tokens\":7}", "\"usage\":{\"completion_tokens\":3,\"prompt_tokens\":4,\"total_tokens\":7,\"prompt_tokens_details\":{\"cached_tokens\":3}}", StringComparison.Ordinal);
        Assert.Equal(2, answer.Split("cached_tokens").Length - 1);
        await using var engine = await FakeUpstreamEngine.StartAsync(_ => Task.CompletedTask, completions: context =>
        {
            context.Response.ContentType = "application/json; charset=utf-8";
            return context.Response.WriteAsync(answer);
        });
        var (model, _, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/completions", Json($$"""{"model":"{{model}}","prompt":{{TwoPrompts}},"max_tokens":3}"""));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == System.Net.HttpStatusCode.OK, text);
        var usage = JsonDocument.Parse(text).RootElement.GetProperty("usage");
        Assert.Equal((9, 5), (usage.GetProperty("prompt_tokens").GetInt32(), usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32()));
        Assert.Equal(5, (await RecordOfAsync(response))?.CachedTokens);
    }

    /// <summary>llama-server's answer to every request while it loads its model (Ollama's busy queue is a 503 too).</summary>
    private static Task LoadingModelAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        context.Response.ContentType = "application/json; charset=utf-8";
        return context.Response.WriteAsync("""{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}""");
    }

    [Fact]
    public async Task AnEngineStillLoadingItsModel_TookNoWork_SoTheRequestFailsOverToTheNextCompliantEngine()
    {
        // Before: the engine's 503 was the client's 502, although another engine the policy allows was ready.
        await using var loading = await FakeUpstreamEngine.StartAsync(LoadingModelAsync);
        await using var ready = await FakeUpstreamEngine.StartAsync(context =>
            FakeUpstreamEngine.AnswerAsync(context, """{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}"""));
        const string Model = "ls-loading-model";
        await fixture.RegisterEngineAsync("ls-loading-a", loading.Url, Model);
        await fixture.RegisterEngineAsync("ls-loading-b", ready.Url, Model);
        var (tenant, client) = await fixture.NewTenantAsync("default");
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{Model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}"""));

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("ls-loading-b", response.Headers.GetValues("x-sovereign-node").Single());
        Assert.Equal((1, 1), (loading.Requests, ready.Requests));
        var entries = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={tenant}", null, 200);
        Assert.Contains(entries.GetProperty("data").EnumerateArray(), e => e.GetProperty("action").GetString() == "inference.allowed"
            && e.GetProperty("reasons").EnumerateArray().Any(r => r.GetString() == "failover: ls-loading-a could not be reached"));
    }

    [Fact]
    public async Task AnEngineStillLoadingItsModel_WithNoOtherReplica_Is503WithRetryAfter_AtNoCost()
    {
        await using var loading = await FakeUpstreamEngine.StartAsync(LoadingModelAsync);
        var (model, tenant, client) = await ServedByAsync(loading.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}"""));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable, text);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal("no_compliant_capacity", JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal((0m, 0m), await BudgetOfAsync(tenant));
    }
}
