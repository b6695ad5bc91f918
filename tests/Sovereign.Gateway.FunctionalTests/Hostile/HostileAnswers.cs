using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>What both fuzzers (<see cref="HostileRequestFuzzTests"/>, <see cref="HostileSurfaceFuzzTests"/>) require of an answer, and how they show a case.</summary>
internal static class HostileAnswers
{
    /// <summary>The error types the server's answers may carry (OpenAI's, and its 429s' <c>requests</c> / <c>tokens</c>).</summary>
    private static readonly HashSet<string> ErrorTypes = new(StringComparer.Ordinal)
    {
        "invalid_request_error", "authentication_error", "permission_error", "not_found_error", "rate_limit_error", "insufficient_quota",
        "requests", "tokens", "conflict_error",
    };

    /// <summary>Null when the body is OpenAI's error object: a message, a known type, a param, and a code naming the rule.</summary>
    public static string? ErrorObjectProblem(RawResponse response)
    {
        try
        {
            using var document = JsonDocument.Parse(response.Body);
            if (!document.RootElement.TryGetProperty("error", out var error) || error.ValueKind != JsonValueKind.Object)
            {
                return $"{response.Status} without an error object: {Shorten(response.Text)}";
            }

            if (!error.TryGetProperty("message", out var message) || message.ValueKind != JsonValueKind.String || message.GetString()!.Length == 0
                || !error.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String
                || !(ErrorTypes.Contains(type.GetString()!) || (response.Status >= 500 && type.GetString() == "server_error"))
                || !error.TryGetProperty("param", out var param) || param.ValueKind is not (JsonValueKind.String or JsonValueKind.Null)
                || !error.TryGetProperty("code", out var code) || code.ValueKind is not (JsonValueKind.String or JsonValueKind.Null))
            {
                return $"{response.Status} with an incomplete error object: {Shorten(response.Text)}";
            }

            if (code.ValueKind == JsonValueKind.String && !code.GetString()!.All(ch => ch is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_'))
            {
                return $"{response.Status} whose code is not a rule's name: {Shorten(response.Text)}";
            }

            return null;
        }
        catch (JsonException)
        {
            return $"{response.Status} whose body is not JSON: {Shorten(response.Text)}";
        }
    }

    /// <summary>A request's first 600 bytes as printable text, control bytes escaped.</summary>
    public static string Show(byte[] request)
    {
        var text = new StringBuilder();
        foreach (var b in request.Take(600))
        {
            text.Append(b is >= 0x20 and < 0x7F ? ((char)b).ToString() : b is (byte)'\r' ? "\\r" : b is (byte)'\n' ? "\\n" : $"\\x{b:X2}");
        }

        return request.Length > 600 ? text + $"... ({request.Length} bytes)" : text.ToString();
    }

    public static string Shorten(string text) => text.Length > 400 ? text[..400] + "..." : text;
}
