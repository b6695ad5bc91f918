using System.Text;
using System.Text.Json;
using Sovereign.Inference.Grammar;

namespace Sovereign.Inference.Tools;

/// <summary>How a model writes a tool call; chosen from its chat template.</summary>
public enum ToolCallFormat
{
    /// <summary>Hermes / Qwen: <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c>, one block per call.</summary>
    Hermes,

    /// <summary>Llama 3.x: a bare JSON object <c>{"name": ..., "parameters": {...}}</c> (after <c>&lt;|python_tag|&gt;</c>, which prints nothing).</summary>
    Llama3Json,

    /// <summary>Mistral: <c>[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]</c> (the marker is a control token and may print nothing).</summary>
    Mistral,
}

/// <summary>A function the client offered: its name and the JSON Schema of its arguments (null: none given).</summary>
public sealed record ToolFunction(string Name, JsonElement? Parameters)
{
    /// <summary>
    /// Whether the arguments of a call the model makes by itself must follow <see cref="Parameters"/> (OpenAI's
    /// <c>strict</c>); otherwise any JSON object. A forced call follows the schema either way.
    /// </summary>
    public bool Strict { get; init; }
}

/// <summary>A tool call read from generated text: the function's name and its arguments as compact JSON text.</summary>
public sealed record ParsedToolCall(string Name, string Arguments);

/// <summary>
/// Text that ends inside a tool call (generation cut by the token limit): the content before it, the complete calls
/// before it, and the unfinished call as far as it was written: its name once the name was complete (else null), its
/// arguments' prefix without insignificant whitespace (not valid JSON; empty before the arguments began).
/// </summary>
public sealed record TruncatedToolCalls(string Content, IReadOnlyList<ParsedToolCall> Calls, string? CutName, string CutArguments);

/// <summary>Writes grammars for, and reads, the tool-call syntax of each <see cref="ToolCallFormat"/>.</summary>
public static partial class ToolCallSyntax
{
    internal const string HermesOpen = "<tool_call>";
    internal const string HermesClose = "</tool_call>";
    internal const string MistralMarker = "[TOOL_CALLS]";
    internal const string PythonTag = "<|python_tag|>";

    /// <summary>
    /// How a call in <paramref name="format"/> opens, as text: Hermes' <c>&lt;tool_call&gt;</c>; a JSON call's marker
    /// (where it prints) or its first characters (<c>{"name"</c>, Mistral's <c>[{"name"</c>). From there on the text
    /// is a call, which stop strings must not cut (<see cref="Engine.GenerationRequest.StopExemptFrom"/>).
    /// </summary>
    public static IReadOnlyList<string> OpeningMarkers(ToolCallFormat format) => format switch
    {
        ToolCallFormat.Llama3Json => [PythonTag, "{\"name\""],
        ToolCallFormat.Mistral => [MistralMarker, "[{\"name\""],
        _ => [HermesOpen],
    };

    /// <summary>The format a chat template teaches its model (Hermes when the template says nothing recognisable).</summary>
    public static ToolCallFormat Detect(string? templateSource)
    {
        if (templateSource is null)
        {
            return ToolCallFormat.Hermes;
        }

        if (templateSource.Contains(HermesOpen, StringComparison.Ordinal))
        {
            return ToolCallFormat.Hermes;
        }

        if (templateSource.Contains(MistralMarker, StringComparison.Ordinal))
        {
            return ToolCallFormat.Mistral;
        }

        return templateSource.Contains(PythonTag, StringComparison.Ordinal)
            || (templateSource.Contains("<|start_header_id|>", StringComparison.Ordinal) && templateSource.Contains("\"parameters\"", StringComparison.Ordinal))
            ? ToolCallFormat.Llama3Json
            : ToolCallFormat.Hermes;
    }

