using Sovereign.Residency.Jurisdictions;

namespace Sovereign.Residency.Policies;

/// <summary>
/// Checks a policy, or a key's narrowing of one, before it is stored. Returns every error (empty when valid), each
/// naming the API field, so an operator fixes everything in one pass. Pure: no I/O, no clock.
/// </summary>
public static class ResidencyPolicyValidator
{
    /// <summary>
    /// Validates a tenant policy. <paramref name="knownLicenses"/> replaces <see cref="KnownLicenses.Default"/> when given;
    /// <c>LicenseRef-*</c> ids are always accepted.
    /// </summary>
    public static IReadOnlyList<PolicyError> Validate(
        ResidencyPolicy policy,
        JurisdictionCatalog catalog,
        IEnumerable<string>? knownLicenses = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(catalog);
        var licenses = LicenseSet(knownLicenses);
        var errors = new List<PolicyError>();

        if (policy.AllowedJurisdictions is null || policy.AllowedJurisdictions.Count == 0)
        {
            errors.Add(new(PolicyFields.AllowedJurisdictions, "a policy must allow at least one jurisdiction"));
        }
        else
        {
            CheckPlaces(PolicyFields.AllowedJurisdictions, policy.AllowedJurisdictions, catalog, errors);
        }

        CheckModels(policy.AllowedModels, errors);
        CheckLicenses(policy.AllowedLicenses, licenses, errors);
        CheckPlaces(PolicyFields.AllowedOrigins, policy.AllowedOrigins, catalog, errors);
        CheckRetention(policy.Retention, errors);
        return errors;
    }

    /// <summary>
    /// Validates a key's narrowing against its tenant's policy: the key's own entries must be known, it must not widen
    /// any field, and it must leave something allowed ("the key would allow no jurisdiction").
    /// </summary>
    public static IReadOnlyList<PolicyError> ValidateNarrowing(
        ResidencyPolicy tenant,
        PolicyNarrowing key,
        JurisdictionCatalog catalog,
        IEnumerable<string>? knownLicenses = null)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(catalog);
        var licenses = LicenseSet(knownLicenses);
        var errors = new List<PolicyError>();

        if (key.AllowedJurisdictions is { } jurisdictions)
        {
            CheckPlaces(PolicyFields.AllowedJurisdictions, jurisdictions, catalog, errors);
            var tenantSet = catalog.ResolveMany(tenant.AllowedJurisdictions, out _);
            var keySet = catalog.ResolveMany(jurisdictions, out _);
            var widened = keySet.Where(c => !tenantSet.Contains(c)).ToList();
            if (widened.Count > 0)
            {
                errors.Add(new(PolicyFields.AllowedJurisdictions, $"a key cannot widen the tenant policy: {Format(widened)} not allowed by the tenant"));
            }

            if (!keySet.Any(tenantSet.Contains))
            {
                errors.Add(new(PolicyFields.AllowedJurisdictions, "the key would allow no jurisdiction"));
            }
        }

        if (key.AllowedModels is { Count: > 0 } models)
        {
            CheckModels(models, errors);
            CheckSubset(PolicyFields.AllowedModels, "model", tenant.AllowedModels, models, StringComparer.Ordinal, errors);
        }

        if (key.AllowedLicenses is { Count: > 0 } keyLicenses)
        {
            CheckLicenses(keyLicenses, licenses, errors);
            CheckSubset(PolicyFields.AllowedLicenses, "license", tenant.AllowedLicenses, keyLicenses, StringComparer.OrdinalIgnoreCase, errors);
        }

        if (key.AllowedOrigins is { Count: > 0 } origins)
        {
            CheckPlaces(PolicyFields.AllowedOrigins, origins, catalog, errors);
            if (tenant.AllowedOrigins is { Count: > 0 })
            {
                var tenantSet = catalog.ResolveMany(tenant.AllowedOrigins, out _);
                var keySet = catalog.ResolveMany(origins, out _);
                var widened = keySet.Where(c => !tenantSet.Contains(c)).ToList();
                if (widened.Count > 0)
                {
                    errors.Add(new(PolicyFields.AllowedOrigins, $"a key cannot widen the tenant policy: {Format(widened)} not allowed by the tenant"));
                }

                if (!keySet.Any(tenantSet.Contains))
                {
                    errors.Add(new(PolicyFields.AllowedOrigins, "the key would allow no origin"));
                }
            }
        }

