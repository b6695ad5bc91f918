namespace Sovereign.Residency.Policies;

/// <summary>
/// What an API key asks for on top of its tenant's policy. Null means "as the tenant"; a value can only narrow. An empty
/// list of models, licences or origins also means "as the tenant" (empty is "any" there); an empty list of
/// jurisdictions is an error, as it would allow nothing.
/// </summary>
public sealed record PolicyNarrowing
{
    /// <summary>Inherit everything from the tenant.</summary>
    public static PolicyNarrowing None { get; } = new();

    /// <summary>Country codes or group names, all within the tenant's.</summary>
    public IReadOnlyList<string>? AllowedJurisdictions { get; init; }

    /// <summary>Model ids, all within the tenant's (when the tenant restricts models).</summary>
    public IReadOnlyList<string>? AllowedModels { get; init; }

    /// <summary>Licence ids, all within the tenant's (when the tenant restricts licences).</summary>
    public IReadOnlyList<string>? AllowedLicenses { get; init; }

    /// <summary>Origin countries or groups, all within the tenant's (when the tenant restricts origins).</summary>
    public IReadOnlyList<string>? AllowedOrigins { get; init; }

    /// <summary>False turns external providers off; true is allowed only when the tenant allows them.</summary>
    public bool? AllowExternalProviders { get; init; }

    /// <summary>A retention no longer than the tenant's.</summary>
    public RetentionPolicy? Retention { get; init; }
}
