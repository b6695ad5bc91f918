using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// A call that <c>max_tokens</c> cuts short (a forced call: <c>required</c> or a named function, on the random-weights
/// model) is answered as OpenAI and vLLM answer it: <c>finish_reason: "length"</c> and the call as far as it got (its
/// name once complete, its arguments truncated), streamed and not alike. The template's markup
/// (<c>&lt;tool_call&gt;{"name": ...</c>) used to come back as the message's content.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class ToolCallCutTests(ServerFixture server)
{
    private const string WeatherSchema =
        """{"type":"object","properties":{"city":{"type":"string","maxLength":24},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city","unit"],"additionalProperties":false}""";

    private const string Named = """{"type":"function","function":{"name":"get_weather"}}""";

    private static string Body(int maxTokens, bool stream, string toolChoice = Named) =>
        $$$"""{"model":"tiny-random","stream":{{{(stream ? "true" : "false")}}},"max_tokens":{{{maxTokens}}},"seed":5,"messages":[{"role":"user","content":"Weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{{{WeatherSchema}}}}}],"tool_choice":{{{toolChoice}}}}""";

    /// <summary>How many tokens the whole forced call takes (the same seed gives the same call).</summary>
    private async Task<int> WholeCallTokensAsync()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions", Body(140, stream: false));
        Assert.Equal(200, status);
        Assert.Equal("tool_calls", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        return body.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
    }

    [Fact]
    public async Task ForcedCall_CutInsideItsArguments_IsTheCallSoFarWithFinishLength_StreamedAndNot()
    {
        var whole = await WholeCallTokensAsync();

        // Cut where the arguments have begun (the closing markup takes more than three tokens): both shapes agree.
        foreach (var cut in new[] { whole - 3, (whole * 2) / 3 })
        {
            var (content, calls, finish) = await NonStreamedAsync(Body(cut, stream: false));
            var (streamedContent, streamedCalls, streamedFinish) = await StreamedAsync(Body(cut, stream: true));

            Assert.Equal("length", finish);
            Assert.Equal("length", streamedFinish);
            Assert.Null(content);
            Assert.Equal("", streamedContent);
            Assert.Equal(calls, streamedCalls);
            foreach (var (name, arguments) in calls)
            {
                Assert.Equal("get_weather", name);
                Assert.True(arguments.Length == 0 || arguments[0] == '{', arguments);
                Assert.DoesNotContain("tool_call", arguments, StringComparison.Ordinal);
            }
        }

        var (_, nearlyWhole, _) = await NonStreamedAsync(Body(whole - 3, stream: false));
        Assert.Equal("get_weather", Assert.Single(nearlyWhole).Name);
        Assert.StartsWith("{", nearlyWhole[0].Arguments, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(Named)]
    [InlineData("\"required\"")]
    public async Task ForcedCall_CutBeforeItsNameIsComplete_HasNoContentAndNoCall(string toolChoice)
    {
        var (content, calls, finish) = await NonStreamedAsync(Body(3, stream: false, toolChoice));
        var (streamedContent, streamedCalls, streamedFinish) = await StreamedAsync(Body(3, stream: true, toolChoice));

        Assert.Equal("length", finish);
        Assert.Equal("length", streamedFinish);
        Assert.Null(content);
        Assert.Equal("", streamedContent);
        Assert.Empty(calls);
        Assert.Empty(streamedCalls);
    }

    [Fact]
    public async Task ForcedCall_CutOnResponses_IsAnIncompleteFunctionCallItem_NotMarkup()
    {
        // Greedy, so the cut request generates the whole call's first tokens.
        string Request(int max) =>
            $$$"""{"model":"tiny-random","temperature":0,"max_output_tokens":{{{max}}},"input":"Weather?","tools":[{"type":"function","name":"get_weather","parameters":{{{WeatherSchema}}}}],"tool_choice":{"type":"function","name":"get_weather"}}""";
        var (status, body, _) = await server.PostJsonAsync("/v1/responses", Request(140));
        Assert.Equal("completed", body.GetProperty("status").GetString());
        var whole = body.GetProperty("usage").GetProperty("output_tokens").GetInt32();

        (status, body, _) = await server.PostJsonAsync("/v1/responses", Request(whole - 3));

        Assert.Equal(200, status);
        Assert.Equal("incomplete", body.GetProperty("status").GetString());
        Assert.DoesNotContain("tool_call", body.GetProperty("output").GetRawText(), StringComparison.Ordinal);
        var item = Assert.Single(body.GetProperty("output").EnumerateArray());
        Assert.Equal("function_call", item.GetProperty("type").GetString());
        Assert.Equal("get_weather", item.GetProperty("name").GetString());
        Assert.Equal("incomplete", item.GetProperty("status").GetString());
    }

    private async Task<(string? Content, List<(string Name, string Arguments)> Calls, string? Finish)> NonStreamedAsync(string body)
    {
        var (status, answer, _) = await server.PostJsonAsync("/v1/chat/completions", body);
        Assert.True(status == 200, answer.ToString());
        var choice = answer.GetProperty("choices")[0];
        var message = choice.GetProperty("message");
        var calls = message.TryGetProperty("tool_calls", out var list)
            ? list.EnumerateArray().Select(c => (c.GetProperty("function").GetProperty("name").GetString()!, c.GetProperty("function").GetProperty("arguments").GetString()!)).ToList()
            : [];
        return (message.GetProperty("content").GetString(), calls, choice.GetProperty("finish_reason").GetString());
    }

    private async Task<(string Content, List<(string Name, string Arguments)> Calls, string? Finish)> StreamedAsync(string body)
    {
        using var response = await server.Http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 200, text);
        var choices = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).Where(d => d != "[DONE]")
            .Select(d => JsonDocument.Parse(d).RootElement.Clone()).Where(c => c.GetProperty("choices").GetArrayLength() > 0)
            .Select(c => c.GetProperty("choices")[0]).ToList();

        var content = new StringBuilder();
        var calls = new List<(string Name, string Arguments)>();
        string? finish = null;
        foreach (var choice in choices)
        {
            var delta = choice.GetProperty("delta");
            if (delta.TryGetProperty("content", out var part) && part.ValueKind == JsonValueKind.String)
            {
                content.Append(part.GetString());
            }

            if (delta.TryGetProperty("tool_calls", out var parts))
            {
                foreach (var call in parts.EnumerateArray())
                {
                    var function = call.GetProperty("function");
                    if (function.TryGetProperty("name", out var name))
                    {
                        calls.Add((name.GetString()!, ""));
                    }

                    var i = call.GetProperty("index").GetInt32();
                    calls[i] = (calls[i].Name, calls[i].Arguments + function.GetProperty("arguments").GetString());
                }
            }

            if (choice.GetProperty("finish_reason").ValueKind == JsonValueKind.String)
            {
                finish = choice.GetProperty("finish_reason").GetString();
            }
        }

        return (content.ToString(), calls, finish);
    }
}
