using Microsoft.Extensions.AI;
using Sovereign.Inference.Chat;
using Sovereign.Inference.Engine;

namespace Sovereign.Inference.Tests.Chat;

public sealed class LlamaChatClientTests : IAsyncLifetime
{
    private TestEngine _engine = null!;

    public Task InitializeAsync()
    {
        _engine = new TestEngine(new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Parallel = 4, ContextLength = 512, Threads = 1 });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _engine.DisposeAsync();

    [Fact]
    public async Task GetResponseAsync_ReportsExactUsageAndLengthFinish()
    {
        using IChatClient client = new LlamaChatClient(_engine.Batcher);
        var messages = new[] { new ChatMessage(ChatRole.User, "Tell me a story.") };

        var response = await client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 12, Temperature = 0 });

        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(12, response.Usage!.OutputTokenCount);
        Assert.Equal(_engine.Model.TokenizeChat([new ChatTurn("user", "Tell me a story.")]).Length, response.Usage.InputTokenCount);
        Assert.Equal(response.Usage.InputTokenCount + 12, response.Usage.TotalTokenCount);
        Assert.False(string.IsNullOrEmpty(response.Text));
    }

    [Fact]
    public async Task GetStreamingResponseAsync_MatchesNonStreamingAndEndsWithUsage()
    {
        using IChatClient client = new LlamaChatClient(_engine.Batcher);
        var messages = new[] { new ChatMessage(ChatRole.User, "Once upon a time") };
        var options = new ChatOptions { MaxOutputTokens = 16, Temperature = 0 };

        var whole = await client.GetResponseAsync(messages, options);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(messages, options))
        {
            updates.Add(update);
        }

        var streamed = updates.ToChatResponse();
        Assert.Equal(whole.Text, streamed.Text);
        Assert.Equal(whole.FinishReason, streamed.FinishReason);
        Assert.Equal(whole.Usage!.OutputTokenCount, streamed.Usage!.OutputTokenCount);
        Assert.Equal(whole.Usage.InputTokenCount, streamed.Usage.InputTokenCount);
    }

    [Fact]
    public void GetService_ReturnsMetadataWithModelId()
    {
        using IChatClient client = new LlamaChatClient(_engine.Batcher);
        Assert.Equal("stories", client.GetService<ChatClientMetadata>()!.DefaultModelId);
    }
}
