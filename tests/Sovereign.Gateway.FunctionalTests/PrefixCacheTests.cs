using System.Text;
using OpenAI.Chat;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// The prefix cache as clients see it: <c>usage.prompt_tokens_details.cached_tokens</c> on chat and completions,
/// streamed and not, through the official SDK and raw HTTP, with the same greedy text as the uncached request.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class PrefixCacheTests(ServerFixture server)
{
    /// <summary>
    /// A system prompt no other test sends, so the first request finds no more than the template's opening cached.
    /// Each test's tag is fixed, not random: llama.cpp's CPU kernels round a prefill of the whole prompt and one that
    /// continues a cached prefix slightly differently, and a random prompt now and then meets a near tie that flips.
    /// </summary>
    private static string SystemPrompt(string tag) =>
        $"You are the storyteller {tag}. You tell short, happy stories about animals, children and their friends in the park.";

    [Fact]
    public async Task SharedSystemPrompt_SecondRequestReportsCachedTokens_AndTheSameGreedyText()
    {
        var chat = server.OpenAI.GetChatClient(ServerFixture.Stories);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 16, Temperature = 0 };
        ChatMessage[] messages = [new SystemChatMessage(SystemPrompt("3b9f5e1c7a2d4e6f8091a2b3c4d5e6f7")), new UserChatMessage("Once upon a time")];

        var cold = (await chat.CompleteChatAsync(messages, options)).Value;
        var warm = (await chat.CompleteChatAsync(messages, options)).Value;

        Assert.Equal(cold.Content[0].Text, warm.Content[0].Text);
        Assert.Equal(cold.Usage.InputTokenCount, warm.Usage.InputTokenCount);
        Assert.Equal(warm.Usage.InputTokenCount - 1, warm.Usage.InputTokenDetails.CachedTokenCount);
        Assert.True(cold.Usage.InputTokenDetails.CachedTokenCount < warm.Usage.InputTokenDetails.CachedTokenCount);
    }

    [Fact]
    public async Task Streaming_UsageChunkCarriesCachedTokens()
    {
        var chat = server.OpenAI.GetChatClient(ServerFixture.Stories);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0 };
        var system = SystemPrompt("8c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f");
        var cold = (await chat.CompleteChatAsync([new SystemChatMessage(system), new UserChatMessage("The dog")], options)).Value;

        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new SystemChatMessage(system), new UserChatMessage("The dog")], options))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            usage = update.Usage ?? usage;
        }

        Assert.NotNull(usage);
        Assert.Equal(cold.Content[0].Text, text.ToString());
        Assert.Equal(usage.InputTokenCount - 1, usage.InputTokenDetails.CachedTokenCount);
    }

    [Fact]
    public async Task NextTurn_ReusesTheEarlierTurn()
    {
        var chat = server.OpenAI.GetChatClient(ServerFixture.Stories);
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 12, Temperature = 0 };
        var system = new SystemChatMessage(SystemPrompt("e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9"));
        var first = (await chat.CompleteChatAsync([system, new UserChatMessage("Tell me about a cat.")], options)).Value;

        var second = (await chat.CompleteChatAsync(
            [system, new UserChatMessage("Tell me about a cat."), new AssistantChatMessage(first.Content[0].Text), new UserChatMessage("And a dog?")], options)).Value;

        // Everything up to the end of the first request's prompt is shared, at least.
        Assert.True(second.Usage.InputTokenDetails.CachedTokenCount >= first.Usage.InputTokenCount - 1,
            $"cached {second.Usage.InputTokenDetails.CachedTokenCount} of {second.Usage.InputTokenCount}; the first prompt had {first.Usage.InputTokenCount}");
    }

    [Fact]
    public async Task Completions_RawHttp_ReportsPromptTokensDetails_StreamedAndNot()
    {
        var prompt = "0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d" + ": once upon a time, the little bird sang";
        var body = new { model = ServerFixture.Stories, prompt, max_tokens = 8, temperature = 0 };
        var (status, cold, _) = await server.PostJsonAsync("/v1/completions", System.Text.Json.JsonSerializer.Serialize(body));
        Assert.Equal(200, status);
        var (_, warm, _) = await server.PostJsonAsync("/v1/completions", System.Text.Json.JsonSerializer.Serialize(body));

        var promptTokens = warm.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
        Assert.True(cold.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32() < promptTokens / 2);
        Assert.Equal(promptTokens - 1, warm.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(cold.GetProperty("choices")[0].GetProperty("text").GetString(), warm.GetProperty("choices")[0].GetProperty("text").GetString());

        var streamed = await server.PostAsync("/v1/completions", new { model = ServerFixture.Stories, prompt, max_tokens = 8, temperature = 0, stream = true, stream_options = new { include_usage = true } });
        var events = (await streamed.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        var usageEvent = events.Select(e => e["data: ".Length..]).Where(d => d != "[DONE]")
            .Select(d => System.Text.Json.JsonDocument.Parse(d).RootElement)
            .Single(e => e.TryGetProperty("usage", out var u) && u.ValueKind == System.Text.Json.JsonValueKind.Object);
        Assert.Equal(promptTokens - 1, usageEvent.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
    }
}
