namespace Sovereign.Residency.Policies;

/// <summary>The API names of policy fields, as <see cref="PolicyError.Field"/> reports them.</summary>
public static class PolicyFields
{
    /// <summary><see cref="ResidencyPolicy.AllowedJurisdictions"/>.</summary>
    public const string AllowedJurisdictions = "allowed_jurisdictions";

    /// <summary><see cref="ResidencyPolicy.AllowedModels"/>.</summary>
    public const string AllowedModels = "allowed_models";

    /// <summary><see cref="ResidencyPolicy.AllowedLicenses"/>.</summary>
    public const string AllowedLicenses = "allowed_licenses";

    /// <summary><see cref="ResidencyPolicy.AllowedOrigins"/>.</summary>
    public const string AllowedOrigins = "allowed_origins";

    /// <summary><see cref="ResidencyPolicy.AllowExternalProviders"/>.</summary>
    public const string AllowExternalProviders = "allow_external_providers";

    /// <summary><see cref="ResidencyPolicy.Retention"/> as a whole (its mode).</summary>
    public const string Retention = "retention";

    /// <summary><see cref="RetentionPolicy.Days"/>.</summary>
    public const string RetentionDays = "retention.days";
}
