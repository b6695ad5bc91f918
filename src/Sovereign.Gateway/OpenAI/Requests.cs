using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sovereign.Gateway.OpenAI;

/// <summary>Sampling fields shared by chat and legacy completions.</summary>
internal abstract class SamplingRequest
{
    public string? Model { get; set; }
    public float? Temperature { get; set; }
    public float? TopP { get; set; }

    /// <summary>Extension also accepted by vLLM and llama-server.</summary>
    public int? TopK { get; set; }

    /// <summary>Extension also accepted by vLLM and llama-server.</summary>
    public float? MinP { get; set; }

    public float? PresencePenalty { get; set; }
    public float? FrequencyPenalty { get; set; }
    public long? Seed { get; set; }
    public int? MaxTokens { get; set; }
    public int? N { get; set; }
    public bool? Stream { get; set; }
    public StreamOptions? StreamOptions { get; set; }

    [JsonConverter(typeof(StringOrStringArrayConverter))]
    public List<string>? Stop { get; set; }

    public string? User { get; set; }

    /// <summary>Token id (a decimal string) → bias from -100 to 100; read field by field for precise errors.</summary>
    public JsonElement? LogitBias { get; set; }

    /// <summary>Structured output; also accepted on legacy completions, as vLLM and llama-server do.</summary>
    public ResponseFormat? ResponseFormat { get; set; }

    /// <summary>
    /// vLLM's <c>cache_salt</c>: cached prompts are reused only between requests with the same salt (within the
    /// tenant, whose cache is its own anyway), so a tenant can keep its own users' caches apart.
    /// </summary>
    public string? CacheSalt { get; set; }

    /// <summary>
    /// llama-server's <c>cache_prompt</c>: whether the engine may reuse a cached prefix. Accepted and ignored here (a
    /// reused prefix gives the same logits as a recomputed one); the relay sends it to engines told to keep no cache.
    /// </summary>
    public bool? CachePrompt { get; set; }
}

internal sealed class StreamOptions
{
    public bool? IncludeUsage { get; set; }
}

/// <summary><c>POST /v1/chat/completions</c>.</summary>
internal sealed class ChatCompletionRequest : SamplingRequest
{
    public List<ChatMessage?>? Messages { get; set; }
    public int? MaxCompletionTokens { get; set; }
    public bool? Logprobs { get; set; }
    public int? TopLogprobs { get; set; }
    public JsonElement? Tools { get; set; }
    public JsonElement? ToolChoice { get; set; }
    public bool? ParallelToolCalls { get; set; }

    /// <summary>Deprecated function calling; refused with a pointer to <c>tools</c>, never silently dropped.</summary>
    public JsonElement? Functions { get; set; }

    /// <summary>Deprecated with <see cref="Functions"/>.</summary>
    public JsonElement? FunctionCall { get; set; }

    /// <summary>Output modalities; this server writes text only.</summary>
    public JsonElement? Modalities { get; set; }

    /// <summary>Audio output settings; refused (text only).</summary>
    public JsonElement? Audio { get; set; }

    /// <summary>A reasoning model's effort: forwarded by relays, refused by this process's engine.</summary>
    public string? ReasoningEffort { get; set; }

    /// <summary>How long the answer should be; only OpenAI's default, medium, is what this server gives.</summary>
    public string? Verbosity { get; set; }

    /// <summary>OpenAI's web search before answering; refused (this server searches nothing).</summary>
    public JsonElement? WebSearchOptions { get; set; }

    /// <summary>
    /// OpenAI keeps a chat completion sent with <c>store: true</c> for later retrieval; this server keeps no chat
    /// completions, so true is refused (stored responses are /v1/responses' <c>store</c>), false or absent is the same.
    /// </summary>
    public bool? Store { get; set; }

    /// <summary>Up to 16 pairs OpenAI keeps with a stored completion; bounded as there, then ignored (nothing is stored).</summary>
    public Dictionary<string, string>? Metadata { get; set; }

