using CsCheck;
using Sovereign.Residency.Jurisdictions;
using Sovereign.Residency.Policies;

namespace Sovereign.Residency.Tests.Policies;

/// <summary>
/// Random policies and replica sets against an oracle written from the rules, not from the implementation. Countries
/// come from a small pool, so policies and replicas collide often; the oracle spells the built-in groups out itself.
/// </summary>
public sealed class RoutingDeciderPropertyTests
{
    private const long Iterations = 3_000;

    private static readonly string[] Countries = ["TH", "SG", "MY", "DE", "FR", "NO", "US", "GB", "CH", "JP"];

    private static readonly string[] Groups = ["EU", "EEA", "ASEAN"];

    private static readonly string[] Eu =
    [
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    ];

    // Written out by hand so the oracle does not use the catalog it checks.
    private static readonly Dictionary<string, string[]> Oracle = new(StringComparer.Ordinal)
    {
        ["EU"] = Eu,
        ["EEA"] = [.. Eu, "IS", "LI", "NO"],
        ["ASEAN"] = ["BN", "ID", "KH", "LA", "MM", "MY", "PH", "SG", "TH", "VN"],
    };

    private static readonly Gen<string> GenPlace =
        Gen.OneOf<string>(Gen.OneOf(Countries), Gen.OneOf(Countries).Select(c => c.ToLowerInvariant()));

    private static readonly Gen<ResidencyPolicy> GenPolicy =
        Gen.Select(
            Gen.OneOf<string>(GenPlace, Gen.OneOf(Groups), Gen.OneOf("asean", "Eu", "ATLANTIS")).Array[0, 4],
            Gen.Bool,
            Gen.Frequency((2, Gen.Const(Array.Empty<string>())), (1, Gen.OneOf("Apache-2.0", "MIT", "llama3").Array[1, 2])),
            Gen.Frequency((2, Gen.Const(Array.Empty<string>())), (1, Gen.OneOf<string>(GenPlace, Gen.OneOf(Groups)).Array[1, 2])),
            (places, external, licenses, origins) => new ResidencyPolicy
            {
                AllowedJurisdictions = places,
                AllowExternalProviders = external,
                AllowedLicenses = licenses,
                AllowedOrigins = origins,
            });

    private static readonly Gen<ModelFacts> GenModel =
        Gen.Select(
            Gen.OneOf<string?>(null, "apache-2.0", "MIT", "llama3", "gemma"),
            Gen.OneOf<string?>(GenPlace.Select(p => (string?)p), Gen.Const((string?)null)),
            (license, origin) => new ModelFacts("m", license, origin));

    private static readonly Gen<ModelReplica[]> GenReplicas = ReplicasIn(GenPlace);

    private static Gen<ModelReplica[]> ReplicasIn(Gen<string> places) =>
        Gen.Select(places, Gen.Bool, Gen.Frequency((4, Gen.Const(true)), (1, Gen.Const(false))), Gen.Int[0, 6], Gen.Int[0, 5])
            .Array[0, 8]
            .Select(items => items
                .Select((r, i) => new ModelReplica($"n{i}", r.Item1, r.Item2 ? NodeKind.External : NodeKind.Local, r.Item3, r.Item4, r.Item5))
                .ToArray());

    // Gateways are mostly inside the policy, so that the later rules get exercised too.
    private static readonly Gen<RoutingRequest> GenRequest =
        from policy in GenPolicy
        let inside = Countries.Where(OracleAllowed(policy.AllowedJurisdictions).Contains).ToArray()
        from gateway in inside.Length == 0 ? GenPlace : Gen.Frequency((3, Gen.OneOf(inside)), (1, GenPlace))
        from model in GenModel
        from replicas in inside.Length == 0 ? GenReplicas : ReplicasIn(Gen.Frequency((1, Gen.OneOf(inside)), (1, GenPlace)))
        select new RoutingRequest(gateway, policy, model, replicas);

