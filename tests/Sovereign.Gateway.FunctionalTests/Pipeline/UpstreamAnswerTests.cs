using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// An external engine that answers in a form the gateway cannot meter gets the client a precise 502 (or an error event
/// in a stream), never a 500, and the request is settled once for what the client received; an engine whose connection
/// fails before its response headers is failed over like one that refuses the connection, within the policy.
/// </summary>
public sealed class UpstreamAnswerTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    private const decimal OutputPerMillion = 2_000_000m; // 2 per output token, so a relayed chunk has a visible price.
    private static int _models;

    private static StringContent Chat(string model, bool stream = false) =>
        new($$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8,"stream":{{(stream ? "true" : "false")}}}""", Encoding.UTF8, "application/json");

    /// <summary>A model only <paramref name="engine"/> serves, and a priced tenant with a budget, whose client is returned.</summary>
    private async Task<(string Model, string Tenant, HttpClient Client)> ServedByAsync(string engineUrl, decimal? perComputeSecond = null)
    {
        var model = "ua-model-" + Interlocked.Increment(ref _models);
        await fixture.RegisterEngineAsync(model + "-node", engineUrl, model);
        var plan = model + "-plan";
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}", new { currency = "THB" }, 200);
        await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/plans/{plan}/prices", new { model, input_per_million = 0m, output_per_million = OutputPerMillion, per_compute_second = perComputeSecond }, 201);
        var (tenant, client) = await fixture.NewTenantAsync(plan);
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "day", amount = 1000m } } }, 200);
        return (model, tenant, client);
    }

    /// <summary>The tenant's one usage row and its day budget: what was recorded and settled, and what is still held.</summary>
    private async Task<(JsonElement Usage, JsonElement Budget)> BooksOfAsync(string tenant)
    {
        var usage = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?tenant={tenant}", null, 200);
        var limits = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200);
        return (Assert.Single(usage.GetProperty("data").EnumerateArray()), limits.GetProperty("budgets")[0]);
    }

    [Theory]
    [InlineData("""{"prompt_tokens":"5","completion_tokens":3,"total_tokens":8}""")]
    [InlineData("""{"prompt_tokens":5,"completion_tokens":-3,"total_tokens":2}""")]
    [InlineData("""{"prompt_tokens":5.5,"completion_tokens":3,"total_tokens":8.5}""")]
    [InlineData("""{"prompt_tokens":5,"completion_tokens":99999999999,"total_tokens":8}""")]
    [InlineData("""{"prompt_tokens":5,"total_tokens":8}""")]
    [InlineData("""{"prompt_tokens":null,"completion_tokens":3}""")]
    [InlineData("""[5,3]""")]
    [InlineData("""null""")]
    public async Task MalformedUsage_Is502NamingTheUpstream_AndSettledOnceAtWhatWasDelivered(string usage)
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(context => FakeUpstreamEngine.AnswerAsync(context, usage));
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Chat(model));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(502, (int)response.StatusCode);
        Assert.Equal(("server_error", "upstream_invalid_usage"), (error.GetProperty("type").GetString(), error.GetProperty("code").GetString()));
        Assert.Contains("upstream engine", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(model + "-node", response.Headers.GetValues("x-sovereign-node").Single());

        // The client received no answer: one failed record at no cost, and nothing left reserved.
        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((UsageOutcome.Failed, 0, 0m), (record?.Outcome, record?.CompletionTokens, record?.Cost));
        var (row, budget) = await BooksOfAsync(tenant);
        Assert.Equal((1, 1), (row.GetProperty("requests").GetInt32(), row.GetProperty("failed").GetInt32()));
        Assert.Equal((0m, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
    }

    [Theory]
    [InlineData(3, 1_000_000)]
    [InlineData(1_000_000, 5)]
    public async Task UsageAboveWhatTheRequestCouldUse_IsBilledAtTheReservationsBound(int promptTokens, int completionTokens)
    {
        // An engine that ignores max_tokens or miscounts: billing its claim would overdraw the budget the reservation
        // held. Before, 1,000,000 completion tokens were billed for a max_tokens 8 request (2,000,000 on a 1,000 budget).
        await using var engine = await FakeUpstreamEngine.StartAsync(context => FakeUpstreamEngine.AnswerAsync(context,
            $$"""{"prompt_tokens":{{promptTokens}},"completion_tokens":{{completionTokens}},"total_tokens":{{promptTokens + completionTokens}}}"""));
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;
        using var request = Chat(model);
        var promptBytes = (await request.ReadAsByteArrayAsync()).Length;

        using var response = await client.PostAsync("/v1/chat/completions", request);

        Assert.Equal(200, (int)response.StatusCode);
        // A relayed answer is JSON in UTF-8 as the gateway's own answers are (it said application/json alone).
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.NotNull(record);
        Assert.Equal(UsageOutcome.Completed, record.Outcome);
        Assert.Equal(Math.Min(completionTokens, 8), record.CompletionTokens);
        Assert.Equal(Math.Min(promptTokens, promptBytes), record.PromptTokens);
        var expectedCost = Math.Min(completionTokens, 8) * OutputPerMillion / 1_000_000m;
        Assert.Equal(expectedCost, record.Cost);
        var (_, budget) = await BooksOfAsync(tenant);
        Assert.Equal((expectedCost, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
    }

    [Fact]
    public async Task Echo_IsRelayedAsSent_AndVllmsHiddenTokenForMaxTokensZero_IsBilled()
    {
        // vLLM runs echo with max_tokens 0 as max_tokens 1 and counts that token in its usage; the reservation's bound
        // allows it. Before, echo was refused before routing, even for engines that support it.
        var received = new System.Collections.Concurrent.ConcurrentQueue<System.Text.Json.Nodes.JsonObject>();
        await using var engine = await FakeUpstreamEngine.StartAsync(
            context => FakeUpstreamEngine.AnswerAsync(context, """{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}"""),
            completions: async context =>
            {
                received.Enqueue((await System.Text.Json.Nodes.JsonNode.ParseAsync(context.Request.Body))!.AsObject());
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(
                    """{"id":"cmpl-fake","object":"text_completion","created":1,"model":"upstream","choices":[{"index":0,"text":"Once upon","logprobs":{"tokens":["<s>","Once"," upon"],"token_logprobs":[null,-2.5,-0.5],"top_logprobs":[null,{"Once":-2.5},{" upon":-0.5}],"text_offset":[0,3,7]},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}""");
            });
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/completions", new StringContent(
            $$"""{"model":"{{model}}","prompt":"Once upon","echo":true,"logprobs":1,"max_tokens":0}""", Encoding.UTF8, "application/json"));

        Assert.Equal(200, (int)response.StatusCode);
        var sent = Assert.Single(received);
        Assert.Equal((true, 0, 1), (sent["echo"]!.GetValue<bool>(), sent["max_tokens"]!.GetValue<int>(), sent["logprobs"]!.GetValue<int>()));
        var answer = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("Once upon", answer.GetProperty("choices")[0].GetProperty("text").GetString());
        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.NotNull(record);
        Assert.Equal((UsageOutcome.Completed, 3, 1, OutputPerMillion / 1_000_000m), (record.Outcome, record.PromptTokens, record.CompletionTokens, record.Cost));
        var (_, budget) = await BooksOfAsync(tenant);
        Assert.Equal(0m, budget.GetProperty("reserved").GetDecimal());
    }

    [Fact]
    public async Task AClientThatLeavesBeforeTheEnginesHeaders_IsRecordedAsCancelled_NotRefused()
    {
        // A non-streaming engine sends its headers only when the answer is done: the work was sent, then abandoned.
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var upstreamCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            received.TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                upstreamCancelled.TrySetResult();
            }
        });
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;
        using var leave = new CancellationTokenSource();

        var request = client.PostAsync("/v1/chat/completions", Chat(model), leave.Token);
        await received.Task;
        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => request);
        await upstreamCancelled.Task;

        // The books close after the relay is cancelled: wait for the tenant's row, then read it.
        JsonElement row = default, budget = default;
        for (var reads = 0; row.ValueKind != JsonValueKind.Object || budget.GetProperty("reserved").GetDecimal() != 0m; reads++)
        {
            Assert.True(reads < 1500, "the cancelled request's books never closed");
            var usage = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?tenant={tenant}", null, 200);
            row = usage.GetProperty("data").EnumerateArray().FirstOrDefault();
            budget = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200)).GetProperty("budgets")[0];
            await Task.Delay(20);
        }

        Assert.Equal((1, 1, 0), (row.GetProperty("requests").GetInt32(), row.GetProperty("cancelled").GetInt32(), row.GetProperty("refused").GetInt32()));
        Assert.Equal(0m, budget.GetProperty("settled").GetDecimal());
    }

    [Fact]
    public async Task AnAnswerThatIsNotJson_Is502()
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(context =>
        {
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync("{\"choices\":[{\"message\":");
        });
        var (model, _, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Chat(model));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(502, (int)response.StatusCode);
        Assert.Equal("upstream_invalid_response", error.GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("""{"prompt_tokens":5,"completion_tokens":"2"}""")]
    [InlineData(null)]
    public async Task AStreamWithMalformedOrMissingUsage_EndsWithAnErrorEvent_AndIsBilledForTheChunksRelayed(string? usage)
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            foreach (var word in new[] { "Once", " upon" })
            {
                await context.Response.WriteAsync($$"""data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"upstream","choices":[{"index":0,"delta":{"content":"{{word}}"},"finish_reason":null}],"usage":null}""" + "\n\n");
                await context.Response.Body.FlushAsync();
            }

            if (usage is not null)
            {
                await context.Response.WriteAsync($$"""data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"upstream","choices":[],"usage":{{usage}}}""" + "\n\n");
            }

            await context.Response.WriteAsync("data: [DONE]\n\n");
        });
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Chat(model, stream: true));
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(2, events.Count(e => e.Contains("\"content\"", StringComparison.Ordinal)));
        var last = JsonDocument.Parse(events[^1]["data:".Length..]).RootElement;
        Assert.Equal("upstream_invalid_usage", last.GetProperty("error").GetProperty("code").GetString());
        Assert.DoesNotContain(events, e => e.Contains("[DONE]", StringComparison.Ordinal));

        // Two content chunks reached the client: two output tokens, settled once.
        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((UsageOutcome.Failed, 2, 4m), (record?.Outcome, record?.CompletionTokens, record?.Cost));
        var (row, budget) = await BooksOfAsync(tenant);
        Assert.Equal(1, row.GetProperty("requests").GetInt32());
        Assert.Equal((4m, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
    }

    /// <summary>
    /// A cluster node (another Sovereign) whose database cannot record the request ends its stream, after its headers and
    /// role chunk, with its refusal as an error event. The gateway logged it as the node failing mid-answer (4102, "a
    /// node fault") and nobody counted it in <c>sovereign_database_refusals</c>; it is the node's database refusal (4143),
    /// counted as its unstreamed 503 is, and passed on with its code, billed nothing.
    /// </summary>
    [Theory]
    [InlineData("audit_unavailable")]
    [InlineData("storage_unavailable")]
    public async Task ANodesStreamedDatabaseRefusal_IsLoggedAsTheNodesRefusal_AndCounted(string code)
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("""data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"upstream","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}""" + "\n\n");
            await context.Response.Body.FlushAsync();
            await context.Response.WriteAsync($$$"""data: {"error":{"message":"The audit log could not record this request, so it was not run, or its answer was withheld (fail closed). Try again.","type":"server_error","param":null,"code":"{{{code}}}"}}""" + "\n\n");
        });
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;
        // Counted as this server's sovereign_database_refusals (its /metrics would do, but a test process holds several
        // servers, whose meters of one name the exporters cannot tell apart): the instrument of this server's factory.
        var factory = fixture.App.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        long counted = 0;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name == "sovereign.database.refusals" && ReferenceEquals(instrument.Meter.Scope, factory))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref counted, value));
        listener.Start();
        var captured = new System.Collections.Concurrent.ConcurrentQueue<(string Category, Microsoft.Extensions.Logging.LogLevel Level, Microsoft.Extensions.Logging.EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        fixture.App.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().AddProvider(capture);

        using var response = await client.PostAsync("/v1/chat/completions", Chat(model, stream: true));
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        capture.Stop();

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(code, JsonDocument.Parse(events[^1]["data:".Length..]).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.DoesNotContain(captured, l => l.Event.Id == 4102);
        Assert.Contains(captured, l => l.Event.Id == 4143 && l.Level == Microsoft.Extensions.Logging.LogLevel.Warning && l.Message.Contains(code, StringComparison.Ordinal));
        Assert.Equal(1, Interlocked.Read(ref counted));
        var (row, _) = await BooksOfAsync(tenant);
        Assert.Equal(0m, row.GetProperty("cost").GetDecimal());
    }

    [Theory]
    [InlineData("html")]
    [InlineData("no events")]
    public async Task AStreamThatFailsBeforeItsFirstEvent_IsA502_NotA200WithAnErrorEvent(string failure)
    {
        // "html": a proxy's or a wrong engine's page, 200 text/html. "no events": an event stream that ends with none.
        // Before, both were a 200 event stream holding only an error event: nothing had been written, yet the status
        // said success (monitoring saw none, and an engine that died before its first event was not a retryable 503).
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            if (failure == "html")
            {
                context.Response.ContentType = "text/html";
                await context.Response.WriteAsync("<html><body>502 Bad Gateway</body></html>");
                return;
            }

            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(": keep-alive\n\n");
        });
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Chat(model, stream: true));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(502, (int)response.StatusCode);
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        Assert.Equal("upstream_invalid_usage", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString());

        // Nothing reached the client: recorded as failed, at no cost, nothing left reserved.
        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((UsageOutcome.Failed, 0, 0m), (record?.Outcome, record?.CompletionTokens, record?.Cost));
        var (_, budget) = await BooksOfAsync(tenant);
        Assert.Equal((0m, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
    }

    [Fact]
    public async Task AConnectionThatFailsBeforeTheResponseHeaders_FailsOverToTheNextCompliantNode()
    {
        // "fo-a" takes the request and drops the connection before answering; "fo-b" answers. Both in TH.
        await using var dropping = await FakeUpstreamEngine.StartAsync(context =>
        {
            context.Abort();
            return Task.CompletedTask;
        });
        await using var answering = await FakeUpstreamEngine.StartAsync(context =>
            FakeUpstreamEngine.AnswerAsync(context, """{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}"""));
        const string Model = "fo-model";
        await fixture.RegisterEngineAsync("fo-a", dropping.Url, Model);
        await fixture.RegisterEngineAsync("fo-b", answering.Url, Model);
        var (tenant, client) = await fixture.NewTenantAsync("default");
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Chat(Model));

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("fo-b", response.Headers.GetValues("x-sovereign-node").Single());
        Assert.Equal((1, 1), (dropping.Requests, answering.Requests));
        var entries = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={tenant}", null, 200);
        Assert.Contains(entries.GetProperty("data").EnumerateArray(), e => e.GetProperty("action").GetString() == "inference.allowed"
            && e.GetProperty("reasons").EnumerateArray().Any(r => r.GetString() == "failover: fo-a could not be reached"));
    }

    [Fact]
    public async Task AConnectionThatFailsBeforeTheResponseHeaders_NeverFailsOverOutsideThePolicy()
    {
        // The only other replica is in SG; the tenant may use TH only.
        await using var dropping = await FakeUpstreamEngine.StartAsync(context =>
        {
            context.Abort();
            return Task.CompletedTask;
        });
        await using var foreign = await FakeUpstreamEngine.StartAsync(context =>
            FakeUpstreamEngine.AnswerAsync(context, """{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}"""));
        const string Model = "fp-model";
        await fixture.RegisterEngineAsync("fp-th", dropping.Url, Model);
        await fixture.RegisterEngineAsync("fp-sg", foreign.Url, Model, jurisdiction: "SG");
        var (_, client) = await fixture.NewTenantAsync("default");
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Chat(Model));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(503, (int)response.StatusCode);
        Assert.Equal("no_compliant_capacity", error.GetProperty("code").GetString());
        Assert.Equal((1, 0), (dropping.Requests, foreign.Requests));
    }

    /// <summary>
    /// An engine's error type, code and param reach the operator: the log names them (4001, 4002), the refusal summary
    /// counts per code, the ledger and audit log may keep the code. An engine that put a line break in one forged a log
    /// line, an ESC sequence reached the operator's terminal. Found by reading <c>UpstreamErrors</c> (session 48): each is
    /// now taken only when it is an identifier (a param: a path without such characters), else this gateway's own; the
    /// engine's message, which only the client reads, is passed on as it was.
    /// </summary>
    [Theory]
    [InlineData(400, false)]
    [InlineData(500, false)]
    [InlineData(400, true)]
    public async Task AnEnginesErrorNamesThatAreNotIdentifiers_AreNotPassedOn_NorLogged(int status, bool stream)
    {
        const string Named = "\"message\":\"The engine's own words.\",\"type\":\"invalid_request_error\\n2026-12-07 info: forged line\",\"param\":\"messages\\u001b[8m\"";
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            if (stream)
            {
                // llama-server's way: an error event in a 200 stream, its code the status.
                context.Response.ContentType = "text/event-stream";
                await context.Response.WriteAsync($"error: {{\"code\":{status},{Named}}}\n\n");
                return;
            }

            context.Response.StatusCode = status;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("{\"error\":{" + Named + ",\"code\":\"bad\\r\\n\\u001b]52;c;eA==\\u0007\"}}");
        });
        var (model, _, client) = await ServedByAsync(engine.Url);
        using var _ = client;
        var captured = new System.Collections.Concurrent.ConcurrentQueue<(string Category, Microsoft.Extensions.Logging.LogLevel Level, Microsoft.Extensions.Logging.EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        fixture.App.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().AddProvider(capture);

        using var response = await client.PostAsync("/v1/chat/completions", Chat(model, stream));
        var body = await response.Content.ReadAsStringAsync();
        capture.Stop();

        var json = body.StartsWith('{') ? body : body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)[^1]["data:".Length..];
        var error = JsonDocument.Parse(json).RootElement.GetProperty("error");
        Assert.Equal("The engine's own words.", error.GetProperty("message").GetString());
        Assert.Equal(status == 400 ? "invalid_request_error" : "server_error", error.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        var code = error.GetProperty("code");
        Assert.True(code.ValueKind == JsonValueKind.Null || code.GetString()!.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'), code.GetRawText());
        Assert.DoesNotContain(captured, l => l.Message.Contains("forged", StringComparison.Ordinal) || l.Message.Any(c => char.IsControl(c) && c != '\n'));
    }

    [Theory]
    [InlineData(307, false)]
    [InlineData(308, true)]
    [InlineData(302, false)]
    public async Task AnEngineThatRedirects_IsNeverFollowed_AndTheClientGetsA502AtNoCost(int status, bool stream)
    {
        // The redirect's target is an engine the policy would never reach (it is not even registered): following it would
        // send the prompt wherever the engine points.
        await using var elsewhere = await FakeUpstreamEngine.StartAsync(context =>
            FakeUpstreamEngine.AnswerAsync(context, """{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}"""));
        await using var redirecting = await FakeUpstreamEngine.StartAsync(context =>
        {
            context.Response.StatusCode = status;
            context.Response.Headers.Location = elsewhere.Url + "/v1/chat/completions";
            return Task.CompletedTask;
        });
        var (model, tenant, client) = await ServedByAsync(redirecting.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Chat(model, stream));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(502, (int)response.StatusCode);
        Assert.Equal(("server_error", "upstream_redirect_refused"), (error.GetProperty("type").GetString(), error.GetProperty("code").GetString()));
        Assert.False(response.Headers.Contains("Location"));
        Assert.Equal((1, 0), (redirecting.Requests, elsewhere.Requests));
        var (row, budget) = await BooksOfAsync(tenant);
        Assert.Equal((1, 1), (row.GetProperty("requests").GetInt32(), row.GetProperty("failed").GetInt32()));
        Assert.Equal((0m, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
    }

    [Fact]
    public async Task AnAnswerLargerThanTheGatewayReads_Is502_WithoutReadingIt()
    {
        // The engine announces an answer beyond the bound: refused on its headers, before its body is read.
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = (long)global::Sovereign.Gateway.Routing.UpstreamProxy.MaxAnswerBytes + 1;
            await context.Response.WriteAsync("{\"choices\":[");
            await context.Response.Body.FlushAsync();
        });
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Chat(model));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(502, (int)response.StatusCode);
        Assert.Equal("upstream_answer_too_large", error.GetProperty("code").GetString());
        var (_, budget) = await BooksOfAsync(tenant);
        Assert.Equal((0m, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
    }

    [Theory]
    [InlineData(400, "application/json", """{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":"bad_value"}}""", 400, "bad temperature", "invalid_request_error", "temperature", "bad_value")]
    [InlineData(400, "application/json", """{"error":{"code":400,"message":"the prompt is too long","type":"invalid_request_error"}}""", 400, "the prompt is too long", "invalid_request_error", null, "400")]
    [InlineData(400, "application/json", """{"object":"error","message":"max_tokens too large","type":"BadRequestError","param":null,"code":400}""", 400, "max_tokens too large", "BadRequestError", null, "400")]
    [InlineData(422, "application/json", """{"detail":"field required"}""", 422, "field required", "invalid_request_error", null, null)]
    [InlineData(400, "application/json", """{"error":"invalid options"}""", 400, "invalid options", "invalid_request_error", null, null)]
    [InlineData(500, "text/html", "<html><body>Internal error</body></html>", 502, "The upstream engine answered 500 without an error message.", "server_error", null, "upstream_error")]
    [InlineData(401, "application/json", """{"error":{"message":"Incorrect API key provided","type":"authentication_error","code":"invalid_api_key"}}""", 502, null, "server_error", null, "upstream_auth_failed")]
    public async Task AnEnginesError_ReachesTheClientAsOpenAIsErrorObject_WhateverItsDialect(
        int upstreamStatus, string contentType, string body, int status, string? message, string type, string? param, string? code)
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(context =>
        {
            context.Response.StatusCode = upstreamStatus;
            context.Response.ContentType = contentType;
            return context.Response.WriteAsync(body);
        });
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Chat(model));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        Assert.Equal((type, param, code), (error.GetProperty("type").GetString(), error.GetProperty("param").GetString(), error.GetProperty("code").GetString()));
        if (message is not null)
        {
            Assert.Equal(message, error.GetProperty("message").GetString());
        }
        else
        {
            // The engine's refusal of the gateway's own key is not passed on as if it were the client's.
            Assert.DoesNotContain("Incorrect API key", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        var (_, budget) = await BooksOfAsync(tenant);
        Assert.Equal((0m, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
    }

    [Theory]
    [InlineData("""{"object":"error","message":"The model `upstream` does not exist.","type":"NotFoundError","param":null,"code":404}""")]
    [InlineData("""{"error":"model 'upstream' not found, try pulling it first"}""")]
    public async Task AnEngineThatDoesNotKnowTheRegisteredModel_IsTheOperatorsFault_A502_NotTheClients404(string body)
    {
        // vLLM's and Ollama's answer to a model name they do not serve. Before, the client got 404 "model 'upstream' not
        // found" for a model the gateway lists: SDKs report that as the client's mistake and do not retry, and the
        // answer named the engine's own model name.
        await using var engine = await FakeUpstreamEngine.StartAsync(context =>
        {
            context.Response.StatusCode = 404;
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync(body);
        });
        var (model, tenant, client) = await ServedByAsync(engine.Url);
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Chat(model));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(502, (int)response.StatusCode);
        Assert.Equal(("server_error", "upstream_model_not_found"), (error.GetProperty("type").GetString(), error.GetProperty("code").GetString()));
        Assert.Equal(
            "The upstream engine does not serve this model at its registered address (404); the operator must check the node's base URL and the model's upstream name.",
            error.GetProperty("message").GetString());
        var (_, budget) = await BooksOfAsync(tenant);
        Assert.Equal((0m, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
    }

    /// <summary>
    /// An engine's error answer (or one the gateway cannot meter) is not billed: neither tokens nor the time the engine
    /// took to give it. On a plan with a compute-second price the tenant paid for that time: a registered model name
    /// the engine does not serve (the operator's mistake, a 502) cost the tenant every second the engine took to say so.
    /// </summary>
    [Theory]
    [InlineData(404, """{"object":"error","message":"The model `upstream` does not exist.","type":"NotFoundError","param":null,"code":404}""", false)]
    [InlineData(500, """{"error":{"message":"CUDA out of memory","type":"server_error"}}""", false)]
    [InlineData(400, """{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature"}}""", true)]
    [InlineData(200, """{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],"usage":null}""", false)]
    public async Task AnEnginesErrorAnswer_IsNotBilledForTheTimeItTook(int upstreamStatus, string body, bool stream)
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            await Task.Delay(300);
            context.Response.StatusCode = upstreamStatus;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(body);
        });
        var (model, tenant, client) = await ServedByAsync(engine.Url, perComputeSecond: 1m);
        using var _ = client;

        using var response = await client.PostAsync("/v1/chat/completions", Chat(model, stream));

        Assert.NotEqual(200, (int)response.StatusCode);
        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((UsageOutcome.Failed, 0m, 0m), (record?.Outcome, record?.ComputeSeconds, record?.Cost));
        var (_, budget) = await BooksOfAsync(tenant);
        Assert.Equal((0m, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
    }
}
