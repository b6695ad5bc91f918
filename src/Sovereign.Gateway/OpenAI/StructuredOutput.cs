using System.Text.Json;
using System.Text.Json.Serialization;
using Sovereign.Inference.Grammar;
using Sovereign.Inference.Sampling;

namespace Sovereign.Gateway.OpenAI;

/// <summary><c>response_format</c>: <c>text</c>, <c>json_object</c> or <c>json_schema</c>.</summary>
internal sealed class ResponseFormat
{
    public string? Type { get; set; }

    public JsonSchemaFormat? JsonSchema { get; set; }
}

/// <summary><c>response_format.json_schema</c>.</summary>
internal sealed class JsonSchemaFormat
{
    public string? Name { get; set; }
    public string? Description { get; set; }
    public JsonElement? Schema { get; set; }
    public bool? Strict { get; set; }
}

/// <summary>Turns OpenAI's structured-output and logprobs request fields into engine settings, refusing what cannot be honoured.</summary>
internal static class StructuredOutput
{
    /// <summary>
    /// OpenAI's 400 for <c>json_object</c> when no message says "json" (any case): JSON mode is told what to write by
    /// the messages, and without being asked for JSON a model fills its output with whitespace until the limit. Chat
    /// counts every message (<paramref name="texts"/>); Responses its input, not its <c>instructions</c>. The message
    /// is OpenAI's, word for word.
    /// </summary>
    /// <param name="type">The format's type.</param>
    /// <param name="texts">The texts that count.</param>
    /// <param name="param">The field the refusal names: <c>messages</c> on chat, <c>text.format</c> on Responses.</param>
    public static void RequireJsonMention(string? type, IEnumerable<string?> texts, string param)
    {
        if (type != "json_object" || texts.Any(t => t?.Contains("json", StringComparison.OrdinalIgnoreCase) == true))
        {
            return;
        }

        throw param == "messages"
            ? OpenAIException.BadRequest("'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.", param, "invalid_value")
            : OpenAIException.BadRequest("Response input messages must contain the word 'json' in some form to use 'text.format' of type 'json_object'.", param, "invalid_value");
    }

    /// <summary>The grammar that <paramref name="format"/> asks for; null for free text.</summary>
    public static GbnfGrammar? GrammarFor(ResponseFormat? format, string param = "response_format") =>
        format is null ? null : GrammarOfType(format.Type, param, () =>
        {
            if (format.JsonSchema is null)
            {
                throw OpenAIException.BadRequest($"{param}.json_schema is required when type is 'json_schema'.", $"{param}.json_schema", "missing_required_parameter");
            }

            // Optional here (llama-server's clients may leave it out), but held to OpenAI's rule when given.
            if (format.JsonSchema.Name is { } name)
            {
                RequireSchemaName(name, $"{param}.json_schema.name");
            }

            RequireDescription(format.JsonSchema.Description, $"{param}.json_schema.description");
            return CompileSchema(format.JsonSchema.Schema, $"{param}.json_schema.schema");
        });

    /// <summary>
    /// The grammar a format of <paramref name="type"/> asks for, as chat's <c>response_format</c> and Responses'
    /// <c>text.format</c> both read it: <c>text</c> none, <c>json_object</c> any JSON object, <c>json_schema</c> what
    /// <paramref name="jsonSchema"/> compiles (each API checks its own fields there: Responses requires the name);
    /// a missing or unknown type is OpenAI's 400 naming <c>{param}.type</c>.
    /// </summary>
    public static GbnfGrammar? GrammarOfType(string? type, string param, Func<GbnfGrammar> jsonSchema)
    {
        ArgumentNullException.ThrowIfNull(jsonSchema);
        return type switch
        {
            // OpenAI's 400; a format sent without its type was served as plain text, its schema silently ignored.
            null => throw OpenAIException.BadRequest($"Missing required parameter: '{param}.type'.", $"{param}.type", "missing_required_parameter"),
            "text" => null,
            "json_object" => JsonSchemaGrammarCompiler.AnyJsonObject(),
            "json_schema" => jsonSchema(),
            _ => throw OpenAIException.BadRequest(
                $"{param}.type '{RequestReader.Shorten(type)}' is not supported; use 'text', 'json_object' or 'json_schema'.", $"{param}.type", "invalid_value"),
        };
    }

