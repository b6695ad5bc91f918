using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using OpenAI.Chat;
using OpenAI.Responses;

namespace Sovereign.Gateway.FunctionalTests;

#pragma warning disable OPENAI001 // The Responses client is marked experimental in the SDK.

/// <summary>
/// /v1/responses on relayed routes: an engine that speaks chat completions only (<see cref="FakeChatEngine"/>, as
/// vLLM, llama-server and Ollama) and a real Sovereign engine registered as external. The gateway asks in chat's
/// format and answers in Responses', streamed as typed events, governed as chat is (reservation bound sent upstream,
/// the engine's usage billed and audited).
/// </summary>
[Collection(ResidencyCollection.Name)]
public sealed class ResponsesRelayTests(ResidencyFixture fixture, FakeChatEngine engine) : IClassFixture<FakeChatEngine>
{
    private const string FakeModel = "fake-chat-only";
    private const string Tenant = "resp-relay";
    private const string WeatherSchema = """{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""";
    private static readonly SemaphoreSlim Setup = new(1, 1);
    private static string? _key;

    private async Task<string> KeyAsync()
    {
        await Setup.WaitAsync();
        try
        {
            if (_key is null)
            {
                await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/nodes",
                    new { id = "fake-chat-node", jurisdiction = "SG", base_url = engine.BaseUrl, models = new[] { new { id = FakeModel, upstream = "upstream-model", capacity = 4 } } }, 201);
                await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/nodes",
                    new { id = "sg-responses", jurisdiction = "SG", base_url = fixture.Sg.Urls.First(), models = new[] { new { id = "sg-responses", upstream = ResidencyFixture.Model, capacity = 4 } } }, 201);
                _key = await fixture.CreateTenantWithKeyAsync(Tenant, new { allowed_jurisdictions = new[] { "ASEAN" }, allow_external_providers = true });
            }

