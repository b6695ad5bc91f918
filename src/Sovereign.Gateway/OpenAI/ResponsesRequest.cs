using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Templates;

namespace Sovereign.Gateway.OpenAI;

/// <summary><c>POST /v1/responses</c>: the stateless core of OpenAI's Responses API.</summary>
internal sealed class ResponsesRequest
{
    /// <summary>The least <c>max_output_tokens</c> OpenAI's Responses API accepts.</summary>
    public const int MinOutputTokens = 16;

    public string? Model { get; set; }

    /// <summary>A string (one user message) or an array of input items.</summary>
    public JsonElement? Input { get; set; }

    public string? Instructions { get; set; }
    public int? MaxOutputTokens { get; set; }
    public float? Temperature { get; set; }
    public float? TopP { get; set; }
    public bool? Stream { get; set; }
    public bool? Store { get; set; }
    public string? PreviousResponseId { get; set; }
    public ResponsesText? Text { get; set; }
    public JsonElement? Tools { get; set; }
    public JsonElement? ToolChoice { get; set; }
    public bool? ParallelToolCalls { get; set; }
    public bool? Background { get; set; }
    public string? Truncation { get; set; }
    public int? TopLogprobs { get; set; }
    public JsonElement? Include { get; set; }
    public JsonElement? Conversation { get; set; }
    public JsonElement? Prompt { get; set; }
    public Dictionary<string, string>? Metadata { get; set; }
    public string? User { get; set; }

    /// <summary>As on chat completions (<see cref="ChatCompletionRequest.ServiceTier"/>): the response states <c>default</c>.</summary>
    public string? ServiceTier { get; set; }

    /// <summary>Ignorable as on chat completions; echoed in the response object, as OpenAI does.</summary>
    public string? PromptCacheKey { get; set; }

    /// <summary>Ignorable as on chat completions.</summary>
    public string? PromptCacheRetention { get; set; }

    /// <summary>Ignorable as on chat completions; echoed in the response object, as OpenAI does.</summary>
    public string? SafetyIdentifier { get; set; }

    /// <summary>Streaming options: <c>include_obfuscation</c> (padding OpenAI adds to events; none is added here).</summary>
    public ResponsesStreamOptions? StreamOptions { get; set; }

    /// <summary>A cap on built-in tool calls; refused by name (no hosted tools run here, and function calls are capped by <c>parallel_tool_calls</c>).</summary>
    public JsonElement? MaxToolCalls { get; set; }

    /// <summary>OpenAI's server-side compaction of long contexts; refused by name (this server does not compact).</summary>
    public JsonElement? ContextManagement { get; set; }

    /// <summary>A reasoning model's effort and summary; refused when set (no model here reasons apart from its answer).</summary>
    public ResponsesReasoning? Reasoning { get; set; }
}

/// <summary><c>stream_options</c> on Responses.</summary>
internal sealed class ResponsesStreamOptions
{
    public bool? IncludeObfuscation { get; set; }
}

/// <summary><c>reasoning</c>: OpenAI's reasoning models' settings.</summary>
internal sealed class ResponsesReasoning
{
    public string? Effort { get; set; }
    public string? Summary { get; set; }

    /// <summary>Deprecated spelling of <see cref="Summary"/>.</summary>
    public string? GenerateSummary { get; set; }

    /// <summary>Which earlier turns' reasoning the model sees (<c>auto</c>, <c>all_turns</c>, <c>current_turn</c>).</summary>
    public string? Context { get; set; }

    /// <summary>The reasoning mode (<c>standard</c>, <c>pro</c>).</summary>
    public string? Mode { get; set; }
}

/// <summary><c>text</c>: the output's format.</summary>
internal sealed class ResponsesText
{
    public ResponsesTextFormat? Format { get; set; }

    /// <summary>How long the answer should be; only OpenAI's default, medium, is what this server gives.</summary>
    public string? Verbosity { get; set; }
}

/// <summary><c>text.format</c>: <c>text</c>, <c>json_object</c>, or <c>json_schema</c> with its fields inline (not nested as in chat).</summary>
internal sealed class ResponsesTextFormat
{
    public string? Type { get; set; }
    public string? Name { get; set; }
    public string? Description { get; set; }
    public JsonElement? Schema { get; set; }
    public bool? Strict { get; set; }
}