    /// <summary>
    /// Most characters of a structured-output format's <c>description</c>: the bound OpenAI puts on a function's
    /// description (it documents none for this one). Unlike a tool's description, which is rendered into the prompt and
    /// so bounded by the context, this one is not prompt text: Responses echo it in every response object and keep it
    /// with a stored one, and relays forward it.
    /// </summary>
    public const int MaxDescriptionLength = 1024;

    /// <summary>OpenAI's rule for a format's <c>name</c>: 1 to 64 of a-z, A-Z, 0-9, '_' and '-'.</summary>
    public static void RequireSchemaName(string name, string param)
    {
        if (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
        {
            throw OpenAIException.BadRequest(
                $"{param} must be 1 to 64 characters of a-z, A-Z, 0-9, '_' and '-'; got '{RequestReader.Shorten(name)}'.", param, "invalid_value");
        }
    }

    /// <summary>A format's <c>description</c>: at most <see cref="MaxDescriptionLength"/> characters, in OpenAI's words for a string too long.</summary>
    public static void RequireDescription(string? description, string param)
    {
        if (description is { Length: > MaxDescriptionLength })
        {
            throw OpenAIException.BadRequest(
                $"Invalid '{param}': string too long. Expected a string with maximum length {MaxDescriptionLength}, but got a string with length {description.Length} instead.",
                param, "string_above_max_length");
        }
    }

    /// <summary>Compiles a JSON Schema given in a request; an unsupported keyword is a 400 that names it.</summary>
    public static GbnfGrammar CompileSchema(JsonElement? schema, string param)
    {
        if (schema is not { ValueKind: JsonValueKind.Object or JsonValueKind.True } value)
        {
            throw OpenAIException.BadRequest($"{param} must be a JSON Schema object.", param, schema is null ? "missing_required_parameter" : "invalid_type");
        }

        try
        {
            return JsonSchemaGrammarCompiler.Compile(value);
        }
        catch (UnsupportedSchemaException ex)
        {
            throw OpenAIException.BadRequest(ex.Message, param, "unsupported_schema_keyword");
        }
    }

    /// <summary>Chat's <c>logprobs</c>/<c>top_logprobs</c> as the engine's setting: null for none, else alternatives per token.</summary>
    public static int? ChatTopLogprobs(bool? logprobs, int? topLogprobs)
    {
        if (topLogprobs is { } top)
        {
            if (top is < 0 or > Logprobs.MaxTop)
            {
                throw OpenAIException.BadRequest($"top_logprobs must be between 0 and {Logprobs.MaxTop}.", "top_logprobs", "invalid_value");
            }

            if (logprobs != true)
            {
                throw OpenAIException.BadRequest("logprobs must be set to true if top_logprobs is used.", "logprobs", "invalid_value");
            }
        }

        return logprobs == true ? topLogprobs ?? 0 : null;
    }

    /// <summary>Most alternatives per token completions' <c>logprobs</c> may ask for: OpenAI's limit for the legacy API.</summary>
    public const int MaxCompletionLogprobs = 5;

    /// <summary>Completions' integer <c>logprobs</c> as the engine's setting.</summary>
    public static int? CompletionTopLogprobs(int? logprobs) => logprobs switch
    {
        null => null,
        < 0 or > MaxCompletionLogprobs => throw OpenAIException.BadRequest(
            $"logprobs must be between 0 and {MaxCompletionLogprobs}; got {logprobs}.", "logprobs", "invalid_value"),
        _ => logprobs,
    };

    /// <summary>Chat's <c>logprobs</c> object for some generated tokens.</summary>
    public static ChatLogprobs? Chat(IReadOnlyList<TokenLogprob>? tokens) =>
        tokens is null ? null : new ChatLogprobs([.. tokens.Select(t => new ChatTokenLogprob(t.Token.Text, t.Token.Logprob, Bytes(t.Token.Bytes),
            [.. t.Top.Select(a => new ChatTopLogprob(a.Text, a.Logprob, Bytes(a.Bytes)))]))], null);

    /// <summary>Completions' <c>logprobs</c> object; <paramref name="textOffset"/> carries the offset across streamed chunks.</summary>
    public static CompletionLogprobs? Completion(IReadOnlyList<TokenLogprob>? tokens, ref int textOffset) =>
        tokens is null ? null : Completion(null, tokens, ref textOffset);

    /// <summary>
    /// Completions' <c>logprobs</c> object for echoed prompt tokens (<paramref name="prompt"/>, null when not echoed)
    /// followed by generated ones. A token without a log-probability (the prompt's first: nothing precedes it) has
    /// null for it and for its alternatives, as OpenAI and vLLM write it. Each position's alternatives include its own
    /// token, so there are up to <c>logprobs</c> + 1 (OpenAI: "the API will always return the logprob of the sampled
    /// token"); -infinity is written as -9999, vLLM's stand-in, since JSON has no infinity.
    /// </summary>
    public static CompletionLogprobs Completion(IReadOnlyList<TokenLogprob>? prompt, IReadOnlyList<TokenLogprob>? generated, ref int textOffset)
    {
        IReadOnlyList<TokenLogprob> tokens = prompt is null ? generated ?? [] : [.. prompt, .. generated ?? []];
        var offsets = new int[tokens.Count];
        var values = new float?[tokens.Count];
        var tops = new Dictionary<string, float>?[tokens.Count];
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            offsets[i] = textOffset;
            textOffset += token.Token.Text.Length;
            if (float.IsNaN(token.Token.Logprob))
            {
                continue;
            }

            values[i] = Finite(token.Token.Logprob);
            tops[i] = TopLogprobs(token, values[i]!.Value);
        }

        return new CompletionLogprobs([.. tokens.Select(t => CompletionToken(t.Token))], values, tops, offsets);
    }

