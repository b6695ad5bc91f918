using System.ClientModel;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using OpenAI.Chat;
using OpenAI.Responses;

namespace Sovereign.Gateway.FunctionalTests;

#pragma warning disable OPENAI001 // The Responses client is marked experimental in the SDK.

/// <summary>/v1/responses through the official OpenAI .NET SDK and raw HTTP: translation, streaming events, refusals.</summary>
[Collection(ServerCollection.Name)]
public sealed class ResponsesTests(ServerFixture server)
{
    private ResponsesClient Responses() => server.OpenAI.GetResponsesClient();

    private static CreateResponseOptions Options(string instructions, string user, int maxTokens) => new()
    {
        Model = ServerFixture.Stories,
        Instructions = instructions,
        InputItems = { ResponseItem.CreateUserMessageItem(user) },
        MaxOutputTokenCount = maxTokens,
        Temperature = 0,
    };

    [Fact]
    public async Task CreateResponse_Sdk_SameTextAndUsageAsChatWithTheSameTurns()
    {
        var chat = (await server.OpenAI.GetChatClient(ServerFixture.Stories).CompleteChatAsync(
            [new SystemChatMessage("You tell stories."), new UserChatMessage("Once upon a time")],
            new ChatCompletionOptions { MaxOutputTokenCount = 16, Temperature = 0 })).Value;

        var response = (await Responses().CreateResponseAsync(Options("You tell stories.", "Once upon a time", 16))).Value;

        Assert.StartsWith("resp_", response.Id, StringComparison.Ordinal);
        Assert.Equal(ServerFixture.Stories, response.Model);
        Assert.Equal(chat.Content[0].Text, response.GetOutputText());
        Assert.Equal(chat.Usage.InputTokenCount, response.Usage.InputTokenCount);
        Assert.Equal(16, response.Usage.OutputTokenCount);
        Assert.Equal(response.Usage.InputTokenCount + 16, response.Usage.TotalTokenCount);
        Assert.True(response.Usage.InputTokenDetails.CachedTokenCount > 0, "the chat request left the same prompt in the prefix cache");
        Assert.Equal(ResponseStatus.Incomplete, response.Status);
        Assert.Equal(ResponseIncompleteStatusReason.MaxOutputTokens, response.IncompleteStatusDetails.Reason);
        var message = Assert.IsAssignableFrom<MessageResponseItem>(Assert.Single(response.OutputItems));
        Assert.Equal(MessageRole.Assistant, message.Role);
    }

    [Fact]
    public async Task CreateResponse_InputItemsWithHistory_MatchChatOfTheSameTurns()
    {
        var chat = (await server.OpenAI.GetChatClient(ServerFixture.Stories).CompleteChatAsync(
            [new SystemChatMessage("Be brief."), new UserChatMessage("A cat"), new AssistantChatMessage("The cat sat."), new UserChatMessage("A dog")],
            new ChatCompletionOptions { MaxOutputTokenCount = 16, Temperature = 0 })).Value;

        var response = (await Responses().CreateResponseAsync(new CreateResponseOptions
        {
            Model = ServerFixture.Stories,
            InputItems =
            {
                ResponseItem.CreateDeveloperMessageItem("Be brief."),
                ResponseItem.CreateUserMessageItem("A cat"),
                ResponseItem.CreateAssistantMessageItem("The cat sat."),
                ResponseItem.CreateUserMessageItem("A dog"),
            },
            MaxOutputTokenCount = 16,
            Temperature = 0,
        })).Value;

        Assert.Equal(chat.Content[0].Text, response.GetOutputText());
        Assert.Equal(chat.Usage.InputTokenCount, response.Usage.InputTokenCount);
    }

    [Fact]
    public async Task CreateResponseStreaming_Sdk_DeltasConcatenateToTheWholeText_WithIncreasingSequenceNumbers()
    {
        var whole = (await Responses().CreateResponseAsync(Options("You tell stories.", "The little dog", 16))).Value;

        var text = new StringBuilder();
        var sequence = new List<int>();
        ResponseResult? final = null;
        var streaming = Options("You tell stories.", "The little dog", 16);
        streaming.StreamingEnabled = true;
        await foreach (var update in await Responses().CreateResponseStreamingAsync(streaming))
        {
            sequence.Add(update.SequenceNumber);
            if (update is StreamingResponseOutputTextDeltaUpdate delta)
            {
                text.Append(delta.Delta);
            }
            else if (update is StreamingResponseIncompleteUpdate incomplete)
            {
                final = incomplete.Response;
            }
            else if (update is StreamingResponseCompletedUpdate completed)
            {
                final = completed.Response;
            }
        }

        Assert.Equal(whole.GetOutputText(), text.ToString());
        Assert.Equal(Enumerable.Range(0, sequence.Count), sequence);
        Assert.NotNull(final);
        Assert.Equal(whole.GetOutputText(), final.GetOutputText());
        Assert.Equal(whole.Usage.InputTokenCount, final.Usage.InputTokenCount);
        Assert.Equal(whole.Usage.OutputTokenCount, final.Usage.OutputTokenCount);
    }

