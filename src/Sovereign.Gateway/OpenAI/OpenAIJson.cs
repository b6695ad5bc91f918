using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sovereign.Gateway.OpenAI;

/// <summary>The JSON settings of the OpenAI wire format: strict on input types, nulls omitted only where OpenAI omits them.</summary>
internal static class OpenAIJson
{
    /// <summary>
    /// The media type of every JSON answer of the server, errors included: what ASP.NET Core's JSON results and OpenAI
    /// say. Errors said <c>application/json</c> alone while successes said this, so a client comparing the header whole,
    /// or one that decodes by the declared charset, read the two otherwise.
    /// </summary>
    public const string ContentType = "application/json; charset=utf-8";

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

    /// <summary>
    /// The operator's API (<c>/admin/v1</c>) reads bodies strictly: a field it does not know is a 400
    /// <c>unknown_parameter</c>. Its PUTs replace: <c>{"budget": [...]}</c> (for <c>budgets</c>) was read as "no
    /// budgets" and cleared the tenant's. OpenAI's surface is deserialized leniently: its field names are checked against
    /// OpenAI's own (<see cref="RequestFields"/>), which the operator can widen.
    /// </summary>
    public static readonly JsonSerializerOptions AdminOptions = new(Options)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,

        // Named, so that RequestReader can read the contract (GetTypeInfo) to name an unknown field by its path.
        TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver(),
    };
}
