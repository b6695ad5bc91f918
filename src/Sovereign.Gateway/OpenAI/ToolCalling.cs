using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Sovereign.Inference.Grammar;
using Sovereign.Inference.Templates;
using Sovereign.Inference.Tools;

namespace Sovereign.Gateway.OpenAI;

/// <summary>What <c>tool_choice</c> asks of the model.</summary>
internal enum ToolChoiceMode
{
    /// <summary>Never call a tool (the tools are still shown to the model, as OpenAI does).</summary>
    None,

    /// <summary>The model decides.</summary>
    Auto,

    /// <summary>The model must call one of the tools: sampling is constrained to a call.</summary>
    Required,

    /// <summary>The model must call the named function: sampling is constrained to a call of it.</summary>
    Named,
}

/// <summary>The validated <c>tools</c>, <c>tool_choice</c> and <c>parallel_tool_calls</c> of a chat request.</summary>
internal sealed partial class ChatTools
{
    private ChatTools(IReadOnlyList<JsonElement> definitions, IReadOnlyList<ToolFunction> functions, ToolChoiceMode mode, string? named, bool parallel)
    {
        Definitions = definitions;
        Functions = functions;
        Mode = mode;
        NamedFunction = named;
        ParallelToolCalls = parallel;
    }

    /// <summary>The <c>tools</c> items as sent, for the chat template.</summary>
    public IReadOnlyList<JsonElement> Definitions { get; }

    /// <summary>The functions, in order.</summary>
    public IReadOnlyList<ToolFunction> Functions { get; }

    public ToolChoiceMode Mode { get; }

    /// <summary>The function <c>tool_choice</c> names (<see cref="ToolChoiceMode.Named"/>).</summary>
    public string? NamedFunction { get; }

    /// <summary>Whether one answer may hold several calls.</summary>
    public bool ParallelToolCalls { get; }

    /// <summary>Whether generated text is read for tool calls.</summary>
    public bool ParsesCalls => Mode != ToolChoiceMode.None;

    /// <summary>Whether the answer is one call and nothing else (<c>required</c> or a named function).</summary>
    public bool ForcesCall => Mode is ToolChoiceMode.Required or ToolChoiceMode.Named;

    [GeneratedRegex("^[a-zA-Z0-9_-]{1,64}$")]
    private static partial Regex FunctionName();