/// <summary>
/// Translates a Responses request into the chat workload every other generation runs as: <c>instructions</c> and the
/// input items become chat turns, <c>text.format</c> the grammar. Each item type has one case here: a
/// <c>function_call</c> item is an assistant turn's tool call, a <c>function_call_output</c> item a tool turn. Function
/// <c>tools</c> are validated by <see cref="ChatTools"/> after reshaping them into chat's nested form.
/// </summary>
internal static class ResponsesTranslation
{
    private static readonly HashSet<string> Roles = ["user", "system", "developer", "assistant"];

    /// <summary>OpenAI's bounds on <c>metadata</c>: 16 pairs, keys up to 64 characters, values up to 512.</summary>
    private const int MaxMetadataPairs = 16, MaxMetadataKey = 64, MaxMetadataValue = 512;

    /// <summary>
    /// <c>metadata</c> within OpenAI's bounds: it is echoed in every response and kept with a stored one, so unbounded
    /// it was a way to store (and have echoed) megabytes outside any retention or size rule.
    /// </summary>
    public static void CheckMetadata(ResponsesRequest request)
    {
        RequestReader.RequireUser(request.User);
        RequestReader.RequireIdentifier(request.SafetyIdentifier, "safety_identifier");
        RequestReader.RequireIdentifier(request.PromptCacheKey, "prompt_cache_key");
        CheckMetadata(request.Metadata);
        RequestReader.RequireServiceTier(request.ServiceTier);
        RequestReader.RequirePromptCacheRetention(request.PromptCacheRetention);
        if (request.StreamOptions is not null && request.Stream != true)
        {
            throw OpenAIException.BadRequest("stream_options is only allowed when stream is true.", "stream_options", "invalid_value");
        }
    }

    /// <summary>OpenAI's bounds on a <c>metadata</c> object (Responses and chat completions).</summary>
    public static void CheckMetadata(Dictionary<string, string>? metadata)
    {
        if (metadata is null)
        {
            return;
        }

        if (metadata.Count > MaxMetadataPairs)
        {
            throw OpenAIException.BadRequest($"metadata may have at most {MaxMetadataPairs} pairs; got {metadata.Count}.", "metadata", "object_above_max_properties");
        }

        foreach (var (key, value) in metadata)
        {
            if (key.Length > MaxMetadataKey)
            {
                throw OpenAIException.BadRequest($"metadata keys may be at most {MaxMetadataKey} characters; '{RequestReader.Shorten(key)}' has {key.Length}.", "metadata", "string_above_max_length");
            }

            if (value is null)
            {
                // A null is a wrong type, not a long string: it was refused as string_above_max_length.
                throw OpenAIException.BadRequest($"metadata values are strings; the value of '{RequestReader.Shorten(key)}' is null.", $"metadata.{RequestReader.Shorten(key)}", "invalid_type");
            }

            if (value.Length > MaxMetadataValue)
            {
                throw OpenAIException.BadRequest($"metadata values are strings of at most {MaxMetadataValue} characters; the value of '{RequestReader.Shorten(key)}' is not.", $"metadata.{RequestReader.Shorten(key)}", "string_above_max_length");
            }
        }
    }