            return _key;
        }
        finally
        {
            Setup.Release();
        }
    }

    private async Task<ResponsesClient> ResponsesAsync() =>
        new global::OpenAI.OpenAIClient(new ApiKeyCredential(await KeyAsync()), new global::OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.ThAddress, "/v1"), RetryPolicy = new ClientRetryPolicy(0) })
            .GetResponsesClient();

    private static CreateResponseOptions Options(string user, int? maxTokens = null, string model = FakeModel)
    {
        var options = new CreateResponseOptions { Model = model, Instructions = "Be brief.", InputItems = { ResponseItem.CreateUserMessageItem(user) }, MaxOutputTokenCount = maxTokens };
        return options;
    }

    [Fact]
    public async Task Sdk_IsAskedAsAChatCompletion_AndAnsweredAsAResponse()
    {
        var response = (await (await ResponsesAsync()).CreateResponseAsync(Options("many: relay one", 16))).Value;

        Assert.Equal(string.Concat(FakeChatEngine.ManyWords.Take(16)), response.GetOutputText());
        Assert.Equal(FakeModel, response.Model);
        Assert.Equal(ResponseStatus.Incomplete, response.Status);
        Assert.Equal(ResponseIncompleteStatusReason.MaxOutputTokens, response.IncompleteStatusDetails.Reason);
        Assert.Equal(FakeChatEngine.PromptTokens, response.Usage.InputTokenCount);
        Assert.Equal(16, response.Usage.OutputTokenCount);
        var sent = engine.LastWith("many: relay one");
        Assert.Equal("upstream-model", sent["model"]!.GetValue<string>());
        Assert.Equal(16, sent["max_tokens"]!.GetValue<int>());
        Assert.Null(sent["input"]);
        Assert.Null(sent["max_output_tokens"]);
        var messages = sent["messages"]!.AsArray();
        Assert.Equal(("system", "Be brief."), (messages[0]!["role"]!.GetValue<string>(), messages[0]!["content"]!.GetValue<string>()));
        Assert.Equal(("user", "many: relay one"), (messages[1]!["role"]!.GetValue<string>(), messages[1]!["content"]!.GetValue<string>()));
        Assert.DoesNotContain("/v1/responses", engine.Unknown);
    }

    [Fact]
    public async Task NoMaxOutputTokens_TheEngineGetsTheLimitTheGatewayReserved_AndItsUsageIsAudited()
    {
        using var client = fixture.TenantClient(await KeyAsync());
        using var http = await client.PostAsync("/v1/responses", Json($$"""{"model":"{{FakeModel}}","input":"relay unbounded"}"""));
        var body = JsonDocument.Parse(await http.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(HttpStatusCode.OK, http.StatusCode);
        Assert.Equal("completed", body.GetProperty("status").GetString());
        Assert.Equal("fake-chat-node", http.Headers.GetValues("x-sovereign-node").Single());
        Assert.Equal("SG", http.Headers.GetValues("x-sovereign-jurisdiction").Single());
        Assert.Equal(4096, engine.LastWith("relay unbounded")["max_tokens"]!.GetValue<int>());
        var auditId = http.Headers.GetValues("x-sovereign-audit-id").Single();
        var completed = (await fixture.AdminAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={Tenant}", null, 200)).GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("action").GetString() == "inference.completed" && e.GetProperty("details").GetProperty("request_id").GetString() == auditId);
        Assert.Equal(FakeChatEngine.PromptTokens, completed.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(FakeChatEngine.Words.Length, completed.GetProperty("completion_tokens").GetInt32());
        Assert.Equal("completed", completed.GetProperty("details").GetProperty("outcome").GetString());
    }

    [Fact]
    public async Task Streaming_Sdk_DeltasConcatenate_AndTheFinalResponseCarriesTheEnginesUsage()
    {
        var options = Options("relay stream");
        options.StreamingEnabled = true;
        var text = new StringBuilder();
        var sequence = new List<int>();
        ResponseResult? final = null;
        await foreach (var update in await (await ResponsesAsync()).CreateResponseStreamingAsync(options))
        {
            sequence.Add(update.SequenceNumber);
            if (update is StreamingResponseOutputTextDeltaUpdate delta)
            {
                text.Append(delta.Delta);
            }
            else if (update is StreamingResponseCompletedUpdate completed)
            {
                final = completed.Response;
            }
        }

        Assert.Equal(string.Concat(FakeChatEngine.Words), text.ToString());
        Assert.Equal(Enumerable.Range(0, sequence.Count), sequence);
        Assert.NotNull(final);
        Assert.Equal(string.Concat(FakeChatEngine.Words), final.GetOutputText());
        Assert.Equal(FakeChatEngine.PromptTokens, final.Usage.InputTokenCount);
        Assert.Equal(FakeChatEngine.Words.Length, final.Usage.OutputTokenCount);
        Assert.True(engine.LastWith("relay stream")["stream"]!.GetValue<bool>());
    }

    [Fact]
    public async Task StreamingToolCall_RawHttp_IsAFunctionCallItemWithArgumentDeltas()
    {
        using var client = fixture.TenantClient(await KeyAsync());
        var request = $$"""
            {"model":"{{FakeModel}}","input":"relay tool stream","stream":true,
             "tools":[{"type":"function","name":"get_weather","parameters":{{WeatherSchema}}}],"tool_choice":"required"}
            """;
        using var http = await client.PostAsync("/v1/responses", Json(request));
        var events = Events(await http.Content.ReadAsStringAsync());

        string[] expected =
        [
            "response.created", "response.in_progress", "response.output_item.added",
            "response.function_call_arguments.delta", "response.function_call_arguments.delta", "response.function_call_arguments.done",
            "response.output_item.done", "response.completed",
        ];
        Assert.Equal(expected, events.Select(e => e.GetProperty("type").GetString()));
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.GetProperty("sequence_number").GetInt32()));
        var added = events[2].GetProperty("item");
        Assert.Equal("function_call", added.GetProperty("type").GetString());
        Assert.Equal(FakeChatEngine.CallId, added.GetProperty("call_id").GetString());
        Assert.Equal("get_weather", added.GetProperty("name").GetString());
        Assert.Equal(FakeChatEngine.CallArguments, events[3].GetProperty("delta").GetString() + events[4].GetProperty("delta").GetString());
        Assert.Equal(FakeChatEngine.CallArguments, events[5].GetProperty("arguments").GetString());
        var output = Assert.Single(events[^1].GetProperty("response").GetProperty("output").EnumerateArray());
        Assert.Equal(FakeChatEngine.CallArguments, output.GetProperty("arguments").GetString());
        var sent = engine.LastWith("relay tool stream");
        Assert.Equal("get_weather", sent["tools"]![0]!["function"]!["name"]!.GetValue<string>());
        Assert.Equal("required", sent["tool_choice"]!.GetValue<string>());
    }

    [Fact]
    public async Task FunctionCallRoundTrip_Sdk_TheCallAndItsOutputReachTheEngineAsChatHistory()
    {
        var responses = await ResponsesAsync();
        var first = Options("relay weather?");
        first.Tools.Add(ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString(WeatherSchema), strictModeEnabled: false));
        var call = Assert.IsType<FunctionCallResponseItem>(Assert.Single((await responses.CreateResponseAsync(first)).Value.OutputItems));
        Assert.Equal(FakeChatEngine.CallId, call.CallId);
        Assert.Equal(FakeChatEngine.CallArguments, call.FunctionArguments.ToString());

        var second = Options("relay weather?");
        second.Tools.Add(ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString(WeatherSchema), strictModeEnabled: false));
        second.InputItems.Add(call);
        second.InputItems.Add(ResponseItem.CreateFunctionCallOutputItem(call.CallId, """{"celsius":31}"""));
        var answer = (await responses.CreateResponseAsync(second)).Value;

        Assert.Equal(string.Concat(FakeChatEngine.Words), answer.GetOutputText());
        var messages = engine.LastWith("""{"celsius":31}""")["messages"]!.AsArray();
        Assert.Equal("assistant", messages[^2]!["role"]!.GetValue<string>());
        Assert.Equal(FakeChatEngine.CallId, messages[^2]!["tool_calls"]![0]!["id"]!.GetValue<string>());
        Assert.Equal("tool", messages[^1]!["role"]!.GetValue<string>());
        Assert.Equal(FakeChatEngine.CallId, messages[^1]!["tool_call_id"]!.GetValue<string>());
    }

    /// <summary>
    /// An engine that gives two calls of one answer the same id: the response's function_call items shared a
    /// call_id, and the agent loop's next turn (both calls and both outputs sent back) was a 400 ("used by an earlier
    /// function_call item"). Each call now has its own call_id, whole and streamed, and the loop goes on.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EngineGivesTwoCallsOneId_EachItemHasItsOwnCallId_AndTheLoopGoesOn(bool stream)
    {
        var responses = await ResponsesAsync();
        var first = Options("twin calls");
        first.Tools.Add(ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString(WeatherSchema), strictModeEnabled: false));
        List<FunctionCallResponseItem> calls;
        if (stream)
        {
            first.StreamingEnabled = true;
            ResponseResult? final = null;
            await foreach (var update in await responses.CreateResponseStreamingAsync(first))
            {
                final = (update as StreamingResponseCompletedUpdate)?.Response ?? final;
            }

            calls = [.. final!.OutputItems.Cast<FunctionCallResponseItem>()];
        }
        else
        {
            calls = [.. (await responses.CreateResponseAsync(first)).Value.OutputItems.Cast<FunctionCallResponseItem>()];
        }

        Assert.Equal(2, calls.Count);
        Assert.Equal(FakeChatEngine.CallId, calls[0].CallId);
        Assert.NotEqual(calls[0].CallId, calls[1].CallId);
        Assert.StartsWith("call_", calls[1].CallId, StringComparison.Ordinal);

        var second = Options("twin calls");
        second.Tools.Add(ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString(WeatherSchema), strictModeEnabled: false));
        foreach (var call in calls)
        {
            second.InputItems.Add(call);
        }

        foreach (var call in calls)
        {
            second.InputItems.Add(ResponseItem.CreateFunctionCallOutputItem(call.CallId, """{"celsius":31}"""));
        }

        var answer = (await responses.CreateResponseAsync(second)).Value;

        Assert.Equal(string.Concat(FakeChatEngine.Words), answer.GetOutputText());
    }

    /// <summary>
    /// An engine that interleaves two calls' streamed fragments (each delta names its call's index): a new
    /// function_call item opened whenever the index changed, so the response had six items for two calls, each holding
    /// a fragment. Items are keyed by the call's index: two items, each with its call's whole arguments, through the
    /// SDK's events and in the final response.
    /// </summary>
    [Fact]
    public async Task EngineInterleavesTwoCallsFragments_OneItemPerCall_WithItsOwnArguments()
    {
        var responses = await ResponsesAsync();
        var options = Options("interleaved calls");
        options.Tools.Add(ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString(WeatherSchema), strictModeEnabled: false));
        options.StreamingEnabled = true;
        var added = new List<FunctionCallResponseItem>();
        var done = new List<FunctionCallResponseItem>();
        var deltas = new Dictionary<string, StringBuilder>();
        ResponseResult? final = null;
        await foreach (var update in await responses.CreateResponseStreamingAsync(options))
        {
            switch (update)
            {
                case StreamingResponseOutputItemAddedUpdate { Item: FunctionCallResponseItem call }:
                    added.Add(call);
                    break;
                case StreamingResponseFunctionCallArgumentsDeltaUpdate delta:
                    (deltas.TryGetValue(delta.ItemId, out var text) ? text : deltas[delta.ItemId] = new StringBuilder()).Append(delta.Delta.ToString());
                    break;
                case StreamingResponseOutputItemDoneUpdate { Item: FunctionCallResponseItem call }:
                    done.Add(call);
                    break;
                case StreamingResponseCompletedUpdate completed:
                    final = completed.Response;
                    break;
            }
        }

        Assert.Equal(2, added.Count);
        Assert.Equal(2, done.Count);
        var calls = final!.OutputItems.Cast<FunctionCallResponseItem>().ToList();
        Assert.Equal([FakeChatEngine.CallArguments, FakeChatEngine.SecondCallArguments], calls.Select(c => c.FunctionArguments.ToString()));
        Assert.Equal([FakeChatEngine.CallId, FakeChatEngine.CallId + "b"], calls.Select(c => c.CallId));
        Assert.Equal([FakeChatEngine.CallArguments, FakeChatEngine.SecondCallArguments], added.Select(c => deltas[c.Id].ToString()));
        Assert.Equal(calls.Select(c => c.Id), done.OrderBy(c => calls.FindIndex(x => x.Id == c.Id)).Select(c => c.Id));
    }

    /// <summary>
    /// The same engine behind chat completions: its answer was passed on with both calls under one id, and the
    /// client's next turn (both calls, a result for each) was refused as a duplicate. Each call now has its own id.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Chat_EngineGivesTwoCallsOneId_EachCallHasItsOwnId_AndTheLoopGoesOn(bool stream)
    {
        var chat = new ChatClient(FakeModel, new ApiKeyCredential(await KeyAsync()),
            new global::OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.ThAddress, "/v1"), RetryPolicy = new ClientRetryPolicy(0) });
        var options = new ChatCompletionOptions();
        options.Tools.Add(ChatTool.CreateFunctionTool("get_weather", "Weather.", BinaryData.FromString(WeatherSchema)));
        List<global::OpenAI.Chat.ChatMessage> messages = [new UserChatMessage("twin calls")];
        List<(string Id, string Name, string Arguments)> calls;
        if (stream)
        {
            var byIndex = new SortedDictionary<int, (string Id, string Name, StringBuilder Arguments)>();
            await foreach (var update in chat.CompleteChatStreamingAsync(messages, options))
            {
                foreach (var part in update.ToolCallUpdates)
                {
                    var (id, name, arguments) = byIndex.TryGetValue(part.Index, out var seen) ? seen : (part.ToolCallId, part.FunctionName, new StringBuilder());
                    arguments.Append(part.FunctionArgumentsUpdate?.ToString());
                    byIndex[part.Index] = (id, name, arguments);
                }
            }

            calls = [.. byIndex.Values.Select(c => (c.Id, c.Name, c.Arguments.ToString()))];
        }
        else
        {
            calls = [.. (await chat.CompleteChatAsync(messages, options)).Value.ToolCalls.Select(c => (c.Id, c.FunctionName, c.FunctionArguments.ToString()))];
        }

        Assert.Equal(2, calls.Count);
        Assert.Equal(FakeChatEngine.CallId, calls[0].Id);
        Assert.NotEqual(calls[0].Id, calls[1].Id);
        Assert.All(calls, c => Assert.Equal(FakeChatEngine.CallArguments, c.Arguments));

        messages.Add(new AssistantChatMessage([.. calls.Select(c => ChatToolCall.CreateFunctionToolCall(c.Id, c.Name, BinaryData.FromString(c.Arguments)))]));
        messages.AddRange(calls.Select(c => new ToolChatMessage(c.Id, """{"celsius":31}""")));
        var answer = (await chat.CompleteChatAsync(messages, options)).Value;

        Assert.Equal(string.Concat(FakeChatEngine.Words), answer.Content[0].Text);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EngineRefusal_IsPassedOnWithItsStatus(bool stream)
    {
        using var client = fixture.TenantClient(await KeyAsync());
        using var http = await client.PostAsync("/v1/responses", Json($$"""{"model":"{{FakeModel}}","input":"refuse","stream":{{(stream ? "true" : "false")}}}"""));

        Assert.Equal(HttpStatusCode.BadRequest, http.StatusCode);
        Assert.Equal("engine_refused", JsonDocument.Parse(await http.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task RealSovereignEngine_AsExternal_AnswersAsItsChatDoes()
    {
        var key = await KeyAsync();
        var chat = new ChatClient("sg-responses", new ApiKeyCredential(key), new global::OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.ThAddress, "/v1") });
        var expected = (await chat.CompleteChatAsync(
            [new SystemChatMessage("Be brief."), new UserChatMessage("Once upon a time")], new ChatCompletionOptions { MaxOutputTokenCount = 16, Temperature = 0 })).Value;

        var options = Options("Once upon a time", 16, "sg-responses");
        options.Temperature = 0;
        var response = (await (await ResponsesAsync()).CreateResponseAsync(options)).Value;

        Assert.Equal(expected.Content[0].Text, response.GetOutputText());
        Assert.Equal(expected.Usage.InputTokenCount, response.Usage.InputTokenCount);
        Assert.Equal(expected.Usage.OutputTokenCount, response.Usage.OutputTokenCount);
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, new MediaTypeHeaderValue("application/json"));

    private static List<JsonElement> Events(string sse) => [.. sse.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(block =>
    {
        var lines = block.Split('\n');
        var data = JsonDocument.Parse(lines.Single(l => l.StartsWith("data: ", StringComparison.Ordinal))["data: ".Length..]).RootElement;
        Assert.Equal(lines[0]["event: ".Length..], data.GetProperty("type").GetString());
        return data;
    })];
}
