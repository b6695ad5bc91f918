using System.Text.Json.Serialization;

namespace Sovereign.Gateway.OpenAI;

/// <summary>OpenAI's error envelope: <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
internal sealed record OpenAIErrorEnvelope([property: JsonPropertyName("error")] OpenAIError Error);

/// <summary>The error object inside the envelope.</summary>
internal sealed record OpenAIError(
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("param")] string? Param,
    [property: JsonPropertyName("code")] string? Code);

/// <summary>
/// A request that ends in an OpenAI-style error. Thrown anywhere in request handling and turned into the response by
/// <see cref="OpenAIErrorResults"/>; the status tells SDKs whether to retry (they retry 429 and 5xx only).
/// </summary>
internal sealed class OpenAIException(int status, string message, string type, string? param = null, string? code = null, TimeSpan? retryAfter = null)
    : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;
    public TimeSpan? RetryAfter { get; } = retryAfter;

    /// <summary>
    /// What the log writes as the parameter, when <see cref="Param"/> is the client's own text from the URL (an unknown
    /// query parameter's name may be a secret: <c>?sk-...</c>); the log never carries the query string.
    /// </summary>
    public string? LoggedParam { get; init; }

    /// <summary>
    /// Retrying cannot succeed (a request larger than a whole limit, a budget spent): sent as <c>x-should-retry: false</c>,
    /// which OpenAI's Python and Node SDKs obey instead of retrying their 429s.
    /// </summary>
    public bool Final { get; init; }

    public OpenAIError ToError() => new(Message, Type, Param, Code);

    public static OpenAIException BadRequest(string message, string? param = null, string? code = null) =>
        new(StatusCodes.Status400BadRequest, message, "invalid_request_error", param, code);

    /// <summary>
    /// A model no lookup found: a 404, or the 400 naming the rule when the id holds an invisible character, which no
    /// model id may (every lookup of a request's <c>model</c> ends here when nothing matches).
    /// </summary>
    public static OpenAIException ModelNotFound(string model) => RequestReader.FirstInvisible(model) is { } invisible
        ? RequestReader.InvisibleInModelId(model, invisible, "model")
        : new(StatusCodes.Status404NotFound, $"The model '{RequestReader.Shorten(model ?? "")}' does not exist or you do not have access to it. GET /v1/models lists the models you can use.", "invalid_request_error", "model", "model_not_found");

    /// <summary>A missing, unknown or revoked key: OpenAI's own 401 is typed <c>invalid_request_error</c> with code <c>invalid_api_key</c>.</summary>
    public static OpenAIException Unauthorized(string message) =>
        new(StatusCodes.Status401Unauthorized, message, "invalid_request_error", null, "invalid_api_key");

    public static OpenAIException TooLarge(long limit) =>
        new(StatusCodes.Status413PayloadTooLarge, $"The request body is larger than the limit of {limit} bytes.", "invalid_request_error", null, "request_too_large");

    public static OpenAIException Overloaded(string message) =>
        new(StatusCodes.Status503ServiceUnavailable, message, "server_error", null, "server_overloaded", TimeSpan.FromSeconds(1));
}
