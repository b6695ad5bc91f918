using Sovereign.Residency.Jurisdictions;

namespace Sovereign.Residency.Policies;

/// <summary>
/// Everything <see cref="RoutingDecider.Decide"/> looks at. <paramref name="Policy"/> is the effective policy, already
/// narrowed by the key. <see cref="Catalog"/> resolves groups in the policy.
/// </summary>
public sealed record RoutingRequest(
    string GatewayJurisdiction,
    ResidencyPolicy Policy,
    ModelFacts Model,
    IReadOnlyList<ModelReplica> Replicas)
{
    /// <summary>The catalog that resolves the policy's groups; the built-in one unless the operator defined groups.</summary>
    public JurisdictionCatalog Catalog { get; init; } = JurisdictionCatalog.Default;
}
