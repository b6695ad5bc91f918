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
public sealed record ToolFunction(string Name, JsonElement? Parameters);

/// <summary>A tool call read from generated text: the function's name and its arguments as compact JSON text.</summary>
public sealed record ParsedToolCall(string Name, string Arguments);

/// <summary>Writes grammars for, and reads, the tool-call syntax of each <see cref="ToolCallFormat"/>.</summary>
public static class ToolCallSyntax
{
    internal const string HermesOpen = "<tool_call>";
    internal const string HermesClose = "</tool_call>";
    internal const string MistralMarker = "[TOOL_CALLS]";
    internal const string PythonTag = "<|python_tag|>";

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