    /// <summary>
    /// Validates the request's tool fields; null when it has no tools. Every mistake is a 400 naming the field, as
    /// OpenAI names it (<c>tools[0].function.name</c>).
    /// </summary>
    /// <param name="tools">The <c>tools</c> array in chat's nested form.</param>
    /// <param name="toolChoice">The <c>tool_choice</c>.</param>
    /// <param name="parallelToolCalls">The <c>parallel_tool_calls</c>.</param>
    /// <param name="strictByDefault">
    /// A function's <c>strict</c> where it leaves it out: false on chat completions, true on Responses (OpenAI's defaults).
    /// </param>
    public static ChatTools? Read(JsonElement? tools, JsonElement? toolChoice, bool? parallelToolCalls, bool strictByDefault = false)
    {
        var hasTools = tools is { ValueKind: not JsonValueKind.Null };
        if (!hasTools)
        {
            if (toolChoice is { ValueKind: not JsonValueKind.Null } choice && !(choice.ValueKind == JsonValueKind.String && choice.GetString() == "none"))
            {
                throw OpenAIException.BadRequest("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice", "invalid_value");
            }

            return null;
        }

        var array = tools!.Value;
        if (array.ValueKind != JsonValueKind.Array)
        {
            throw OpenAIException.BadRequest("Invalid type for 'tools': expected an array of tool objects.", "tools", "invalid_type");
        }

        if (array.GetArrayLength() == 0)
        {
            throw OpenAIException.BadRequest("Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.", "tools", "empty_array");
        }

        if (array.GetArrayLength() > 128)
        {
            throw OpenAIException.BadRequest($"Invalid 'tools': array too long. Expected an array with maximum length 128, but got an array with length {array.GetArrayLength()} instead.", "tools", "array_above_max_length");
        }

        var definitions = new List<JsonElement>();
        var functions = new List<ToolFunction>();
        var i = 0;
        foreach (var tool in array.EnumerateArray())
        {
            var at = $"tools[{i}]";
            if (tool.ValueKind != JsonValueKind.Object)
            {
                throw OpenAIException.BadRequest($"Invalid type for '{at}': expected an object.", at, "invalid_type");
            }

            if (!tool.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
            {
                throw OpenAIException.BadRequest($"Missing required parameter: '{at}.type'.", $"{at}.type", "missing_required_parameter");
            }

            if (type.GetString() == "custom")
            {
                throw CustomToolsUnsupported($"{at}.type");
            }

            if (type.GetString() != "function")
            {
                throw OpenAIException.BadRequest($"Invalid value: '{RequestReader.Shorten(type.GetString() ?? "")}'. Supported values are: 'function'.", $"{at}.type", "invalid_value");
            }

            if (!tool.TryGetProperty("function", out var function) || function.ValueKind == JsonValueKind.Null)
            {
                throw OpenAIException.BadRequest($"Missing required parameter: '{at}.function'.", $"{at}.function", "missing_required_parameter");
            }

            if (function.ValueKind != JsonValueKind.Object)
            {
                throw OpenAIException.BadRequest($"Invalid type for '{at}.function': expected an object.", $"{at}.function", "invalid_type");
            }

            if (!function.TryGetProperty("name", out var nameElement) || nameElement.ValueKind == JsonValueKind.Null)
            {
                throw OpenAIException.BadRequest($"Missing required parameter: '{at}.function.name'.", $"{at}.function.name", "missing_required_parameter");
            }

            var name = nameElement.ValueKind == JsonValueKind.String ? nameElement.GetString()! : null;
            if (name is null || !FunctionName().IsMatch(name))
            {
                throw OpenAIException.BadRequest(
                    $"Invalid '{at}.function.name': string does not match pattern. Expected a string of 1 to 64 letters, digits, underscores or dashes.", $"{at}.function.name", "invalid_value");
            }

            if (functions.Any(f => f.Name == name))
            {
                throw OpenAIException.BadRequest($"Invalid 'tools': the function name '{RequestReader.Shorten(name ?? "")}' is used more than once.", $"{at}.function.name", "invalid_value");
            }

            if (function.TryGetProperty("description", out var description) && description.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
            {
                throw OpenAIException.BadRequest($"Invalid type for '{at}.function.description': expected a string.", $"{at}.function.description", "invalid_type");
            }

            var strict = strictByDefault;
            if (function.TryGetProperty("strict", out var strictElement) && strictElement.ValueKind != JsonValueKind.Null)
            {
                strict = strictElement.ValueKind switch
                {
                    JsonValueKind.True => true,
                    JsonValueKind.False => false,
                    _ => throw OpenAIException.BadRequest($"Invalid type for '{at}.function.strict': expected a boolean.", $"{at}.function.strict", "invalid_type"),
                };
            }

            JsonElement? parameters = null;
            if (function.TryGetProperty("parameters", out var schema) && schema.ValueKind != JsonValueKind.Null)
            {
                if (schema.ValueKind != JsonValueKind.Object)
                {
                    throw OpenAIException.BadRequest($"Invalid type for '{at}.function.parameters': expected a JSON Schema object.", $"{at}.function.parameters", "invalid_type");
                }

                if (schema.TryGetProperty("type", out var schemaType) && !(schemaType.ValueKind == JsonValueKind.String && schemaType.GetString() == "object"))
                {
                    throw OpenAIException.BadRequest(
                        $"Invalid schema for function '{RequestReader.Shorten(name ?? "")}': schema must be a JSON Schema of 'type: \"object\"'.", $"{at}.function.parameters", "invalid_function_parameters");
                }

                parameters = schema.Clone();
            }

            definitions.Add(tool.Clone());
            functions.Add(new ToolFunction(name, parameters) { Strict = strict });
            i++;
        }

        var (mode, named, allowed) = ReadChoice(toolChoice, functions);
        if (allowed is not null)
        {
            // allowed_tools: only those may be called, so only those are offered (shown, parsed, forced).
            var kept = functions.Select((f, index) => (f, index)).Where(x => allowed.Contains(x.f.Name)).ToList();
            definitions = [.. kept.Select(x => definitions[x.index])];
            functions = [.. kept.Select(x => x.f)];
        }

        return new ChatTools(definitions, functions, mode, named, parallelToolCalls ?? true);
    }

    /// <summary>
    /// OpenAI's custom tools (free-form text input, optionally held to a grammar) are a real feature this server does
    /// not run: named as unsupported, as other such fields are, not as a bad value (chat said "Supported values are:
    /// 'function'", Responses called it a hosted tool).
    /// </summary>
    internal static OpenAIException CustomToolsUnsupported(string param) => OpenAIException.BadRequest(
        "custom tools are not supported: this server calls function tools only; declare a function tool with a JSON Schema for its arguments instead.",
        param, "unsupported_parameter");

    private static (ToolChoiceMode Mode, string? Named, HashSet<string>? Allowed) ReadChoice(JsonElement? toolChoice, List<ToolFunction> functions)
    {
        if (toolChoice is not { ValueKind: not JsonValueKind.Null } choice)
        {
            return (ToolChoiceMode.Auto, null, null);
        }

        if (choice.ValueKind == JsonValueKind.String)
        {
            return choice.GetString() switch
            {
                "none" => (ToolChoiceMode.None, null, null),
                "auto" => (ToolChoiceMode.Auto, null, null),
                "required" => (ToolChoiceMode.Required, null, null),
                var other => throw OpenAIException.BadRequest(
                    $"Invalid value: '{RequestReader.Shorten(other ?? "")}'. Supported values are: 'none', 'auto', and 'required'.", "tool_choice", "invalid_value"),
            };
        }

        if (choice.ValueKind != JsonValueKind.Object)
        {
            throw OpenAIException.BadRequest("Invalid type for 'tool_choice': expected 'none', 'auto', 'required', or an object naming a function.", "tool_choice", "invalid_type");
        }

        if (!choice.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
        {
            throw OpenAIException.BadRequest("Missing required parameter: 'tool_choice.type'.", "tool_choice.type", "missing_required_parameter");
        }

        if (type.GetString() == "custom")
        {
            throw CustomToolsUnsupported("tool_choice.type");
        }

        if (type.GetString() == "allowed_tools")
        {
            return ReadAllowedTools(choice, functions);
        }

        if (type.GetString() != "function")
        {
            throw OpenAIException.BadRequest($"Invalid value: '{RequestReader.Shorten(type.GetString() ?? "")}'. Supported values are: 'function' and 'allowed_tools'.", "tool_choice.type", "invalid_value");
        }

        if (!choice.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object)
        {
            throw OpenAIException.BadRequest("Missing required parameter: 'tool_choice.function'.", "tool_choice.function", "missing_required_parameter");
        }

        if (!function.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
        {
            throw OpenAIException.BadRequest("Missing required parameter: 'tool_choice.function.name'.", "tool_choice.function.name", "missing_required_parameter");
        }

        var chosen = name.GetString()!;
        if (functions.All(f => f.Name != chosen))
        {
            throw OpenAIException.BadRequest(
                $"Invalid value for 'tool_choice': no function named '{RequestReader.Shorten(chosen)}' was specified in the 'tools' parameter.", "tool_choice.function.name", "invalid_value");
        }

        return (ToolChoiceMode.Named, chosen, null);
    }

    /// <summary>
    /// OpenAI's <c>{"type":"allowed_tools","allowed_tools":{"mode":"auto"|"required","tools":[{"type":"function","function":{"name":...}}]}}</c>:
    /// every tool stays defined, only the listed ones may be called.
    /// </summary>
    private static (ToolChoiceMode, string?, HashSet<string>) ReadAllowedTools(JsonElement choice, List<ToolFunction> functions)
    {
        const string At = "tool_choice.allowed_tools";
        if (!choice.TryGetProperty("allowed_tools", out var allowed) || allowed.ValueKind != JsonValueKind.Object)
        {
            throw OpenAIException.BadRequest($"Missing required parameter: '{At}'.", At, "missing_required_parameter");
        }

        var mode = allowed.TryGetProperty("mode", out var modeElement) && modeElement.ValueKind == JsonValueKind.String
            ? modeElement.GetString() switch
            {
                "auto" => ToolChoiceMode.Auto,
                "required" => ToolChoiceMode.Required,
                var other => throw OpenAIException.BadRequest(
                    $"Invalid value: '{RequestReader.Shorten(other ?? "")}'. Supported values are: 'auto' and 'required'.", $"{At}.mode", "invalid_value"),
            }
            : throw OpenAIException.BadRequest($"Missing required parameter: '{At}.mode'.", $"{At}.mode", "missing_required_parameter");

        if (!allowed.TryGetProperty("tools", out var tools) || tools.ValueKind != JsonValueKind.Array)
        {
            throw OpenAIException.BadRequest($"Missing required parameter: '{At}.tools'.", $"{At}.tools", "missing_required_parameter");
        }

        if (tools.GetArrayLength() == 0)
        {
            throw OpenAIException.BadRequest(
                $"Invalid '{At}.tools': empty array. Expected an array with minimum length 1, but got an empty array instead.", $"{At}.tools", "empty_array");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        var i = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            var at = $"{At}.tools[{i++}]";
            if (tool.ValueKind != JsonValueKind.Object || !tool.TryGetProperty("type", out var toolType) || toolType.ValueKind != JsonValueKind.String || toolType.GetString() != "function")
            {
                throw OpenAIException.BadRequest($"Invalid value for '{at}.type': only function tools are allowed here.", $"{at}.type", "invalid_value");
            }

            if (!tool.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object
                || !function.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
            {
                throw OpenAIException.BadRequest($"Missing required parameter: '{at}.function.name'.", $"{at}.function.name", "missing_required_parameter");
            }

            if (functions.All(f => f.Name != name.GetString()))
            {
                throw OpenAIException.BadRequest(
                    $"Invalid value for '{At}': no function named '{RequestReader.Shorten(name.GetString()!)}' was specified in the 'tools' parameter.", $"{at}.function.name", "invalid_value");
            }

            names.Add(name.GetString()!);
        }

        return (mode, null, names);
    }

    /// <summary>
    /// The grammar that forces a call (<c>required</c>: of any tool; named: of that function), with arguments valid
    /// against the function's schema, in the model's own call syntax; null when sampling is free.
    /// </summary>
    public GbnfGrammar? GrammarFor(ToolCallFormat format)
    {
        var forced = Mode switch
        {
            ToolChoiceMode.Required => Functions,
            ToolChoiceMode.Named => Functions.Where(f => f.Name == NamedFunction).ToList(),
            _ => null,
        };
        if (forced is null)
        {
            return null;
        }

        try
        {
            return ToolCallSyntax.Grammar(format, forced);
        }
        catch (UnsupportedSchemaException ex)
        {
            // Name the function whose schema cannot be enforced.
            var culprit = forced.FirstOrDefault(f => !Compiles(format, f)) ?? forced[0];
            var index = Functions.ToList().FindIndex(f => f.Name == culprit.Name);
            throw OpenAIException.BadRequest(
                $"The parameters of function '{culprit.Name}' cannot be enforced: {ex.Message}", $"tools[{index}].function.parameters", "unsupported_schema_keyword");
        }
    }

    private static bool Compiles(ToolCallFormat format, ToolFunction function)
    {
        try
        {
            ToolCallSyntax.Grammar(format, [function]);
            return true;
        }
        catch (UnsupportedSchemaException)
        {
            return false;
        }
    }

    /// <summary>
    /// With <c>auto</c>: the grammar that holds a call the model makes by itself, from its opening marker on, to a
    /// well-formed call of an offered function (arguments valid against the schema where the function is strict, any
    /// JSON object otherwise), in the model's own call syntax; null otherwise. A strict schema the compiler cannot
    /// honour is a 400 naming the function's parameters, as for a forced call: <c>strict</c> would not hold.
    /// </summary>
    public LazyGrammar? LazyGrammarFor(ToolCallFormat format)
    {
        if (Mode != ToolChoiceMode.Auto || Functions.Count == 0)
        {
            return null;
        }

        try
        {
            return ToolCallSyntax.LazyCallGrammar(format, Functions, ParallelToolCalls);
        }
        catch (UnsupportedSchemaException ex)
        {
            var culprit = Functions.FirstOrDefault(f => f.Strict && !Compiles(format, f)) ?? Functions.First(f => f.Strict);
            var index = Functions.ToList().FindIndex(f => f.Name == culprit.Name);
            throw OpenAIException.BadRequest(
                $"The parameters of function '{culprit.Name}' cannot be enforced with strict: true: {ex.Message} Set strict to false to have the arguments only be a JSON object.",
                $"tools[{index}].function.parameters", "unsupported_schema_keyword");
        }
    }

    /// <summary>The calls in generated text that this request accepts: offered functions only, one unless parallel calls are allowed.</summary>
    public (string Content, IReadOnlyList<ParsedToolCall> Calls) Read(ToolCallFormat format, string text)
    {
        if (!ParsesCalls)
        {
            return (text, []);
        }

        var (content, calls) = ToolCallSyntax.Parse(format, text);
        if (calls.Count == 0 || calls.Any(c => !Offers(c.Name)))
        {
            return (text, []);
        }

        return (content, ParallelToolCalls ? calls : [calls[0]]);
    }

    /// <summary>
    /// Text cut by the token limit inside a call, or after complete calls (null when it holds none: read it with
    /// <see cref="Read"/>): the content around the calls, and the calls this request accepts, a cut one last with its
    /// truncated arguments once its name is complete. Never the syntax's markup as content: OpenAI and vLLM answer such
    /// a cut with the call as far as it got and <c>finish_reason: "length"</c>. Hermes text may go on after a call (a
    /// model under <c>auto</c> with parallel calls is free again after each); cut there, the markup was returned whole
    /// as content.
    /// </summary>
    public (string Content, IReadOnlyList<ParsedToolCall> Calls)? ReadTruncated(ToolCallFormat format, string text)
    {
        if (!ParsesCalls)
        {
            return null;
        }

        if (ToolCallSyntax.ParseTruncated(format, text) is not { } cut)
        {
            var (content, complete) = Read(format, text);
            return complete.Count > 0 ? (content, complete) : null;
        }

        var calls = cut.Calls.Where(c => Offers(c.Name)).ToList();
        if (cut.CutName is { } name && Offers(name))
        {
            calls.Add(new ParsedToolCall(name, cut.CutArguments));
        }

        return (cut.Content, ParallelToolCalls ? calls : calls.Take(1).ToList());
    }

    /// <summary>
    /// A function name of an earlier call in the history (chat's <c>tool_calls[].function.name</c>, a Responses
    /// <c>function_call</c> item's <c>name</c>), held to OpenAI's pattern, as the names of <c>tools</c> are. It was
    /// taken as written and went into the prompt: any text, a newline or a template's own markup included.
    /// </summary>
    /// <exception cref="OpenAIException">A 400 naming <paramref name="param"/>.</exception>
    public static string RequireHistoryName(string name, string param)
    {
        if (name.Length > 64)
        {
            throw OpenAIException.BadRequest(
                $"Invalid '{param}': string too long. Expected a string with maximum length 64, but got a string with length {name.Length} instead.", param, "string_above_max_length");
        }

        return FunctionName().IsMatch(name) ? name
            : throw OpenAIException.BadRequest(
                $"Invalid '{param}': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'.", param, "invalid_value");
    }

    /// <summary>Whether the request offered a function of this name.</summary>
    public bool Offers(string name) => Functions.Any(f => f.Name == name);

    /// <summary>A call id: 9 letters and digits for Mistral (its template refuses others), OpenAI's <c>call_...</c> otherwise.</summary>
    public static string NewCallId(ToolCallFormat format)
    {
        const string Alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        return format == ToolCallFormat.Mistral
            ? RandomNumberGenerator.GetString(Alphabet, 9)
            : "call_" + RandomNumberGenerator.GetString(Alphabet, 24);
    }

    /// <summary>
    /// Reads the assistant's earlier <c>tool_calls</c> from a message of the history; every mistake is a 400 naming
    /// the field.
    /// </summary>
    public static IReadOnlyList<ChatToolCall>? ReadHistoryCalls(JsonElement? toolCalls, string at)
    {
        if (toolCalls is not { ValueKind: not JsonValueKind.Null } array)
        {
            return null;
        }

        if (array.ValueKind != JsonValueKind.Array)
        {
            throw OpenAIException.BadRequest($"Invalid type for '{at}': expected an array of tool calls.", at, "invalid_type");
        }

        if (array.GetArrayLength() == 0)
        {
            // OpenAI's 400, word for word (an assistant message without calls leaves tool_calls out); it was served.
            throw OpenAIException.BadRequest(
                $"Invalid '{at}': empty array. Expected an array with minimum length 1, but got an empty array instead.", at, "empty_array");
        }

        var calls = new List<ChatToolCall>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        var i = 0;
        foreach (var call in array.EnumerateArray())
        {
            var here = $"{at}[{i++}]";
            if (call.ValueKind != JsonValueKind.Object)
            {
                throw OpenAIException.BadRequest($"Invalid type for '{here}': expected an object.", here, "invalid_type");
            }

            var id = RequiredString(call, "id", here);
            if (!ids.Add(id))
            {
                // Two calls of one answer under one id: a tool message answering it could answer either.
                throw OpenAIException.BadRequest(
                    $"Invalid parameter: Duplicate value for '{here}.id' of '{RequestReader.Shorten(id)}': each tool call of a message needs its own id.", $"{here}.id", "invalid_value");
            }
            if (call.TryGetProperty("type", out var type) && !(type.ValueKind == JsonValueKind.String && type.GetString() == "function"))
            {
                throw OpenAIException.BadRequest($"Invalid value for '{here}.type': supported values are: 'function'.", $"{here}.type", "invalid_value");
            }

            if (!call.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object)
            {
                throw OpenAIException.BadRequest($"Missing required parameter: '{here}.function'.", $"{here}.function", "missing_required_parameter");
            }

            var name = RequireHistoryName(RequiredString(function, "name", $"{here}.function"), $"{here}.function.name");
            calls.Add(new ChatToolCall(id, name, RequiredString(function, "arguments", $"{here}.function")));
        }

        return calls;
    }

    private static string RequiredString(JsonElement element, string property, string at)
    {
        if (!element.TryGetProperty(property, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            throw OpenAIException.BadRequest($"Missing required parameter: '{at}.{property}'.", $"{at}.{property}", "missing_required_parameter");
        }

        return value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw OpenAIException.BadRequest($"Invalid type for '{at}.{property}': expected a string.", $"{at}.{property}", "invalid_type");
    }
}

/// <summary>A tool call in a response (<c>message.tool_calls[]</c>).</summary>
internal sealed record ToolCallOut(string Id, string Type, FunctionCallOut Function);

internal sealed record FunctionCallOut(string Name, string Arguments);

/// <summary>A tool call piece in a streamed delta: the first has id, type and name; later ones only argument text.</summary>
internal sealed record ToolCallDelta(
    int Index,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Id,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Type,
    FunctionCallDelta Function);

internal sealed record FunctionCallDelta(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Name,
    string Arguments);
