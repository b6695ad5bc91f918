using Sovereign.Residency.Jurisdictions;

namespace Sovereign.Residency.Policies;

/// <summary>Computes a key's effective policy: the field-by-field intersection with its tenant's.</summary>
internal static class PolicyNarrower
{
    public static NarrowingResult Narrow(
        ResidencyPolicy tenant,
        PolicyNarrowing key,
        JurisdictionCatalog catalog,
        IEnumerable<string>? knownLicenses)
    {
        var errors = ResidencyPolicyValidator.ValidateNarrowing(tenant, key, catalog, knownLicenses);
        if (errors.Count > 0)
        {
            return new NarrowingResult(null, errors);
        }

        var effective = tenant with
        {
            // Narrowed places are stored resolved (sorted codes): the intersection of two groups is rarely a group.
            AllowedJurisdictions = key.AllowedJurisdictions is { } jurisdictions
                ? Intersect(catalog, tenant.AllowedJurisdictions, jurisdictions)
                : tenant.AllowedJurisdictions,
            AllowedModels = Narrow(tenant.AllowedModels, key.AllowedModels, StringComparer.Ordinal),
            AllowedLicenses = Narrow(tenant.AllowedLicenses, key.AllowedLicenses, StringComparer.OrdinalIgnoreCase),
            AllowedOrigins = key.AllowedOrigins is { Count: > 0 } origins
                ? tenant.AllowedOrigins is { Count: > 0 }
                    ? Intersect(catalog, tenant.AllowedOrigins, origins)
                    : [.. catalog.ResolveMany(origins, out _)]
                : tenant.AllowedOrigins,
            AllowExternalProviders = tenant.AllowExternalProviders && (key.AllowExternalProviders ?? true),
            Retention = key.Retention ?? tenant.Retention,
        };
        return new NarrowingResult(effective, []);
    }

    private static string[] Intersect(JurisdictionCatalog catalog, IReadOnlyList<string> tenant, IReadOnlyList<string> key)
    {
        var tenantSet = catalog.ResolveMany(tenant, out _);
        return [.. catalog.ResolveMany(key, out _).Where(tenantSet.Contains)];
    }

    private static IReadOnlyList<string> Narrow(IReadOnlyList<string> tenant, IReadOnlyList<string>? key, StringComparer comparer)
    {
        if (key is not { Count: > 0 })
        {
            return tenant;
        }

        if (tenant is not { Count: > 0 })
        {
            return [.. key.Distinct(comparer)];
        }

        // Keep the tenant's spelling and order for the values both allow.
        var keySet = new HashSet<string>(key, comparer);
        return [.. tenant.Where(keySet.Contains).Distinct(comparer)];
    }
}
