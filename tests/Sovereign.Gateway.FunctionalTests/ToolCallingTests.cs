using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using OpenAI.Chat;

namespace Sovereign.Gateway.FunctionalTests;

#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK.

/// <summary>
/// Tool calling through the official SDK and raw HTTP, on the random-weights model: with <c>required</c> or a named
/// function the call always parses and its arguments validate, because sampling is constrained to the model's call
/// syntax (Hermes, from its ChatML template) around the function's schema.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ToolCallingTests(ServerFixture server)
{
    private const string WeatherSchema =
        """{"type":"object","properties":{"city":{"type":"string","maxLength":24},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false}""";

    private const string ConvertSchema =
        """{"type":"object","properties":{"value":{"type":"number"},"to":{"enum":["celsius","fahrenheit"]},"precision":{"type":"integer","minimum":0,"maximum":6}},"required":["value","to"],"additionalProperties":false}""";

    private static readonly ChatTool Weather = ChatTool.CreateFunctionTool("get_weather", "Current weather in a city.", BinaryData.FromString(WeatherSchema));
    private static readonly ChatTool Convert = ChatTool.CreateFunctionTool("convert_temperature", "Converts a temperature.", BinaryData.FromString(ConvertSchema));

    private static readonly Dictionary<string, JsonSchema> Schemas = new()
    {
        ["get_weather"] = JsonSchema.FromText(WeatherSchema),
        ["convert_temperature"] = JsonSchema.FromText(ConvertSchema),
    };

    private ChatClient Chat => server.OpenAI.GetChatClient(ServerFixture.TinyRandom);

    /// <summary>Both tools, or only the first (the model's context is 512 tokens; the tools are in the prompt).</summary>
    private static ChatCompletionOptions Options(ChatToolChoice choice, long seed, bool? parallel = null, bool weatherOnly = false)
    {
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 140, Seed = seed, ToolChoice = choice, AllowParallelToolCalls = parallel };
        options.Tools.Add(Weather);
        if (!weatherOnly)
        {
            options.Tools.Add(Convert);
        }

        return options;
    }

    private static void AssertValidArguments(string function, string arguments)
    {
        var evaluation = Schemas[function].Evaluate(JsonNode.Parse(arguments));
        Assert.True(evaluation.IsValid, $"{function}({arguments})");
    }

    [Fact]
    public async Task Required_AlwaysCallsAnOfferedFunctionWithValidArguments()
    {
        foreach (var seed in new long[] { 1, 2, 3, 4 })
        {
            var completion = (await Chat.CompleteChatAsync([new UserChatMessage("What is the weather in Paris?")], Options(ChatToolChoice.CreateRequiredChoice(), seed))).Value;

            Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
            var call = Assert.Single(completion.ToolCalls);
            Assert.StartsWith("call_", call.Id, StringComparison.Ordinal);
            Assert.Contains(call.FunctionName, Schemas.Keys);
            AssertValidArguments(call.FunctionName, call.FunctionArguments.ToString());
        }
    }

    [Fact]
    public async Task Named_CallsThatFunction()
    {
        foreach (var seed in new long[] { 5, 6, 7 })
        {
            var completion = (await Chat.CompleteChatAsync([new UserChatMessage("Convert 20 C.")],
                Options(ChatToolChoice.CreateFunctionChoice("convert_temperature"), seed, parallel: false))).Value;

            Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
            var call = Assert.Single(completion.ToolCalls);
            Assert.Equal("convert_temperature", call.FunctionName);
            AssertValidArguments(call.FunctionName, call.FunctionArguments.ToString());
        }
    }

    [Fact]
    public async Task None_AnswersWithTextOnly()
    {
        var completion = (await Chat.CompleteChatAsync([new UserChatMessage("Weather in Paris?")], Options(ChatToolChoice.CreateNoneChoice(), 3))).Value;

        Assert.NotEqual(ChatFinishReason.ToolCalls, completion.FinishReason);
        Assert.Empty(completion.ToolCalls);
    }

    [Fact]
    public async Task Auto_OnRandomWeights_AnswersWithWellFormedContentOrCalls()
    {
        // The random model rarely writes a call by itself; whatever it writes must come back well-formed.
        var completion = (await Chat.CompleteChatAsync([new UserChatMessage("Weather in Paris?")], Options(ChatToolChoice.CreateAutoChoice(), 9))).Value;

        if (completion.FinishReason == ChatFinishReason.ToolCalls)
        {
            Assert.All(completion.ToolCalls, c => AssertValidArguments(c.FunctionName, c.FunctionArguments.ToString()));
        }
        else
        {
            Assert.Empty(completion.ToolCalls);
            Assert.NotEmpty(completion.Content);
        }
    }

    [Fact]
    public async Task Required_Streaming_SendsTheCallInOpenAIsDeltaShape()
    {
        var options = Options(ChatToolChoice.CreateRequiredChoice(), 2);
        var whole = (await Chat.CompleteChatAsync([new UserChatMessage("Weather?")], options)).Value;

        string? id = null, name = null;
        var arguments = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat.CompleteChatStreamingAsync([new UserChatMessage("Weather?")], options))
        {
            foreach (var part in update.ToolCallUpdates)
            {
                Assert.Equal(0, part.Index);
                id ??= part.ToolCallId;
                name ??= part.FunctionName;
                arguments.Append(part.FunctionArgumentsUpdate?.ToString());
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.ToolCalls, finish);
        Assert.StartsWith("call_", id, StringComparison.Ordinal);
        var call = Assert.Single(whole.ToolCalls);
        Assert.Equal(call.FunctionName, name);
        Assert.Equal(call.FunctionArguments.ToString(), arguments.ToString());
        AssertValidArguments(name!, arguments.ToString());
    }

    /// <summary>
    /// Stop strings end text; a forced call is the whole answer and has none. They were matched inside the call: a
    /// stop of <c>"</c> cut it after <c>{"</c>, and the answer was the template's markup as content with finish_reason
    /// stop and no tool_calls (streamed: a call whose arguments did not parse, finish_reason tool_calls).
    /// </summary>
    [Fact]
    public async Task Required_WithStopStringsTheCallContains_StillAnswersAValidCall()
    {
        foreach (var seed in new long[] { 1, 2 })
        {
            var options = Options(ChatToolChoice.CreateRequiredChoice(), seed, weatherOnly: true);
            options.StopSequences.Add("\"");
            options.StopSequences.Add("city");

            var completion = (await Chat.CompleteChatAsync([new UserChatMessage("What is the weather in Paris?")], options)).Value;

            Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
            var call = Assert.Single(completion.ToolCalls);
            Assert.Null(completion.Content.FirstOrDefault()?.Text);
            AssertValidArguments(call.FunctionName, call.FunctionArguments.ToString());

            var arguments = new StringBuilder();
            ChatFinishReason? finish = null;
            await foreach (var update in Chat.CompleteChatStreamingAsync([new UserChatMessage("What is the weather in Paris?")], options))
            {
                foreach (var part in update.ToolCallUpdates)
                {
                    arguments.Append(part.FunctionArgumentsUpdate?.ToString());
                }

                Assert.All(update.ContentUpdate, part => Assert.True(string.IsNullOrEmpty(part.Text), part.Text));
                finish ??= update.FinishReason;
            }

            Assert.Equal(ChatFinishReason.ToolCalls, finish);
            AssertValidArguments("get_weather", arguments.ToString());
        }
    }

    [Fact]
    public async Task Required_Streaming_RawDeltas_AreExactlyOpenAIs()
    {
        var body = """{"model":"tiny-random","stream":true,"max_tokens":140,"seed":4,"messages":[{"role":"user","content":"Weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":"""
            + WeatherSchema + """}}],"tool_choice":"required"}""";
        var response = await server.Http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(200, (int)response.StatusCode);

        var chunks = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).Where(d => d != "[DONE]")
            .Select(d => JsonDocument.Parse(d).RootElement.Clone()).ToList();
        var deltas = chunks.Select(c => c.GetProperty("choices")[0]).ToList();
        var calls = deltas.Where(d => d.GetProperty("delta").TryGetProperty("tool_calls", out _)).Select(d => d.GetProperty("delta").GetProperty("tool_calls")[0]).ToList();

        // First: index, id, type, function.name and empty arguments; then fragments of the arguments.
        Assert.True(calls.Count >= 2);
        var head = calls[0];
        Assert.Equal(0, head.GetProperty("index").GetInt32());
        Assert.StartsWith("call_", head.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("function", head.GetProperty("type").GetString());
        Assert.Equal("get_weather", head.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("", head.GetProperty("function").GetProperty("arguments").GetString());
        Assert.All(calls.Skip(1), fragment =>
        {
            Assert.Equal(0, fragment.GetProperty("index").GetInt32());
            Assert.False(fragment.TryGetProperty("id", out _));
            Assert.False(fragment.GetProperty("function").TryGetProperty("name", out _));
        });
        AssertValidArguments("get_weather", string.Concat(calls.Skip(1).Select(f => f.GetProperty("function").GetProperty("arguments").GetString())));
        Assert.Equal("tool_calls", deltas[^1].GetProperty("finish_reason").GetString());
        Assert.DoesNotContain(deltas, d => d.GetProperty("delta").TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String
            && c.GetString()!.Contains("<tool_call>", StringComparison.Ordinal));
    }

    /// <summary>
    /// A forced call is the whole answer: OpenAI's first chunk of it has <c>"content": null</c> (the start of no text).
    /// This server's role chunk said <c>"content": ""</c>, which the SDK read as a text part of a call-only answer.
    /// A text answer's role chunk keeps <c>""</c>, as OpenAI's.
    /// </summary>
    [Fact]
    public async Task Forced_Streaming_RoleChunk_HasNullContent_AndTheSdkSeesNoTextPart()
    {
        foreach (var choice in new[] { "\"required\"", """{"type":"function","function":{"name":"get_weather"}}""" })
        {
            var body = """{"model":"tiny-random","stream":true,"max_tokens":140,"seed":5,"messages":[{"role":"user","content":"Weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":"""
                + WeatherSchema + """}}],"tool_choice":""" + choice + "}";
            var response = await server.Http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            var text = await response.Content.ReadAsStringAsync();
            Assert.Equal(200, (int)response.StatusCode);
            var first = JsonDocument.Parse(text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)[0]["data: ".Length..]).RootElement;
            var delta = first.GetProperty("choices")[0].GetProperty("delta");
            Assert.Equal("assistant", delta.GetProperty("role").GetString());
            Assert.Equal(JsonValueKind.Null, delta.GetProperty("content").ValueKind);
        }

        var textOnly = await server.Http.PostAsync("/v1/chat/completions", new StringContent(
            """{"model":"tiny-random","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"Hi"}]}""", Encoding.UTF8, "application/json"));
        var plain = (await textOnly.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)[0]["data: ".Length..];
        Assert.Equal("", JsonDocument.Parse(plain).RootElement.GetProperty("choices")[0].GetProperty("delta").GetProperty("content").GetString());

        var parts = 0;
        await foreach (var update in Chat.CompleteChatStreamingAsync([new UserChatMessage("Weather?")], Options(ChatToolChoice.CreateRequiredChoice(), 5, weatherOnly: true)))
        {
            parts += update.ContentUpdate.Count;
        }

        Assert.Equal(0, parts);
    }

    [Fact]
    public async Task Required_NonStreamed_RawShape_HasNullContentAndToolCalls()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions",
            """{"model":"tiny-random","max_tokens":140,"seed":8,"messages":[{"role":"user","content":"Weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":"""
            + WeatherSchema + """}}],"tool_choice":{"type":"function","function":{"name":"get_weather"}}}""");

        Assert.Equal(200, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        var message = choice.GetProperty("message");
        Assert.Equal(JsonValueKind.Null, message.GetProperty("content").ValueKind);
        var call = message.GetProperty("tool_calls")[0];
        Assert.Equal("function", call.GetProperty("type").GetString());
        Assert.Equal("get_weather", call.GetProperty("function").GetProperty("name").GetString());
        AssertValidArguments("get_weather", call.GetProperty("function").GetProperty("arguments").GetString()!);
    }

    [Fact]
    public async Task Logprobs_OfACall_CoverTheContentReturned_NotTheCallsMarkup()
    {
        // The call's tokens (<tool_call>{"name": ...) were listed in logprobs.content, non-streamed and streamed (with
        // empty content deltas), though the client receives no such text; OpenAI's logprobs cover the message content.
        var body = """{"model":"tiny-random","max_tokens":140,"seed":8,"logprobs":true,"top_logprobs":2,"messages":[{"role":"user","content":"Weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":"""
            + WeatherSchema + """}}],"tool_choice":"required"STREAM}""";
        var (status, whole, _) = await server.PostJsonAsync("/v1/chat/completions", body.Replace("STREAM", "", StringComparison.Ordinal));
        var streamed = await server.Http.PostAsync("/v1/chat/completions", new StringContent(body.Replace("STREAM", ",\"stream\":true", StringComparison.Ordinal), Encoding.UTF8, "application/json"));
        var events = (await streamed.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).Where(d => d != "[DONE]")
            .Select(d => JsonDocument.Parse(d).RootElement.Clone()).ToList();

        Assert.Equal(200, status);
        var choice = whole.GetProperty("choices")[0];
        Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(0, choice.GetProperty("logprobs").GetProperty("content").GetArrayLength());
        Assert.Equal(200, (int)streamed.StatusCode);
        Assert.Contains(events, e => e.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("tool_calls", out _));
        var streamedTokens = events.Select(e => e.GetProperty("choices")[0])
            .Where(c => c.TryGetProperty("logprobs", out var l) && l.ValueKind == JsonValueKind.Object)
            .Sum(c => c.GetProperty("logprobs").GetProperty("content").GetArrayLength());
        Assert.Equal(0, streamedTokens);
    }

    [Fact]
    public void ContentTokens_AreTheTokensOfTheTextBeforeTheCall()
    {
        static Sovereign.Inference.Sampling.TokenLogprob T(string text) => new(new(1, Encoding.UTF8.GetBytes(text), -1f), []);
        var tokens = new[] { T("I"), T(" will"), T(" check"), T(".\n"), T("<tool_call>"), T("{\"name\": \"get_weather\"}"), T("</tool_call>") };
        var text = string.Concat(tokens.Select(t => t.Token.Text));

        var kept = Sovereign.Gateway.OpenAI.ChatCompletionsEndpoint.ContentTokens(tokens, text, "I will check.");

        Assert.Equal(["I", " will", " check", ".\n"], kept!.Select(t => t.Token.Text));
        Assert.Empty(Sovereign.Gateway.OpenAI.ChatCompletionsEndpoint.ContentTokens(tokens, text, "")!);
    }

    [Fact]
    public async Task History_WithToolCallsAndResults_RendersThroughTheTemplate()
    {
        List<ChatMessage> messages =
        [
            new UserChatMessage("What is the weather in Paris?"),
            new AssistantChatMessage([ChatToolCall.CreateFunctionToolCall("call_1", "get_weather", BinaryData.FromString("""{"city":"Paris","unit":"celsius"}"""))]),
            new ToolChatMessage("call_1", """{"temperature":18}"""),
            new UserChatMessage("And in Fahrenheit?"),
        ];
        var completion = (await Chat.CompleteChatAsync(messages, Options(ChatToolChoice.CreateFunctionChoice("get_weather"), 1, weatherOnly: true))).Value;

        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
        AssertValidArguments("get_weather", Assert.Single(completion.ToolCalls).FunctionArguments.ToString());

        // The prompt holds the earlier call and its result as the template writes them.
        var model = server.Batcher(ServerFixture.TinyRandom).Model;
        var prompt = model.RenderChat(
        [
            new Sovereign.Inference.Engine.ChatTurn("user", "What is the weather in Paris?"),
            new Sovereign.Inference.Engine.ChatTurn("assistant", "") { ToolCalls = [new("call_1", "get_weather", """{"city":"Paris","unit":"celsius"}""")] },
            new Sovereign.Inference.Engine.ChatTurn("tool", """{"temperature":18}""") { ToolCallId = "call_1" },
        ]);
        Assert.Contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>", prompt, StringComparison.Ordinal);
        Assert.Contains("<|im_start|>user\n<tool_response>\n{\"temperature\":18}\n</tool_response><|im_end|>", prompt, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"tools\":{}", "tools")]
    [InlineData("\"tools\":[]", "tools")]
    [InlineData("\"tools\":[{\"type\":\"retrieval\",\"function\":{\"name\":\"f\"}}]", "tools[0].type")]
    [InlineData("\"tools\":[{\"type\":\"function\"}]", "tools[0].function")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{}}]", "tools[0].function.name")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"bad name!\"}}]", "tools[0].function.name")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]", "tools[1].function.name")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":[]}}]", "tools[0].function.parameters")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"string\"}}}]", "tools[0].function.parameters")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"always\"", "tool_choice")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}}", "tool_choice.function.name")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":{\"type\":\"function\"}", "tool_choice.function")]
    [InlineData("\"tool_choice\":\"required\"", "tool_choice")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"^(x)\\\\1\"}}}}}],\"tool_choice\":\"required\"", "tools[0].function.parameters")]
    [InlineData("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"required\",\"response_format\":{\"type\":\"json_object\"}", "tool_choice")]
    public async Task BadToolInput_Is400NamingTheField(string fields, string param)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions",
            $$"""{"model":"tiny-random","max_tokens":4,"messages":[{"role":"user","content":"hi"}],{{fields}}}""");

        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
    }

    [Theory]
    [InlineData("""[{"role":"user","content":"hi"},{"role":"tool","content":"18"}]""", "messages[1].tool_call_id")]
    [InlineData("""[{"role":"user","content":"hi"},{"role":"tool","tool_call_id":"call_x","content":"18"}]""", "messages[1].tool_call_id")]
    [InlineData("""[{"role":"user","content":"hi","tool_calls":[]}]""", "messages[0].tool_calls")]
    [InlineData("""[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f"}}]}]""", "messages[1].tool_calls[0].function.arguments")]
    [InlineData("""[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]""", "messages[1].tool_calls[0].id")]
    [InlineData("""[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":{"id":"c"}}]""", "messages[1].tool_calls")]

    // OpenAI: an assistant message's calls are answered by the tool messages right after it, each of them; these
    // were served, the model reading a conversation with a call nobody answered.
    [InlineData("""[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"user","content":"again"}]""", "messages[2].role")]
    [InlineData("""[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}},{"id":"d","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"1"}]""", "messages[1].tool_calls")]
    [InlineData("""[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}]""", "messages[1].tool_calls")]
    public async Task BadToolHistory_Is400NamingTheField(string messages, string param)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions", $$"""{"model":"tiny-random","max_tokens":4,"messages":{{messages}}}""");

        Assert.Equal(400, status);
        Assert.Equal(param, body.GetProperty("error").GetProperty("param").GetString());
    }

    /// <summary>
    /// OpenAI's <c>allowed_tools</c> choice (all tools defined, a subset callable, <c>auto</c> or <c>required</c>) was a
    /// 400 "Supported values are: 'function'" although its fields passed the field check: a client narrowing the tools
    /// per turn could not call at all. With <c>required</c> the call is of an allowed function, constrained as any forced call.
    /// </summary>
    [Fact]
    public async Task AllowedTools_Required_CallsOnlyAnAllowedFunction_WithValidArguments()
    {
        foreach (var seed in new[] { 1, 2, 3 })
        {
            var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions", Fill("""
                {"model":"@TinyRandom@","max_tokens":140,"seed":@seed@,"messages":[{"role":"user","content":"Convert 20 C."}],
                 "tools":[{"type":"function","function":{"name":"get_weather","parameters":@WeatherSchema@}},{"type":"function","function":{"name":"convert_temperature","parameters":@ConvertSchema@}}],
                 "tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"required","tools":[{"type":"function","function":{"name":"convert_temperature"}}]}}}
                """, seed: seed));

            Assert.True(status == 200, body.ToString());
            var choice = body.GetProperty("choices")[0];
            Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
            foreach (var call in choice.GetProperty("message").GetProperty("tool_calls").EnumerateArray())
            {
                Assert.Equal("convert_temperature", call.GetProperty("function").GetProperty("name").GetString());
                AssertValidArguments("convert_temperature", call.GetProperty("function").GetProperty("arguments").GetString()!);
            }
        }
    }

    [Theory]
    [InlineData("""{"type":"allowed_tools"}""", "tool_choice.allowed_tools")]
    [InlineData("""{"type":"allowed_tools","allowed_tools":{"mode":"sometimes","tools":[{"type":"function","function":{"name":"get_weather"}}]}}""", "tool_choice.allowed_tools.mode")]
    [InlineData("""{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}}""", "tool_choice.allowed_tools.tools")]
    [InlineData("""{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[{"type":"function","function":{"name":"nope"}}]}}""", "tool_choice.allowed_tools.tools[0].function.name")]
    public async Task AllowedTools_Malformed_Is400NamingTheField(string choice, string param)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions", Fill("""
            {"model":"@TinyRandom@","max_tokens":2,"messages":[{"role":"user","content":"Hi"}],
             "tools":[{"type":"function","function":{"name":"get_weather","parameters":@WeatherSchema@}}],"tool_choice":@choice@}
            """, choice: choice));

        Assert.True(status == 400, body.ToString());
        Assert.Equal(param, body.GetProperty("error").GetProperty("param").GetString());
    }

    /// <summary>The JSON with the test's values in place of <c>@Name@</c> (raw interpolation would need a brace count per body).</summary>
    private static string Fill(string json, int seed = 0, string choice = "") => json
        .Replace("@TinyRandom@", ServerFixture.TinyRandom, StringComparison.Ordinal)
        .Replace("@WeatherSchema@", WeatherSchema, StringComparison.Ordinal)
        .Replace("@ConvertSchema@", ConvertSchema, StringComparison.Ordinal)
        .Replace("@seed@", seed.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)
        .Replace("@choice@", choice, StringComparison.Ordinal);
}
