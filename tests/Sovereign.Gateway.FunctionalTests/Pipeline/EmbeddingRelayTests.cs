using System.Net;
using System.Net.Http.Json;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenAI.Embeddings;
using Sovereign.Gateway.Pipeline.Executors;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// <c>/v1/embeddings</c> for a model an external engine serves: relayed to the engine's own <c>/v1/embeddings</c>
/// through the governed pipeline (residency decision, reservation, exactly-once accounting at the engine's
/// <c>usage.prompt_tokens</c>), with the engine's vectors in OpenAI's format, float or base64.
/// </summary>
public sealed class EmbeddingRelayTests(EmbeddingRelayFixture fixture) : IClassFixture<EmbeddingRelayFixture>
{
    private static readonly string[] Texts = ["Once upon a time", "The dog ran to the park."];

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private UsageLedger Ledger => fixture.App.Services.GetRequiredService<UsageLedger>();

    private static float[] Floats(JsonElement item) => item.GetProperty("embedding").ValueKind == JsonValueKind.String
        ? MemoryMarshal.Cast<byte, float>(Convert.FromBase64String(item.GetProperty("embedding").GetString()!)).ToArray()
        : [.. item.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle())];

    [Fact]
    public async Task OfficialSdk_ThroughTheGateway_GetsTheEnginesOwnVectors_BilledAtItsPromptTokens()
    {
        var (tenant, key) = await fixture.NewTenantAsync(1000m, "TH");
        var viaGateway = (await ServerFixture.CreateOpenAIClient(fixture.Address, key).GetEmbeddingClient(EmbeddingRelayFixture.ThModel).GenerateEmbeddingsAsync(Texts)).Value;
        var direct = (await ServerFixture.CreateOpenAIClient(fixture.EngineAddress, "unused").GetEmbeddingClient(EmbeddingRelayFixture.EngineModel).GenerateEmbeddingsAsync(Texts)).Value;

        Assert.Equal(2, viaGateway.Count);
        for (var i = 0; i < Texts.Length; i++)
        {
            Assert.Equal(i, viaGateway[i].Index);
            Assert.Equal(64, viaGateway[i].ToFloats().Length);
            Assert.Equal(direct[i].ToFloats().ToArray(), viaGateway[i].ToFloats().ToArray());
        }

        Assert.Equal(EmbeddingRelayFixture.ThModel, viaGateway.Model);
        Assert.True(direct.Usage.InputTokenCount > 0);
        Assert.Equal(direct.Usage.InputTokenCount, viaGateway.Usage.InputTokenCount);

        // One completed record at the engine's count, 1 THB per token; the reservation (the inputs' bytes) released.
        var usage = Assert.Single((await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?tenant={tenant}", null, 200)).GetProperty("data").EnumerateArray());
        Assert.Equal((1, direct.Usage.InputTokenCount, 0), (usage.GetProperty("requests").GetInt32(), usage.GetProperty("prompt_tokens").GetInt32(), usage.GetProperty("completion_tokens").GetInt32()));
        Assert.Equal(((decimal)direct.Usage.InputTokenCount, 0m), await fixture.BudgetOfAsync(tenant));
    }

    [Fact]
    public async Task FloatAndBase64_CarryTheSameVector_WithEvidenceHeaders_AndOneRecordPerRequest()
    {
        var (_, key) = await fixture.NewTenantAsync(1000m, "TH");
        using var client = fixture.TenantClient(key);
        using var engine = new HttpClient { BaseAddress = fixture.EngineAddress };
        using var direct = await engine.PostAsync("/v1/embeddings", Json($$"""{"model":"{{EmbeddingRelayFixture.EngineModel}}","input":"Once upon a time"}"""));
        var expected = Floats(JsonDocument.Parse(await direct.Content.ReadAsStringAsync()).RootElement.GetProperty("data")[0]);

        foreach (var format in new[] { "float", "base64" })
        {
            using var response = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{EmbeddingRelayFixture.ThModel}}","input":"Once upon a time","encoding_format":"{{format}}"}"""));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, text);
            Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
            var body = JsonDocument.Parse(text).RootElement;
            Assert.Equal("list", body.GetProperty("object").GetString());
            Assert.Equal(EmbeddingRelayFixture.ThModel, body.GetProperty("model").GetString());
            var item = body.GetProperty("data")[0];
            Assert.Equal("embedding", item.GetProperty("object").GetString());
            Assert.Equal(format == "base64" ? JsonValueKind.String : JsonValueKind.Array, item.GetProperty("embedding").ValueKind);
            Assert.Equal(expected, Floats(item));

            Assert.Equal("TH", response.Headers.GetValues("x-sovereign-jurisdiction").Single());
            Assert.Equal("th-engine", response.Headers.GetValues("x-sovereign-node").Single());
            var record = await Ledger.GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
            var tokens = body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
            Assert.Equal((UsageOutcome.Completed, tokens, 0, (decimal)tokens), (record?.Outcome, record?.PromptTokens, record?.CompletionTokens, record?.Cost));
            Assert.Equal(tokens, body.GetProperty("usage").GetProperty("total_tokens").GetInt32());
        }
    }

    [Fact]
    public async Task TokenIdInputs_AreRelayedAsGiven_AndGiveTheVectorOfTheirText()
    {
        var (_, key) = await fixture.NewTenantAsync(1000m, "TH");
        using var client = fixture.TenantClient(key);
        using var engine = new HttpClient { BaseAddress = fixture.EngineAddress };
        using var tokenized = await engine.PostAsync("/tokenize", Json($$"""{"model":"{{EmbeddingRelayFixture.EngineChatModel}}","content":"Once upon a time","add_special":true}"""));
        var ids = JsonDocument.Parse(await tokenized.Content.ReadAsStringAsync()).RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray();
        using var fromText = await engine.PostAsync("/v1/embeddings", Json($$"""{"model":"{{EmbeddingRelayFixture.EngineModel}}","input":"Once upon a time"}"""));
        using var fromIds = await engine.PostAsync("/v1/embeddings", Json($$"""{"model":"{{EmbeddingRelayFixture.EngineModel}}","input":[[{{string.Join(',', ids)}}]]}"""));

        using var response = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{EmbeddingRelayFixture.ThModel}}","input":[[{{string.Join(',', ids)}}]]}"""));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        var relayed = Floats(JsonDocument.Parse(text).RootElement.GetProperty("data")[0]);
        Assert.Equal(Floats(JsonDocument.Parse(await fromIds.Content.ReadAsStringAsync()).RootElement.GetProperty("data")[0]), relayed);

        // The engine's own ids path and text path agree to the last bits of its arithmetic (EmbeddingsTests).
        var textVector = Floats(JsonDocument.Parse(await fromText.Content.ReadAsStringAsync()).RootElement.GetProperty("data")[0]);
        Assert.All(textVector.Zip(relayed), pair => Assert.Equal(pair.First, pair.Second, 5));
        Assert.Equal(ids.Length, JsonDocument.Parse(text).RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task ChatModel_ThroughEmbeddings_AndEmbeddingModel_ThroughChat_Are400ModelNotSupported()
    {
        var (tenant, key) = await fixture.NewTenantAsync(1000m, "TH");
        using var client = fixture.TenantClient(key);

        using var embeddings = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{EmbeddingRelayFixture.ChatModel}}","input":"Once upon a time"}"""));
        using var chat = await client.PostAsync("/v1/chat/completions", Json($$"""{"model":"{{EmbeddingRelayFixture.ThModel}}","messages":[{"role":"user","content":"Hi"}],"max_tokens":4}"""));
        using var completions = await client.PostAsync("/v1/completions", Json($$"""{"model":"{{EmbeddingRelayFixture.ThModel}}","prompt":"Hi","max_tokens":4}"""));

        foreach (var response in new[] { embeddings, chat, completions })
        {
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
            var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal(("model_not_supported", "model"), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
        }

        Assert.Equal((0m, 0m), await fixture.BudgetOfAsync(tenant));
    }

    [Fact]
    public async Task ResidencyAndBudget_RefuseEmbeddings_AsTheyRefuseChat()
    {
        // A TH-only tenant may not reach the SG registration of the same engine: 403, audited, nothing reserved.
        var (thTenant, thKey) = await fixture.NewTenantAsync(1000m, "TH");
        using var th = fixture.TenantClient(thKey);
        using var residency = await th.PostAsync("/v1/embeddings", Json($$"""{"model":"{{EmbeddingRelayFixture.SgModel}}","input":"Once upon a time"}"""));
        var residencyText = await residency.Content.ReadAsStringAsync();
        Assert.True(residency.StatusCode == HttpStatusCode.Forbidden, residencyText);
        Assert.Equal("residency_violation", JsonDocument.Parse(residencyText).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.NotEmpty(residency.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((0m, 0m), await fixture.BudgetOfAsync(thTenant));

        // An ASEAN tenant reaches it, in SG.
        var (_, aseanKey) = await fixture.NewTenantAsync(1000m, "ASEAN");
        using var asean = fixture.TenantClient(aseanKey);
        using var served = await asean.PostAsync("/v1/embeddings", Json($$"""{"model":"{{EmbeddingRelayFixture.SgModel}}","input":"Once upon a time"}"""));
        Assert.True(served.StatusCode == HttpStatusCode.OK, await served.Content.ReadAsStringAsync());
        Assert.Equal(("SG", "sg-engine"), (served.Headers.GetValues("x-sovereign-jurisdiction").Single(), served.Headers.GetValues("x-sovereign-node").Single()));

        // The reservation is the inputs' bytes plus each input's special tokens, at 1 THB a token: a 100-byte input
        // needs 102 THB, more than a 50 THB budget holds, although the engine would count far fewer tokens.
        var (poorTenant, poorKey) = await fixture.NewTenantAsync(50m, "TH");
        using var poor = fixture.TenantClient(poorKey);
        var input = string.Join(' ', Enumerable.Repeat("dog", 25)).PadRight(100, '!');
        using var refused = await poor.PostAsync("/v1/embeddings", Json($$"""{"model":"{{EmbeddingRelayFixture.ThModel}}","input":"{{input}}"}"""));
        var refusedText = await refused.Content.ReadAsStringAsync();
        Assert.True(refused.StatusCode == HttpStatusCode.TooManyRequests, refusedText);
        Assert.Equal("budget_exceeded", JsonDocument.Parse(refusedText).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(100 + UpstreamEmbeddings.SpecialTokensPerInput, UpstreamEmbeddings.Bound(new Sovereign.Gateway.Pipeline.EmbeddingWorkload { Model = "m", LanguageSample = "", Inputs = [input] }));

        // Token ids are fed as given by vLLM, but an engine may still add BOS/EOS around them: the same allowance.
        Assert.Equal(3 + 1 + (2 * UpstreamEmbeddings.SpecialTokensPerInput), UpstreamEmbeddings.Bound(new Sovereign.Gateway.Pipeline.EmbeddingWorkload { Model = "m", LanguageSample = "", Inputs = ["", ""], TokenInputs = [[1, 2, 3], [4]] }));

        // A shorter input fits the budget and is billed at the engine's count, not the bound.
        using var fits = await poor.PostAsync("/v1/embeddings", Json($$"""{"model":"{{EmbeddingRelayFixture.ThModel}}","input":"The dog ran"}"""));
        var fitsText = await fits.Content.ReadAsStringAsync();
        Assert.True(fits.StatusCode == HttpStatusCode.OK, fitsText);
        var tokens = JsonDocument.Parse(fitsText).RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
        Assert.InRange(tokens, 1, "The dog ran".Length);
        Assert.Equal(((decimal)tokens, 0m), await fixture.BudgetOfAsync(poorTenant));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    public async Task DimensionsBelowOne_Is400BeforeAnythingIsRelayed(int dimensions)
    {
        // Forwarded as given before, the engine's own refusal came back as a failed, recorded request.
        var (tenant, key) = await fixture.NewTenantAsync(1000m, "TH");
        using var client = fixture.TenantClient(key);

        using var response = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{EmbeddingRelayFixture.ThModel}}","input":"Once upon a time","dimensions":{{dimensions}}}"""));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal(("invalid_value", "dimensions"), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
        Assert.False(response.Headers.Contains("x-sovereign-audit-id"));
        Assert.Equal((0m, 0m), await fixture.BudgetOfAsync(tenant));
    }

    [Fact]
    public async Task TheEnginesError_ReachesTheClientAsOpenAIsError_AndIsNotBilled()
    {
        // Ids outside the engine's vocabulary: only the engine can know, and says so with a 400.
        var (tenant, key) = await fixture.NewTenantAsync(1000m, "TH");
        using var client = fixture.TenantClient(key);

        using var response = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{EmbeddingRelayFixture.ThModel}}","input":[[1,2,999999]]}"""));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("999999", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("th-engine", response.Headers.GetValues("x-sovereign-node").Single());
        var record = await Ledger.GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((UsageOutcome.Failed, 0, 0m), (record?.Outcome, record?.PromptTokens, record?.Cost));
        Assert.Equal((0m, 0m), await fixture.BudgetOfAsync(tenant));
    }

    [Fact]
    public async Task AnEngineThatFails_Is502_AndNotBilled_AndOneThatReportsNoUsage_IsBilledTheBound()
    {
        var failing = 0;
        await using var engine = await FakeUpstreamEngine.StartAsync(_ => Task.CompletedTask, async context =>
        {
            if (Interlocked.Increment(ref failing) == 1)
            {
                context.Response.StatusCode = StatusCodes.Status500InternalServerError;
                await context.Response.WriteAsync("""{"error":{"message":"CUDA out of memory","type":"server_error"}}""");
                return;
            }

            // The second call answers two vectors and no usage at all.
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1.25]},{"object":"embedding","index":1,"embedding":[2.0,0.0]}],"model":"upstream"}""");
        });
        const string Model = "fake-embed";
        await fixture.RegisterEmbeddingEngineAsync("fake-engine", engine.Url, Model);
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{EmbeddingRelayFixture.Plan}/prices", new { model = Model, input_per_million = 1_000_000m, output_per_million = 0m }, 201);
        var (tenant, key) = await fixture.NewTenantAsync(1000m, "TH");
        using var client = fixture.TenantClient(key);
        var body = Json($$"""{"model":"{{Model}}","input":["abc","de"],"encoding_format":"base64"}""");

        using var failed = await client.PostAsync("/v1/embeddings", body);
        var failedText = await failed.Content.ReadAsStringAsync();
        Assert.True(failed.StatusCode == HttpStatusCode.BadGateway, failedText);
        Assert.Equal("server_error", JsonDocument.Parse(failedText).RootElement.GetProperty("error").GetProperty("type").GetString());
        var failedRecord = await Ledger.GetAsync(failed.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((UsageOutcome.Failed, 0, 0m), (failedRecord?.Outcome, failedRecord?.PromptTokens, failedRecord?.Cost));
        Assert.Equal((0m, 0m), await fixture.BudgetOfAsync(tenant));

        using var unmetered = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{Model}}","input":["abc","de"],"encoding_format":"base64"}"""));
        var text = await unmetered.Content.ReadAsStringAsync();
        Assert.True(unmetered.StatusCode == HttpStatusCode.OK, text);
        var answer = JsonDocument.Parse(text).RootElement;
        Assert.Equal([0.5f, -1.25f], Floats(answer.GetProperty("data")[0]));
        Assert.Equal([2.0f, 0.0f], Floats(answer.GetProperty("data")[1]));
        const int Bound = 3 + 2 + (2 * UpstreamEmbeddings.SpecialTokensPerInput);
        Assert.Equal(Bound, answer.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(((decimal)Bound, 0m), await fixture.BudgetOfAsync(tenant));
        Assert.Equal(2, engine.Requests);
    }

    [Fact]
    public async Task AnEngineThatRefusesTheConnection_Is503_AndNotBilled()
    {
        const string Model = "refused-embed";
        await fixture.RegisterEmbeddingEngineAsync("refusing-engine", FakeUpstreamEngine.RefusingUrl(), Model);
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{EmbeddingRelayFixture.Plan}/prices", new { model = Model, input_per_million = 1_000_000m, output_per_million = 0m }, 201);
        var (tenant, key) = await fixture.NewTenantAsync(1000m, "TH");
        using var client = fixture.TenantClient(key);

        using var response = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{Model}}","input":"Once upon a time"}"""));
        var text = await response.Content.ReadAsStringAsync();

        // Its only replica is marked unreachable, so no other compliant one is left: 503 with Retry-After, as for chat.
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, text);
        Assert.NotNull(response.Headers.RetryAfter);
        var record = await Ledger.GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((0, 0m), (record?.PromptTokens, record?.Cost));
        Assert.Equal((0m, 0m), await fixture.BudgetOfAsync(tenant));
    }

    [Fact]
    public async Task AnEngineThatRefusesTheConnection_FailsOverToAnotherCompliantEngine_BilledThere()
    {
        // Two TH engines for one model; the refusing one sorts first, so the request meets it and moves on.
        const string Model = "failover-embed";
        await fixture.RegisterEmbeddingEngineAsync("fo-a-refusing", FakeUpstreamEngine.RefusingUrl(), Model);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes", new
        {
            id = "fo-b-live",
            jurisdiction = "TH",
            base_url = fixture.EngineAddress.ToString().TrimEnd('/'),
            models = new[] { new { id = Model, upstream = EmbeddingRelayFixture.EngineModel, capacity = 2, kind = "embedding" } },
        }, 201);
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{EmbeddingRelayFixture.Plan}/prices", new { model = Model, input_per_million = 1_000_000m, output_per_million = 0m }, 201);
        var (tenant, key) = await fixture.NewTenantAsync(1000m, "TH");
        using var client = fixture.TenantClient(key);
        var captured = new System.Collections.Concurrent.ConcurrentQueue<(string Category, Microsoft.Extensions.Logging.LogLevel Level, Microsoft.Extensions.Logging.EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        fixture.App.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().AddProvider(capture);

        using var response = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{Model}}","input":"Once upon a time"}"""));
        capture.Stop();
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        Assert.Equal("fo-b-live", response.Headers.GetValues("x-sovereign-node").Single());
        Assert.Contains(captured, l => l.Event.Id == 4101 && l.Message.Contains("fo-a-refusing", StringComparison.Ordinal));
        var tokens = JsonDocument.Parse(text).RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
        var record = await Ledger.GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((UsageOutcome.Completed, tokens), (record?.Outcome, record?.PromptTokens));
        Assert.Equal(((decimal)tokens, 0m), await fixture.BudgetOfAsync(tenant));
    }

    [Theory]
    [InlineData("""{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5]}],"usage":{"prompt_tokens":4,"total_tokens":4}}""", "upstream_invalid_response")]
    [InlineData("""{"object":"list","data":[{"embedding":[0.5]},{"embedding":["x"]}],"usage":{"prompt_tokens":4}}""", "upstream_invalid_response")]
    [InlineData("""{"object":"list","data":[{"embedding":[0.5]},{"embedding":"not base64!"}],"usage":{"prompt_tokens":4}}""", "upstream_invalid_response")]
    [InlineData("""{"object":"list","embeddings":[[0.5],[1.5]],"usage":{"prompt_tokens":4}}""", "upstream_invalid_response")]
    [InlineData("""{"object":"list","data":[{"embedding":[0.5]},{"embedding":[1.5]}],"usage":{"prompt_tokens":-4}}""", "upstream_invalid_usage")]
    [InlineData("""{"object":"list","data":[{"embedding":[0.5]},{"embedding":[1.5]}],"usage":[4]}""", "upstream_invalid_usage")]
    [InlineData("""{"object":"list","data":[{"embedding":[0.5]},{"embedding":[1.5]}]""", "upstream_invalid_response")]
    public async Task AnAnswerThatCannotBeRelayedOrMetered_Is502_AndNotBilled(string answer, string code)
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(_ => Task.CompletedTask, context =>
        {
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync(answer);
        });
        var model = "bad-embed-" + Guid.NewGuid().ToString("n")[..8];
        await fixture.RegisterEmbeddingEngineAsync(model + "-engine", engine.Url, model);
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{EmbeddingRelayFixture.Plan}/prices", new { model, input_per_million = 1_000_000m, output_per_million = 0m }, 201);
        var (tenant, key) = await fixture.NewTenantAsync(1000m, "TH");
        using var client = fixture.TenantClient(key);

        // Two inputs, asked as base64 so that every answer's vectors are read.
        using var response = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{model}}","input":["abc","de"],"encoding_format":"base64"}"""));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.BadGateway, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal(("server_error", code), (error.GetProperty("type").GetString(), error.GetProperty("code").GetString()));
        var record = await Ledger.GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((UsageOutcome.Failed, 0, 0m), (record?.Outcome, record?.PromptTokens, record?.Cost));
        Assert.Equal((0m, 0m), await fixture.BudgetOfAsync(tenant));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AClientThatLeavesBeforeTheAnswer_IsBilledNothing(bool engineStartedItsAnswer)
    {
        // The engine holds the request (after its response headers and a first part of the body, or before them)
        // until the gateway gives up on it; the client leaves once the engine has it.
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var engine = await FakeUpstreamEngine.StartAsync(_ => Task.CompletedTask, async context =>
        {
            if (engineStartedItsAnswer)
            {
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync("""{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,""");
                await context.Response.Body.FlushAsync();
            }

            received.TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                // The gateway went away: what this test waits for.
            }
        });
        var model = "held-embed-" + (engineStartedItsAnswer ? "body" : "headers");
        await fixture.RegisterEmbeddingEngineAsync(model + "-engine", engine.Url, model);
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{EmbeddingRelayFixture.Plan}/prices", new { model, input_per_million = 1_000_000m, output_per_million = 0m }, 201);
        var (tenant, key) = await fixture.NewTenantAsync(1000m, "TH");
        using var client = fixture.TenantClient(key);
        using var leave = new CancellationTokenSource();
        using var books = new BooksClosedListener();

        // The bounds only turn a hang into a failure.
        var call = client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{model}}","input":"Once upon a time"}"""), leave.Token);
        await received.Task.WaitAsync(TimeSpan.FromMinutes(2));
        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);

        // The client has gone before the gateway's answer, so its books close on their own: then the record has
        // committed and the reservation (settled after the record: the record is the bill) is given back.
        await books.ClosedForTenantAsync(tenant);

        // One record, at no cost, whatever stage the relay was in; nothing left reserved.
        var row = Assert.Single((await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?tenant={tenant}", null, 200)).GetProperty("data").EnumerateArray());
        Assert.Equal((1, 0, 0m), (row.GetProperty("requests").GetInt32(), row.GetProperty("prompt_tokens").GetInt32(), row.GetProperty("cost").GetDecimal()));
        // Refused (the relay was still waiting for the engine's headers) or cancelled (it was reading the answer): which
        // one, when the engine has started its answer, depends on whether its headers reached the gateway before the
        // client left, which nothing outside the gateway can see; neither bills anything.
        Assert.Equal(1, row.GetProperty("refused").GetInt32() + row.GetProperty("cancelled").GetInt32());
        Assert.Equal((0m, 0m), await fixture.BudgetOfAsync(tenant));
    }

    [Fact]
    public async Task CliNodesAdd_EmbeddingModel_IsRegisteredAsOne_AndServesEmbeddings()
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync("nodes", "add", "cli-engine", "--jurisdiction", "TH", "--base-url", fixture.EngineAddress.ToString().TrimEnd('/'),
            "--embedding-model", "cli-embed=" + EmbeddingRelayFixture.EngineModel, "--model", "cli-chat=" + EmbeddingRelayFixture.EngineChatModel,
            "--language", "th", "--language", "lo",
            "--url", fixture.Address.ToString(), "--admin-token", EmbeddingRelayFixture.AdminToken);
        Assert.True(exit == 0, stderr);
        Assert.Contains("registered in TH", stdout, StringComparison.Ordinal);
        var registered = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/nodes", null, 200)).GetProperty("data").EnumerateArray()
            .Single(n => n.GetProperty("id").GetString() == "cli-engine").GetProperty("models").EnumerateArray()
            .ToDictionary(m => m.GetProperty("id").GetString()!, m => m.GetProperty("languages").EnumerateArray().Select(l => l.GetString()).ToList());
        Assert.Equal(["th", "lo"], registered["cli-chat"]); // --language is for the chat models: `auto` routes chat by it
        Assert.Empty(registered["cli-embed"]);

        // Neither option: a usage error before anything is sent.
        var (noModel, _, noModelError) = await CliProcess.RunAsync("nodes", "add", "cli-none", "--jurisdiction", "TH", "--base-url", "http://127.0.0.1:9",
            "--url", fixture.Address.ToString(), "--admin-token", EmbeddingRelayFixture.AdminToken);
        Assert.Equal(Sovereign.Cli.Output.ExitCodes.Usage, noModel);
        Assert.Contains("--embedding-model", noModelError, StringComparison.Ordinal);

        // Its tenant has a budget, so the model is priced first (unpriced, it would be refused: model_not_priced).
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{EmbeddingRelayFixture.Plan}/prices", new { model = "cli-embed", input_per_million = 1_000_000m, output_per_million = 0m }, 201);
        var (_, key) = await fixture.NewTenantAsync(1000m, "TH");
        using var client = fixture.TenantClient(key);
        using var response = await client.PostAsync("/v1/embeddings", Json("""{"model":"cli-embed","input":"Once upon a time"}"""));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        Assert.Equal("cli-engine", response.Headers.GetValues("x-sovereign-node").Single());
        using var chat = await client.PostAsync("/v1/embeddings", Json("""{"model":"cli-chat","input":"Once upon a time"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, chat.StatusCode);
    }

    [Fact]
    public async Task Registration_TakesTheKind_AndRefusesAnUnknownOne()
    {
        var bad = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "bad-kind", jurisdiction = "TH", base_url = "http://127.0.0.1:9", models = new[] { new { id = "m", kind = "embeddings" } } }, 400);
        var error = bad.GetProperty("error");
        Assert.Equal(("invalid_value", "models[0].kind"), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));

        var nodes = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/nodes", null, 200);
        var models = nodes.GetProperty("data").EnumerateArray().Single(n => n.GetProperty("id").GetString() == "th-engine").GetProperty("models");
        Assert.Equal(["embedding", "chat"], models.EnumerateArray().Select(m => m.GetProperty("kind").GetString()));
        Assert.DoesNotContain(nodes.GetProperty("data").EnumerateArray(), n => n.GetProperty("id").GetString() == "bad-kind");
    }

    /// <summary>
    /// llama-server's (b4748, stories260K, <c>--embeddings --pooling mean</c>) answer to "Once upon a time" with
    /// <c>"dimensions":8</c>: it ignores the field and sends the model's 64.
    /// </summary>
    private const string LlamaServerIgnoringDimensions =
        """{"model":"stories260K","object":"list","usage":{"prompt_tokens":5,"total_tokens":5},"data":[{"embedding":[-0.016423122957348824,-0.07302939891815186,-0.028503458946943283,-0.12300588190555573,0.08816087990999222,-0.26405853033065796,0.10686222463846207,-0.02348272316157818,-0.054156310856342316,0.02595042809844017,0.07499118149280548,-0.12225519865751266,-0.1106795147061348,0.03140898048877716,-0.23264145851135254,-0.4471452832221985,-0.029351161792874336,-0.19364385306835175,0.07233880460262299,-0.2238977551460266,-0.017327118664979935,0.044002681970596313,0.034567028284072876,0.21977107226848602,-0.02548753283917904,0.07322314381599426,0.044953834265470505,0.06049495190382004,-0.015283757820725441,-0.10792188346385956,0.13873916864395142,0.5072575807571411,0.10407789051532745,0.10357998311519623,-0.04381253197789192,-0.11281302571296692,0.13933789730072021,0.055521611124277115,0.014801666140556335,0.13959217071533203,0.01845492795109749,0.0602061003446579,-0.047080811113119125,-0.01629096083343029,0.05947216972708702,0.09501337260007858,-0.008997787721455097,0.03680518642067909,0.06362192332744598,-0.009489907883107662,-0.0010538463247939944,0.015184682793915272,-0.002886112779378891,-0.09419657289981842,0.12042666226625443,0.000762282928917557,0.03618907928466797,-0.005362228490412235,0.03464406728744507,-0.11335201561450958,-0.04170345142483711,-0.009627291932702065,-0.055786941200494766,-0.07058835029602051],"index":0,"object":"embedding"}]}""";

    [Theory]
    [InlineData(8, 400)]
    [InlineData(64, 200)]
    public async Task DimensionsTheEngineDoesNotHonour_Is400AsForALocalModel_AndNotBilled(int dimensions, int status)
    {
        // Before: a 200 with 64-dimension vectors for a client that asked for 8 (and sized its index for 8), billed.
        await using var engine = await FakeUpstreamEngine.StartAsync(_ => Task.CompletedTask, context =>
        {
            context.Response.ContentType = "application/json; charset=utf-8";
            return context.Response.WriteAsync(LlamaServerIgnoringDimensions);
        });
        var model = "dims-embed-" + dimensions;
        await fixture.RegisterEmbeddingEngineAsync("dims-engine-" + dimensions, engine.Url, model);
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{EmbeddingRelayFixture.Plan}/prices", new { model, input_per_million = 1_000_000m, output_per_million = 0m }, 201);
        var (tenant, key) = await fixture.NewTenantAsync(1000m, "TH");
        using var client = fixture.TenantClient(key);

        using var response = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{model}}","input":"Once upon a time","dimensions":{{dimensions}}}"""));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True((int)response.StatusCode == status, text);
        var record = await Ledger.GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        if (status == 400)
        {
            var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal(("unsupported_parameter", "dimensions"), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
            Assert.Equal($"The model '{model}' does not support choosing dimensions.", error.GetProperty("message").GetString());
            Assert.Equal((0, 0m), (record?.PromptTokens, record?.Cost));
            Assert.Equal((0m, 0m), await fixture.BudgetOfAsync(tenant));
        }
        else
        {
            Assert.Equal(64, Floats(JsonDocument.Parse(text).RootElement.GetProperty("data")[0]).Length);
            Assert.Equal((5, 5m), (record?.PromptTokens, record?.Cost));
        }
    }
}