    /// <summary>Fields the stateless core does not implement; each is refused with a 400 naming it rather than ignored.</summary>
    public static void RefuseUnsupported(ResponsesRequest request)
    {
        if (request.Background == true)
        {
            throw OpenAIException.BadRequest("background responses are not supported: they need stored responses.", "background", "unsupported_parameter");
        }

        if (request.Truncation is not (null or "disabled"))
        {
            throw OpenAIException.BadRequest($"truncation '{RequestReader.Shorten(request.Truncation ?? "")}' is not supported; use 'disabled' (a prompt too long for the context is refused).", "truncation", "unsupported_parameter");
        }

        // OpenAI's bounds first, as chat completions checks them: -1 was served as if absent.
        if (request.TopLogprobs is < 0 or > 20)
        {
            throw OpenAIException.BadRequest("top_logprobs must be between 0 and 20.", "top_logprobs", "invalid_value");
        }

        if (request.TopLogprobs is > 0)
        {
            throw OpenAIException.BadRequest("top_logprobs is not supported on /v1/responses yet; use /v1/chat/completions for logprobs.", "top_logprobs", "unsupported_parameter");
        }

        CheckInclude(request.Include);

        if (request.Conversation is { ValueKind: not JsonValueKind.Null })
        {
            throw OpenAIException.BadRequest("conversation needs stored conversations, which this server does not keep; send the whole input instead.", "conversation", "unsupported_parameter");
        }

        if (request.Reasoning is { } reasoning && (reasoning.Effort ?? reasoning.Summary ?? reasoning.GenerateSummary ?? reasoning.Context ?? reasoning.Mode) is not null)
        {
            // OpenAI refuses these for a model that does not reason; ignored, a client asking for more effort or a
            // summary would take the plain answer for it (relays send chat without them too). context and mode are
            // OpenAI's too (they were 400 unknown_parameter, as if misspelt).
            var field = reasoning.Effort is not null ? "reasoning.effort"
                : reasoning.Summary is not null || reasoning.GenerateSummary is not null ? "reasoning.summary"
                : reasoning.Context is not null ? "reasoning.context"
                : "reasoning.mode";
            throw OpenAIException.BadRequest(
                $"{field} is not supported: the models here do not reason apart from their answer, so there is no reasoning effort, summary, context or mode to set; leave reasoning out.",
                field, "unsupported_parameter");
        }

        if (request.Text?.Verbosity is { } verbosity && verbosity != "medium")
        {
            throw OpenAIException.BadRequest(
                $"text.verbosity '{RequestReader.Shorten(verbosity)}' is not supported; only 'medium' (the default) is what this server gives.", "text.verbosity", "unsupported_value");
        }

        if (request.MaxToolCalls is { ValueKind: not JsonValueKind.Null })
        {
            throw OpenAIException.BadRequest(
                "max_tool_calls is not supported: no built-in tools run here; parallel_tool_calls: false allows one function call.", "max_tool_calls", "unsupported_parameter");
        }

        if (request.ContextManagement is { ValueKind: not JsonValueKind.Null })
        {
            throw OpenAIException.BadRequest(
                "context_management is not supported: this server does not compact contexts (a prompt too long for the context is refused).", "context_management", "unsupported_parameter");
        }

        if (request.Prompt is { ValueKind: not JsonValueKind.Null })
        {
            throw OpenAIException.BadRequest("prompt (stored prompt templates) is not supported; send instructions and input instead.", "prompt", "unsupported_parameter");
        }

        Range(request.Temperature, 0, 2, "temperature");
        // top_p 0 is OpenAI's smallest nucleus, the most likely token alone: greedy (SamplingOptions.IsGreedy).
        Range(request.TopP, 0, 1, "top_p");

        // OpenAI's Responses API refuses a limit below 16 (its chat and completions APIs take 1); a client that
        // passes here would be refused there.
        if (request.MaxOutputTokens < ResponsesRequest.MinOutputTokens)
        {
            throw OpenAIException.BadRequest(
                $"max_output_tokens must be at least {ResponsesRequest.MinOutputTokens}; got {request.MaxOutputTokens}.", "max_output_tokens", "invalid_value");
        }

        if (request.PreviousResponseId is { } previous && string.IsNullOrWhiteSpace(previous))
        {
            throw OpenAIException.BadRequest("previous_response_id must be the id of a stored response (resp_...); got an empty string. Leave it out to start a new conversation.",
                "previous_response_id", "invalid_value");
        }
    }

    /// <summary>
    /// <c>include</c> is an array of strings (OpenAI's type); any item asks for output this server does not have. A lone
    /// string (<c>"include": "reasoning.encrypted_content"</c>, a common slip) or a number was served as if absent.
    /// </summary>
    private static void CheckInclude(JsonElement? include)
    {
        if (include is not { ValueKind: not JsonValueKind.Null } value)
        {
            return;
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw OpenAIException.BadRequest("Invalid type for 'include': expected an array of strings.", "include", "invalid_type");
        }

        var i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String)
            {
                throw OpenAIException.BadRequest($"Invalid type for 'include[{i}]': expected a string.", $"include[{i}]", "invalid_type");
            }

