using System.Buffers;
using System.Text.Json;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.Routing;

/// <summary>
/// Turns an engine's error answer into OpenAI's error object, whatever the engine's dialect: OpenAI's own
/// (<c>{"error": {...}}</c>, also Ollama's and llama-server's, whose <c>code</c> is a number), vLLM's older top-level
/// form (<c>{"object": "error", "message": ...}</c>), <c>{"error": "text"}</c> and FastAPI's <c>{"detail": ...}</c>.
/// Anything else (an HTML page from a proxy, plain text) is not relayed: the client gets a message naming the status.
/// </summary>
internal static class UpstreamErrors
{
    /// <summary>An error body is read up to this size; an engine's error message fits many times over.</summary>
    public const int MaxErrorBytes = 64 * 1024;

    /// <summary>
    /// The error the client gets for an engine's non-success answer. A 4xx keeps its status, except the engine refusing
    /// the gateway's own credentials (401, 403, 407): that is not the client's key, so it is a 502 like every 5xx but a
    /// 503 (kept, with its code and Retry-After: a cluster node's own refusal); and a 404, the engine not serving the
    /// registered model, which is the operator's to mend (502).
    /// </summary>
    public static async Task<OpenAIException> ToOpenAIAsync(HttpResponseMessage response, CancellationToken aborted)
    {
        var retryAfter = response.Headers.RetryAfter?.Delta ?? (response.Headers.RetryAfter?.Date is { } at ? at - DateTimeOffset.UtcNow : null);
        return From((int)response.StatusCode, await ReadAsync(response, aborted), retryAfter);
    }

    /// <summary>
    /// The error an engine sent inside a 200 event stream, as OpenAI's error object: llama-server writes its error
    /// object on an <c>error:</c> line (<c>{"code":400,"message":...,"type":...}</c>), vLLM a <c>data:</c> line holding
    /// <c>{"error": {...}}</c>. Both name the status as <c>code</c>; it is treated as an error answer's status (a 4xx kept,
    /// anything else a 502), so a request the engine refuses is the client's 4xx whether it streamed or not.
    /// </summary>
    public static OpenAIException FromStreamEvent(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement;
            var error = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("error", out var inner) && inner.ValueKind == JsonValueKind.Object ? inner : root;
            if (error.ValueKind == JsonValueKind.Object)
            {
                var status = error.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.Number && code.TryGetInt32(out var number) && number is >= 400 and <= 599
                    ? number
                    : StatusCodes.Status502BadGateway;
                return From(status, (Text(error, "message"), Text(error, "type"), Text(error, "param"), Text(error, "code")), null);
            }
        }
        catch (JsonException)
        {
            // Not described: said below.
        }

