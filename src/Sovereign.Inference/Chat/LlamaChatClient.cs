using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Sovereign.Inference.Engine;

namespace Sovereign.Inference.Chat;

/// <summary>
/// The engine as a Microsoft.Extensions.AI <see cref="IChatClient"/>: the model's chat template, continuous batching
/// shared with every other caller of the same <see cref="ContinuousBatcher"/>, and exact usage and finish reasons
/// (which LLamaSharp's own adapter does not report).
/// </summary>
public sealed class LlamaChatClient(ContinuousBatcher batcher) : IChatClient
{
    private readonly ChatClientMetadata _metadata = new("sovereign", null, batcher.ModelId);

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<Microsoft.Extensions.AI.ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var stream = batcher.Submit(ToRequest(messages, options), cancellationToken);
        var (text, result) = await stream.CollectAsync(cancellationToken);
        return new ChatResponse(new Microsoft.Extensions.AI.ChatMessage(ChatRole.Assistant, text))
        {
            ModelId = batcher.ModelId,
            FinishReason = ToFinishReason(result.FinishReason),
            Usage = ToUsage(result),
            CreatedAt = DateTimeOffset.UtcNow,
        };
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(
        IEnumerable<Microsoft.Extensions.AI.ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var responseId = Guid.NewGuid().ToString("N");
        var stream = batcher.Submit(ToRequest(messages, options), cancellationToken);
        await foreach (var update in stream.WithCancellation(cancellationToken))
        {
            if (update.Text.Length > 0)
            {
                yield return new ChatResponseUpdate(ChatRole.Assistant, update.Text) { ModelId = batcher.ModelId, ResponseId = responseId };
            }

            if (update.Result is { } result)
            {
                yield return new ChatResponseUpdate
                {
                    Role = ChatRole.Assistant,
                    ModelId = batcher.ModelId,
                    ResponseId = responseId,
                    FinishReason = ToFinishReason(result.FinishReason),
                    Contents = [new UsageContent(ToUsage(result))],
                };
            }
        }
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(ChatClientMetadata) ? _metadata
        : serviceType.IsInstanceOfType(this) ? this
        : serviceType.IsInstanceOfType(batcher) ? batcher
        : null;

    /// <inheritdoc />
    public void Dispose()
    {
        // The batcher is shared and owned by whoever created it.
    }

    private GenerationRequest ToRequest(IEnumerable<Microsoft.Extensions.AI.ChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var turns = messages.Select(m => new ChatTurn(m.Role.Value, m.Text)).ToList();
        return new GenerationRequest
        {
            PromptTokens = batcher.Model.TokenizeChat(turns),
            MaxTokens = options?.MaxOutputTokens,
            Stop = options?.StopSequences?.ToArray() ?? [],
            Sampling = new SamplingOptions
            {
                Temperature = options?.Temperature ?? SamplingOptions.Default.Temperature,
                TopP = options?.TopP ?? SamplingOptions.Default.TopP,
                TopK = options?.TopK ?? 0,
                PresencePenalty = options?.PresencePenalty ?? 0f,
                FrequencyPenalty = options?.FrequencyPenalty ?? 0f,
                Seed = options?.Seed,
            },
        };
    }

    private static ChatFinishReason? ToFinishReason(FinishReason reason) => reason switch
    {
        FinishReason.Stop => ChatFinishReason.Stop,
        FinishReason.Length => ChatFinishReason.Length,
        _ => null,
    };

    private static UsageDetails ToUsage(GenerationResult result) => new()
    {
        InputTokenCount = result.PromptTokens,
        OutputTokenCount = result.CompletionTokens,
        TotalTokenCount = result.PromptTokens + result.CompletionTokens,
    };
}
