using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// Calls the model makes by itself (<c>tool_choice: auto</c>) on chat completions and Responses, streamed and not: from
/// the call's opening marker on, sampling is held to a well-formed call whose arguments follow a strict function's
/// schema (a lazy grammar). The random-weights model never opens a call by itself, so the batcher's
/// <see cref="ContinuousBatcher.BeforeFreeSample"/> stands in for one that does: it raises the tokens of
/// <c>&lt;tool_call&gt;</c> (the model has no template: Hermes) in the free logits after two tokens, and the end of
/// generation at the next free token; everything inside the call is sampled from the model's logits under the grammar.
/// Before the grammar the same requests came back as the marker followed by gibberish, as content.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class AutoToolCallGrammarTests(ServerFixture server)
{
    private const string WeatherSchema =
        """{"type":"object","properties":{"city":{"type":"string","maxLength":24},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false}""";

    /// <summary>A schema the compiler cannot honour (a backreference).</summary>
    private const string UnenforceableSchema = """{"type":"object","properties":{"a":{"type":"string","pattern":"(a)\\1"}}}""";

    private static readonly JsonSchema Weather = JsonSchema.FromText(WeatherSchema);

    private static string ChatBody(int seed, bool stream, string choice = "\"auto\"", string strict = "true", string schema = WeatherSchema, bool? parallel = false) =>
        "{\"model\":\"tiny-random\",\"max_tokens\":140,\"seed\":" + seed + ",\"stream\":" + (stream ? "true" : "false")
        + ",\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"strict\":" + strict
        + ",\"parameters\":" + schema + "}}],\"tool_choice\":" + choice
        + (parallel is { } p ? ",\"parallel_tool_calls\":" + (p ? "true" : "false") : "") + "}";

    private static string ResponsesBody(bool stream, string choice = "\"auto\"", string? strict = null, string schema = WeatherSchema, bool parallel = false) =>
        "{\"model\":\"tiny-random\",\"max_output_tokens\":140,\"temperature\":1,\"stream\":" + (stream ? "true" : "false")
        + ",\"input\":\"Weather in Paris?\",\"parallel_tool_calls\":" + (parallel ? "true" : "false")
        + ",\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\"" + (strict is null ? "" : ",\"strict\":" + strict)
        + ",\"parameters\":" + schema + "}],\"tool_choice\":" + choice + "}";

    /// <summary>
    /// Opens a call after two free tokens of every request while <paramref name="run"/> runs (the collection runs its
    /// tests one at a time), and ends the turn at the next free token after it.
    /// </summary>
    private async Task<T> WithModelOpeningACall<T>(Func<Task<T>> run, bool endTurn = true)
    {
        var batcher = server.Batcher(ServerFixture.TinyRandom);
        var marker = batcher.Model.Tokenize("<tool_call>", addBos: false);
        var end = (int)batcher.Model.Weights.Vocab.EOS!.Value;
        batcher.BeforeFreeSample = (request, generated, logits) =>
        {
            if (generated >= 2 && (endTurn || generated - 2 < marker.Length))
            {
                logits[generated - 2 < marker.Length ? marker[generated - 2] : end] = 1e4f;
            }
        };

        try
        {
            return await run();
        }
        finally
        {
            batcher.BeforeFreeSample = null;
        }
    }

    private static void AssertValid(string arguments) => Assert.True(Weather.Evaluate(JsonNode.Parse(arguments)).IsValid, arguments);

    private async Task<string> PostTextAsync(string path, string body)
    {
        var response = await server.Http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return text;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Chat_ACallTheModelOpens_FollowsTheStrictSchema(bool parallel)
    {
        foreach (var seed in new[] { 1, 2, 3 })
        {
            var (status, body, _) = await WithModelOpeningACall(() => server.PostJsonAsync("/v1/chat/completions", ChatBody(seed, stream: false, parallel: parallel)));

            Assert.Equal(200, status);
            var choice = body.GetProperty("choices")[0];
            Assert.Equal("tool_calls", choice.GetProperty("finish_reason").GetString());
            var call = Assert.Single(choice.GetProperty("message").GetProperty("tool_calls").EnumerateArray()).GetProperty("function");
            Assert.Equal("get_weather", call.GetProperty("name").GetString());
            AssertValid(call.GetProperty("arguments").GetString()!);
        }
    }

    [Fact]
    public async Task Chat_Streamed_ACallTheModelOpens_FollowsTheStrictSchema()
    {
        foreach (var seed in new[] { 4, 5 })
        {
            var text = await WithModelOpeningACall(() => PostTextAsync("/v1/chat/completions", ChatBody(seed, stream: true)));

            var chunks = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).Where(d => d != "[DONE]")
                .Select(d => JsonDocument.Parse(d).RootElement.Clone()).Select(c => c.GetProperty("choices")[0]).ToList();
            var calls = chunks.Where(c => c.GetProperty("delta").TryGetProperty("tool_calls", out _)).Select(c => c.GetProperty("delta").GetProperty("tool_calls")[0]).ToList();
            Assert.NotEmpty(calls);
            Assert.All(calls, c => Assert.Equal(0, c.GetProperty("index").GetInt32()));
            Assert.Equal("get_weather", calls[0].GetProperty("function").GetProperty("name").GetString());
            AssertValid(string.Concat(calls.Select(c => c.GetProperty("function").GetProperty("arguments").GetString())));
            Assert.Equal("tool_calls", chunks.Last(c => c.GetProperty("finish_reason").ValueKind == JsonValueKind.String).GetProperty("finish_reason").GetString());
        }
    }

    [Fact]
    public async Task Responses_ACallTheModelOpens_FollowsTheSchema_StrictByDefault()
    {
        var (status, body, _) = await WithModelOpeningACall(() => server.PostJsonAsync("/v1/responses", ResponsesBody(stream: false)));

        Assert.Equal(200, status);
        Assert.Equal("completed", body.GetProperty("status").GetString());
        var call = body.GetProperty("output").EnumerateArray().Single(i => i.GetProperty("type").GetString() == "function_call");
        Assert.Equal("get_weather", call.GetProperty("name").GetString());
        AssertValid(call.GetProperty("arguments").GetString()!);
        Assert.True(body.GetProperty("tools")[0].GetProperty("strict").GetBoolean());
    }

    [Fact]
    public async Task Responses_Streamed_ACallTheModelOpens_FollowsTheSchema()
    {
        var text = await WithModelOpeningACall(() => PostTextAsync("/v1/responses", ResponsesBody(stream: true, parallel: true)));

        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(block => JsonDocument.Parse(block.Split('\n')[1]["data: ".Length..]).RootElement.Clone()).ToList();
        var done = events.Single(e => e.GetProperty("type").GetString() == "response.function_call_arguments.done");
        var streamed = string.Concat(events.Where(e => e.GetProperty("type").GetString() == "response.function_call_arguments.delta").Select(e => e.GetProperty("delta").GetString()));
        Assert.Equal(streamed, done.GetProperty("arguments").GetString());
        AssertValid(streamed);
        Assert.Equal("response.completed", events[^1].GetProperty("type").GetString());
    }

    /// <summary>
    /// Cut by the token limit after a complete call (parallel calls: the text is free again after it, and here the
    /// model writes on until max_tokens): the call, valid, with finish_reason length and the text after it as content.
    /// The whole text, the call's markup included, came back as content.
    /// </summary>
    [Fact]
    public async Task Chat_CutAfterACompleteCall_AnswersTheCallWithFinishReasonLength()
    {
        var (status, body, _) = await WithModelOpeningACall(() => server.PostJsonAsync("/v1/chat/completions", ChatBody(8, stream: false, parallel: true)), endTurn: false);

        Assert.Equal(200, status);
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var message = choice.GetProperty("message");
        var call = Assert.Single(message.GetProperty("tool_calls").EnumerateArray()).GetProperty("function");
        AssertValid(call.GetProperty("arguments").GetString()!);
        Assert.DoesNotContain("<tool_call>", message.GetProperty("content").GetString() ?? "", StringComparison.Ordinal);
    }

    [Fact]
    public async Task Responses_CutAfterACompleteCall_IsIncompleteWithTheCall()
    {
        var (status, body, _) = await WithModelOpeningACall(() => server.PostJsonAsync("/v1/responses", ResponsesBody(stream: false, parallel: true)), endTurn: false);

        Assert.Equal(200, status);
        Assert.Equal("incomplete", body.GetProperty("status").GetString());
        var call = body.GetProperty("output").EnumerateArray().Single(i => i.GetProperty("type").GetString() == "function_call");
        AssertValid(call.GetProperty("arguments").GetString()!);
        Assert.DoesNotContain("<tool_call>", body.GetRawText(), StringComparison.Ordinal);
    }

    /// <summary>Text that opens no call is not constrained: the same words, for the same seed, as with tool_choice none.</summary>
    [Fact]
    public async Task Chat_TextThatOpensNoCall_IsTheSameAsWithToolChoiceNone()
    {
        foreach (var seed in new[] { 6, 7 })
        {
            var (_, auto, _) = await server.PostJsonAsync("/v1/chat/completions", ChatBody(seed, stream: false, parallel: null));
            var (_, none, _) = await server.PostJsonAsync("/v1/chat/completions", ChatBody(seed, stream: false, choice: "\"none\"", parallel: null));

            var text = auto.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString();
            Assert.False(string.IsNullOrEmpty(text));
            Assert.Equal(none.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(), text);
            Assert.False(auto.GetProperty("choices")[0].GetProperty("message").TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array);
        }
    }

    [Fact]
    public async Task Responses_TextThatOpensNoCall_IsTheSameAsWithToolChoiceNone()
    {
        static string Text(JsonElement body) => string.Concat(body.GetProperty("output").EnumerateArray()
            .SelectMany(i => i.GetProperty("content").EnumerateArray()).Select(p => p.GetProperty("text").GetString()));

        var autoBody = ResponsesBody(stream: false).Replace("\"temperature\":1", "\"temperature\":0", StringComparison.Ordinal);
        var (_, auto, _) = await server.PostJsonAsync("/v1/responses", autoBody);
        var (_, none, _) = await server.PostJsonAsync("/v1/responses", autoBody.Replace("\"tool_choice\":\"auto\"", "\"tool_choice\":\"none\"", StringComparison.Ordinal));

        Assert.All(auto.GetProperty("output").EnumerateArray(), i => Assert.Equal("message", i.GetProperty("type").GetString()));
        Assert.Equal(Text(none), Text(auto));
    }

    [Fact]
    public async Task Chat_AStrictSchemaTheCompilerCannotHonour_Is400UnderAuto_NotStrict_IsServed()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions", ChatBody(1, stream: false, schema: UnenforceableSchema));
        Assert.Equal(400, status);
        Assert.Equal("tools[0].function.parameters", body.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("unsupported_schema_keyword", body.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("get_weather", body.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);

        var (streamed, _, _) = await server.PostJsonAsync("/v1/chat/completions", ChatBody(1, stream: true, schema: UnenforceableSchema));
        Assert.Equal(400, streamed);

        // strict false (chat's default): the arguments need only be a JSON object, which any schema allows.
        var (loose, _, _) = await server.PostJsonAsync("/v1/chat/completions", ChatBody(1, stream: false, strict: "false", schema: UnenforceableSchema));
        Assert.Equal(200, loose);
        var (bad, badType, _) = await server.PostJsonAsync("/v1/chat/completions", ChatBody(1, stream: false, strict: "\"yes\""));
        Assert.Equal(400, bad);
        Assert.Equal("tools[0].function.strict", badType.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Responses_AStrictByDefaultSchemaTheCompilerCannotHonour_Is400NamingTheFlatParameters()
    {
        foreach (var stream in new[] { false, true })
        {
            var (status, body, _) = await server.PostJsonAsync("/v1/responses", ResponsesBody(stream, schema: UnenforceableSchema));
            Assert.Equal(400, status);
            Assert.Equal("tools[0].parameters", body.GetProperty("error").GetProperty("param").GetString());
            Assert.Equal("unsupported_schema_keyword", body.GetProperty("error").GetProperty("code").GetString());
        }

        var (loose, _, _) = await server.PostJsonAsync("/v1/responses", ResponsesBody(stream: false, strict: "false", schema: UnenforceableSchema));
        Assert.Equal(200, loose);
    }
}