            i++;
        }

        if (i > 0)
        {
            throw OpenAIException.BadRequest("include is not supported: this server has no extra output items to include.", "include", "unsupported_parameter");
        }
    }

    /// <summary>
    /// <c>instructions</c> first, as a system turn, then the conversation a <c>previous_response_id</c> continues
    /// (<paramref name="history"/>: earlier inputs and outputs, not earlier instructions), then the input items in order.
    /// </summary>
    public static List<ChatTurn> ToTurns(ResponsesRequest request, IReadOnlyList<ChatTurn>? history = null)
    {
        var turns = new List<ChatTurn>();
        if (!string.IsNullOrEmpty(request.Instructions))
        {
            turns.Add(new ChatTurn("system", request.Instructions));
        }

        turns.AddRange(history ?? []);

        switch (request.Input)
        {
            case null or { ValueKind: JsonValueKind.Null }:
                throw OpenAIException.BadRequest("You must provide an input parameter.", "input", "missing_required_parameter");
            case { ValueKind: JsonValueKind.String } text:
                turns.Add(new ChatTurn("user", text.GetString()!));
                break;
            case { ValueKind: JsonValueKind.Array } items:
                if (items.GetArrayLength() == 0)
                {
                    throw OpenAIException.BadRequest("input must not be an empty array.", "input", "invalid_value");
                }

                var i = 0;
                var calls = new InputCalls(turns);
                foreach (var item in items.EnumerateArray())
                {
                    AddItem(turns, calls, item, $"input[{i++}]");
                }

                break;
            default:
                throw OpenAIException.BadRequest("input must be a string or an array of input items.", "input", "invalid_type");
        }

        RequireCallOutputs(request, turns);
        return turns;
    }

    /// <summary>
    /// OpenAI: every function call, of the input or of the response continued, has its <c>function_call_output</c>
    /// later in the conversation. A call left unanswered was served, the model reading it as it stood.
    /// </summary>
    private static void RequireCallOutputs(ResponsesRequest request, List<ChatTurn> turns)
    {
        var answered = turns.Where(t => t.Role == "tool").Select(t => t.ToolCallId!).ToHashSet(StringComparer.Ordinal);
        var unanswered = turns.SelectMany(t => t.ToolCalls ?? []).FirstOrDefault(c => !answered.Contains(c.Id));
        if (unanswered is null)
        {
            return;
        }

        // Name the input item that made the call, or the stored response it came from.
        var param = "previous_response_id";
        if (request.Input is { ValueKind: JsonValueKind.Array } items)
        {
            var i = 0;
            foreach (var item in items.EnumerateArray())
            {
                if (item.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "function_call"
                    && item.TryGetProperty("call_id", out var id) && id.ValueKind == JsonValueKind.String && id.GetString() == unanswered.Id)
                {
                    param = $"input[{i}].call_id";
                    break;
                }

                i++;
            }
        }

        throw OpenAIException.BadRequest(
            $"No tool output found for function call {RequestReader.Shorten(unanswered.Id)}: send its function_call_output item in the input.", param, "invalid_value");
    }

    private static void AddItem(List<ChatTurn> turns, InputCalls calls, JsonElement item, string param)
    {
        if (item.ValueKind != JsonValueKind.Object)
        {
            throw OpenAIException.BadRequest($"{param} must be an input item object.", param, "invalid_type");
        }

        // An item without a type is an "easy input message" ({role, content}).
        var type = item.TryGetProperty("type", out var typeValue) ? typeValue.ValueKind == JsonValueKind.String ? typeValue.GetString()! : null : "message";
        switch (type)
        {
            case "message":
                turns.Add(ToMessageTurn(item, param));
                break;
            case "function_call":
                AddFunctionCall(turns, calls, item, param);
                break;
            case "function_call_output":
                turns.Add(ToToolTurn(calls, item, param));
                break;
            case null:
                throw OpenAIException.BadRequest($"{param}.type must be a string.", $"{param}.type", "invalid_type");
            default:
                throw OpenAIException.BadRequest(
                    $"{param}.type '{RequestReader.Shorten(type ?? "")}' is not a supported input item type; this server accepts 'message', 'function_call' and 'function_call_output' items.",
                    $"{param}.type", "invalid_value");
        }
    }

    /// <summary>
    /// A call the model made earlier: it joins the assistant turn just before it (the message and calls of one answer
    /// are separate items here, one chat message there), or starts an assistant turn.
    /// </summary>
    private static void AddFunctionCall(List<ChatTurn> turns, InputCalls calls, JsonElement item, string param)
    {
        var call = new ChatToolCall(RequiredString(item, "call_id", param), ChatTools.RequireHistoryName(RequiredString(item, "name", param), $"{param}.name"), RequiredString(item, "arguments", param));
        if (!calls.Made.Add(call.Id))
        {
            throw OpenAIException.BadRequest($"{param}.call_id '{RequestReader.Shorten(call.Id ?? "")}' is used by an earlier function_call item.", $"{param}.call_id", "invalid_value");
        }

        if (turns.Count > 0 && turns[^1] is { Role: "assistant" } previous)
        {
            // The calls of one turn grow in one list (a copy per item made 55,000 calls cost minutes of CPU).
            if (calls.OpenTurn != turns.Count - 1)
            {
                calls.OpenTurnCalls = [.. previous.ToolCalls ?? []];
                calls.OpenTurn = turns.Count - 1;
                turns[^1] = previous with { ToolCalls = calls.OpenTurnCalls };
            }

            calls.OpenTurnCalls!.Add(call);
            return;
        }

        calls.OpenTurnCalls = [call];
        calls.OpenTurn = turns.Count;
        turns.Add(new ChatTurn("assistant", "") { ToolCalls = calls.OpenTurnCalls });
    }

    /// <summary>
    /// The function calls of the conversation being read (the continued response's and the input's so far) and the
    /// item that answered each, looked up rather than searched for: a scan of the turns per item made an input of
    /// 55,000 calls and outputs cost minutes of CPU before anything was measured or billed.
    /// </summary>
    private sealed class InputCalls
    {
        public InputCalls(List<ChatTurn> history)
        {
            foreach (var turn in history)
            {
                foreach (var call in turn.ToolCalls ?? [])
                {
                    Made.Add(call.Id);
                }

                if (turn.ToolCallId is { } answered)
                {
                    AnsweredBy[answered] = "previous_response_id";
                }
            }
        }

        /// <summary>Call ids made so far.</summary>
        public HashSet<string> Made { get; } = new(StringComparer.Ordinal);

        /// <summary>Call id -> the item (or the continued response) whose output answered it.</summary>
        public Dictionary<string, string> AnsweredBy { get; } = new(StringComparer.Ordinal);

        /// <summary>The assistant turn whose calls this reading owns and appends to (-1: none).</summary>
        public int OpenTurn { get; set; } = -1;

        public List<ChatToolCall>? OpenTurnCalls { get; set; }
    }

    /// <summary>A function's result: it must answer a <c>function_call</c> item earlier in the input, as chat's tool messages must.</summary>
    private static ChatTurn ToToolTurn(InputCalls calls, JsonElement item, string param)
    {
        var callId = RequiredString(item, "call_id", param);
        if (!item.TryGetProperty("output", out var output) || output.ValueKind == JsonValueKind.Null)
        {
            throw OpenAIException.BadRequest($"Missing required parameter: '{param}.output'.", $"{param}.output", "missing_required_parameter");
        }

        var text = output.ValueKind switch
        {
            JsonValueKind.String => output.GetString()!,
            JsonValueKind.Array => ContentText(output, "user", $"{param}.output"),
            _ => throw OpenAIException.BadRequest($"Invalid type for '{param}.output': expected a string or an array of input_text parts.", $"{param}.output", "invalid_type"),
        };
        if (!calls.Made.Contains(callId))
        {
            throw OpenAIException.BadRequest(
                $"No tool call found for function call output with call_id '{RequestReader.Shorten(callId)}': a function_call_output item must answer a function_call item earlier in the input.",
                $"{param}.call_id", "invalid_value");
        }

        if (calls.AnsweredBy.TryGetValue(callId, out var first))
        {
            // As chat's duplicate tool messages (OpenAI's 400): two outputs for one call leave the model to guess, and
            // a relayed engine that speaks chat completions refuses them.
            throw OpenAIException.BadRequest(
                $"Duplicate function_call_output for call_id '{RequestReader.Shorten(callId)}', in {first} and {param}: each call takes one output.",
                $"{param}.call_id", "invalid_value");
        }

        calls.AnsweredBy[callId] = param;

        return new ChatTurn("tool", text) { ToolCallId = callId };
    }

    private static string RequiredString(JsonElement item, string property, string param)
    {
        if (!item.TryGetProperty(property, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            throw OpenAIException.BadRequest($"Missing required parameter: '{param}.{property}'.", $"{param}.{property}", "missing_required_parameter");
        }

        return value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw OpenAIException.BadRequest($"Invalid type for '{param}.{property}': expected a string.", $"{param}.{property}", "invalid_type");
    }

    /// <summary>
    /// <c>tools</c>, <c>tool_choice</c> and <c>parallel_tool_calls</c>: function tools only (hosted tools such as
    /// web_search need services this server does not run). Responses' flat tools (<c>{"type":"function","name":...}</c>)
    /// are reshaped into chat's nested form and validated by <see cref="ChatTools"/>; its refusals are renamed back
    /// (<c>tools[0].function.name</c> becomes <c>tools[0].name</c>).
    /// </summary>
    public static ChatTools? ReadTools(ResponsesRequest request) => ReadTools(request, out _, out _);

    /// <inheritdoc cref="ReadTools(ResponsesRequest)"/>
    /// <param name="request">The request.</param>
    /// <param name="chatTools">The tools in chat's nested form (null without tools), for an engine that speaks chat.</param>
    /// <param name="chatChoice">The tool choice in chat's form.</param>
    public static ChatTools? ReadTools(ResponsesRequest request, out JsonElement? chatTools, out JsonElement? chatChoice)
    {
        JsonElement? tools = request.Tools;
        if (request.Tools is { ValueKind: JsonValueKind.Array } array)
        {
            if (array.GetArrayLength() == 0)
            {
                // OpenAI accepts an empty tools array on /v1/responses: no tools.
                tools = null;
            }
            else
            {
                var nested = new JsonArray();
                var i = 0;
                foreach (var tool in array.EnumerateArray())
                {
                    nested.Add(NestedTool(tool, $"tools[{i++}]"));
                }

                tools = JsonSerializer.SerializeToElement(nested);
            }
        }

        var choice = request.ToolChoice;
        if (choice is { ValueKind: JsonValueKind.Object } named && named.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "function")
        {
            var function = new JsonObject();
            if (named.TryGetProperty("name", out var name))
            {
                function["name"] = JsonNode.Parse(name.GetRawText());
            }

            choice = JsonSerializer.SerializeToElement(new JsonObject { ["type"] = "function", ["function"] = function });
        }
        else if (choice is { ValueKind: JsonValueKind.Object } allowed && allowed.TryGetProperty("type", out var allowedType)
            && allowedType.ValueKind == JsonValueKind.String && allowedType.GetString() == "allowed_tools")
        {
            // Flat here ({"type":"allowed_tools","mode":...,"tools":[{"type":"function","name":...}]}), nested in chat.
            var nested = new JsonObject();
            if (allowed.TryGetProperty("mode", out var mode))
            {
                nested["mode"] = JsonNode.Parse(mode.GetRawText());
            }

            if (allowed.TryGetProperty("tools", out var allowedTools))
            {
                nested["tools"] = allowedTools.ValueKind != JsonValueKind.Array ? JsonNode.Parse(allowedTools.GetRawText())
                    : new JsonArray([.. allowedTools.EnumerateArray().Select(t => t.ValueKind != JsonValueKind.Object ? JsonNode.Parse(t.GetRawText())
                        : (JsonNode)new JsonObject
                        {
                            ["type"] = t.TryGetProperty("type", out var toolType) ? JsonNode.Parse(toolType.GetRawText()) : null,
                            ["function"] = t.TryGetProperty("name", out var toolName) ? new JsonObject { ["name"] = JsonNode.Parse(toolName.GetRawText()) } : new JsonObject(),
                        })]);
            }

            choice = JsonSerializer.SerializeToElement(new JsonObject { ["type"] = "allowed_tools", ["allowed_tools"] = nested });
        }

        chatTools = tools;
        chatChoice = choice;
        try
        {
            return ChatTools.Read(tools, choice, request.ParallelToolCalls, strictByDefault: true);
        }
        catch (OpenAIException ex) when (ex.Param?.Contains(".function", StringComparison.Ordinal) == true || ex.Param?.StartsWith("tool_choice.allowed_tools", StringComparison.Ordinal) == true)
        {
            static string Flat(string text) => text.Replace(".function.", ".", StringComparison.Ordinal).Replace("tool_choice.allowed_tools", "tool_choice", StringComparison.Ordinal);
            throw OpenAIException.BadRequest(Flat(ex.Message), Flat(ex.Param!), ex.Code);
        }
    }

    /// <summary>
    /// The chat-completions body that asks an external engine or a remote node for the same answer: the turns as
    /// messages (function calls as <c>tool_calls</c>, their outputs as <c>tool</c> messages), the tools in chat's
    /// form, <c>text.format</c> as <c>response_format</c>. The relay sets the output limit (<c>max_tokens</c>).
    /// </summary>
    public static JsonObject ToChatBody(ResponsesRequest request, IReadOnlyList<ChatTurn> turns, JsonElement? chatTools, JsonElement? chatChoice)
    {
        var messages = new JsonArray();
        foreach (var turn in turns)
        {
            var message = new JsonObject { ["role"] = turn.Role, ["content"] = turn.Content };
            if (turn.ToolCalls is { Count: > 0 } calls)
            {
                message["tool_calls"] = new JsonArray([.. calls.Select(c => (JsonNode)new JsonObject
                {
                    ["id"] = c.Id,
                    ["type"] = "function",
                    ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments },
                })]);
                if (turn.Content.Length == 0)
                {
                    message["content"] = null;
                }
            }

            if (turn.ToolCallId is { } callId)
            {
                message["tool_call_id"] = callId;
            }

            messages.Add(message);
        }

        var body = new JsonObject { ["model"] = request.Model, ["messages"] = messages };
        if (request.Temperature is { } temperature)
        {
            body["temperature"] = temperature;
        }

        // top_p 0 is sent as temperature 0 by the relay (ExternalEngineExecutor), as for chat and completions.
        if (request.TopP is { } topP)
        {
            body["top_p"] = topP;
        }

        if (request.MaxOutputTokens is { } max)
        {
            body["max_tokens"] = max;
        }

        if (request.Stream == true)
        {
            body["stream"] = true;
        }

        if (chatTools is { ValueKind: JsonValueKind.Array } tools)
        {
            body["tools"] = JsonNode.Parse(tools.GetRawText());
            if (chatChoice is { ValueKind: not JsonValueKind.Null } choice)
            {
                body["tool_choice"] = JsonNode.Parse(choice.GetRawText());
            }

            if (request.ParallelToolCalls is { } parallel)
            {
                body["parallel_tool_calls"] = parallel;
            }
        }

        switch (request.Text?.Format)
        {
            case { Type: "json_object" }:
                body["response_format"] = new JsonObject { ["type"] = "json_object" };
                break;
            case { Type: "json_schema" } format:
                var schema = new JsonObject { ["name"] = format.Name };
                if (format.Description is not null)
                {
                    schema["description"] = format.Description;
                }

                if (format.Schema is { } document)
                {
                    schema["schema"] = JsonNode.Parse(document.GetRawText());
                }

                if (format.Strict is { } strict)
                {
                    schema["strict"] = strict;
                }

                body["response_format"] = new JsonObject { ["type"] = "json_schema", ["json_schema"] = schema };
                break;
        }

        if (request.User is not null)
        {
            body["user"] = request.User;
        }

        return body;
    }

    private static JsonObject NestedTool(JsonElement tool, string at)
    {
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
            throw ChatTools.CustomToolsUnsupported($"{at}.type");
        }

        if (type.GetString() != "function")
        {
            throw OpenAIException.BadRequest(
                $"{at}.type '{RequestReader.Shorten(type.GetString() ?? "")}' is not supported: this server runs function tools only (hosted tools such as web_search, file_search, computer_use or mcp are not available).",
                $"{at}.type", "invalid_value");
        }

        var function = new JsonObject();
        foreach (var property in tool.EnumerateObject())
        {
            if (property.Name != "type")
            {
                function[property.Name] = JsonNode.Parse(property.Value.GetRawText());
            }
        }

        return new JsonObject { ["type"] = "function", ["function"] = function };
    }

    private static ChatTurn ToMessageTurn(JsonElement item, string param)
    {
        if (!item.TryGetProperty("role", out var roleValue) || roleValue.ValueKind == JsonValueKind.Null)
        {
            throw OpenAIException.BadRequest($"{param}.role is required.", $"{param}.role", "missing_required_parameter");
        }

        var role = roleValue.ValueKind == JsonValueKind.String ? roleValue.GetString()! : throw OpenAIException.BadRequest($"{param}.role must be a string.", $"{param}.role", "invalid_type");
        if (!Roles.Contains(role))
        {
            throw OpenAIException.BadRequest($"{param}.role '{RequestReader.Shorten(role ?? "")}' is not supported; use user, system, developer or assistant.", $"{param}.role", "invalid_value");
        }

        if (!item.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
        {
            throw OpenAIException.BadRequest($"{param}.content is required.", $"{param}.content", "missing_required_parameter");
        }

        if (content.ValueKind == JsonValueKind.Array && content.GetArrayLength() == 0)
        {
            // OpenAI's wording; an empty array was served as an empty turn.
            throw OpenAIException.BadRequest(
                $"Invalid '{param}.content': empty array. Expected an array with minimum length 1, but got an empty array instead.", $"{param}.content", "empty_array");
        }

        var text = content.ValueKind switch
        {
            JsonValueKind.String => content.GetString()!,
            JsonValueKind.Array => ContentText(content, role, $"{param}.content"),
            _ => throw OpenAIException.BadRequest($"{param}.content must be a string or an array of content parts.", $"{param}.content", "invalid_type"),
        };
        return new ChatTurn(role == "developer" ? "system" : role, text);
    }

    /// <summary>Text parts: <c>input_text</c> in any turn, <c>output_text</c> (and <c>refusal</c>) in assistant turns of the history.</summary>
    private static string ContentText(JsonElement parts, string role, string param)
    {
        var text = new StringBuilder();
        var j = 0;
        foreach (var part in parts.EnumerateArray())
        {
            var at = $"{param}[{j++}]";
            if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
            {
                throw OpenAIException.BadRequest($"{at} must be a content part with a string type.", at, "invalid_type");
            }

            var kind = type.GetString();
            var field = kind switch
            {
                "input_text" => "text",
                "output_text" when role == "assistant" => "text",
                "refusal" when role == "assistant" => "refusal",
                "input_image" or "input_file" or "input_audio" =>
                    throw OpenAIException.BadRequest($"{at} is an '{RequestReader.Shorten(kind ?? "")}' part; this model accepts text only.", $"{at}.type", "unsupported_content"),
                _ => throw OpenAIException.BadRequest(
                    $"{at}.type '{RequestReader.Shorten(kind ?? "")}' is not a content part type a {role} message can have; use input_text" + (role == "assistant" ? " or output_text." : "."), $"{at}.type", "invalid_value"),
            };
            if (!part.TryGetProperty(field, out var value) || value.ValueKind != JsonValueKind.String)
            {
                throw OpenAIException.BadRequest($"{at}.{field} must be a string.", $"{at}.{field}", "invalid_type");
            }

            MessageContentConverter.AppendPart(text, value.GetString()!);
        }

        return text.ToString();
    }

    /// <summary>The grammar <c>text.format</c> asks for (the chat compiler; its refusals name <c>text.format.schema</c>).</summary>
    public static Sovereign.Inference.Grammar.GbnfGrammar? GrammarFor(ResponsesTextFormat? format) =>
        format is null ? null : StructuredOutput.GrammarOfType(format.Type, "text.format", () =>
        {
            if (string.IsNullOrEmpty(format.Name))
            {
                throw OpenAIException.BadRequest("text.format.name is required when type is 'json_schema'.", "text.format.name", "missing_required_parameter");
            }

            // OpenAI's rule for the name; name and description are echoed in every response object and kept with a stored one.
            StructuredOutput.RequireSchemaName(format.Name, "text.format.name");
            StructuredOutput.RequireDescription(format.Description, "text.format.description");
            return StructuredOutput.CompileSchema(format.Schema, "text.format.schema");
        });

    private static void Range(float? value, float min, float max, string param)
    {
        if (value is { } v && (float.IsNaN(v) || v < min || v > max))
        {
            throw OpenAIException.BadRequest($"{param} must be between {min} and {max}; got {v}.", param, "invalid_value");
        }
    }
}
