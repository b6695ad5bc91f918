using System.Text.Json;
using Sovereign.Gateway.OpenAI;
using Sovereign.Residency.Jurisdictions;
using Sovereign.Residency.Policies;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// A residency policy as the admin API and the store write it (snake_case JSON). Tenants carry a full policy;
/// keys carry an optional narrowing in the same shape (absent fields inherit the tenant's).
/// </summary>
internal sealed class PolicyDocument
{
    public List<string>? AllowedJurisdictions { get; set; }
    public List<string>? AllowedModels { get; set; }
    public List<string>? AllowedLicenses { get; set; }
    public List<string>? AllowedOrigins { get; set; }
    public bool? AllowExternalProviders { get; set; }
    public RetentionDocument? Retention { get; set; }

    public string ToJson() => JsonSerializer.Serialize(this, OpenAIJson.Options);

    public static PolicyDocument FromJson(string json) =>
        JsonSerializer.Deserialize<PolicyDocument>(json, OpenAIJson.Options) ?? new PolicyDocument();

    /// <summary>The tenant policy this document states; absent lists mean "any" except jurisdictions, which are required.</summary>
    public ResidencyPolicy ToPolicy(string prefix = "policy") => new()
    {
        AllowedJurisdictions = AllowedJurisdictions ?? [],
        AllowedModels = AllowedModels ?? [],
        AllowedLicenses = AllowedLicenses ?? [],
        AllowedOrigins = AllowedOrigins ?? [],
        AllowExternalProviders = AllowExternalProviders ?? false,
        Retention = Retention?.ToPolicy(prefix + ".retention") ?? RetentionPolicy.None,
    };

    /// <summary>The narrowing a key states.</summary>
    public PolicyNarrowing ToNarrowing(string prefix = "policy") => new()
    {
        AllowedJurisdictions = AllowedJurisdictions,
        AllowedModels = AllowedModels,
        AllowedLicenses = AllowedLicenses,
        AllowedOrigins = AllowedOrigins,
        AllowExternalProviders = AllowExternalProviders,
        Retention = Retention?.ToPolicy(prefix + ".retention"),
    };

    /// <summary>
    /// Validates a tenant policy and returns it in canonical form (<see cref="Canonical"/>), the form that is stored;
    /// throws a 400 naming the first bad field (prefixed with <paramref name="prefix"/>).
    /// </summary>
    public PolicyDocument ValidateTenantPolicy(JurisdictionCatalog catalog, string prefix)
    {
        RefuseInvisibleModelIds(prefix);
        var errors = ResidencyPolicyValidator.Validate(ToPolicy(prefix), catalog);
        return errors.Count == 0 ? Canonical() : throw Invalid(errors, prefix);
    }

    /// <summary>
    /// Refuses (400 <c>invalid_policy</c> naming the field, the character and the rule) a model id in allowed_models
    /// holding an invisible character (<see cref="RequestReader.IsInvisible"/>): the request path refuses such an id, so
    /// a tenant allowed it was shown a model it could never use, looking like one it could. Only where a policy is
    /// written (the admin API's tenant create and update and a key's creation; the console and the CLI write through
    /// it): the validators also run on stored policies at request time (<c>PolicyNarrower</c>), which this leaves alone.
    /// </summary>
    public PolicyDocument RefuseInvisibleModelIds(string prefix)
    {
        foreach (var model in AllowedModels ?? [])
        {
            if (RequestReader.FirstInvisible(model) is { } invisible)
            {
                throw OpenAIException.BadRequest(
                    $"The policy is invalid. {prefix}.{PolicyFields.AllowedModels}: model ids must not contain {RequestReader.InvisibleRule}; " +
                    $"got U+{(int)invisible:X4} in '{RequestReader.Shorten(model)}'.",
                    $"{prefix}.{PolicyFields.AllowedModels}", "invalid_policy");
            }
        }

        return this;
    }

    /// <summary>
    /// Validates a key's narrowing against its tenant's policy and returns it in canonical form; throws a 400 naming
    /// the field.
    /// </summary>
    public PolicyDocument ValidateNarrowing(ResidencyPolicy tenantPolicy, JurisdictionCatalog catalog, string prefix)
    {
        var result = tenantPolicy.NarrowWith(ToNarrowing(prefix), catalog);
        return result.IsValid ? Canonical() : throw Invalid(result.Errors, prefix);
    }

    /// <summary>
    /// The same policy as the operator stores and reads it back: jurisdictions and origins as upper-case codes or group
    /// names (they are matched case-insensitively, so "th" and "TH" are one entry), licences in their canonical SPDX
    /// spelling, and each list without repeats, in the order first written. Only for a validated document.
    /// </summary>
    public PolicyDocument Canonical() => new()
    {
        AllowedJurisdictions = Places(AllowedJurisdictions),
        AllowedModels = AllowedModels?.Distinct(StringComparer.Ordinal).ToList(),
        AllowedLicenses = AllowedLicenses?.Select(l => KnownLicenses.Canonicalize(l.Trim())).Distinct(StringComparer.OrdinalIgnoreCase).ToList(),
        AllowedOrigins = Places(AllowedOrigins),
        AllowExternalProviders = AllowExternalProviders,
        Retention = Retention,
    };

    private static List<string>? Places(List<string>? entries) =>
        entries?.Select(e => e.Trim().ToUpperInvariant()).Distinct(StringComparer.Ordinal).ToList();

    private static OpenAIException Invalid(IReadOnlyList<PolicyError> errors, string prefix)
    {
        var first = errors[0];
        var message = string.Join("; ", errors.Select(e => $"{prefix}.{e.Field}: {e.Message.TrimEnd('.')}")) + ".";
        return OpenAIException.BadRequest("The policy is invalid. " + message, $"{prefix}.{first.Field}", "invalid_policy");
    }
}

internal sealed class RetentionDocument
{
    public string? Mode { get; set; }
    public int? Days { get; set; }

    public RetentionPolicy ToPolicy(string field) => Mode?.ToLowerInvariant() switch
    {
        null or "none" => Days is null or 0 ? RetentionPolicy.None : throw OpenAIException.BadRequest($"{field}.days must be 0 or absent when mode is 'none'.", field + ".days", "invalid_policy"),
        "store" => new RetentionPolicy { Mode = RetentionMode.Store, Days = Days ?? 0 },
        _ => throw OpenAIException.BadRequest($"{field}.mode must be 'none' or 'store'; got '{RequestReader.Shorten(Mode ?? "")}'.", field + ".mode", "invalid_policy"),
    };
}
