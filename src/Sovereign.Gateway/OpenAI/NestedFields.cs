using System.Collections.Frozen;
using static Sovereign.Gateway.OpenAI.FieldShape;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// The fields OpenAI accepts inside a request's objects (its API reference and SDK types as of late 2026), so that a
/// misspelt <c>messages[0].contnet</c> or <c>tools[0].function.parmeters</c> is OpenAI's 400 naming it instead of
/// being served as if absent. What a client echoes back from an answer passes: an assistant message with
/// <c>refusal</c>, <c>annotations</c>, <c>audio</c> (the SDKs' own message objects), the <c>index</c> of a streamed
/// tool call, and the <c>reasoning_content</c>/<c>reasoning</c> a vLLM behind the gateway answers with (relayed as
/// sent). A JSON Schema (<c>parameters</c>, <c>schema</c>), <c>metadata</c> and annotations are data, never checked.
/// Variants this server refuses by their tag (an <c>image_url</c> part is checked, a <c>custom</c> tool is not) are
/// left to the endpoint, which names the tag.
/// </summary>
internal static class NestedFields
{
    /// <summary>OpenAI's explicit prompt-cache marker on a content part: <c>{"mode": "explicit"}</c>.</summary>
    private static readonly FieldShape CacheBreakpoint = Object("mode");

    /// <summary>An object with its tag alone (<c>{"type": "json_object"}</c>).</summary>
    private static readonly FieldShape TagOnly = Object(Array.Empty<string>());

    /// <summary>Chat content parts, by <c>type</c>.</summary>
    private static readonly FieldShape ChatPart = Tagged("type", null,
        ("text", Object(("text", null), ("prompt_cache_breakpoint", CacheBreakpoint))),
        ("image_url", Object(("image_url", Object("url", "detail")), ("prompt_cache_breakpoint", CacheBreakpoint))),
        ("input_audio", Object(("input_audio", Object("data", "format")), ("prompt_cache_breakpoint", CacheBreakpoint))),
        ("file", Object(("file", Object("file_data", "file_id", "filename")), ("prompt_cache_breakpoint", CacheBreakpoint))),
        ("refusal", Object("refusal")));

    /// <summary>An assistant message's earlier calls (<c>type</c> may be left out: function).</summary>
    private static readonly FieldShape HistoryToolCall = Tagged("type", "function",
        ("function", Object(("id", null), ("function", Object("name", "arguments")), ("index", null))));

    /// <summary>Chat messages, by <c>role</c>. <c>name</c> is taken on a tool message too (the chat template reads it; frameworks send it).</summary>
    private static readonly FieldShape ChatMessage = Tagged("role", null,
        ("system", Object(("content", ArrayOf(ChatPart)), ("name", null))),
        ("developer", Object(("content", ArrayOf(ChatPart)), ("name", null))),
        ("user", Object(("content", ArrayOf(ChatPart)), ("name", null))),
        ("assistant", Object(
            ("content", ArrayOf(ChatPart)), ("name", null), ("refusal", null), ("annotations", null), ("audio", Object("id")),
            ("tool_calls", ArrayOf(HistoryToolCall)), ("function_call", Object("name", "arguments")),
            ("reasoning_content", null), ("reasoning", null))),
        ("tool", Object(("content", ArrayOf(ChatPart)), ("tool_call_id", null), ("name", null))));

    /// <summary>Chat <c>tools</c>, by <c>type</c>.</summary>
    private static readonly FieldShape ChatTool = Tagged("type", null,
        ("function", Object(("function", Object("name", "description", "parameters", "strict")))));

    /// <summary>Chat <c>tool_choice</c> as an object (a string is not checked here).</summary>
    private static readonly FieldShape ChatToolChoice = Tagged("type", null,
        ("function", Object(("function", Object("name")))),
        ("allowed_tools", Object(("allowed_tools", Object("mode", "tools")))));

    /// <summary><c>response_format</c> on chat and completions.</summary>
    private static readonly FieldShape ResponseFormat = Tagged("type", null,
        ("text", TagOnly),
        ("json_object", TagOnly),
        ("json_schema", Object(("json_schema", Object("name", "description", "schema", "strict")))));

    /// <summary><c>stream_options</c> on chat and completions (no obfuscation is added here, so that one changes nothing).</summary>
    private static readonly FieldShape StreamOptions = Object("include_usage", "include_obfuscation");