    [Fact]
    public void Decide_RandomRequests_NeverSelectsANonCompliantReplica()
    {
        GenRequest.Sample(
            request =>
            {
                var decision = RoutingDecider.Decide(request);
                if (decision.SelectedReplica is not { } chosen)
                {
                    return true;
                }

                var allowed = OracleAllowed(request.Policy.AllowedJurisdictions);
                return request.Replicas.Contains(chosen)
                    && allowed.Contains(request.GatewayJurisdiction.ToUpperInvariant())
                    && allowed.Contains(chosen.Jurisdiction.ToUpperInvariant())
                    && (chosen.Kind == NodeKind.Local || request.Policy.AllowExternalProviders)
                    && chosen.HasCapacity
                    && decision.AllowedJurisdictions.SetEquals(allowed);
            },
            iter: Iterations,
            print: Describe);
    }

    [Fact]
    public void Decide_RandomRequests_RefusesExactlyAsTheRulesSay()
    {
        GenRequest.Sample(
            request =>
            {
                var decision = RoutingDecider.Decide(request);
                var (status, code) = Expected(request);

                Assert.Equal(status, decision.HttpStatus);
                Assert.Equal(code, decision.Code);
                Assert.Equal(status == 200, decision.Allowed);
                Assert.Equal(status == 200, decision.SelectedReplica is not null);
                Assert.NotEmpty(decision.Reasons);

                if (decision.SelectedReplica is { } chosen)
                {
                    // Locality first: no compliant replica with room is in the gateway's jurisdiction when the chosen one
                    // is not; among those of the same locality, none is strictly less loaded, or equally loaded with a
                    // smaller id.
                    var gateway = JurisdictionCatalog.Normalize(request.GatewayJurisdiction);
                    bool IsLocal(ModelReplica r) => JurisdictionCatalog.Normalize(r.Jurisdiction) == gateway;
                    var better = Ready(request).Where(r =>
                    {
                        if (IsLocal(r) != IsLocal(chosen))
                        {
                            return IsLocal(r);
                        }

                        var c = ((long)r.Load * chosen.Capacity).CompareTo((long)chosen.Load * r.Capacity);
                        return c < 0 || (c == 0 && string.CompareOrdinal(r.NodeId, chosen.NodeId) < 0);
                    });
                    Assert.Empty(better);
                }
            },
            iter: Iterations,
            print: Describe);
    }

    [Fact]
    public void Decide_ShuffledReplicas_GivesTheSameDecision()
    {
        (from request in GenRequest
         from shuffled in Gen.Shuffle(request.Replicas.ToArray())
         select (request, shuffled))
        .Sample(
            t =>
            {
                var first = RoutingDecider.Decide(t.request);
                Assert.Equal(first, RoutingDecider.Decide(t.request));
                Assert.Equal(first, RoutingDecider.Decide(t.request with { Replicas = t.shuffled }));
            },
            iter: Iterations,
            print: t => Describe(t.request));
    }

    [Fact]
    public void NarrowWith_RandomKeys_EffectivePolicyNeverAllowsMoreThanTenant()
    {
        var genKey = Gen.OneOf<string>(GenPlace, Gen.OneOf(Groups)).Array[0, 3]
            .Select(places => new PolicyNarrowing { AllowedJurisdictions = places });

        Gen.Select(GenPolicy, genKey, GenReplicas, GenPlace).Sample(
            (tenant, key, replicas, gateway) =>
            {
                var tenantAllowed = OracleAllowed(tenant.AllowedJurisdictions);
                var keyAllowed = OracleAllowed(key.AllowedJurisdictions!);
                var result = tenant.NarrowWith(key, JurisdictionCatalog.Default);

                // Valid exactly when the key's places (all known) are a non-empty subset of the tenant's.
                var keyKnown = key.AllowedJurisdictions!.All(JurisdictionCatalog.Default.IsKnown);
                var expectValid = keyKnown && keyAllowed.Count > 0 && keyAllowed.IsSubsetOf(tenantAllowed);
                Assert.Equal(expectValid, result.IsValid);
                if (result.Effective is not { } effective)
                {
                    return;
                }

                Assert.True(OracleAllowed(effective.AllowedJurisdictions).SetEquals(keyAllowed));
                var decision = RoutingDecider.Decide(new RoutingRequest(gateway, effective, new ModelFacts("m", "MIT", "US"), replicas));
                if (decision.SelectedReplica is { } chosen)
                {
                    Assert.Contains(chosen.Jurisdiction.ToUpperInvariant(), keyAllowed);
                }
            },
            iter: Iterations,
            print: t => $"{Describe(t.Item1)} / key [{string.Join(",", t.Item2.AllowedJurisdictions!)}] / gateway {t.Item4} / {string.Join(" ", t.Item3.Select(Describe))}");
    }

