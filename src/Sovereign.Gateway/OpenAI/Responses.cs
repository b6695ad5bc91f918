using System.Text.Json.Serialization;

namespace Sovereign.Gateway.OpenAI;

internal sealed record Usage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens,
    [property: JsonPropertyName("prompt_tokens_details")] PromptTokensDetails PromptTokensDetails)
{
    /// <summary>Usage of a request whose prompt reused <paramref name="cachedTokens"/> tokens from the prefix cache.</summary>
    public static Usage Of(int promptTokens, int completionTokens, int cachedTokens) =>
        new(promptTokens, completionTokens, promptTokens + completionTokens, new PromptTokensDetails(cachedTokens));
}

/// <summary>OpenAI's breakdown of prompt tokens: those served from the prompt (prefix) cache.</summary>
internal sealed record PromptTokensDetails([property: JsonPropertyName("cached_tokens")] int CachedTokens);

internal sealed record ChatCompletion(
    string Id, string Object, long Created, string Model, IReadOnlyList<ChatChoice> Choices, Usage Usage,
    [property: JsonPropertyName("system_fingerprint")] string? SystemFingerprint);

internal sealed record ChatChoice(int Index, AssistantMessage Message, object? Logprobs, [property: JsonPropertyName("finish_reason")] string? FinishReason);

internal sealed record AssistantMessage(string Role, string? Content,
    [property: JsonPropertyName("tool_calls"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<ToolCallOut>? ToolCalls = null)
{
    /// <summary>Stated on every message, as OpenAI does (typed clients read it): a refusal here is an error, never a message.</summary>
    public string? Refusal => null;

    /// <summary>Stated on every message, as OpenAI does: this server cites nothing (no web search).</summary>
    public IReadOnlyList<object> Annotations => [];
}

internal sealed record ChatCompletionChunk(
    string Id, string Object, long Created, string Model, IReadOnlyList<ChatChunkChoice> Choices,
    [property: JsonPropertyName("system_fingerprint")] string? SystemFingerprint,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Usage? Usage);

internal sealed record ChatChunkChoice(int Index, ChunkDelta Delta, object? Logprobs, [property: JsonPropertyName("finish_reason")] string? FinishReason);

internal sealed record ChunkDelta(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Content,
    [property: JsonPropertyName("tool_calls"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<ToolCallDelta>? ToolCalls = null);

internal sealed record TextCompletion(string Id, string Object, long Created, string Model, IReadOnlyList<TextChoice> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Usage? Usage,
    [property: JsonPropertyName("system_fingerprint")] string? SystemFingerprint);

internal sealed record TextChoice(string Text, int Index, object? Logprobs, [property: JsonPropertyName("finish_reason")] string? FinishReason);

internal sealed record EmbeddingList(string Object, IReadOnlyList<EmbeddingItem> Data, string Model, EmbeddingUsage Usage);

internal sealed record EmbeddingItem(string Object, int Index, object Embedding);

internal sealed record EmbeddingUsage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens);

internal sealed record ModelList(string Object, IReadOnlyList<ModelCard> Data);

internal sealed record ModelCard(string Id, string Object, long Created, [property: JsonPropertyName("owned_by")] string OwnedBy);