    /// <summary>
    /// A grammar whose every sentence is exactly one call, in <paramref name="format"/>, of one of
    /// <paramref name="functions"/>, with arguments valid against that function's schema. Throws
    /// <see cref="UnsupportedSchemaException"/> for a schema the compiler cannot honour.
    /// </summary>
    public static GbnfGrammar Grammar(ToolCallFormat format, IReadOnlyList<ToolFunction> functions, JsonGrammarLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(functions);
        var frames = functions.Select(f =>
        {
            var name = JsonSerializer.Serialize(f.Name);
            return format switch
            {
                ToolCallFormat.Llama3Json => new FramedSchema("{\"name\": " + name + ", \"parameters\": ", f.Parameters, "}"),
                ToolCallFormat.Mistral => new FramedSchema(MistralMarker + "[{\"name\": " + name + ", \"arguments\": ", f.Parameters, "}]"),
                _ => new FramedSchema(HermesOpen + "\n{\"name\": " + name + ", \"arguments\": ", f.Parameters, "}\n" + HermesClose),
            };
        }).ToList();
        return JsonSchemaGrammarCompiler.CompileFramed(frames, limits);
    }

    /// <summary>Most calls one answer may hold under a lazy grammar of a format that writes them in a row (Mistral's array).</summary>
    public const int MaxParallelCalls = 16;

    /// <summary>
    /// The grammar of the calls a model makes by itself (<c>tool_choice: auto</c>), applied from the call's opening
    /// marker on (<see cref="LazyGrammar"/>): a well-formed call of one of <paramref name="functions"/>, its arguments
    /// valid against the function's schema where the function is <see cref="ToolFunction.Strict"/>, else any JSON
    /// object. Hermes: one <c>&lt;tool_call&gt;</c> block, after which the text is free again when
    /// <paramref name="parallel"/> (the next block is held the same way) and ends otherwise. Llama 3: one call object
    /// (Llama 3's format has no parallel calls), with or without <c>&lt;|python_tag|&gt;</c>, as the whole answer. Mistral:
    /// the call array as the whole answer, with or without its <c>[TOOL_CALLS]</c> marker (a control token that may
    /// print nothing), several calls when <paramref name="parallel"/>. Throws <see cref="UnsupportedSchemaException"/>
    /// for a strict function's schema the compiler cannot honour.
    /// </summary>
    /// <remarks>
    /// Every request with tools and <c>auto</c> (the default) asks for one, so grammars are kept by their tools (the
    /// <see cref="MaxCachedLazyGrammars"/> used last, tools of up to 64 K characters): compiling two small schemas took 0.4-0.9 ms
    /// of the request's thread on a 2-core machine at load 23-65, a kept one (with the matcher's lookup) about 15 us.
    /// </remarks>
    public static LazyGrammar LazyCallGrammar(ToolCallFormat format, IReadOnlyList<ToolFunction> functions, bool parallel, JsonGrammarLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(functions);
        var key = limits is null ? LazyKey(format, functions, parallel) : null;
        if (key is not null && LazyCache.TryGet(key, out var known))
        {
            return known;
        }

        // Built outside the cache's lock (a strict schema may take a millisecond, or throw); two requests that miss at
        // once both build, and the later one's grammar is kept (equal to the other).
        var built = BuildLazy(format, functions, parallel, limits);
        if (key is not null)
        {
            LazyCache.AddOrUpdate(key, built);
        }

        return built;
    }

    /// <summary>Most lazy grammars kept (<see cref="LazyCallGrammar"/>).</summary>
    internal const int MaxCachedLazyGrammars = 64;

    private const int MaxLazyKeyLength = 1 << 16;

    // A strict LRU: when full, the grammar used longest ago goes. It cleared every grammar when full, so a 65th tool set
    // in use made all the others compile again, however often they were asked for.
    private static readonly BitFaster.Caching.Lru.ClassicLru<string, LazyGrammar> LazyCache = new(Environment.ProcessorCount, MaxCachedLazyGrammars, StringComparer.Ordinal);

