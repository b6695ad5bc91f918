using System.ClientModel;
using System.Text.Json;
using OpenAI.Chat;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK.

/// <summary>/v1/chat/completions through the official OpenAI .NET SDK.</summary>
[Collection(ServerCollection.Name)]
public sealed class ChatCompletionsTests(ServerFixture server)
{
    private ChatClient Chat(string model = ServerFixture.Stories) => server.OpenAI.GetChatClient(model);

    private int PromptTokens(string model, params ChatTurn[] turns) => server.Batcher(model).Model.TokenizeChat(turns).Length;

    [Fact]
    public async Task CompleteChat_NonStreaming_ReturnsTextLengthFinishAndExactUsage()
    {
        var completion = (await Chat().CompleteChatAsync(
            [new UserChatMessage("Tell me a story.")],
            new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0 })).Value;

        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.False(string.IsNullOrWhiteSpace(completion.Content[0].Text));
        Assert.Equal(PromptTokens(ServerFixture.Stories, new ChatTurn("user", "Tell me a story.")), completion.Usage.InputTokenCount);
        Assert.Equal(12, completion.Usage.OutputTokenCount);
        Assert.Equal(completion.Usage.InputTokenCount + 12, completion.Usage.TotalTokenCount);
        Assert.Equal(ServerFixture.Stories, completion.Model);
        Assert.StartsWith("chatcmpl-", completion.Id, StringComparison.Ordinal);
    }

    /// <summary>
    /// The message carries what OpenAI's does on every answer, <c>refusal: null</c> and <c>annotations: []</c>: typed
    /// clients (and tests written against OpenAI) read them; they were missing.
    /// </summary>
    [Fact]
    public async Task CompleteChat_MessageStatesRefusalAndAnnotations_AsOpenAIDoes()
    {
        var (status, body, _) = await server.PostJsonAsync("/v1/chat/completions",
            $$"""{"model":"{{ServerFixture.Stories}}","messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"temperature":0}""");

        Assert.Equal(200, status);
        var message = body.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal(System.Text.Json.JsonValueKind.Null, message.GetProperty("refusal").ValueKind);
        Assert.Equal(0, message.GetProperty("annotations").GetArrayLength());
        Assert.Equal("assistant", message.GetProperty("role").GetString());
    }

    /// <summary>
    /// OpenAI states the tier that served a chat completion (<c>service_tier</c>) on the answer and on every chunk;
    /// this server has one, <c>default</c>, whatever the request asked. It was accepted and not stated.
    /// </summary>
    [Fact]
    public async Task CompleteChat_StatesTheServiceTierUsed_WholeAndOnEveryChunk()
    {
        var body = $$"""{"model":"{{ServerFixture.Stories}}","messages":[{"role":"user","content":"Hi"}],"max_tokens":3,"service_tier":"flex","temperature":0""";
        var (status, whole, _) = await server.PostJsonAsync("/v1/chat/completions", body + "}");
        Assert.Equal(200, status);
        Assert.Equal("default", whole.GetProperty("service_tier").GetString());

        var streamed = await server.Http.PostAsync("/v1/chat/completions",
            new StringContent(body + ""","stream":true,"stream_options":{"include_usage":true}}""", System.Text.Encoding.UTF8, "application/json"));
        var chunks = (await streamed.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e["data: ".Length..]).Where(d => d != "[DONE]")
            .Select(d => System.Text.Json.JsonDocument.Parse(d).RootElement.Clone()).ToList();
        Assert.True(chunks.Count >= 3);
        Assert.All(chunks, c => Assert.Equal("default", c.GetProperty("service_tier").GetString()));
    }

    /// <summary>
    /// Usage states OpenAI's breakdowns, whole and in the stream's usage chunk: <c>prompt_tokens_details</c> (cached,
    /// audio) and <c>completion_tokens_details</c> (reasoning, audio, predictions), each true here (no audio, no
    /// reasoning apart from the answer, a prediction is not used). <c>completion_tokens_details</c> was missing.
    /// </summary>
    [Fact]
    public async Task CompleteChat_UsageStatesTokenDetails_WholeAndStreamed()
    {
        var body = $$"""{"model":"{{ServerFixture.Stories}}","messages":[{"role":"user","content":"Hi"}],"max_tokens":3,"temperature":0""";
        var (status, whole, _) = await server.PostJsonAsync("/v1/chat/completions", body + "}");
        Assert.Equal(200, status);

        var streamed = await server.Http.PostAsync("/v1/chat/completions",
            new StringContent(body + ""","stream":true,"stream_options":{"include_usage":true}}""", System.Text.Encoding.UTF8, "application/json"));
        var usageChunk = (await streamed.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(e => e["data: ".Length..]).Where(d => d != "[DONE]")
            .Select(d => System.Text.Json.JsonDocument.Parse(d).RootElement)
            .Single(e => e.TryGetProperty("usage", out var u) && u.ValueKind == System.Text.Json.JsonValueKind.Object);

        foreach (var usage in new[] { whole.GetProperty("usage"), usageChunk.GetProperty("usage") })
        {
            var prompt = usage.GetProperty("prompt_tokens_details");
            Assert.InRange(prompt.GetProperty("cached_tokens").GetInt32(), 0, usage.GetProperty("prompt_tokens").GetInt32());
            Assert.Equal(0, prompt.GetProperty("audio_tokens").GetInt32());
            var completion = usage.GetProperty("completion_tokens_details");
            Assert.Equal(0, completion.GetProperty("reasoning_tokens").GetInt32());
            Assert.Equal(0, completion.GetProperty("audio_tokens").GetInt32());
            Assert.Equal(0, completion.GetProperty("accepted_prediction_tokens").GetInt32());
            Assert.Equal(0, completion.GetProperty("rejected_prediction_tokens").GetInt32());
        }

        // The SDK's typed usage reads them (its OutputTokenDetails was null).
        var typed = (await Chat().CompleteChatAsync([new UserChatMessage("Hi")], new ChatCompletionOptions { MaxOutputTokenCount = 3, Temperature = 0 })).Value.Usage;
        Assert.NotNull(typed.OutputTokenDetails);
        Assert.Equal(0, typed.OutputTokenDetails.ReasoningTokenCount);
        Assert.Equal(0, typed.OutputTokenDetails.RejectedPredictionTokenCount);
        Assert.NotNull(typed.InputTokenDetails);
        Assert.Equal(0, typed.InputTokenDetails.AudioTokenCount);
    }

    /// <summary>
    /// OpenAI: with <c>include_usage</c>, "all other chunks will also include a usage field, but with a null value";
    /// they had none. Without it no chunk has the field. With tools too (their chunks are written apart).
    /// </summary>
    [Theory]
    [InlineData(ServerFixture.Stories, "")]
    [InlineData(ServerFixture.TinyRandom, ""","tools":[{"type":"function","function":{"name":"f"}}]""")]
    public async Task Streaming_WithIncludeUsage_EveryOtherChunkStatesUsageNull(string model, string tools)
    {
        var body = $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0,"stream":true,"n":2{{tools}}""";
        async Task<List<System.Text.Json.JsonElement>> ChunksAsync(string options)
        {
            var streamed = await server.Http.PostAsync("/v1/chat/completions", new StringContent(body + options + "}", System.Text.Encoding.UTF8, "application/json"));
            return [.. (await streamed.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
                .Select(e => e["data: ".Length..]).Where(d => d != "[DONE]").Select(d => System.Text.Json.JsonDocument.Parse(d).RootElement)];
        }

        var chunks = await ChunksAsync(""","stream_options":{"include_usage":true}""");
        Assert.Equal(System.Text.Json.JsonValueKind.Object, chunks[^1].GetProperty("usage").ValueKind);
        Assert.Empty(chunks[^1].GetProperty("choices").EnumerateArray());
        Assert.True(chunks.Count > 3);
        Assert.All(chunks[..^1], c => Assert.Equal(System.Text.Json.JsonValueKind.Null, c.GetProperty("usage").ValueKind));

        Assert.All(await ChunksAsync(""), c => Assert.False(c.TryGetProperty("usage", out _)));
    }

    [Fact]
    public async Task CompleteChatStreaming_SameTextAsNonStreaming_WithUsageAndFinishReason()
    {
        var messages = new ChatMessage[] { new SystemChatMessage("You tell stories."), new UserChatMessage("Once upon a time") };
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 20, Temperature = 0 };
        var whole = (await Chat().CompleteChatAsync(messages, options)).Value;

        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        var updates = 0;
        await foreach (var update in Chat().CompleteChatStreamingAsync(messages, options))
        {
            updates++;
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finish = update.FinishReason ?? finish;
            usage = update.Usage ?? usage;
        }

        Assert.Equal(whole.Content[0].Text, text.ToString());
        Assert.Equal(whole.FinishReason, finish);
        Assert.NotNull(usage);
        Assert.Equal(whole.Usage.InputTokenCount, usage.InputTokenCount);
        Assert.Equal(whole.Usage.OutputTokenCount, usage.OutputTokenCount);
        Assert.True(updates > 3, "the answer arrives in several chunks");
    }

    [Fact]
    public async Task CompleteChat_StopSequence_CutsBeforeItAndFinishesWithStop()
    {
        var messages = new ChatMessage[] { new UserChatMessage("Once upon a time") };
        var full = (await Chat().CompleteChatAsync(messages, new ChatCompletionOptions { MaxOutputTokenCount = 60, Temperature = 0 })).Value.Content[0].Text;
        var words = full.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(words.Length > 4, $"the model wrote enough to pick a stop word: '{full}'");

        // A stop string that spans the end of one word and the start of the next crosses token boundaries.
        var second = full.IndexOf(' ' + words[2], StringComparison.Ordinal);
        var stop = full.Substring(second - 2, 4);
        var expected = full[..full.IndexOf(stop, StringComparison.Ordinal)];

        var options = new ChatCompletionOptions { MaxOutputTokenCount = 60, Temperature = 0 };
        options.StopSequences.Add(stop);
        var stopped = (await Chat().CompleteChatAsync(messages, options)).Value;

        Assert.Equal(expected, stopped.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
    }

    [Fact]
    public async Task CompleteChat_SameSeed_SameTextAndOtherSeedsDiffer()
    {
        async Task<string> Sample(long seed) => (await Chat().CompleteChatAsync(
            [new UserChatMessage("Once upon a time")],
            new ChatCompletionOptions { MaxOutputTokenCount = 24, Temperature = 1.0f, Seed = seed })).Value.Content[0].Text;

        var first = await Sample(7);
        var again = await Sample(7);
        var others = await Task.WhenAll(Enumerable.Range(100, 5).Select(s => Sample(s)));

        Assert.Equal(first, again);
        Assert.Contains(others, o => o != first);
    }

    [Fact]
    public async Task CompleteChat_EightConcurrentGreedy_MatchRunningAlone()
    {
        string[] prompts = ["Once upon a time", "The little cat", "Tim and Sam went", "A girl named Lily", "The big tree", "One sunny day", "The red ball", "Mom and dad"];
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 32, Temperature = 0 };
        var alone = new List<string>();
        foreach (var prompt in prompts)
        {
            alone.Add((await Chat().CompleteChatAsync([new UserChatMessage(prompt)], options)).Value.Content[0].Text);
        }

        var together = await Task.WhenAll(prompts.Select(async p => (await Chat().CompleteChatAsync([new UserChatMessage(p)], options)).Value.Content[0].Text));

        // llama.cpp's CPU kernels are not batch-invariant: a batch of eight sums in another order than a batch of one,
        // so a near tie late in a 32-token answer may break the other way (seen on "Suddenly, John" / "Suddenly, Just").
        // What batching must never do is mix sequences up, which shows from the first tokens: each answer starts as it
        // does alone, and most answers are identical throughout.
        for (var i = 0; i < prompts.Length; i++)
        {
            var head = Math.Min(16, alone[i].Length);
            Assert.True(together[i].StartsWith(alone[i][..head], StringComparison.Ordinal), $"'{prompts[i]}': alone '{alone[i]}', batched '{together[i]}'");
        }

        Assert.True(alone.Zip(together).Count(pair => pair.First == pair.Second) >= prompts.Length - 2, $"alone: {string.Join(" | ", alone)}; batched: {string.Join(" | ", together)}");
    }

    [Fact]
    public async Task CompleteChat_LargeVocabularyModel_UsageMatchesItsTokenizer()
    {
        const string text = "Bonjour, สวัสดี, नमस्ते: hello in three scripts.";
        var completion = (await Chat(ServerFixture.TinyRandom).CompleteChatAsync(
            [new UserChatMessage(text)], new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 })).Value;

        Assert.Equal(PromptTokens(ServerFixture.TinyRandom, new ChatTurn("user", text)), completion.Usage.InputTokenCount);
        Assert.Equal(8, completion.Usage.OutputTokenCount);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
    }

    [Fact]
    public async Task CompleteChat_UnknownModel_Is404AndNotRetried()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Chat("no-such-model").CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(404, ex.Status);
        Assert.Contains("no-such-model", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A message's text parts are joined with a newline, as vLLM and llama-server join them for a text-only template:
    /// they ran together ("Translate into French:Good morning"), so a system prompt that frameworks send as several
    /// parts (instructions, then today's date, then context) read as one run-on sentence at every boundary.
    /// </summary>
    [Fact]
    public async Task CompleteChat_TextParts_AreJoinedWithANewline()
    {
        var completion = (await Chat().CompleteChatAsync(
            [new UserChatMessage(ChatMessageContentPart.CreateTextPart("Good"), ChatMessageContentPart.CreateTextPart("morning"))],
            new ChatCompletionOptions { MaxOutputTokenCount = 1 })).Value;

        Assert.NotEqual(PromptTokens(ServerFixture.Stories, new ChatTurn("user", "Goodmorning")), PromptTokens(ServerFixture.Stories, new ChatTurn("user", "Good\nmorning")));
        Assert.Equal(PromptTokens(ServerFixture.Stories, new ChatTurn("user", "Good\nmorning")), completion.Usage.InputTokenCount);
    }

    /// <summary>
    /// Applications ported from OpenAI tell a context overflow (to trim the history and retry) by OpenAI's words as
    /// well as its code: the Node SDK's <c>error.message</c> carries the message alone, and agent frameworks match
    /// "maximum context length" in it. The prompt's refusal said "The prompt has 300 tokens; this model accepts at most
    /// 255", which none of them recognised. 30 repeats are counted exactly; 80 are refused by their byte length.
    /// </summary>
    [Theory]
    [InlineData(30)]
    [InlineData(80)]
    public async Task CompleteChat_PromptLongerThanContext_Is400ContextLengthExceeded_InOpenAIsWords(int repeats)
    {
        var longText = string.Join(' ', Enumerable.Repeat("once upon a time there was a dog", repeats));
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Chat().CompleteChatAsync([new UserChatMessage(longText)]));
        Assert.Equal(400, ex.Status);
        var error = JsonDocument.Parse(ex.GetRawResponse()!.Content).RootElement.GetProperty("error");
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("messages", error.GetProperty("param").GetString());
        Assert.StartsWith("This model's maximum context length is 256 tokens. However, the prompt has ", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }
}
