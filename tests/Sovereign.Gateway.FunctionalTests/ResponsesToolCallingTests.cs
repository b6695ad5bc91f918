using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using OpenAI.Responses;

namespace Sovereign.Gateway.FunctionalTests;

#pragma warning disable OPENAI001 // The Responses client is marked experimental in the SDK.

/// <summary>
/// Function tools on /v1/responses, on the random-weights model, where a forced call (<c>required</c> or named) always
/// parses and validates because sampling is constrained to the call syntax around the function's schema.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ResponsesToolCallingTests(ServerFixture server)
{
    private const string WeatherSchema =
        """{"type":"object","properties":{"city":{"type":"string","maxLength":24},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false}""";

    private static readonly JsonSchema Weather = JsonSchema.FromText(WeatherSchema);

    private ResponsesClient Responses() => server.OpenAI.GetResponsesClient();

    private static CreateResponseOptions Options(ResponseToolChoice choice, params ResponseItem[] input)
    {
        var options = new CreateResponseOptions { Model = ServerFixture.TinyRandom, MaxOutputTokenCount = 140, ToolChoice = choice };
        options.Tools.Add(ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString(WeatherSchema), strictModeEnabled: true, "Current weather in a city."));
        foreach (var item in input)
        {
            options.InputItems.Add(item);
        }

        return options;
    }

    [Fact]
    public async Task RoundTrip_Sdk_ForcedCallValidates_ThenItsOutputIsServed()
    {
        var first = (await Responses().CreateResponseAsync(
            Options(ResponseToolChoice.CreateRequiredChoice(), ResponseItem.CreateUserMessageItem("What is the weather in Paris?")))).Value;

        Assert.Equal(ResponseStatus.Completed, first.Status);
        var call = Assert.IsType<FunctionCallResponseItem>(Assert.Single(first.OutputItems));
        Assert.Equal("get_weather", call.FunctionName);
        Assert.StartsWith("call_", call.CallId, StringComparison.Ordinal);
        Assert.StartsWith("fc_", call.Id, StringComparison.Ordinal);
        Assert.True(Weather.Evaluate(JsonNode.Parse(call.FunctionArguments.ToString())).IsValid, call.FunctionArguments.ToString());

        var second = (await Responses().CreateResponseAsync(Options(
            ResponseToolChoice.CreateNoneChoice(),
            ResponseItem.CreateUserMessageItem("What is the weather in Paris?"),
            call,
            ResponseItem.CreateFunctionCallOutputItem(call.CallId, """{"temperature":21}""")))).Value;

        var message = Assert.IsAssignableFrom<MessageResponseItem>(Assert.Single(second.OutputItems));
        Assert.Equal(MessageRole.Assistant, message.Role);
        Assert.True(second.Usage.InputTokenCount > first.Usage.InputTokenCount, "the call and its output are part of the second prompt");
    }

    [Fact]
    public async Task NamedChoice_Sdk_CallsThatFunction()
    {
        var response = (await Responses().CreateResponseAsync(
            Options(ResponseToolChoice.CreateFunctionChoice("get_weather"), ResponseItem.CreateUserMessageItem("Weather?")))).Value;

        var call = Assert.IsType<FunctionCallResponseItem>(Assert.Single(response.OutputItems));
        Assert.Equal("get_weather", call.FunctionName);
        Assert.True(Weather.Evaluate(JsonNode.Parse(call.FunctionArguments.ToString())).IsValid, call.FunctionArguments.ToString());
    }

    [Fact]
    public async Task Streaming_Sdk_ArgumentDeltasConcatenateToTheDoneCall()
    {
        var options = Options(ResponseToolChoice.CreateRequiredChoice(), ResponseItem.CreateUserMessageItem("Weather in Oslo?"));
        options.StreamingEnabled = true;
        var arguments = new System.Text.StringBuilder();
        FunctionCallResponseItem? done = null;
        ResponseResult? final = null;
        await foreach (var update in await Responses().CreateResponseStreamingAsync(options))
        {
            switch (update)
            {
                case StreamingResponseFunctionCallArgumentsDeltaUpdate delta:
                    arguments.Append(delta.Delta.ToString());
                    break;
                case StreamingResponseOutputItemDoneUpdate { Item: FunctionCallResponseItem call }:
                    done = call;
                    break;
                case StreamingResponseCompletedUpdate completed:
                    final = completed.Response;
                    break;
            }
        }

        Assert.NotNull(done);
        Assert.Equal("get_weather", done.FunctionName);
        Assert.Equal(arguments.ToString(), done.FunctionArguments.ToString());
        Assert.True(Weather.Evaluate(JsonNode.Parse(arguments.ToString())).IsValid, arguments.ToString());
        Assert.NotNull(final);
        Assert.Equal(done.CallId, Assert.IsType<FunctionCallResponseItem>(Assert.Single(final.OutputItems)).CallId);
    }

    [Fact]
    public async Task RawShape_FunctionCallItem_AndToolsEchoed()
    {
        var (status, response, _) = await server.PostJsonAsync("/v1/responses",
            """{"model":"tiny-random","input":"Weather?","max_output_tokens":140,"tools":[{"type":"function","name":"get_weather","parameters":"""
            + WeatherSchema + """}],"tool_choice":{"type":"function","name":"get_weather"}}""");

        Assert.Equal(200, status);
        Assert.Equal("completed", response.GetProperty("status").GetString());
        var item = Assert.Single(response.GetProperty("output").EnumerateArray());
        Assert.Equal("function_call", item.GetProperty("type").GetString());
        Assert.Equal("completed", item.GetProperty("status").GetString());
        Assert.Equal("get_weather", item.GetProperty("name").GetString());
        Assert.Equal("get_weather", response.GetProperty("tools")[0].GetProperty("name").GetString());
        Assert.Equal("function", response.GetProperty("tool_choice").GetProperty("type").GetString());
    }

    /// <summary>
    /// OpenAI's echo of a function tool always states <c>strict</c> (its SDKs type it required; Responses' default is
    /// true), and the response object states <c>service_tier</c> (the tier used: this server's one, <c>default</c>),
    /// <c>safety_identifier</c> and <c>prompt_cache_key</c>. A tool without strict was echoed without it, and the three
    /// fields were accepted but missing from the response.
    /// </summary>
    [Fact]
    public async Task Echo_FunctionToolStatesStrict_AndTheResponseStatesTierSafetyIdAndCacheKey()
    {
        var (status, response, _) = await server.PostJsonAsync("/v1/responses",
            """{"model":"tiny-random","input":"Weather?","max_output_tokens":16,"service_tier":"priority","safety_identifier":"user-7f3a","prompt_cache_key":"weather-bot","tools":[{"type":"function","name":"get_weather","parameters":"""
            + WeatherSchema + """},{"type":"function","name":"get_time","strict":false,"parameters":{"type":"object","properties":{}}}],"tool_choice":"none"}""");

        Assert.Equal(200, status);
        var tools = response.GetProperty("tools");
        Assert.True(tools[0].GetProperty("strict").GetBoolean());
        Assert.False(tools[1].GetProperty("strict").GetBoolean());
        Assert.Equal("default", response.GetProperty("service_tier").GetString());
        Assert.Equal("user-7f3a", response.GetProperty("safety_identifier").GetString());
        Assert.Equal("weather-bot", response.GetProperty("prompt_cache_key").GetString());

        var plain = (await server.PostJsonAsync("/v1/responses", """{"model":"tiny-random","input":"Hi","max_output_tokens":16}""")).Body;
        Assert.Equal("default", plain.GetProperty("service_tier").GetString());
        Assert.Equal(JsonValueKind.Null, plain.GetProperty("safety_identifier").ValueKind);
        Assert.Equal(JsonValueKind.Null, plain.GetProperty("prompt_cache_key").ValueKind);

        // Through the SDK, streamed: the tool sent without strict reads back as strict, from the first event to the last.
        var options = new CreateResponseOptions { Model = ServerFixture.TinyRandom, MaxOutputTokenCount = 16, StreamingEnabled = true, InputItems = { ResponseItem.CreateUserMessageItem("Weather?") } };
        options.Tools.Add(ResponseTool.CreateFunctionTool("get_weather", BinaryData.FromString(WeatherSchema), strictModeEnabled: null));
        var echoed = new List<ResponseResult>();
        await foreach (var update in await Responses().CreateResponseStreamingAsync(options))
        {
            if (update switch
            {
                StreamingResponseCreatedUpdate created => created.Response,
                StreamingResponseCompletedUpdate completed => completed.Response,
                StreamingResponseIncompleteUpdate incomplete => incomplete.Response,
                _ => null,
            } is { } echo)
            {
                echoed.Add(echo);
            }
        }

        Assert.Equal(2, echoed.Count);
        Assert.All(echoed, e => Assert.True(Assert.IsType<FunctionTool>(Assert.Single(e.Tools)).StrictModeEnabled));

        // Echoed and kept with a stored response, so bounded: by OpenAI's 64 characters (65 to 256 were served).
        var (tooLong, error, _) = await server.PostJsonAsync("/v1/responses",
            $$"""{"model":"tiny-random","input":"Hi","max_output_tokens":16,"safety_identifier":"{{new string('a', 65)}}"}""");
        Assert.Equal(400, tooLong);
        Assert.Equal("safety_identifier", error.GetProperty("error").GetProperty("param").GetString());
        var (atBound, served, _) = await server.PostJsonAsync("/v1/responses",
            $$"""{"model":"tiny-random","input":"Hi","max_output_tokens":16,"safety_identifier":"{{new string('a', 64)}}"}""");
        Assert.True(atBound == 200, served.ToString());
    }

    [Fact]
    public async Task Streaming_RawHttp_FunctionCallEventsInOrder_ArgumentsConcatenateToTheDone()
    {
        var response = await server.Http.PostAsync("/v1/responses", new StringContent(
            """{"model":"tiny-random","stream":true,"input":"Weather?","max_output_tokens":140,"tools":[{"type":"function","name":"get_weather","parameters":"""
            + WeatherSchema + """}],"tool_choice":"required"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(200, (int)response.StatusCode);
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(block => JsonDocument.Parse(block.Split('\n')[1]["data: ".Length..]).RootElement.Clone()).ToList();

        var types = events.Select(e => e.GetProperty("type").GetString()!).ToList();
        var deltas = types.Count(t => t == "response.function_call_arguments.delta");
        Assert.True(deltas >= 1);
        string[] expected =
        [
            "response.created", "response.in_progress", "response.output_item.added",
            .. Enumerable.Repeat("response.function_call_arguments.delta", deltas),
            "response.function_call_arguments.done", "response.output_item.done", "response.completed",
        ];
        Assert.Equal(expected, types);
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.GetProperty("sequence_number").GetInt32()));

        var added = events[2].GetProperty("item");
        Assert.Equal("function_call", added.GetProperty("type").GetString());
        Assert.Equal("", added.GetProperty("arguments").GetString());
        var itemId = added.GetProperty("id").GetString();
        var streamed = string.Concat(events.Where(e => e.GetProperty("type").GetString() == "response.function_call_arguments.delta").Select(e =>
        {
            Assert.Equal(itemId, e.GetProperty("item_id").GetString());
            Assert.Equal(0, e.GetProperty("output_index").GetInt32());
            return e.GetProperty("delta").GetString();
        }));
        Assert.Equal(streamed, events[^3].GetProperty("arguments").GetString());
        Assert.True(Weather.Evaluate(JsonNode.Parse(streamed)).IsValid, streamed);
        var done = events[^2].GetProperty("item");
        Assert.Equal(streamed, done.GetProperty("arguments").GetString());
        Assert.Equal("completed", done.GetProperty("status").GetString());
        var final = events[^1].GetProperty("response").GetProperty("output");
        Assert.Equal(done.GetProperty("call_id").GetString(), Assert.Single(final.EnumerateArray()).GetProperty("call_id").GetString());
    }

    [Fact]
    public async Task ForcedCall_OfAnUnenforceableSchema_Is400NamingTheFlatParameters()
    {
        var (status, response, _) = await server.PostJsonAsync("/v1/responses",
            """{"model":"tiny-random","input":"hi","tools":[{"type":"function","name":"f","parameters":{"type":"object","properties":{"a":{"type":"string","pattern":"(a)\\1"}}}}],"tool_choice":"required"}""");

        Assert.Equal(400, status);
        Assert.Equal("tools[0].parameters", response.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("unsupported_schema_keyword", response.GetProperty("error").GetProperty("code").GetString());
        Assert.DoesNotContain(".function.", response.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ParallelFunctionCallItems_JoinOneAssistantTurn_AndEachOutputAnswersItsCall()
    {
        var (status, _, _) = await server.PostJsonAsync("/v1/responses", """
            {"model":"tiny-random","max_output_tokens":16,"tools":[{"type":"function","name":"get_weather"}],"input":[
              {"role":"user","content":"Weather in Paris and Rome?"},
              {"type":"function_call","call_id":"call_a","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
              {"type":"function_call","call_id":"call_b","name":"get_weather","arguments":"{\"city\":\"Rome\"}"},
              {"type":"function_call_output","call_id":"call_a","output":"21"},
              {"type":"function_call_output","call_id":"call_b","output":[{"type":"input_text","text":"25"}]}]}
            """);

        Assert.Equal(200, status);
    }

    /// <summary>Responses' flat <c>allowed_tools</c> choice (it was a 400 "Supported values are: 'function'").</summary>
    [Fact]
    public async Task AllowedTools_Required_CallsTheAllowedFunction_AndABadNameIsNamedFlat()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/responses", Fill("""
            {"model":"@TinyRandom@","max_output_tokens":140,"input":"Weather?","tools":@Tools@,
             "tool_choice":{"type":"allowed_tools","mode":"required","tools":[{"type":"function","name":"get_weather"}]}}
            """));

        Assert.True(status == 200, body.ToString());
        var call = Assert.Single(body.GetProperty("output").EnumerateArray());
        Assert.Equal("function_call", call.GetProperty("type").GetString());
        Assert.Equal("get_weather", call.GetProperty("name").GetString());
        Assert.True(Weather.Evaluate(JsonNode.Parse(call.GetProperty("arguments").GetString()!)).IsValid, call.GetProperty("arguments").GetString());

        var (badStatus, bad, _) = await server.PostJsonAsync("/v1/responses", Fill("""
            {"model":"@TinyRandom@","max_output_tokens":16,"input":"Weather?","tools":@Tools@,
             "tool_choice":{"type":"allowed_tools","mode":"auto","tools":[{"type":"function","name":"nope"}]}}
            """));
        Assert.True(badStatus == 400, bad.ToString());
        Assert.Equal("tool_choice.tools[0].name", bad.GetProperty("error").GetProperty("param").GetString());
    }

    /// <summary>The JSON with the test's values in place of <c>@Name@</c>.</summary>
    private static string Fill(string json) => json
        .Replace("@TinyRandom@", ServerFixture.TinyRandom, StringComparison.Ordinal)
        .Replace("@Tools@", AllowedToolsTestTools, StringComparison.Ordinal);

    private const string AllowedToolsTestTools = """[{"type":"function","name":"get_weather","parameters":""" + WeatherSchema + """},{"type":"function","name":"noop","parameters":{"type":"object","properties":{}}}]""";
}
