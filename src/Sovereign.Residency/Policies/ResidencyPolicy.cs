using Sovereign.Residency.Jurisdictions;

namespace Sovereign.Residency.Policies;

/// <summary>
/// What a tenant (or, after <see cref="NarrowWith"/>, one of its keys) allows. Lists hold what the operator wrote;
/// jurisdictions and origins may name countries or groups and are resolved through a <see cref="JurisdictionCatalog"/>.
/// The default value allows no jurisdiction, so it refuses everything: a missing policy fails closed.
/// Equality compares list contents in order, not list references.
/// </summary>
public sealed record ResidencyPolicy
{
    /// <summary>Country codes or group names where requests may be processed; must not be empty.</summary>
    public IReadOnlyList<string> AllowedJurisdictions { get; init; } = [];

    /// <summary>Model ids (ordinal, case-sensitive); empty allows any model.</summary>
    public IReadOnlyList<string> AllowedModels { get; init; } = [];

    /// <summary>SPDX (or known model-licence) ids, case-insensitive; empty allows any licence, including unknown ones.</summary>
    public IReadOnlyList<string> AllowedLicenses { get; init; } = [];

    /// <summary>Publisher countries (codes or groups); empty allows any origin, including unknown ones.</summary>
    public IReadOnlyList<string> AllowedOrigins { get; init; } = [];

    /// <summary>Whether replicas run by external providers may serve; off unless said otherwise.</summary>
    public bool AllowExternalProviders { get; init; }

    /// <summary>Whether content may be kept; <see cref="RetentionPolicy.None"/> unless said otherwise.</summary>
    public RetentionPolicy Retention { get; init; } = RetentionPolicy.None;

    /// <summary>
    /// The policy a key gets: the intersection of this (tenant) policy and the key's narrowing. A key can only narrow;
    /// any attempt to widen, and any narrowing that leaves nothing allowed, is an error naming the field, and then
    /// <see cref="NarrowingResult.Effective"/> is null.
    /// </summary>
    public NarrowingResult NarrowWith(PolicyNarrowing key, JurisdictionCatalog catalog, IEnumerable<string>? knownLicenses = null) =>
        PolicyNarrower.Narrow(this, key, catalog, knownLicenses);

    /// <inheritdoc />
    public bool Equals(ResidencyPolicy? other) =>
        other is not null
        && SameItems(AllowedJurisdictions, other.AllowedJurisdictions)
        && SameItems(AllowedModels, other.AllowedModels)
        && SameItems(AllowedLicenses, other.AllowedLicenses)
        && SameItems(AllowedOrigins, other.AllowedOrigins)
        && AllowExternalProviders == other.AllowExternalProviders
        && Equals(Retention, other.Retention);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var list in new[] { AllowedJurisdictions, AllowedModels, AllowedLicenses, AllowedOrigins })
        {
            foreach (var item in list ?? [])
            {
                hash.Add(item, StringComparer.Ordinal);
            }

            hash.Add('|');
        }

        hash.Add(AllowExternalProviders);
        hash.Add(Retention);
        return hash.ToHashCode();
    }

    private static bool SameItems(IReadOnlyList<string>? a, IReadOnlyList<string>? b) =>
        (a ?? []).SequenceEqual(b ?? [], StringComparer.Ordinal);
}