    /// <summary>OpenAI's processing tier (<c>auto</c>, <c>default</c>, <c>flex</c>, <c>scale</c>, <c>priority</c>); one tier here: the answer states <c>default</c>, the tier used.</summary>
    public string? ServiceTier { get; set; }

    /// <summary>OpenAI's cache-bucketing hint; ignored (this server's prefix cache is kept per tenant by itself).</summary>
    public string? PromptCacheKey { get; set; }

    /// <summary>How long OpenAI keeps a cached prefix (<c>in-memory</c>, <c>24h</c>); ignored, as above.</summary>
    public string? PromptCacheRetention { get; set; }

    /// <summary>OpenAI's end-user id for abuse detection (it replaces <c>user</c>); ignored.</summary>
    public string? SafetyIdentifier { get; set; }

    /// <summary>Predicted output, which only speeds OpenAI's answer up; the answer is the same without it, so ignored.</summary>
    public JsonElement? Prediction { get; set; }
}

internal sealed class ChatMessage
{
    public string? Role { get; set; }

    [JsonConverter(typeof(MessageContentConverter))]
    public MessageContent? Content { get; set; }

    public string? Name { get; set; }

    /// <summary>An assistant's earlier calls; read field by field for precise errors.</summary>
    public JsonElement? ToolCalls { get; set; }

    /// <summary>The call a tool message answers.</summary>
    public string? ToolCallId { get; set; }
}

/// <summary>
/// Message content: a string, or an array of parts of which only text is supported, and refusal parts (OpenAI's
/// assistant content takes them; <see cref="HasRefusal"/> lets the endpoint refuse them on other roles).
/// </summary>
/// <param name="Text">The text parts' text, joined.</param>
/// <param name="UnsupportedPartType">The type of the first part that is not text, if any.</param>
/// <param name="EmptyArray">Whether the content was an empty array.</param>
/// <param name="UnsupportedPart">The index of that part (errors name <c>content[i].type</c>, as OpenAI and Responses do).</param>
/// <param name="RefusalPart">The index of the first refusal part, -1 when there is none.</param>
internal sealed record MessageContent(string Text, string? UnsupportedPartType, bool EmptyArray = false, int UnsupportedPart = -1, int RefusalPart = -1)
{
    /// <summary>Whether a part is a refusal.</summary>
    public bool HasRefusal => RefusalPart >= 0;
}

/// <summary><c>POST /v1/completions</c>.</summary>
internal sealed class CompletionRequest : SamplingRequest
{
    /// <summary>A string, an array of strings, an array of token ids, or an array of token-id arrays.</summary>
    public JsonElement? Prompt { get; set; }

    public bool? Echo { get; set; }
    public int? Logprobs { get; set; }
    public string? Suffix { get; set; }
    public int? BestOf { get; set; }
}

/// <summary><c>POST /v1/embeddings</c>.</summary>
internal sealed class EmbeddingRequest
{
    public string? Model { get; set; }

    /// <summary>A string or an array of strings.</summary>
    public JsonElement? Input { get; set; }

    public string? EncodingFormat { get; set; }
    public int? Dimensions { get; set; }
    public string? User { get; set; }
}

internal sealed class StringOrStringArrayConverter : JsonConverter<List<string>>
{
    public override List<string>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.String:
                return [reader.GetString()!];
            case JsonTokenType.StartArray:
                var list = new List<string>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.String)
                    {
                        throw new JsonException("Expected a string or an array of strings.");
                    }

                    list.Add(reader.GetString()!);
                }

                return list;
            default:
                throw new JsonException("Expected a string or an array of strings.");
        }
    }

    public override void Write(Utf8JsonWriter writer, List<string> value, JsonSerializerOptions options) =>
        JsonSerializer.Serialize(writer, value, options);
}

