using System.Text.Json.Serialization;

namespace Sovereign.Gateway.OpenAI;

internal sealed record Usage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens,
    [property: JsonPropertyName("prompt_tokens_details")] PromptTokensDetails PromptTokensDetails,
    [property: JsonPropertyName("completion_tokens_details")] CompletionTokensDetails CompletionTokensDetails)
{
    /// <summary>Usage of a request whose prompt reused <paramref name="cachedTokens"/> tokens from the prefix cache.</summary>
    public static Usage Of(int promptTokens, int completionTokens, int cachedTokens) =>
        new(promptTokens, completionTokens, promptTokens + completionTokens, new PromptTokensDetails(cachedTokens), CompletionTokensDetails.None);
}

/// <summary>OpenAI's breakdown of prompt tokens: those served from the prompt (prefix) cache, and audio (none: text only).</summary>
internal sealed record PromptTokensDetails([property: JsonPropertyName("cached_tokens")] int CachedTokens)
{
    [JsonPropertyName("audio_tokens")]
    public int AudioTokens => 0;
}

/// <summary>
/// OpenAI's breakdown of completion tokens, stated as typed clients expect it. Always zeros here, and true: the
/// engine has no reasoning apart from the answer, no audio, and a <c>prediction</c> is not used (see its field).
/// </summary>
internal sealed record CompletionTokensDetails(
    [property: JsonPropertyName("reasoning_tokens")] int ReasoningTokens,
    [property: JsonPropertyName("audio_tokens")] int AudioTokens,
    [property: JsonPropertyName("accepted_prediction_tokens")] int AcceptedPredictionTokens,
    [property: JsonPropertyName("rejected_prediction_tokens")] int RejectedPredictionTokens)
{
    public static readonly CompletionTokensDetails None = new(0, 0, 0, 0);
}

internal sealed record ChatCompletion(
    string Id, string Object, long Created, string Model, IReadOnlyList<ChatChoice> Choices, Usage Usage,
    [property: JsonPropertyName("system_fingerprint")] string? SystemFingerprint)
{
    /// <summary>The tier that served the request, as OpenAI states it: this server has one, <c>default</c>, whatever <c>service_tier</c> asked.</summary>
    [JsonPropertyName("service_tier")]
    public string ServiceTier => ChatCompletionChunk.DefaultTier;
}

internal sealed record ChatChoice(int Index, AssistantMessage Message, object? Logprobs, [property: JsonPropertyName("finish_reason")] string? FinishReason);

internal sealed record AssistantMessage(string Role, string? Content,
    [property: JsonPropertyName("tool_calls"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<ToolCallOut>? ToolCalls = null)
{
    /// <summary>Stated on every message, as OpenAI does (typed clients read it): a refusal here is an error, never a message.</summary>
    public string? Refusal => null;

    /// <summary>Stated on every message, as OpenAI does: this server cites nothing (no web search).</summary>
    public IReadOnlyList<object> Annotations => [];
}

/// <param name="Usage">
/// The usage chunk's <see cref="OpenAI.Usage"/>; <see cref="ChatCompletionChunk.NoUsageYet"/> on the other chunks
/// when the client asked for usage (OpenAI states <c>"usage": null</c> there); null leaves the field out.
/// </param>
internal sealed record ChatCompletionChunk(
    string Id, string Object, long Created, string Model, IReadOnlyList<ChatChunkChoice> Choices,
    [property: JsonPropertyName("system_fingerprint")] string? SystemFingerprint,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] object? Usage)
{
    /// <summary>This server's one tier, as OpenAI names the standard one.</summary>
    public const string DefaultTier = "default";

    /// <summary>The tier that served the request, on every chunk as OpenAI states it.</summary>
    [JsonPropertyName("service_tier")]
    public string ServiceTier => DefaultTier;

    /// <summary>Written as JSON null: a JSON null value, where a C# null omits the field.</summary>
    public static readonly object NoUsageYet = System.Text.Json.JsonDocument.Parse("null").RootElement.Clone();
}

internal sealed record ChatChunkChoice(int Index, ChunkDelta Delta, object? Logprobs, [property: JsonPropertyName("finish_reason")] string? FinishReason);

/// <param name="Content">A string; <see cref="NullContent"/> to state <c>"content": null</c>; null leaves the field out.</param>
internal sealed record ChunkDelta(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] object? Content,
    [property: JsonPropertyName("tool_calls"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<ToolCallDelta>? ToolCalls = null)
{
    /// <summary>Written as JSON null, as <see cref="ChatCompletionChunk.NoUsageYet"/>.</summary>
    public static readonly object NullContent = ChatCompletionChunk.NoUsageYet;

    /// <summary>
    /// The role chunk of an answer that is a forced call (no text at all): <c>{"role":"assistant","content":null}</c>,
    /// as OpenAI's first chunk of a tool call states it; a text answer's first chunk has <c>"content": ""</c>.
    /// </summary>
    public static readonly ChunkDelta RoleOfACall = new("assistant", NullContent);
}

/// <param name="Usage">As <see cref="ChatCompletionChunk"/>'s: a <see cref="OpenAI.Usage"/>, <see cref="ChatCompletionChunk.NoUsageYet"/> or null.</param>
internal sealed record TextCompletion(string Id, string Object, long Created, string Model, IReadOnlyList<TextChoice> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] object? Usage,
    [property: JsonPropertyName("system_fingerprint")] string? SystemFingerprint);

internal sealed record TextChoice(string Text, int Index, object? Logprobs, [property: JsonPropertyName("finish_reason")] string? FinishReason);

internal sealed record EmbeddingList(string Object, IReadOnlyList<EmbeddingItem> Data, string Model, EmbeddingUsage Usage);

internal sealed record EmbeddingItem(string Object, int Index, object Embedding);

internal sealed record EmbeddingUsage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens);

internal sealed record ModelList(string Object, IReadOnlyList<ModelCard> Data);

internal sealed record ModelCard(string Id, string Object, long Created, [property: JsonPropertyName("owned_by")] string OwnedBy);