    /// <summary>What a lazy grammar is built from, as text (a schema only where it is used: strict); null when too long to keep.</summary>
    private static string? LazyKey(ToolCallFormat format, IReadOnlyList<ToolFunction> functions, bool parallel)
    {
        var key = new StringBuilder().Append((int)format).Append(parallel ? 'p' : 's');
        foreach (var f in functions)
        {
            key.Append('\0').Append(f.Name).Append('\0');
            if (f.Strict && f.Parameters is { } schema)
            {
                key.Append(schema.GetRawText());
            }
            else
            {
                key.Append(f.Strict ? '*' : '-');
            }

            if (key.Length > MaxLazyKeyLength)
            {
                return null;
            }
        }

        return key.ToString();
    }

    private static LazyGrammar BuildLazy(ToolCallFormat format, IReadOnlyList<ToolFunction> functions, bool parallel, JsonGrammarLimits? limits)
    {
        var frames = new List<FramedSchema>(functions.Count);
        foreach (var f in functions)
        {
            var name = JsonSerializer.Serialize(f.Name);
            var schema = f.Strict ? f.Parameters : null;
            frames.Add(format switch
            {
                ToolCallFormat.Llama3Json => new FramedSchema("{\"name\": " + name + ", \"parameters\": ", schema, "}"),
                ToolCallFormat.Mistral => new FramedSchema("{\"name\": " + name + ", \"arguments\": ", schema, "}"),
                _ => new FramedSchema(HermesOpen + "\n{\"name\": " + name + ", \"arguments\": ", schema, "}\n" + HermesClose),
            });
        }

        return format switch
        {
            ToolCallFormat.Llama3Json => new LazyGrammar(
                JsonSchemaGrammarCompiler.CompileFramed(frames, limits, call => "( " + JsonSchemaGrammarCompiler.Literal(PythonTag) + " )? " + call),
                OpeningMarkers(format), AtStartOnly: true, Rearm: false),
            ToolCallFormat.Mistral => new LazyGrammar(
                JsonSchemaGrammarCompiler.CompileFramed(frames, limits, call => "( " + JsonSchemaGrammarCompiler.Literal(MistralMarker) + " )? \"[\" " + call
                    + (parallel ? " ( \", \" " + call + " ){0," + (MaxParallelCalls - 1).ToString(System.Globalization.CultureInfo.InvariantCulture) + "}" : "") + " \"]\""),
                OpeningMarkers(format), AtStartOnly: true, Rearm: false),
            _ => new LazyGrammar(JsonSchemaGrammarCompiler.CompileFramed(frames, limits), OpeningMarkers(format), AtStartOnly: false, Rearm: parallel),
        };
    }

    /// <summary>
    /// Splits generated text into content and tool calls. Text that does not parse as calls is all content (no
    /// calls), so a model that writes something call-like but broken still answers.
    /// </summary>
    public static (string Content, IReadOnlyList<ParsedToolCall> Calls) Parse(ToolCallFormat format, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return format switch
        {
            ToolCallFormat.Hermes => ParseHermes(text),
            _ => TryParseJsonCalls(format, text, out var calls) ? ("", calls) : (text, []),
        };
    }

    private static (string, IReadOnlyList<ParsedToolCall>) ParseHermes(string text)
    {
        var calls = new List<ParsedToolCall>();
        var content = new StringBuilder();
        var pos = 0;
        while (true)
        {
            var open = text.IndexOf(HermesOpen, pos, StringComparison.Ordinal);
            if (open < 0)
            {
                content.Append(text, pos, text.Length - pos);
                break;
            }

            content.Append(text, pos, open - pos);
            var bodyStart = open + HermesOpen.Length;
            var close = text.IndexOf(HermesClose, bodyStart, StringComparison.Ordinal);
            var body = close < 0 ? text[bodyStart..] : text[bodyStart..close];
            if (!TryReadCall(body, "arguments", out var call))
            {
                return (text, []);
            }

            calls.Add(call);
            pos = close < 0 ? text.Length : close + HermesClose.Length;
        }

        return calls.Count == 0 ? (text, []) : (content.ToString().Trim(), calls);
    }