internal sealed class MessageContentConverter : JsonConverter<MessageContent>
{
    public override MessageContent? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.String:
                return new MessageContent(reader.GetString()!, null);
            case JsonTokenType.StartArray:
                var text = new System.Text.StringBuilder();
                string? unsupported = null;
                var unsupportedAt = -1;
                var refusalAt = -1;
                var index = -1;
                bool empty;
                using (var parts = JsonDocument.ParseValue(ref reader))
                {
                    empty = parts.RootElement.GetArrayLength() == 0;
                    foreach (var part in parts.RootElement.EnumerateArray())
                    {
                        index++;
                        if (part.ValueKind != JsonValueKind.Object)
                        {
                            throw new ContentPartException($"[{index}]", "must be a content part: an object with a string 'type'.", "invalid_type");
                        }

                        if (!part.TryGetProperty("type", out var type) || type.ValueKind == JsonValueKind.Null)
                        {
                            throw new ContentPartException($"[{index}].type", "is required: each content part names its type ('text').", "missing_required_parameter");
                        }

                        if (type.ValueKind != JsonValueKind.String)
                        {
                            throw new ContentPartException($"[{index}].type", "must be a string.", "invalid_type");
                        }

                        if (type.GetString() == "text")
                        {
                            if (!part.TryGetProperty("text", out var value) || value.ValueKind == JsonValueKind.Null)
                            {
                                throw new ContentPartException($"[{index}].text", "is required: a text part carries its text.", "missing_required_parameter");
                            }

                            if (value.ValueKind != JsonValueKind.String)
                            {
                                throw new ContentPartException($"[{index}].text", "must be a string.", "invalid_type");
                            }

                            AppendPart(text, value.GetString()!);
                        }
                        else if (type.GetString() == "refusal")
                        {
                            // What the assistant said when it refused: read as its text, as vLLM reads it.
                            if (!part.TryGetProperty("refusal", out var value) || value.ValueKind != JsonValueKind.String)
                            {
                                throw new ContentPartException($"[{index}].refusal", "must be a string: a refusal part carries the refusal's text.", "invalid_type");
                            }

                            AppendPart(text, value.GetString()!);
                            refusalAt = refusalAt < 0 ? index : refusalAt;
                        }
                        else if (unsupported is null)
                        {
                            unsupported = type.GetString();
                            unsupportedAt = index;
                        }
                    }
                }

                return new MessageContent(text.ToString(), unsupported, empty, unsupportedAt, refusalAt);
            default:
                throw new ContentPartException("", "must be a string or an array of content parts.", "invalid_type");
        }
    }

    public override void Write(Utf8JsonWriter writer, MessageContent value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Text);

    /// <summary>
    /// Adds a part's text to the message's, after a newline when text precedes it: vLLM and llama-server join a
    /// message's text parts so for a text-only template. They ran together ("Good" and "morning" read "Goodmorning").
    /// </summary>
    internal static void AppendPart(System.Text.StringBuilder text, string part)
    {
        if (text.Length > 0)
        {
            text.Append('\n');
        }

        text.Append(part);
    }
}

/// <summary>
/// Message content that is not text nor an array of parts, or a part that is not one: the error names the part and its
/// field (<c>messages[0].content[1].text</c>), as Responses names its parts; it named the whole content, "Invalid type
/// or value for 'messages[0].content'", whatever the part or the field.
/// </summary>
/// <param name="pathWithinContent">The part and field after the content's path (<c>[1].text</c>); empty for the content itself.</param>
/// <param name="problem">What is wrong, a sentence that follows the path.</param>
/// <param name="code">OpenAI's error code.</param>
internal sealed class ContentPartException(string pathWithinContent, string problem, string code) : JsonException(problem)
{
    /// <summary>The part and field after the content's path.</summary>
    public string PathWithinContent { get; } = pathWithinContent;

    /// <summary>What is wrong.</summary>
    public string Problem { get; } = problem;

    /// <summary>OpenAI's error code.</summary>
    public string Code { get; } = code;
}