    /// <summary>Responses content parts, by <c>type</c>.</summary>
    private static readonly FieldShape ResponsesPart = Tagged("type", null,
        ("input_text", Object(("text", null), ("prompt_cache_breakpoint", CacheBreakpoint))),
        ("output_text", Object("text", "annotations", "logprobs")),
        ("refusal", Object("refusal")),
        ("input_image", Object(("detail", null), ("file_id", null), ("image_url", null), ("prompt_cache_breakpoint", CacheBreakpoint))),
        ("input_file", Object(("detail", null), ("file_data", null), ("file_id", null), ("file_url", null), ("filename", null), ("prompt_cache_breakpoint", CacheBreakpoint))),
        ("input_audio", Object(("input_audio", Object("data", "format")))));

    /// <summary>
    /// Responses input items, by <c>type</c> (none: a message). A message is OpenAI's easy, input or output message
    /// (an answer's output items are sent back as input: <c>id</c>, <c>status</c>, <c>phase</c>).
    /// </summary>
    private static readonly FieldShape ResponsesItem = Tagged("type", "message",
        ("message", Object(("role", null), ("content", ArrayOf(ResponsesPart)), ("id", null), ("status", null), ("phase", null))),
        ("function_call", Object("call_id", "name", "arguments", "id", "status", "caller", "namespace")),
        ("function_call_output", Object(("call_id", null), ("output", ArrayOf(ResponsesPart)), ("id", null), ("status", null), ("caller", null), ("name", null), ("namespace", null))));

    /// <summary>Responses' flat function tools.</summary>
    private static readonly FieldShape ResponsesTool = Tagged("type", null,
        ("function", Object("name", "description", "parameters", "strict", "allowed_callers", "defer_loading", "output_schema")));

    /// <summary>Responses <c>tool_choice</c> as an object.</summary>
    private static readonly FieldShape ResponsesToolChoice = Tagged("type", null,
        ("function", Object("name")),
        ("allowed_tools", Object("mode", "tools")));

    /// <summary>Responses <c>text</c>: the format by its <c>type</c> (a JSON schema's fields inline).</summary>
    private static readonly FieldShape ResponsesText = Object(
        ("format", Tagged("type", null,
            ("text", TagOnly),
            ("json_object", TagOnly),
            ("json_schema", Object("name", "description", "schema", "strict")))),
        ("verbosity", null));

    private static readonly FrozenDictionary<Type, FrozenDictionary<string, FieldShape>> ByRequest = new Dictionary<Type, FrozenDictionary<string, FieldShape>>
    {
        [typeof(ChatCompletionRequest)] = new Dictionary<string, FieldShape>
        {
            ["messages"] = ArrayOf(ChatMessage),
            ["tools"] = ArrayOf(ChatTool),
            ["tool_choice"] = ChatToolChoice,
            ["response_format"] = ResponseFormat,
            ["stream_options"] = StreamOptions,
            ["prediction"] = Object(("type", null), ("content", ArrayOf(ChatPart))),
        }.ToFrozenDictionary(),
        [typeof(CompletionRequest)] = new Dictionary<string, FieldShape>
        {
            ["response_format"] = ResponseFormat,
            ["stream_options"] = StreamOptions,
        }.ToFrozenDictionary(),
        [typeof(ResponsesRequest)] = new Dictionary<string, FieldShape>
        {
            ["input"] = ArrayOf(ResponsesItem),
            ["tools"] = ArrayOf(ResponsesTool),
            ["tool_choice"] = ResponsesToolChoice,
            ["text"] = ResponsesText,
            ["stream_options"] = Object("include_obfuscation"),
            ["reasoning"] = Object("effort", "summary", "generate_summary", "context", "mode"),
        }.ToFrozenDictionary(),
        [typeof(TokenizeRequest)] = new Dictionary<string, FieldShape>
        {
            ["messages"] = ArrayOf(ChatMessage),
        }.ToFrozenDictionary(),
    }.ToFrozenDictionary();

    /// <summary>The shapes of a request type's nested fields, by top-level name; a field not listed is not checked inside.</summary>
    public static IReadOnlyDictionary<string, FieldShape> Of(Type request) =>
        ByRequest.TryGetValue(request, out var fields) ? fields : FrozenDictionary<string, FieldShape>.Empty;
}