    [System.Text.RegularExpressions.GeneratedRegex("""^\s*\{\s*"name"\s*:\s*"([a-zA-Z0-9_-]{1,64})"(?:\s*,\s*"(?:arguments|parameters)"\s*:\s*(.*))?""", System.Text.RegularExpressions.RegexOptions.Singleline)]
    private static partial System.Text.RegularExpressions.Regex CutCallHead();

    /// <summary>
    /// Reads text whose generation was cut by the token limit: null when it does not end inside a call (read it with
    /// <see cref="Parse"/>), else the call as far as it got, so that a caller never passes the syntax's markup
    /// (<c>&lt;tool_call&gt;{"name": ...</c>) on as content. OpenAI and vLLM answer such a cut with the call's name
    /// and its truncated arguments, and <c>finish_reason: "length"</c>.
    /// </summary>
    public static TruncatedToolCalls? ParseTruncated(ToolCallFormat format, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string before, cut;
        if (format == ToolCallFormat.Hermes)
        {
            // The last call still open, or a "<tool_call>" cut in the middle after everything else.
            var open = text.LastIndexOf(HermesOpen, StringComparison.Ordinal);
            if (open >= 0 && text.IndexOf(HermesClose, open, StringComparison.Ordinal) >= 0)
            {
                open = -1;
            }

            var start = open >= 0 ? open : PartialMarkerAt(text, HermesOpen);
            if (start < 0)
            {
                return null;
            }

            before = text[..start];
            cut = open >= 0 ? text[(open + HermesOpen.Length)..] : "";
        }
        else
        {
            var body = text.TrimStart();
            var marker = format == ToolCallFormat.Mistral ? MistralMarker : PythonTag;
            if (body.StartsWith(marker, StringComparison.Ordinal))
            {
                body = body[marker.Length..].TrimStart();
            }
            else if (body.Length > 0 && marker.StartsWith(body, StringComparison.Ordinal))
            {
                return new TruncatedToolCalls("", [], null, "");
            }

            if (format == ToolCallFormat.Mistral && body.StartsWith('['))
            {
                body = body[1..];
            }

            if (body.Length == 0 || body[0] != '{' || TryParseJsonCalls(format, text, out _))
            {
                return null;
            }

            before = "";
            cut = body;
        }

        var (content, calls) = before.Contains(HermesOpen, StringComparison.Ordinal) ? ParseHermes(before) : (before, []);
        var head = CutCallHead().Match(cut);
        return head.Success
            ? new TruncatedToolCalls(content.Trim(), calls, head.Groups[1].Value, ArgumentsPrefix(head.Groups[2].Value))
            : new TruncatedToolCalls(content.Trim(), calls, null, "");
    }

    /// <summary>Where a proper prefix of <paramref name="marker"/> ends the text (a marker cut in the middle), else -1.</summary>
    private static int PartialMarkerAt(string text, string marker)
    {
        for (var length = Math.Min(marker.Length - 1, text.Length); length > 0; length--)
        {
            if (string.CompareOrdinal(text, text.Length - length, marker, 0, length) == 0)
            {
                return text.Length - length;
            }
        }

        return -1;
    }

    /// <summary>The arguments' text up to the end of their JSON value (or of the text), without whitespace outside strings.</summary>
    private static string ArgumentsPrefix(string text)
    {
        var prefix = new StringBuilder(text.Length);
        int depth = 0;
        bool inString = false, escaped = false;
        foreach (var c in text)
        {
            if (inString)
            {
                if (escaped)
                {
                    escaped = false;
                }
                else if (c == '\\')
                {
                    escaped = true;
                }
                else if (c == '"')
                {
                    inString = false;
                }

                prefix.Append(c);
                continue;
            }

            if (char.IsWhiteSpace(c))
            {
                continue;
            }

            prefix.Append(c);
            switch (c)
            {
                case '"': inString = true; break;
                case '{' or '[': depth++; break;
                case '}' or ']' when --depth <= 0: return prefix.ToString();
            }
        }

        return prefix.ToString();
    }