    [Fact]
    public async Task Streaming_RawHttp_SendsTheTypedEventsInOrder()
    {
        var response = await server.PostAsync("/v1/responses", new { model = ServerFixture.Stories, input = "Once upon a time", max_output_tokens = 16, temperature = 0, stream = true });
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(block =>
        {
            var lines = block.Split('\n');
            Assert.StartsWith("event: ", lines[0], StringComparison.Ordinal);
            Assert.StartsWith("data: ", lines[1], StringComparison.Ordinal);
            var data = JsonDocument.Parse(lines[1]["data: ".Length..]).RootElement;
            Assert.Equal(lines[0]["event: ".Length..], data.GetProperty("type").GetString());
            return data;
        }).ToList();

        var types = events.Select(e => e.GetProperty("type").GetString()!).ToList();
        var deltas = types.Count(t => t == "response.output_text.delta");
        Assert.InRange(deltas, 1, 16);
        string[] expected =
        [
            "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
            .. Enumerable.Repeat("response.output_text.delta", deltas),
            "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.incomplete",
        ];
        Assert.Equal(expected, types);
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.GetProperty("sequence_number").GetInt32()));
        Assert.Equal("in_progress", events[0].GetProperty("response").GetProperty("status").GetString());
        var final = events[^1].GetProperty("response");
        var text = string.Concat(events.Where(e => e.GetProperty("type").GetString() == "response.output_text.delta").Select(e => e.GetProperty("delta").GetString()));
        Assert.Equal(text, final.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(text, events[^4].GetProperty("text").GetString());
        Assert.Equal(16, final.GetProperty("usage").GetProperty("output_tokens").GetInt32());
        Assert.True(final.GetProperty("usage").GetProperty("input_tokens_details").TryGetProperty("cached_tokens", out _));
        Assert.Equal("max_output_tokens", final.GetProperty("incomplete_details").GetProperty("reason").GetString());
    }

    [Fact]
    public async Task TextFormatJsonSchema_OutputValidatesAndCompletes()
    {
        const string Schema = """{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer","minimum":0,"maximum":99}},"required":["name","age"],"additionalProperties":false}""";
        var body = """{"model":"tiny-random","input":"Describe a person.","max_output_tokens":300,"temperature":0,"text":{"format":{"type":"json_schema","name":"person","strict":true,"schema":""" + Schema + "}}}";

        var (status, response, _) = await server.PostJsonAsync("/v1/responses", body);

        Assert.Equal(200, status);
        Assert.Equal("completed", response.GetProperty("status").GetString());
        Assert.Equal("json_schema", response.GetProperty("text").GetProperty("format").GetProperty("type").GetString());
        var text = response.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString()!;
        Assert.True(JsonSchema.FromText(Schema).Evaluate(JsonNode.Parse(text)).IsValid, text);
    }

    [Fact]
    public async Task TextFormatJsonObject_OutputIsAJsonObject()
    {
        var (status, response, _) = await server.PostJsonAsync("/v1/responses",
            """{"model":"tiny-random","input":"JSON please","max_output_tokens":480,"temperature":0,"text":{"format":{"type":"json_object"}}}""");

        Assert.Equal(200, status);
        var text = response.GetProperty("output")[0].GetProperty("content")[0].GetProperty("text").GetString()!;

        // Random weights fill open strings up to their bound, so the document may not end within the limit; when it does, it parses.
        Assert.StartsWith("{", text, StringComparison.Ordinal);
        if (response.GetProperty("status").GetString() == "completed")
        {
            Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(text).RootElement.ValueKind);
        }
    }

    /// <summary>
    /// OpenAI's 400 for <c>text.format: json_object</c> when the input never says "json" (the instructions do not
    /// count, as OpenAI counts them); it was served. With the word in the input (any case) it is served.
    /// </summary>
    [Theory]
    [InlineData("""{"model":"tiny-random","input":"hi","max_output_tokens":16,"text":{"format":{"type":"json_object"}}}""", 400)]
    [InlineData("""{"model":"tiny-random","instructions":"Reply in JSON.","input":"hi","max_output_tokens":16,"text":{"format":{"type":"json_object"}}}""", 400)]
    [InlineData("""{"model":"tiny-random","input":[{"role":"user","content":"hi"},{"role":"user","content":[{"type":"input_text","text":"As Json."}]}],"max_output_tokens":16,"text":{"format":{"type":"json_object"}}}""", 200)]
    public async Task TextFormatJsonObject_NeedsTheWordJsonInTheInput(string json, int expected)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/responses", json);

        Assert.True(status == expected, body.ToString());
        if (expected == 400)
        {
            Assert.Equal("text.format", body.GetProperty("error").GetProperty("param").GetString());
            Assert.Equal(
                "Response input messages must contain the word 'json' in some form to use 'text.format' of type 'json_object'.",
                body.GetProperty("error").GetProperty("message").GetString());
        }
    }

    [Theory]
    [InlineData("""{"input":"hi","store":true}""", "store", "content_retention_not_allowed")]
    [InlineData("""{"input":"hi","previous_response_id":"resp_123"}""", "previous_response_id", "content_retention_not_allowed")]
    [InlineData("""{"input":"hi","previous_response_id":""}""", "previous_response_id", "invalid_value")]
    [InlineData("""{"input":"hi","previous_response_id":"  "}""", "previous_response_id", "invalid_value")]
    [InlineData("""{"input":"hi","tools":[{"type":"function","name":"f"},{"type":"web_search"}]}""", "tools[1].type", "invalid_value")]
    // Real OpenAI fields this server does not support are named as such, not as typos or bad values.
    [InlineData("""{"input":"hi","reasoning":{"context":"all_turns"}}""", "reasoning.context", "unsupported_parameter")]
    [InlineData("""{"input":"hi","reasoning":{"mode":"pro"}}""", "reasoning.mode", "unsupported_parameter")]
    [InlineData("""{"input":"hi","tools":[{"type":"custom","name":"f","description":"d","format":{"type":"text"}}]}""", "tools[0].type", "unsupported_parameter")]
    [InlineData("""{"input":"hi","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"custom","name":"f"}}""", "tool_choice.type", "unsupported_parameter")]
    [InlineData("""{"input":"hi","tools":[{"type":"function","name":"bad name"}]}""", "tools[0].name", "invalid_value")]
    [InlineData("""{"input":"hi","tools":[{"type":"function","name":"f","parameters":{"type":"array"}}]}""", "tools[0].parameters", "invalid_function_parameters")]
    [InlineData("""{"input":"hi","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"g"}}""", "tool_choice.name", "invalid_value")]
    [InlineData("""{"input":"hi","tools":[{"type":"function","name":"f"}],"tool_choice":"sometimes"}""", "tool_choice", "invalid_value")]
    [InlineData("""{"input":"hi","tool_choice":"required"}""", "tool_choice", "invalid_value")]
    [InlineData("""{"input":"hi","tools":[{"type":"function","name":"f"}],"tool_choice":"required","text":{"format":{"type":"json_object"}}}""", "tool_choice", "invalid_value")]
    [InlineData("""{"input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"}]}""", "input[1].call_id", "invalid_value")]
    [InlineData("""{"input":[{"type":"function_call","call_id":"c","name":"f"}]}""", "input[0].arguments", "missing_required_parameter")]
    [InlineData("""{"input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c"}]}""", "input[1].output", "missing_required_parameter")]
    [InlineData("""{"input":[{"role":"robot","content":"hi"}]}""", "input[0].role", "invalid_value")]
    [InlineData("""{"input":[{"role":"user"}]}""", "input[0].content", "missing_required_parameter")]
    [InlineData("""{"input":[{"role":"user","content":[]}]}""", "input[0].content", "empty_array")]
    [InlineData("""{"input":[{"type":"message","role":"user","content":"a"},{"type":"reasoning","summary":[]}]}""", "input[1].type", "invalid_value")]
    [InlineData("""{"input":[{"type":"function_call_output","call_id":"c","output":"1"}]}""", "input[0].call_id", "invalid_value")]

    // OpenAI: "No tool output found for function call c." These were served with the call unanswered.
    [InlineData("""{"input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"role":"user","content":"hi"}]}""", "input[0].call_id", "invalid_value")]
    [InlineData("""{"input":[{"role":"user","content":"hi"},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call","call_id":"d","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"1"}]}""", "input[2].call_id", "invalid_value")]
    [InlineData("""{"input":[{"role":"user","content":[{"type":"input_image","image_url":"http://x"}]}]}""", "input[0].content[0].type", "unsupported_content")]
    [InlineData("""{"input":[{"role":"user","content":[{"type":"output_text","text":"x"}]}]}""", "input[0].content[0].type", "invalid_value")]
    [InlineData("""{"input":[{"role":"user","content":[{"type":"input_text"}]}]}""", "input[0].content[0].text", "invalid_type")]
    [InlineData("""{"input":[]}""", "input", "invalid_value")]
    [InlineData("""{"input":42}""", "input", "invalid_type")]
    [InlineData("""{"instructions":"x"}""", "input", "missing_required_parameter")]
    [InlineData("""{"input":"hi","text":{"format":{"type":"json_schema","name":"s","schema":{"type":"string","pattern":"(a)\\1"}}}}""", "text.format.schema", null)]
    [InlineData("""{"input":"hi","text":{"format":{"type":"json_schema","schema":{"type":"object"}}}}""", "text.format.name", "missing_required_parameter")]
    [InlineData("""{"input":"hi","text":{"format":{"type":"yaml"}}}""", "text.format.type", "invalid_value")]
    [InlineData("""{"input":"hi","text":{"format":{"name":"s","schema":{"type":"object"}}}}""", "text.format.type", "missing_required_parameter")]
    [InlineData("""{"input":"hi","temperature":3}""", "temperature", "invalid_value")]
    [InlineData("""{"input":"hi","max_output_tokens":0}""", "max_output_tokens", "invalid_value")]
    [InlineData("""{"input":"hi","background":true}""", "background", "unsupported_parameter")]
    // Were served as if not sent: an effort, a summary or a verbosity other than OpenAI's default changes the answer asked for.
    [InlineData("""{"input":"hi","reasoning":{"effort":"high"}}""", "reasoning.effort", "unsupported_parameter")]
    [InlineData("""{"input":"hi","reasoning":{"summary":"auto"}}""", "reasoning.summary", "unsupported_parameter")]
    [InlineData("""{"input":"hi","text":{"verbosity":"low"}}""", "text.verbosity", "unsupported_value")]
    [InlineData("""{"input":"hi","truncation":"auto"}""", "truncation", "unsupported_parameter")]
    // Were served as if not sent: include must be an array of strings (a lone string is a common slip) and
    // top_logprobs a count from 0 to 20, as on chat completions.
    [InlineData("""{"input":"hi","include":"reasoning.encrypted_content"}""", "include", "invalid_type")]
    [InlineData("""{"input":"hi","include":5}""", "include", "invalid_type")]
    [InlineData("""{"input":"hi","include":[5]}""", "include[0]", "invalid_type")]
    [InlineData("""{"input":"hi","top_logprobs":-1}""", "top_logprobs", "invalid_value")]
    [InlineData("""{"input":"hi","top_logprobs":21}""", "top_logprobs", "invalid_value")]
    public async Task InvalidOrUnsupported_Is400NamingTheParameter(string fields, string param, string? code)
    {
        var body = JsonNode.Parse(fields)!.AsObject();
        body["model"] = ServerFixture.Stories;

        var (status, response, _) = await server.PostJsonAsync("/v1/responses", body.ToJsonString());

        Assert.Equal(400, status);
        var error = response.GetProperty("error");
        Assert.StartsWith(param, error.GetProperty("param").GetString(), StringComparison.Ordinal);
        if (code is not null)
        {
            Assert.Equal(code, error.GetProperty("code").GetString());
        }
    }

    /// <summary>OpenAI's Responses API refuses <c>max_output_tokens</c> below 16; 1 to 15 were served here.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(15)]
    public async Task MaxOutputTokensBelowSixteen_Is400NamingTheParameterAndTheMinimum(int maxOutputTokens)
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/responses", $$"""{"model":"stories","input":"hi","max_output_tokens":{{maxOutputTokens}}}""");
        var (atMinimum, _, _) = await server.PostJsonAsync("/v1/responses", """{"model":"stories","input":"hi","max_output_tokens":16}""");

        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("max_output_tokens", error.GetProperty("param").GetString());
        Assert.Equal("invalid_value", error.GetProperty("code").GetString());
        Assert.Equal($"max_output_tokens must be at least 16; got {maxOutputTokens}.", error.GetProperty("message").GetString());
        Assert.Equal(200, atMinimum);
    }

    /// <summary>What OpenAI sends by default or as null is not a refusal: an empty reasoning, verbosity medium.</summary>
    [Theory]
    [InlineData("""{"input":"hi","max_output_tokens":16,"reasoning":{}}""")]
    [InlineData("""{"input":"hi","max_output_tokens":16,"reasoning":{"effort":null,"summary":null}}""")]
    [InlineData("""{"input":"hi","max_output_tokens":16,"text":{"verbosity":"medium"}}""")]
    [InlineData("""{"input":"hi","max_output_tokens":16,"include":[],"top_logprobs":0}""")]
    [InlineData("""{"input":"hi","max_output_tokens":16,"include":null,"top_logprobs":null}""")]
    public async Task ReasoningUnsetAndDefaultVerbosity_AreServed(string fields)
    {
        var body = JsonNode.Parse(fields)!.AsObject();
        body["model"] = ServerFixture.Stories;

        var (status, _, _) = await server.PostJsonAsync("/v1/responses", body.ToJsonString());

        Assert.Equal(200, status);
    }

    /// <summary>A message's input_text parts are joined with a newline, as chat's text parts are (they ran together).</summary>
    [Fact]
    public async Task InputTextParts_AreJoinedWithANewline()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/responses",
            """{"model":"stories","input":[{"role":"user","content":[{"type":"input_text","text":"Good"},{"type":"input_text","text":"morning"}]}],"max_output_tokens":16}""");

        Assert.Equal(200, status);
        var model = server.Batcher(ServerFixture.Stories).Model;
        Assert.Equal(model.TokenizeChat([new Sovereign.Inference.Engine.ChatTurn("user", "Good\nmorning")]).Length, body.GetProperty("usage").GetProperty("input_tokens").GetInt32());
    }

    [Fact]
    public async Task InputLongerThanTheContext_Is400NamingInput_NotMessages()
    {
        var longText = string.Join(' ', Enumerable.Repeat("the dog ran to the park", 400));
        var (status, body, _) = await server.PostJsonAsync("/v1/responses", $$"""{"model":"stories","input":"{{longText}}"}""");

        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("input", error.GetProperty("param").GetString());
        Assert.DoesNotContain("messages", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task InputPlusMaxOutputTokensOverTheContext_Is400NamingResponsesFields()
    {
        var input = string.Join(' ', Enumerable.Repeat("the dog ran", 30));
        var (status, body, _) = await server.PostJsonAsync("/v1/responses", $$"""{"model":"stories","input":"{{input}}","max_output_tokens":250}""");

        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("max_output_tokens", error.GetProperty("param").GetString());
        var message = error.GetProperty("message").GetString()!;
        Assert.Contains("'input'", message, StringComparison.Ordinal);
        Assert.Contains("'max_output_tokens'", message, StringComparison.Ordinal);
        Assert.DoesNotContain("max_tokens", message, StringComparison.Ordinal);
        Assert.DoesNotContain("messages", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task StoreFalseOrAbsent_IsServed()
    {
        var (absent, _, _) = await server.PostJsonAsync("/v1/responses", """{"model":"stories","input":"hi","max_output_tokens":16}""");
        var (explicitFalse, _, _) = await server.PostJsonAsync("/v1/responses", """{"model":"stories","input":"hi","max_output_tokens":16,"store":false}""");

        Assert.Equal(200, absent);
        Assert.Equal(200, explicitFalse);
    }

    [Fact]
    public async Task StoreTrue_ThroughTheSdk_IsRefusedWith400NotRetried()
    {
        var options = Options("x", "hi", 16);
        options.StoredOutputEnabled = true;

        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Responses().CreateResponseAsync(options));

        Assert.Equal(400, ex.Status);
        Assert.Contains("retention", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownResponseId_Is404_WithoutEchoingALongIdWhole()
    {
        var id = "resp_" + new string('x', 3000);
        using var response = await server.Http.GetAsync("/v1/responses/" + id);

        Assert.Equal(404, (int)response.StatusCode);
        var message = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString()!;
        Assert.Contains("resp_xxx", message, StringComparison.Ordinal);
        Assert.True(message.Length < 200, message);
    }
}