    private static string Describe(RoutingRequest r) =>
        $"gateway {r.GatewayJurisdiction} / {Describe(r.Policy)} / model {r.Model.License ?? "?"} from {r.Model.Origin ?? "?"} / "
        + string.Join(" ", r.Replicas.Select(Describe));

    private static string Describe(ResidencyPolicy p) =>
        $"allow [{string.Join(",", p.AllowedJurisdictions)}] ext={p.AllowExternalProviders} "
        + $"licenses [{string.Join(",", p.AllowedLicenses)}] origins [{string.Join(",", p.AllowedOrigins)}]";

    private static string Describe(ModelReplica r) =>
        $"{r.NodeId}:{r.Jurisdiction}:{(r.Kind == NodeKind.Local ? "local" : "ext")}:{(r.Healthy ? "up" : "down")}:{r.Load}/{r.Capacity}";

    private static (int Status, string? Code) Expected(RoutingRequest request)
    {
        var policy = request.Policy;
        var allowed = OracleAllowed(policy.AllowedJurisdictions);
        if (!allowed.Contains(request.GatewayJurisdiction.ToUpperInvariant()))
        {
            return (403, RoutingCodes.ResidencyViolation);
        }

        var license = request.Model.License;
        var licenseOk = policy.AllowedLicenses.Count == 0
            || (license is not null && policy.AllowedLicenses.Contains(license, StringComparer.OrdinalIgnoreCase));
        var origin = request.Model.Origin;
        var originOk = policy.AllowedOrigins.Count == 0
            || (origin is not null && OracleAllowed(policy.AllowedOrigins).Contains(origin.ToUpperInvariant()));
        if (!licenseOk || !originOk)
        {
            return (403, RoutingCodes.ModelNotAllowed);
        }

        if (!Compliant(request).Any())
        {
            return (403, RoutingCodes.ResidencyViolation);
        }

        return Ready(request).Any() ? (200, null) : (503, RoutingCodes.NoCompliantCapacity);
    }

    private static IEnumerable<ModelReplica> Compliant(RoutingRequest request)
    {
        var allowed = OracleAllowed(request.Policy.AllowedJurisdictions);
        return request.Replicas.Where(r =>
            allowed.Contains(r.Jurisdiction.ToUpperInvariant())
            && (r.Kind == NodeKind.Local || request.Policy.AllowExternalProviders));
    }

    private static IEnumerable<ModelReplica> Ready(RoutingRequest request) =>
        Compliant(request).Where(r => r.Healthy && r.Load < r.Capacity);

    private static HashSet<string> OracleAllowed(IEnumerable<string> entries)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            var key = entry.ToUpperInvariant();
            if (Oracle.TryGetValue(key, out var members))
            {
                set.UnionWith(members);
            }
            else if (key.Length == 2 && key.All(char.IsAsciiLetterUpper))
            {
                // Generated entries are pool codes; effective policies hold resolved codes from anywhere.
                set.Add(key);
            }
        }

        return set;
    }
}