        if (key.AllowExternalProviders == true && !tenant.AllowExternalProviders)
        {
            errors.Add(new(PolicyFields.AllowExternalProviders, "a key cannot allow external providers when the tenant does not"));
        }

        if (key.Retention is { } retention)
        {
            var before = errors.Count;
            CheckRetention(retention, errors);
            if (errors.Count == before && !retention.IsWithin(tenant.Retention ?? RetentionPolicy.None))
            {
                errors.Add(new(PolicyFields.Retention, $"a key cannot widen retention: {retention} exceeds the tenant's {tenant.Retention ?? RetentionPolicy.None}"));
            }
        }

        return errors;
    }

    internal static string Format(IEnumerable<string> items) => "{" + string.Join(",", items) + "}";

    private static HashSet<string> LicenseSet(IEnumerable<string>? knownLicenses) =>
        new(knownLicenses ?? KnownLicenses.Default, StringComparer.OrdinalIgnoreCase);

    private static void CheckPlaces(string field, IReadOnlyList<string>? entries, JurisdictionCatalog catalog, List<PolicyError> errors)
    {
        foreach (var entry in entries ?? [])
        {
            if (!catalog.IsKnown(entry))
            {
                errors.Add(new(field, JurisdictionCatalog.DescribeUnknown(entry)));
            }
        }
    }

    private static void CheckModels(IReadOnlyList<string>? models, List<PolicyError> errors)
    {
        foreach (var model in models ?? [])
        {
            if (string.IsNullOrWhiteSpace(model))
            {
                errors.Add(new(PolicyFields.AllowedModels, "a model id is empty"));
            }
        }
    }

    private static void CheckLicenses(IReadOnlyList<string>? entries, HashSet<string> known, List<PolicyError> errors)
    {
        foreach (var entry in entries ?? [])
        {
            if (string.IsNullOrWhiteSpace(entry))
            {
                errors.Add(new(PolicyFields.AllowedLicenses, "a license id is empty"));
            }
            else if (!KnownLicenses.IsLicenseRef(entry) && !known.Contains(entry))
            {
                errors.Add(new(PolicyFields.AllowedLicenses, $"'{entry}' is not a known SPDX license id (write others as LicenseRef-<name>)"));
            }
        }
    }

    private static void CheckRetention(RetentionPolicy? retention, List<PolicyError> errors)
    {
        if (retention is null)
        {
            errors.Add(new(PolicyFields.Retention, "retention is missing; use none to store nothing"));
            return;
        }

        if (retention.Days < 0)
        {
            errors.Add(new(PolicyFields.RetentionDays, $"retention days must not be negative (got {retention.Days})"));
        }

        if (retention.Days > RetentionPolicy.MaxDays)
        {
            errors.Add(new(PolicyFields.RetentionDays, $"retention days may be at most {RetentionPolicy.MaxDays} (got {retention.Days})"));
        }

        switch (retention.Mode)
        {
            case RetentionMode.None when retention.Days > 0:
                errors.Add(new(PolicyFields.RetentionDays, "days apply only to store retention; none keeps nothing"));
                break;
            case RetentionMode.Store when retention.Days == 0:
                errors.Add(new(PolicyFields.RetentionDays, "store retention needs at least 1 day; use none to store nothing"));
                break;
            case RetentionMode.None or RetentionMode.Store:
                break;
            default:
                errors.Add(new(PolicyFields.Retention, $"unknown retention mode {(int)retention.Mode}"));
                break;
        }
    }

    private static void CheckSubset(
        string field,
        string noun,
        IReadOnlyList<string>? tenant,
        IReadOnlyList<string> key,
        StringComparer comparer,
        List<PolicyError> errors)
    {
        // An empty tenant list allows any value, so whatever the key lists is a narrowing.
        if (tenant is null || tenant.Count == 0)
        {
            return;
        }

        var allowed = new HashSet<string>(tenant, comparer);
        var widened = key.Where(k => !string.IsNullOrWhiteSpace(k) && !allowed.Contains(k)).Distinct(comparer).ToList();
        if (widened.Count > 0)
        {
            errors.Add(new(field, $"a key cannot widen the tenant policy: {Format(widened)} not allowed by the tenant"));
        }

        if (!key.Any(allowed.Contains))
        {
            errors.Add(new(field, $"the key would allow no {noun}"));
        }
    }
}
