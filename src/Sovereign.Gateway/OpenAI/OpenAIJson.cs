using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sovereign.Gateway.OpenAI;

/// <summary>The JSON settings of the OpenAI wire format: strict on input types, nulls omitted only where OpenAI omits them.</summary>
internal static class OpenAIJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.Strict,
        ReadCommentHandling = JsonCommentHandling.Disallow,
        AllowTrailingCommas = false,
        PropertyNameCaseInsensitive = false,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        MaxDepth = 32,

        // A repeated key is ambiguous (we and the engine we forward to may read different copies): refuse it.
        AllowDuplicateProperties = false,

        // Responses go to API clients, not into HTML, so only what JSON requires is escaped.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
    };
}
