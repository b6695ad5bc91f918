using System.Text.Json;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>/tokenize and /detokenize in llama-server's and vLLM's shapes.</summary>
[Collection(ServerCollection.Name)]
public sealed class TokenizerEndpointsTests(ServerFixture server)
{
    private LlamaModel Model => server.Batcher(ServerFixture.Stories).Model;

    private static int[] Ids(JsonElement body) => [.. body.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32())];

    [Fact]
    public async Task Tokenize_LlamaServerShape_NoSpecialTokensByDefault()
    {
        var (status, body, _) = await server.PostJsonAsync("/tokenize", """{"model":"stories","content":"Once upon a time"}""");

        Assert.Equal(200, status);
        Assert.Equal(Model.Tokenize("Once upon a time", addBos: false), Ids(body));
        Assert.Equal(body.GetProperty("tokens").GetArrayLength(), body.GetProperty("count").GetInt32());
        Assert.Equal(Model.Info.ContextLength, body.GetProperty("max_model_len").GetInt32());
    }

    [Fact]
    public async Task Tokenize_VllmShape_AddsSpecialTokensByDefault_AndChatMessagesUseTheTemplate()
    {
        var (_, prompt, _) = await server.PostJsonAsync("/tokenize", """{"model":"stories","prompt":"Once upon a time"}""");
        var (_, messages, _) = await server.PostJsonAsync("/tokenize", """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}]}""");

        Assert.Equal(Model.Tokenize("Once upon a time", addBos: true), Ids(prompt));
        Assert.Equal(Model.TokenizeChat([new ChatTurn("user", "Once upon a time")]), Ids(messages));
    }

    /// <summary>
    /// /tokenize counts a conversation as chat completions bills it: an assistant's tool calls and a message's name are
    /// part of the prompt the template renders. Only role and text were rendered, so a history with calls was undercounted.
    /// </summary>
    [Fact]
    public async Task Tokenize_Messages_CountsWhatChatCompletionsBills_ToolCallsAndNamesIncluded()
    {
        const string Messages = """[{"role":"user","content":"Weather?","name":"ann"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"city\":\"Bangkok\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"sunny"}]""";
        var (status, tokenized, _) = await server.PostJsonAsync("/tokenize", $$"""{"model":"{{ServerFixture.TinyRandom}}","messages":{{Messages}}}""");
        Assert.Equal(200, status);
        var (chatStatus, chat, _) = await server.PostJsonAsync("/v1/chat/completions", $$"""{"model":"{{ServerFixture.TinyRandom}}","messages":{{Messages}},"max_tokens":1}""");
        Assert.Equal(200, chatStatus);

        Assert.Equal(chat.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), tokenized.GetProperty("count").GetInt32());
    }

    /// <summary>
    /// A message that spells a control token is counted as its text, as OpenAI reads it, and chat completions bills the
    /// same prompt: "a&lt;/s&gt;b" in a user message was tokenized with the end-of-sequence token inside the turn.
    /// </summary>
    [Fact]
    public async Task Tokenize_MessageSpellingEos_HoldsNoEosToken_AndChatBillsTheSamePrompt()
    {
        const string Messages = """[{"role":"user","content":"a</s>b"}]""";
        var (_, eos, _) = await server.PostJsonAsync("/tokenize", $$"""{"model":"{{ServerFixture.TinyRandom}}","content":"</s>"}""");
        var eosId = Assert.Single(Ids(eos));
        var (status, tokenized, _) = await server.PostJsonAsync("/tokenize", $$"""{"model":"{{ServerFixture.TinyRandom}}","messages":{{Messages}}}""");
        Assert.Equal(200, status);
        var (chatStatus, chat, _) = await server.PostJsonAsync("/v1/chat/completions", $$"""{"model":"{{ServerFixture.TinyRandom}}","messages":{{Messages}},"max_tokens":1}""");
        Assert.Equal(200, chatStatus);

        Assert.DoesNotContain(eosId, Ids(tokenized));
        Assert.Equal(chat.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), tokenized.GetProperty("count").GetInt32());
    }

    [Fact]
    public async Task Tokenize_WithPieces_GivesIdAndTextOfEachToken()
    {
        var (status, body, _) = await server.PostJsonAsync("/tokenize", """{"model":"stories","content":"The little dog","with_pieces":true}""");

        Assert.Equal(200, status);
        var pieces = body.GetProperty("tokens").EnumerateArray().ToList();
        Assert.Equal(Model.Tokenize("The little dog", addBos: false), pieces.Select(p => p.GetProperty("id").GetInt32()));
        Assert.Equal(" The little dog", string.Concat(pieces.Select(p => p.GetProperty("piece").GetString())));
    }

    [Fact]
    public async Task DecisionEntry_NamesItsEndpoint_SoATokenizeIsNotAnUnfinishedRequest()
    {
        // /tokenize is decided and audited like inference but generates and bills nothing: no outcome entry follows its
        // decision. Without the endpoint in the entry, an auditor could not tell it from a request that never ended.
        var (status, _, tokenized) = await server.PostJsonAsync("/tokenize", """{"model":"stories","content":"Once upon a time"}""");
        Assert.Equal(200, status);
        var (chatStatus, _, chat) = await server.PostJsonAsync("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":1}""");
        Assert.Equal(200, chatStatus);

        using var admin = server.AdminClient();
        var entries = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/audit?tenant=anonymous&order=desc&limit=200")).RootElement.GetProperty("data").EnumerateArray().ToList();
        List<(string? Action, string? Endpoint)> Of(HttpResponseMessage response)
        {
            var id = response.Headers.GetValues("x-sovereign-audit-id").Single();
            return [.. entries.Where(e => e.GetProperty("details").TryGetProperty("request_id", out var r) && r.GetString() == id)
                .OrderBy(e => e.GetProperty("sequence").GetInt64())
                .Select(e => (e.GetProperty("action").GetString(), e.GetProperty("details").TryGetProperty("endpoint", out var endpoint) ? endpoint.GetString() : null))];
        }

        Assert.Equal([("inference.allowed", "/tokenize")], Of(tokenized));
        Assert.Equal([("inference.allowed", "/v1/chat/completions"), ("inference.completed", null)], Of(chat));
    }

    [Fact]
    public async Task Detokenize_RoundTrips_InBothShapes()
    {
        var tokens = Model.Tokenize("Lily wanted to play.", addBos: false);
        var (status, body, _) = await server.PostJsonAsync("/detokenize", $$"""{"model":"stories","tokens":[{{string.Join(',', tokens)}}]}""");

        Assert.Equal(200, status);
        Assert.Equal(Model.Detokenize(tokens), body.GetProperty("content").GetString());
        Assert.Equal(body.GetProperty("content").GetString(), body.GetProperty("prompt").GetString());
        Assert.Contains("Lily wanted to play.", body.GetProperty("content").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/tokenize", """{"model":"stories"}""", "content")]
    [InlineData("/tokenize", """{"model":"stories","content":"a","messages":[]}""", "messages")]
    [InlineData("/tokenize", """{"model":"stories","content":"a cat","prompt":"a dog"}""", "prompt")]
    [InlineData("/tokenize", """{"model":"stories","content":"a cat","prompt":"a cat"}""", "prompt")]
    // Messages are read as chat completions reads them: these were counted (a part dropped, a role made up, a call
    // nobody made), so a client counting a conversation got a number for one the chat endpoint refuses.
    [InlineData("/tokenize", """{"model":"stories","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/a.png"}}]}]}""", "messages[0].content[0].type")]
    [InlineData("/tokenize", """{"model":"stories","messages":[{"role":"wizard","content":"a"}]}""", "messages[0].role")]
    [InlineData("/tokenize", """{"model":"stories","messages":[]}""", "messages")]
    [InlineData("/tokenize", """{"model":"stories","messages":[{"role":"user"}]}""", "messages[0].content")]
    [InlineData("/tokenize", """{"model":"stories","messages":[{"role":"tool","tool_call_id":"c1","content":"1"}]}""", "messages[0].tool_call_id")]
    [InlineData("/detokenize", """{"model":"stories"}""", "tokens")]
    [InlineData("/detokenize", """{"model":"stories","tokens":[1,99999]}""", "tokens[1]")]
    [InlineData("/detokenize", """{"model":"stories","tokens":[-3]}""", "tokens[0]")]
    [InlineData("/detokenize", """{"model":"stories","tokens":"abc"}""", "tokens")]
    public async Task BadInput_Is400NamingTheField(string path, string json, string param)
    {
        var (status, body, _) = await server.PostJsonAsync(path, json);

        Assert.Equal(400, status);
        Assert.Equal(param, body.GetProperty("error").GetProperty("param").GetString());
    }

    /// <summary>
    /// Found by hand: '/tokenize' with 'auto', which /v1/models lists and chat takes, was a 404 "does not exist". An alias
    /// chooses its model per request, so it has no tokenizer of its own: a 400 naming 'model', as /v1/embeddings answers.
    /// </summary>
    [Theory]
    [InlineData("/tokenize", """{"model":"auto","prompt":"Once upon a time"}""")]
    [InlineData("/detokenize", """{"model":"auto","tokens":[1,2]}""")]
    [InlineData("/tokenize", """{"model":"thai-only","messages":[{"role":"user","content":"hi"}]}""")]
    public async Task Alias_Is400ModelNotSupported_NotA404(string path, string json)
    {
        var (status, body, _) = await server.PostJsonAsync(path, json);

        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal("model", error.GetProperty("param").GetString());
        Assert.Equal("model_not_supported", error.GetProperty("code").GetString());
        Assert.Contains("alias", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("content")]
    [InlineData("prompt")]
    [InlineData("messages")]
    public async Task TextOverTheCap_Is400NamingTheField_BeforeAnyOfItIsTokenized(string field)
    {
        // One byte over the server's cap; at the cap exactly, the same text is counted.
        var over = new string('a', ServerFixture.TokenizeLimit + 1);
        var json = field == "messages"
            ? JsonSerializer.Serialize(new { model = "stories", messages = new[] { new { role = "user", content = over } } })
            : JsonSerializer.Serialize(new Dictionary<string, string> { ["model"] = "stories", [field] = over });
        var before = Model.TokenizedCharacters;

        var (status, body, _) = await server.PostJsonAsync("/tokenize", json);

        Assert.Equal(400, status);
        var error = body.GetProperty("error");
        Assert.Equal(field, error.GetProperty("param").GetString());
        Assert.Equal("string_above_max_length", error.GetProperty("code").GetString());
        Assert.Equal(0, Model.TokenizedCharacters - before);

        var (atCap, counted, _) = await server.PostJsonAsync("/tokenize",
            JsonSerializer.Serialize(new { model = "stories", content = over[1..] }));
        Assert.Equal(200, atCap);
        Assert.True(counted.GetProperty("count").GetInt32() > 0);
    }
}
