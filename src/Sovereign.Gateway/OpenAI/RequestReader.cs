using System.Text.Json;
using Sovereign.Gateway.Hosting;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.OpenAI;

/// <summary>Reads, parses and validates OpenAI request bodies, turning every client mistake into a precise 400.</summary>
internal static class RequestReader
{
    /// <summary>The raw body of the request, kept for forwarding to an upstream engine.</summary>
    public static ReadOnlyMemory<byte> RawBody(HttpContext context) =>
        context.Items.TryGetValue(typeof(RequestReader), out var raw) && raw is ReadOnlyMemory<byte> bytes ? bytes : ReadOnlyMemory<byte>.Empty;

    public static async Task<T> ReadAsync<T>(HttpContext context)
        where T : class
    {
        // Buffer the body (Kestrel enforces the size limit while reading) so it can be validated here and forwarded as is.
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        var bytes = new ReadOnlyMemory<byte>(buffer.GetBuffer(), 0, (int)buffer.Length);
        context.Items[typeof(RequestReader)] = bytes;
        T? body;
        try
        {
            body = bytes.Length == 0 ? throw new JsonException("The request body is empty.") : JsonSerializer.Deserialize<T>(bytes.Span, OpenAIJson.Options);
        }
        catch (JsonException ex)
        {
            var param = ex.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : null;
            throw param is null
                ? OpenAIException.BadRequest("We could not parse the JSON body of your request: " + FirstSentence(ex.Message))
                : OpenAIException.BadRequest($"Invalid type or value for '{param}'.", param, "invalid_type");
        }

        return body ?? throw OpenAIException.BadRequest("The request body must be a JSON object.");
    }

    /// <summary>Validates the shared sampling fields against OpenAI's ranges and the server's limits.</summary>
    public static (SamplingOptions Sampling, int? MaxTokens, IReadOnlyList<string> Stop, int N) ValidateSampling(SamplingRequest request, int? maxTokens, string maxTokensParam, LimitsOptions limits)
    {
        Range(request.Temperature, 0, 2, "temperature");
        Range(request.TopP, 0, 1, "top_p");
        if (request.TopP is 0)
        {
            throw OpenAIException.BadRequest("top_p must be greater than 0.", "top_p", "invalid_value");
        }

        Range(request.MinP, 0, 1, "min_p");
        Range(request.PresencePenalty, -2, 2, "presence_penalty");
        Range(request.FrequencyPenalty, -2, 2, "frequency_penalty");
        if (request.TopK is < 0)
        {
            throw OpenAIException.BadRequest("top_k must be 0 (disabled) or positive.", "top_k", "invalid_value");
        }

        if (maxTokens is < 1)
        {
            throw OpenAIException.BadRequest($"{maxTokensParam} must be at least 1.", maxTokensParam, "invalid_value");
        }

        if (limits.MaxOutputTokens > 0 && maxTokens > limits.MaxOutputTokens)
        {
            throw OpenAIException.BadRequest(
                $"{maxTokensParam} is {maxTokens}, above this server's limit of {limits.MaxOutputTokens}.", maxTokensParam, "invalid_value");
        }

        var n = request.N ?? 1;
        if (n < 1 || n > limits.MaxChoices)
        {
            throw OpenAIException.BadRequest($"n must be between 1 and {limits.MaxChoices}.", "n", "invalid_value");
        }

        var stop = request.Stop ?? [];
        if (stop.Count > limits.MaxStopSequences)
        {
            throw OpenAIException.BadRequest($"stop may have at most {limits.MaxStopSequences} sequences.", "stop", "invalid_value");
        }

        if (stop.Any(s => s.Length == 0))
        {
            throw OpenAIException.BadRequest("stop sequences must not be empty.", "stop", "invalid_value");
        }

        if (request.StreamOptions is not null && request.Stream != true)
        {
            throw OpenAIException.BadRequest("stream_options is only allowed when stream is true.", "stream_options", "invalid_value");
        }

        var sampling = new SamplingOptions
        {
            Temperature = request.Temperature ?? 1f,
            TopP = request.TopP ?? 1f,
            TopK = request.TopK ?? 0,
            MinP = request.MinP ?? 0f,
            PresencePenalty = request.PresencePenalty ?? 0f,
            FrequencyPenalty = request.FrequencyPenalty ?? 0f,
            Seed = request.Seed,
        };

        // Without an explicit limit the server cap applies, still bounded by the context at submission.
        var resolvedMax = maxTokens ?? (limits.MaxOutputTokens > 0 ? limits.MaxOutputTokens : null);
        return (sampling, resolvedMax, stop, n);
    }

    /// <summary>Clamps a default (not client-chosen) output limit to what the context leaves.</summary>
    public static int? ClampDefault(int? requested, int? resolved, int promptTokens, int contextLength) =>
        requested is null && resolved is { } max ? Math.Max(1, Math.Min(max, contextLength - promptTokens)) : resolved;

    private static void Range(float? value, float min, float max, string param)
    {
        if (value is { } v && (float.IsNaN(v) || v < min || v > max))
        {
            throw OpenAIException.BadRequest($"{param} must be between {min} and {max}; got {v}.", param, "invalid_value");
        }
    }

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }
}
