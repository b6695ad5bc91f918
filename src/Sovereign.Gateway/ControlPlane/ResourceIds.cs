using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>What an id names; each kind has its own rule.</summary>
internal enum ResourceKind
{
    /// <summary>A tenant: a slug, because it is a grain key, a path segment and a ledger column.</summary>
    Tenant,

    /// <summary>A node registered through the admin API: a slug.</summary>
    Node,

    /// <summary>A pricing plan: letters, digits, '-' and '_'.</summary>
    Plan,

    /// <summary>An API key id, a model id, or a node id set in configuration: any printable text without whitespace.</summary>
    Other,
}

/// <summary>
/// The one validator for ids that come from clients (request bodies and admin paths). Ids become Orleans grain keys,
/// which refuse empty or whitespace keys with an exception, so every id is checked here first and a bad one is a 400
/// that names the field.
/// </summary>
internal static partial class ResourceIds
{
    /// <summary>The longest id of kind <see cref="ResourceKind.Other"/>.</summary>
    public const int MaxOtherLength = 256;

    /// <summary>Whether <paramref name="value"/> is a valid id of <paramref name="kind"/>.</summary>
    public static bool IsValid(string? value, ResourceKind kind) => value is not null && kind switch
    {
        ResourceKind.Tenant or ResourceKind.Node => SlugPattern().IsMatch(value),
        ResourceKind.Plan => value.Length is > 0 and <= 63 && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'),
        _ => value.Length is > 0 and <= MaxOtherLength && !value.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || char.IsSurrogate(c) || c == '\uFFFD'),
    };

    /// <summary>Returns the id, or throws the 400 that says what an id of this kind must look like.</summary>
    public static string Require(string? value, ResourceKind kind, string param) =>
        IsValid(value, kind) ? value! : throw Invalid(value, kind, param);

    /// <summary>
    /// Tenant ids the gateway records work under itself: anonymous requests (<see cref="Caller.AnonymousTenant"/>) and
    /// work a gateway relays to this node (<see cref="ClusterRelay.RelayTenant"/>). A tenant created with one of them
    /// shared its ledger and invoice with that work, and the pipeline took it for that caller: a tenant "anonymous" was
    /// served without its budget or rate limits, a tenant "cluster-relay" skipped its plan's pool admission.
    /// </summary>
    public static readonly IReadOnlySet<string> ReservedTenantIds = new HashSet<string>(StringComparer.Ordinal) { Caller.AnonymousTenant, ClusterRelay.RelayTenant };

    /// <summary>The id of a tenant about to be created: a valid tenant id that is not reserved; else the 400 naming <c>id</c>.</summary>
    public static string RequireNewTenantId(string? value)
    {
        var id = Require(value, ResourceKind.Tenant, "id");
        return ReservedTenantIds.Contains(id)
            ? throw OpenAIException.BadRequest($"id '{id}' is reserved: the gateway records its own work under it. Choose another tenant id.", "id", "reserved_id")
            : id;
    }

    /// <summary>The longest display name (a tenant's or a key's).</summary>
    public const int MaxNameLength = 200;

    /// <summary>
    /// Returns a display name (a tenant's, a key's), or throws a 400 naming <paramref name="param"/>: 1-200 characters
    /// with at least one visible one, and no control characters (a NUL, a newline or an ESC sequence would reach the
    /// operator's terminal through the CLI's tables, and the audit export) nor bidirectional overrides, which make a
    /// name display as another (U+202A-U+202E, U+2066-U+2069).
    /// </summary>
    public static string RequireName(string value, string param)
    {
        if (value.Length > MaxNameLength)
        {
            throw OpenAIException.BadRequest($"{param} must be at most {MaxNameLength} characters; got {value.Length}.", param, "invalid_value");
        }

        // Zero-width characters (format characters: U+200B, U+2060, U+FEFF) show nothing either: a name of them alone
        // was kept, and the tenant or key showed blank in every table.
        if (value.All(c => char.IsWhiteSpace(c) || char.GetUnicodeCategory(c) == System.Globalization.UnicodeCategory.Format))
        {
            throw OpenAIException.BadRequest($"{param} must have at least one visible character.", param, "invalid_value");
        }

        foreach (var c in value)
        {
            if (RequestReader.Disguises(c))
            {
                throw OpenAIException.BadRequest(
                    $"{param} must not contain control characters or bidirectional overrides; got U+{(int)c:X4} in '{RequestReader.Shorten(value)}'.", param, "invalid_value");
            }
        }

        return value;
    }

    /// <summary>
    /// An endpoint filter for a route group: validates every route value before the handler turns it into a grain key.
    /// The kind is read from the literal segment before the parameter (<c>tenants/{id}</c> is a tenant id).
    /// </summary>
    public static ValueTask<object?> ValidateRouteValues(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        if (context.GetEndpoint() is RouteEndpoint { RoutePattern: var pattern })
        {
            for (var i = 0; i < pattern.PathSegments.Count; i++)
            {
                if (pattern.PathSegments[i].Parts is [RoutePatternParameterPart parameter])
                {
                    var kind = i > 0 && pattern.PathSegments[i - 1].Parts is [RoutePatternLiteralPart literal] ? KindOfCollection(literal.Content) : ResourceKind.Other;
                    Require(context.Request.RouteValues[parameter.Name] as string, kind, parameter.Name);
                }
            }
        }

        return next(invocation);
    }

    private static ResourceKind KindOfCollection(string segment) => segment switch
    {
        "tenants" => ResourceKind.Tenant,
        "plans" => ResourceKind.Plan,
        _ => ResourceKind.Other,
    };

    private static OpenAIException Invalid(string? value, ResourceKind kind, string param)
    {
        var rule = kind switch
        {
            ResourceKind.Tenant or ResourceKind.Node => "1-63 characters of lowercase letters, digits and '-', starting with a letter or digit",
            ResourceKind.Plan => "1-63 letters, digits, '-' or '_'",
            _ => $"1-{MaxOtherLength} characters without whitespace or control characters",
        };

        // Echo only a short, printable form of what was sent: the value may be hostile.
        var shown = value is null ? "nothing" : "'" + RequestReader.Shorten(value) + "'";
        return OpenAIException.BadRequest($"{param} must be {rule}; got {shown}.", param, "invalid_value");
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,62}$")]
    private static partial Regex SlugPattern();
}