    /// <summary>
    /// A position's <c>top_logprobs</c>, keyed so that no two tokens share a key and the sampled token is found under
    /// its entry in <c>tokens</c>: its key is taken first; an alternative whose key is taken (byte-fallback tokens
    /// of ASCII, control tokens that print nothing, tokens of the same bytes) is keyed <c>token_id:N</c>, vLLM's
    /// form. The dictionary used to keep the first of them and drop the others, the sampled token's value included.
    /// </summary>
    private static Dictionary<string, float> TopLogprobs(TokenLogprob token, float sampled)
    {
        var sampledKey = CompletionToken(token.Token);
        var top = new Dictionary<string, float>(token.Top.Count + 1, StringComparer.Ordinal);
        foreach (var alternative in token.Top)
        {
            if (alternative.TokenId == token.Token.TokenId)
            {
                top.TryAdd(sampledKey, sampled);
                continue;
            }

            var key = CompletionToken(alternative);
            if (key == sampledKey || top.ContainsKey(key))
            {
                key = "token_id:" + alternative.TokenId.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            top.TryAdd(key, Finite(alternative.Logprob));
        }

        top.TryAdd(sampledKey, sampled);
        return top;
    }

    /// <summary>
    /// A token as completions' <c>tokens</c> and <c>top_logprobs</c> keys state it: its text, or, where its bytes are
    /// part of a character, <c>bytes:\xe0\xb8</c> as OpenAI writes them (each such token decoded to the same U+FFFD).
    /// </summary>
    private static string CompletionToken(TokenAlternative token) =>
        System.Text.Unicode.Utf8.IsValid(token.Bytes)
            ? token.Text
            : "bytes:" + string.Concat(token.Bytes.Select(b => "\\x" + b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));

    private static float Finite(float logprob) => Math.Max(logprob, -9999f);

    private static int[] Bytes(byte[] bytes) => [.. bytes.Select(b => (int)b)];
}

internal sealed record ChatLogprobs(IReadOnlyList<ChatTokenLogprob> Content, object? Refusal);

internal sealed record ChatTokenLogprob(string Token, float Logprob, int[] Bytes,
    [property: JsonPropertyName("top_logprobs")] IReadOnlyList<ChatTopLogprob> TopLogprobs);

internal sealed record ChatTopLogprob(string Token, float Logprob, int[] Bytes);

internal sealed record CompletionLogprobs(
    IReadOnlyList<string> Tokens,
    [property: JsonPropertyName("token_logprobs")] IReadOnlyList<float?> TokenLogprobs,
    [property: JsonPropertyName("top_logprobs")] IReadOnlyList<Dictionary<string, float>?> TopLogprobs,
    [property: JsonPropertyName("text_offset")] IReadOnlyList<int> TextOffset);
