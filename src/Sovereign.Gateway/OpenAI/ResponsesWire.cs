using System.Text.Json.Serialization;

namespace Sovereign.Gateway.OpenAI;

/// <summary>A Responses API <c>response</c> object, as OpenAI writes it (every field present, null where unset).</summary>
internal sealed record ResponseObject
{
    public required string Id { get; init; }
    public string Object { get; init; } = "response";
    public required long CreatedAt { get; init; }
    public required string Status { get; init; }
    public object? Error { get; init; }
    public IncompleteDetails? IncompleteDetails { get; init; }
    public string? Instructions { get; init; }
    public int? MaxOutputTokens { get; init; }
    public required string Model { get; init; }
    /// <summary><see cref="ResponseMessageItem"/>s and <see cref="FunctionCallItem"/>s, in generation order.</summary>
    public required IReadOnlyList<object> Output { get; init; }
    public bool ParallelToolCalls { get; init; } = true;
    public string? PreviousResponseId { get; init; }
    public ReasoningSettings Reasoning { get; init; } = new(null, null);
    public bool Store { get; init; }
    public float Temperature { get; init; } = 1f;
    public required TextSettings Text { get; init; }
    public object ToolChoice { get; init; } = "auto";
    public IReadOnlyList<object> Tools { get; init; } = [];
    public float TopP { get; init; } = 1f;
    public string Truncation { get; init; } = "disabled";
    public ResponseUsage? Usage { get; init; }
    public string? User { get; init; }
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    /// <summary>The tier that served the request, as OpenAI answers it: this server has one, <c>default</c>, whatever was asked.</summary>
    public string ServiceTier { get; init; } = ChatCompletionChunk.DefaultTier;

    /// <summary>The request's <c>safety_identifier</c>, echoed as OpenAI does (this server uses it for nothing).</summary>
    public string? SafetyIdentifier { get; init; }

    /// <summary>The request's <c>prompt_cache_key</c>, echoed as OpenAI does (the prefix cache is kept per tenant by itself).</summary>
    public string? PromptCacheKey { get; init; }
}

internal sealed record IncompleteDetails(string Reason);

internal sealed record ReasoningSettings(string? Effort, string? Summary);

/// <summary><c>text</c> echoed back: the format as requested (<c>{"type":"text"}</c> by default).</summary>
internal sealed record TextSettings(object Format);

/// <summary>An assistant <c>message</c> output item.</summary>
internal sealed record ResponseMessageItem(string Id, string Status, IReadOnlyList<OutputText> Content)
{
    public string Type => "message";

    public string Role => "assistant";
}

/// <summary>A <c>function_call</c> output item: a call the model made, for the client to run and answer with a <c>function_call_output</c> item.</summary>
internal sealed record FunctionCallItem(string Id, string CallId, string Name, string Arguments, string Status)
{
    public string Type => "function_call";
}

/// <summary>A message among a stored response's input items (<c>GET /v1/responses/{id}/input_items</c>).</summary>
internal sealed record InputMessageItem(string Id, string Role, IReadOnlyList<object> Content, string Status)
{
    public string Type => "message";
}

/// <summary>An <c>input_text</c> content part.</summary>
internal sealed record InputText(string Text)
{
    public string Type => "input_text";
}

/// <summary>A tool's answer among a stored response's input items.</summary>
internal sealed record FunctionCallOutputItem(string Id, string CallId, string Output, string Status)
{
    public string Type => "function_call_output";
}

/// <summary>An <c>output_text</c> content part.</summary>
internal sealed record OutputText(string Text)
{
    public string Type => "output_text";

    public IReadOnlyList<object> Annotations { get; init; } = [];

    public IReadOnlyList<object> Logprobs { get; init; } = [];
}

internal sealed record ResponseUsage(
    int InputTokens,
    InputTokensDetails InputTokensDetails,
    int OutputTokens,
    OutputTokensDetails OutputTokensDetails,
    int TotalTokens);

internal sealed record InputTokensDetails(int CachedTokens);

internal sealed record OutputTokensDetails(int ReasoningTokens);

/// <summary>The streamed events, each with its <c>type</c> and <c>sequence_number</c>.</summary>
internal abstract record ResponseEvent
{
    public abstract string Type { get; }

    public int SequenceNumber { get; set; }
}

/// <summary><c>response.created</c>, <c>response.in_progress</c>, <c>response.completed</c>, <c>response.incomplete</c>.</summary>
internal sealed record ResponseLifecycleEvent(
    [property: JsonIgnore] string EventType,
    ResponseObject Response) : ResponseEvent
{
    public override string Type => EventType;
}

/// <summary><c>response.output_item.added</c> and <c>.done</c>.</summary>
internal sealed record OutputItemEvent([property: JsonIgnore] string EventType, int OutputIndex, object Item) : ResponseEvent
{
    public override string Type => EventType;
}

/// <summary><c>response.content_part.added</c> and <c>.done</c>.</summary>
internal sealed record ContentPartEvent([property: JsonIgnore] string EventType, string ItemId, int OutputIndex, int ContentIndex, OutputText Part) : ResponseEvent
{
    public override string Type => EventType;
}

/// <summary><c>response.output_text.delta</c>.</summary>
internal sealed record OutputTextDeltaEvent(string ItemId, int OutputIndex, int ContentIndex, string Delta) : ResponseEvent
{
    public override string Type => "response.output_text.delta";

    public IReadOnlyList<object> Logprobs { get; init; } = [];
}

/// <summary><c>response.output_text.done</c>.</summary>
internal sealed record OutputTextDoneEvent(string ItemId, int OutputIndex, int ContentIndex, string Text) : ResponseEvent
{
    public override string Type => "response.output_text.done";

    public IReadOnlyList<object> Logprobs { get; init; } = [];
}

/// <summary><c>response.function_call_arguments.delta</c>: a fragment of a call's arguments.</summary>
internal sealed record FunctionCallArgumentsDeltaEvent(string ItemId, int OutputIndex, string Delta) : ResponseEvent
{
    public override string Type => "response.function_call_arguments.delta";
}

/// <summary><c>response.function_call_arguments.done</c>: a call's whole arguments.</summary>
internal sealed record FunctionCallArgumentsDoneEvent(string ItemId, int OutputIndex, string Arguments) : ResponseEvent
{
    public override string Type => "response.function_call_arguments.done";
}

/// <summary>
/// A Responses stream's next <c>sequence_number</c>, kept with the request so that an event written outside the endpoint
/// (the error event of a stream the server's stop cut, <see cref="Hosting.ShutdownCut"/>) continues the numbering.
/// </summary>
internal static class ResponsesSequence
{
    private static readonly object Key = new();

    /// <summary>Starts the numbering at 0.</summary>
    public static System.Runtime.CompilerServices.StrongBox<int> Start(HttpContext context)
    {
        var sequence = new System.Runtime.CompilerServices.StrongBox<int>(0);
        context.Items[Key] = sequence;
        return sequence;
    }

    /// <summary>Takes the next number (0 when the stream never numbered one).</summary>
    public static int Next(HttpContext context) =>
        context.Items.TryGetValue(Key, out var held) && held is System.Runtime.CompilerServices.StrongBox<int> sequence ? sequence.Value++ : 0;
}

/// <summary><c>error</c>: the stream failed after it started.</summary>
internal sealed record ResponseErrorEvent(string? Code, string Message, string? Param) : ResponseEvent
{
    public override string Type => "error";
}