        return From(StatusCodes.Status502BadGateway, ("The upstream engine ended its stream with an error it did not describe.", null, null, null), null);
    }

    /// <summary>The client's error for an engine's error status and what its body said (nulls where it said nothing).</summary>
    private static OpenAIException From(int upstreamStatus, (string? Message, string? Type, string? Param, string? Code) said, TimeSpan? retryAfter)
    {
        var message = said.Message;

        // What an engine names its error by reaches the operator: the log names the type, code and param (4001, 4002),
        // the refusal summary counts per code (4170), and the usage ledger and the audit log may record the code as the
        // request's refusal code. A type and a code are identifiers and a param is a field's path, so one that is not (a
        // line break that forges a log line, an ESC sequence for the operator's terminal, kilobytes) is dropped, and the
        // client gets this gateway's own instead. The message is the client's to read, and is never logged.
        var (type, param, code) = (Identifier(said.Type), FieldPath(said.Param), Identifier(said.Code));
        if (upstreamStatus is StatusCodes.Status401Unauthorized or StatusCodes.Status403Forbidden or StatusCodes.Status407ProxyAuthenticationRequired)
        {
            return new OpenAIException(StatusCodes.Status502BadGateway,
                $"The upstream engine refused the gateway's credentials ({upstreamStatus}); the operator must check the node's upstream key.",
                "server_error", null, "upstream_auth_failed");
        }

        if (upstreamStatus == StatusCodes.Status404NotFound)
        {
            // The client asked for a model this gateway lists: the engine not knowing it (the model's upstream name, or
            // the base URL) is the registration's fault. Its 404 would read as the client's "model not found" (SDKs stop),
            // and its message names the engine's own model name.
            return new OpenAIException(StatusCodes.Status502BadGateway,
                "The upstream engine does not serve this model at its registered address (404); the operator must check the node's base URL and the model's upstream name.",
                "server_error", null, "upstream_model_not_found");
        }

        if (upstreamStatus >= 500 && IsClientsMistake(message, type, code))
        {
            // The engine refused the request itself (it ran nothing): the client's 400 with the engine's words, which
            // SDKs do not retry; a 502 was retried as the engine's failure and pointed the operator at a healthy engine.
            return new OpenAIException(StatusCodes.Status400BadRequest, message!, "invalid_request_error", param, "upstream_invalid_request");
        }

        // llama-server's and vLLM's numeric code is the HTTP status they answered, not an error code: a client told "500"
        // in a 502 (SDKs expose it) learnt nothing stable, so it gets this gateway's upstream_error.
        if (upstreamStatus >= 500 && int.TryParse(code, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _))
        {
            code = null;
        }

        // A 503 took no work and may be tried again. One reaches here from a cluster node, another Sovereign whose 503 is
        // its own governed refusal (its audit log or database cannot record the request, its queue is full; never failed
        // over): it keeps its status, code and Retry-After, as the same refusal at this gateway would. It was a 502.
        var status = upstreamStatus == StatusCodes.Status503ServiceUnavailable ? upstreamStatus
            : upstreamStatus >= 500 ? StatusCodes.Status502BadGateway : upstreamStatus;
        return new OpenAIException(
            status,
            message ?? $"The upstream engine answered {upstreamStatus} without an error message.",
            type ?? (status >= 500 ? "server_error" : status == StatusCodes.Status429TooManyRequests ? "requests" : "invalid_request_error"),
            param,
            code ?? (status >= 500 ? "upstream_error" : null),
            retryAfter is { } wait && wait > TimeSpan.Zero ? wait : null);
    }

    /// <summary>
    /// What llama-server says, in its 500s, about a request it could not take: its handler wrapper answers 400 only for
    /// <c>std::invalid_argument</c>, so the checks that throw <c>std::runtime_error</c> (parameters, chat messages, the
    /// chat template's <c>raise_exception</c>, a grammar or JSON schema it cannot use, an input over its batch) and
    /// nlohmann's JSON exceptions (a field of the wrong type) reach the client as <c>server_error</c> 500s.
    /// </summary>
    private static readonly string[] LlamaServerRequestRefusals =
    [
        "[json.exception.",
        "Unsupported param: ",
        "Only one completion choice is allowed",
        "tools param requires --jinja flag",
        "Cannot use both json_schema and grammar",
        "top_logprobs requires logprobs",
        "\"prompt\" is required",
        "\"prompt\" must not be empty",
        "\"json_schema\": ",
        "invalid adapter id",
        "Error: repeat_last_n must be",
        "Error: dry_penalty_last_n must be",
        "Error: dry_sequence_breakers must be",
        "Error: 'lora' must be",
        "Only no echo is supported",
        "JSON schema conversion failed",
        "Failed to parse grammar",
        "failed to parse grammar",
        "Either \"json_schema\" or \"grammar\" can be specified",
        "response_format type must be one of",
        "Cannot use tools with stream",
        "Cannot use custom grammar constraints with tools",
        "Cannot have 2 or more assistant",
        "Assistant response prefill is incompatible",
        "Invalid tool_choice",
        "Missing 'role'",
        "Missing 'content'",
        "Expected 'content'",
        "Expected 'messages'",
        "\"prompt\" must be",
        "is not supported - hint:",
        "Conversation roles must alternate",
        "input is too large to process",
        "Input prompt is too big compared to KV size",
        "exceeds the available context size",
    ];

    /// <summary>
    /// An engine's 5xx that is the client's mistake, read from the error body's shape: the body's own status says 4xx
    /// (llama-server and vLLM carry it as <c>code</c>), its type is a client error's (OpenAI's and llama-server's
    /// <c>invalid_request_error</c>, vLLM's <c>BadRequestError</c>, llama-server's <c>exceed_context_size_error</c>), or it
    /// is llama-server's <c>server_error</c> with one of <see cref="LlamaServerRequestRefusals"/>. Anything else
    /// (a failed decode, out of memory, no message at all) stays the engine's failure.
    /// </summary>
    private static bool IsClientsMistake(string? message, string? type, string? code)
    {
        if (string.IsNullOrEmpty(message))
        {
            return false;
        }

        if (int.TryParse(code, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var said) && said is >= 400 and < 500
            && said is not (StatusCodes.Status401Unauthorized or StatusCodes.Status403Forbidden or StatusCodes.Status404NotFound or StatusCodes.Status407ProxyAuthenticationRequired or StatusCodes.Status429TooManyRequests))
        {
            return true;
        }

        if (type is "invalid_request_error" or "BadRequestError" or "exceed_context_size_error")
        {
            return true;
        }

        return type is null or "server_error" && LlamaServerRequestRefusals.Any(refusal => message.Contains(refusal, StringComparison.Ordinal));
    }

    /// <summary>Reads up to <see cref="MaxErrorBytes"/> of the body into pooled memory and parses it there.</summary>
    private static async Task<(string? Message, string? Type, string? Param, string? Code)> ReadAsync(HttpResponseMessage response, CancellationToken aborted)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(MaxErrorBytes);
        try
        {
            await using var body = await response.Content.ReadAsStreamAsync(aborted);
            var filled = 0;
            int read;
            while (filled < MaxErrorBytes && (read = await body.ReadAsync(buffer.AsMemory(filled, MaxErrorBytes - filled), aborted)) > 0)
            {
                filled += read;
            }

            return Parse(buffer.AsMemory(0, filled));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Message, type, param and code from the dialects above; nulls where the body does not say.</summary>
    internal static (string? Message, string? Type, string? Param, string? Code) Parse(ReadOnlyMemory<byte> body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return default;
            }

            if (root.TryGetProperty("error", out var error))
            {
                return error.ValueKind switch
                {
                    JsonValueKind.Object => (Text(error, "message"), Text(error, "type"), Text(error, "param"), Text(error, "code")),
                    JsonValueKind.String => (error.GetString(), null, null, null),
                    _ => default,
                };
            }

            if (Text(root, "object") == "error")
            {
                return (Text(root, "message"), Text(root, "type"), Text(root, "param"), Text(root, "code"));
            }

            return (Text(root, "detail"), null, null, null);
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException or InvalidOperationException)
        {
            return default;
        }
    }

    /// <summary>The longest error type or code taken from an engine (OpenAI's longest codes are about 40 characters).</summary>
    internal const int MaxIdentifierLength = 64;

    /// <summary>The longest param taken from an engine: a field's path, as <see cref="RequestReader.Shorten"/> bounds a client's.</summary>
    internal const int MaxParamLength = 256;

    /// <summary><paramref name="value"/> when it is an identifier (letters, digits, <c>_ - . :</c>, at most <see cref="MaxIdentifierLength"/>); else null.</summary>
    internal static string? Identifier(string? value) =>
        value is { Length: > 0 and <= MaxIdentifierLength } && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or ':') ? value : null;

    /// <summary><paramref name="value"/> when it can be a field's path (at most <see cref="MaxParamLength"/>, nothing that acts on a terminal); else null.</summary>
    internal static string? FieldPath(string? value) =>
        value is { Length: > 0 and <= MaxParamLength } && !value.Any(Residency.DisplayText.Acts) ? value : null;

    /// <summary>A string, or a number written as one (llama-server's <c>code</c> is the status number); else null.</summary>
    private static string? Text(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out var value)
            ? value.ValueKind switch
            {
                JsonValueKind.String => value.GetString() is { Length: > 0 } text ? text : null,
                JsonValueKind.Number => value.GetRawText(),
                _ => null,
            }
            : null;
}