    /// <summary>Llama 3.x: one object (or several, one per line or ';'-separated); Mistral: an array of objects.</summary>
    internal static bool TryParseJsonCalls(ToolCallFormat format, string text, out List<ParsedToolCall> calls)
    {
        calls = [];
        var body = text.Trim();
        var marker = format == ToolCallFormat.Mistral ? MistralMarker : PythonTag;
        if (body.StartsWith(marker, StringComparison.Ordinal))
        {
            body = body[marker.Length..].TrimStart();
        }

        if (body.Length == 0 || body[0] != (format == ToolCallFormat.Mistral ? '[' : '{'))
        {
            return false;
        }

        try
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            var offset = 0;
            while (true)
            {
                // Values may be separated by whitespace or, in Llama 3's multi-call style, by ';'.
                while (offset < bytes.Length && bytes[offset] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t' or (byte)';')
                {
                    offset++;
                }

                if (offset >= bytes.Length)
                {
                    break;
                }

                var reader = new Utf8JsonReader(bytes.AsSpan(offset), new JsonReaderOptions { AllowMultipleValues = true });
                using var document = JsonDocument.ParseValue(ref reader);
                offset += (int)reader.BytesConsumed;
                var root = document.RootElement;
                var items = root.ValueKind == JsonValueKind.Array ? root.EnumerateArray().ToList() : [root];
                foreach (var item in items)
                {
                    if (!TryReadCall(item, format == ToolCallFormat.Llama3Json ? "parameters" : "arguments", out var call))
                    {
                        return false;
                    }

                    calls.Add(call);
                }
            }
        }
        catch (JsonException)
        {
            return false;
        }

        return calls.Count > 0;
    }

    private static bool TryReadCall(string json, string argumentsKey, out ParsedToolCall call)
    {
        call = null!;
        try
        {
            using var document = JsonDocument.Parse(json.Trim());
            return TryReadCall(document.RootElement, argumentsKey, out call);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static bool TryReadCall(JsonElement element, string argumentsKey, out ParsedToolCall call)
    {
        call = null!;
        if (element.ValueKind != JsonValueKind.Object
            || !element.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(name.GetString()))
        {
            return false;
        }

        if (!element.TryGetProperty(argumentsKey, out var arguments) && !element.TryGetProperty(argumentsKey == "arguments" ? "parameters" : "arguments", out arguments))
        {
            call = new ParsedToolCall(name.GetString()!, "{}");
            return true;
        }

        switch (arguments.ValueKind)
        {
            case JsonValueKind.Object:
                call = new ParsedToolCall(name.GetString()!, CompactJson(arguments));
                return true;
            case JsonValueKind.String:
                // Some models write the arguments as a JSON string holding JSON.
                try
                {
                    using var inner = JsonDocument.Parse(arguments.GetString()!);
                    call = new ParsedToolCall(name.GetString()!, CompactJson(inner.RootElement));
                    return inner.RootElement.ValueKind == JsonValueKind.Object;
                }
                catch (JsonException)
                {
                    return false;
                }

            default:
                return false;
        }
    }

    /// <summary>
    /// JSON text without insignificant whitespace, otherwise exactly as the model wrote it (OpenAI's compact
    /// <c>arguments</c> style); streaming strips the same characters, so streamed and whole arguments are equal.
    /// </summary>
    public static string CompactJson(JsonElement value) => StripWhitespace(value.GetRawText());

    /// <summary>Removes whitespace outside strings from valid JSON text.</summary>
    public static string StripWhitespace(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var text = new StringBuilder(json.Length);
        bool inString = false, escaped = false;
        foreach (var c in json)
        {
            if (inString)
            {
                if (escaped)
                {
                    escaped = false;
                }
                else if (c == '\\')
                {
                    escaped = true;
                }
                else if (c == '"')
                {
                    inString = false;
                }

                text.Append(c);
            }
            else if (!char.IsWhiteSpace(c))
            {
                inString = c == '"';
                text.Append(c);
            }
        }

        return text.ToString();
    }
}
