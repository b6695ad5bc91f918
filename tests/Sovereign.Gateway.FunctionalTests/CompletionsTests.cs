using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>/v1/completions over raw HTTP (the .NET SDK has no legacy completions client).</summary>
[Collection(ServerCollection.Name)]
public sealed class CompletionsTests(ServerFixture server)
{
    [Fact]
    public async Task Completions_NonStreaming_CountsPromptWithTheModelTokenizer()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/completions",
            """{"model":"stories","prompt":"Once upon a time","max_tokens":10,"temperature":0}""");

        Assert.Equal(200, status);
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.False(string.IsNullOrWhiteSpace(choice.GetProperty("text").GetString()));
        var usage = body.GetProperty("usage");
        Assert.Equal(server.Batcher(ServerFixture.Stories).Model.Tokenize("Once upon a time").Length, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(10, usage.GetProperty("completion_tokens").GetInt32());
    }

    [Theory]
    [InlineData("""{"model":"stories","prompt":"Once upon a time","temperature":0}""")]
    [InlineData("""{"model":"stories","prompt":"Once upon a time","temperature":0,"max_tokens":null}""")]
    public async Task Completions_WithoutMaxTokens_WriteAtMost16Tokens_AsOpenAIDefaults(string json)
    {
        // OpenAI's legacy completions (and vLLM's) default max_tokens to 16: a script that relied on it was written,
        // and billed for, the rest of the context (2,046 tokens on stories' 2,048).
        var (status, body, _) = await server.PostJsonAsync("/v1/completions", json);

        Assert.Equal(200, status);
        Assert.InRange(body.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 1, 16);
    }

    [Fact]
    public async Task Completions_Streaming_ConcatenatesToNonStreamingTextAndEndsWithDone()
    {
        var (_, whole, _) = await server.PostJsonAsync("/v1/completions",
            """{"model":"stories","prompt":"The little dog","max_tokens":16,"temperature":0}""");
        var expected = whole.GetProperty("choices")[0].GetProperty("text").GetString();

        var response = await server.Http.PostAsync("/v1/completions", new StringContent(
            """{"model":"stories","prompt":"The little dog","max_tokens":16,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var lines = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal("data: [DONE]", lines[^1]);
        var events = lines[..^1].Select(l => JsonDocument.Parse(l["data: ".Length..]).RootElement).ToList();
        var text = string.Concat(events.Where(e => e.GetProperty("choices").GetArrayLength() > 0).Select(e => e.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal(expected, text);
        Assert.Equal(16, events[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Contains(events, e => e.GetProperty("choices").GetArrayLength() > 0 && e.GetProperty("choices")[0].GetProperty("finish_reason").GetString() == "length");

        // OpenAI: with include_usage every other chunk states "usage": null (they had no usage field).
        Assert.All(events[..^1], e => Assert.Equal(JsonValueKind.Null, e.GetProperty("usage").ValueKind));
    }

    [Fact]
    public async Task LogitBias_Plus100_ForcesTheToken_AndATokenOutsideTheVocabularyIs400()
    {
        var model = server.Batcher(ServerFixture.Stories).Model;
        var dog = model.Tokenize(" dog", addBos: false)[^1];
        var piece = System.Text.Encoding.UTF8.GetString(model.TokenBytes(dog));

        var (status, body, _) = await server.PostJsonAsync("/v1/completions",
            $$$"""{"model":"stories","prompt":"Once upon a time","max_tokens":4,"temperature":0,"logit_bias":{"{{{dog}}}":100}}""");
        var (_, plain, _) = await server.PostJsonAsync("/v1/completions",
            """{"model":"stories","prompt":"Once upon a time","max_tokens":4,"temperature":0}""");

        Assert.Equal(200, status);
        var text = body.GetProperty("choices")[0].GetProperty("text").GetString()!;
        Assert.Equal(string.Concat(Enumerable.Repeat(piece, 4)), text);
        Assert.NotEqual(plain.GetProperty("choices")[0].GetProperty("text").GetString(), text);

        var (outside, error, _) = await server.PostJsonAsync("/v1/chat/completions",
            $$$"""{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"logit_bias":{"{{{model.Info.VocabularySize}}}":-100}}""");
        Assert.Equal(400, outside);
        Assert.Equal("logit_bias", error.GetProperty("error").GetProperty("param").GetString());
        Assert.Contains(model.Info.VocabularySize.ToString(System.Globalization.CultureInfo.InvariantCulture), error.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task Completions_TokenIdPromptAndSeveralChoices_NumbersChoicesInOrder()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/completions",
            """{"model":"stories","prompt":[[1, 400, 300], [1, 200]],"max_tokens":4,"temperature":0,"n":2}""");

        Assert.Equal(200, status);
        var choices = body.GetProperty("choices");
        Assert.Equal(4, choices.GetArrayLength());
        Assert.Equal([0, 1, 2, 3], choices.EnumerateArray().Select(c => c.GetProperty("index").GetInt32()));
        Assert.Equal(3 + 2, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(choices[0].GetProperty("text").GetString(), choices[1].GetProperty("text").GetString());
    }

    [Fact]
    public async Task PromptPlusMaxTokensOverTheContext_Is400NamingPrompt_NotMessages()
    {
        var prompt = string.Join(' ', Enumerable.Repeat("the dog ran", 30));
        var (status, body, _) = await server.PostJsonAsync("/v1/completions", $$"""{"model":"stories","prompt":"{{prompt}}","max_tokens":250}""");

        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("max_tokens", error.GetProperty("param").GetString());
        Assert.Contains("'prompt'", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("messages", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }
}
