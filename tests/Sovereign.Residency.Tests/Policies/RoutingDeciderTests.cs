using Sovereign.Residency.Jurisdictions;
using Sovereign.Residency.Policies;

namespace Sovereign.Residency.Tests.Policies;

/// <summary>The reasons and messages a decision carries: every refusal names the rule.</summary>
public sealed class RoutingDeciderTests
{
    [Fact]
    public void Decide_GatewayOutsidePolicy_ReasonNamesGatewayAndAllowedSet()
    {
        var decision = Routing.Decide("DE", Routing.Policy("TH"), "th-1:TH:up:0/10");

        Assert.Equal(["gateway_jurisdiction_not_allowed: gateway DE not in allowed {TH}"], decision.Reasons);
        Assert.Contains("allowed_jurisdictions", decision.Message, StringComparison.Ordinal);
        Assert.Equal(["TH"], decision.AllowedJurisdictions);
    }

    [Fact]
    public void Decide_GatewayOutsidePolicy_WinsOverModelRefusal()
    {
        var policy = Routing.Policy("TH") with { AllowedModels = ["other"] };

        var decision = Routing.Decide("DE", policy, "th-1:TH:up:0/10");

        Assert.Equal(RoutingCodes.ResidencyViolation, decision.Code);
        Assert.DoesNotContain(decision.Reasons, r => r.StartsWith("model_", StringComparison.Ordinal));
    }

    [Fact]
    public void Decide_ModelRefused_ListsEveryFailingFactInOrder()
    {
        var policy = Routing.Policy("TH") with
        {
            AllowedModels = ["qwen2.5-7b"],
            AllowedLicenses = ["Apache-2.0"],
            AllowedOrigins = ["EU"],
        };

        var decision = Routing.Decide("TH", policy, "th-1:TH:up:0/10", new ModelFacts("llama-3.1-8b", null, "US"));

        Assert.Equal(
            [
                "model_id_not_allowed:llama-3.1-8b:model id not in allowed_models {qwen2.5-7b}",
                "model_license_unknown:llama-3.1-8b:license unknown; allowed_licenses restricts to {Apache-2.0}",
                "model_origin_not_allowed:llama-3.1-8b:origin US not in allowed_origins {AT,BE,BG,CY,CZ,DE,DK,EE,ES,FI,FR,GR,HR,HU,IE,IT,LT,LU,LV,MT,NL,PL,PT,RO,SE,SI,SK}",
            ],
            decision.Reasons);
        Assert.Contains("llama-3.1-8b", decision.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decide_Selected_ReasonsListExclusionsThenSelection()
    {
        var decision = Routing.Decide(
            "TH",
            Routing.Policy("TH"),
            "th-2:TH:up:1/2, sg-1:SG:up:0/10, ext-1:TH:up:0/10:ext, th-1:TH:up:3/10, th-3:TH:down:0/10");

        Assert.Equal(
            [
                "replica_excluded:ext-1:external providers not allowed",
                "replica_excluded:sg-1:jurisdiction SG not allowed",
                "replica_unavailable:th-3:down",
                "selected:th-1:in the gateway's jurisdiction TH, least loaded (3/10) of 2 local of 2 compliant with capacity",
            ],
            decision.Reasons);
        Assert.Equal("Routed to th-1 in TH.", decision.Message);
        Assert.Equal(200, decision.HttpStatus);
        Assert.Null(decision.Code);
    }

    [Fact]
    public void Decide_ExternalReplicaAbroad_ExcludedForBothRules()
    {
        var decision = Routing.Decide("TH", Routing.Policy("TH"), "ext-1:US:up:0/10:ext");

        Assert.Equal(
            [
                "replica_excluded:ext-1:jurisdiction US not allowed",
                "replica_excluded:ext-1:external providers not allowed",
                "no_compliant_replica: none of 1 replicas of llama-3.1-8b satisfies the policy",
            ],
            decision.Reasons);
    }

    [Fact]
    public void Decide_CompliantReplicasFull_503ExplainsEachAndNeverFallsBack()
    {
        var decision = Routing.Decide("TH", Routing.Policy("TH"), "th-1:TH:up:10/10, th-2:TH:down:0/10, sg-1:SG:up:0/10");

        Assert.Equal(503, decision.HttpStatus);
        Assert.Null(decision.SelectedReplica);
        Assert.Equal(
            [
                "replica_excluded:sg-1:jurisdiction SG not allowed",
                "replica_unavailable:th-1:full (load 10/10)",
                "replica_unavailable:th-2:down",
                "no_compliant_capacity: 2 compliant replicas, none healthy with free capacity",
            ],
            decision.Reasons);
        Assert.Contains("never tried", decision.Message, StringComparison.Ordinal);
    }

    /// <summary>A drained replica is out of rotation by the operator's choice: its reason says so (it said "unhealthy").</summary>
    [Fact]
    public void Decide_DrainedReplica_IsExplainedAsDraining_AndNeverChosen()
    {
        var decision = Routing.Decide("TH", Routing.Policy("TH"), "th-1:TH:draining:0/10, th-2:TH:down:0/10");

        Assert.Equal(503, decision.HttpStatus);
        Assert.Equal(
            [
                "replica_unavailable:th-1:draining",
                "replica_unavailable:th-2:down",
                "no_compliant_capacity: 2 compliant replicas, none healthy with free capacity",
            ],
            decision.Reasons);
    }

    /// <summary>
    /// Each unavailable replica says why in the words of nodes list's health; every one of them said "unhealthy", so an
    /// auditor could not tell the operator's down from a node that stopped reporting.
    /// </summary>
    [Theory]
    [InlineData("down", "down")]
    [InlineData("stale", "stale")]
    [InlineData("unreachable", "unreachable")]
    [InlineData("unloaded", "not loaded")]
    [InlineData("sick", "unhealthy")]
    public void Decide_UnavailableReplica_SaysWhy(string state, string reason)
    {
        var decision = Routing.Decide("TH", Routing.Policy("TH"), $"th-1:TH:{state}:0/10");

        Assert.Equal(503, decision.HttpStatus);
        Assert.Contains($"replica_unavailable:th-1:{reason}", decision.Reasons);
    }

    [Fact]
    public void Decide_UnknownPolicyEntries_AreIgnoredAndReported()
    {
        var policy = new ResidencyPolicy { AllowedJurisdictions = ["TH", "ATLANTIS"], AllowedOrigins = ["US", "MARS"] };

        var decision = Routing.Decide("TH", policy, "th-1:TH:up:0/10");

        Assert.True(decision.Allowed);
        Assert.Equal("policy_entry_ignored:ATLANTIS:allowed_jurisdictions entry is not a known code or group", decision.Reasons[0]);
        Assert.Equal("policy_entry_ignored:MARS:allowed_origins entry is not a known code or group", decision.Reasons[1]);
    }

    [Fact]
    public void Decide_CustomCatalogGroup_ResolvesThroughRequestCatalog()
    {
        var catalog = JurisdictionCatalog.Create([new JurisdictionGroup { Name = "NORDICS", Members = ["DK", "FI", "IS", "NO", "SE"] }]);
        var request = new RoutingRequest("SE", Routing.Policy("NORDICS"), Routing.Model, Routing.Replicas("no-1:NO:up:0/4, de-1:DE:up:0/4"))
        {
            Catalog = catalog,
        };

        var decision = RoutingDecider.Decide(request);

        Assert.Equal("no-1", decision.SelectedReplica?.NodeId);
        Assert.Equal(5, decision.AllowedJurisdictions.Count);
        Assert.False(RoutingDecider.Decide(request with { Catalog = JurisdictionCatalog.Default }).Allowed);
    }

    [Fact]
    public void Decide_SameInputTwice_ReturnsEqualDecisions()
    {
        var request = new RoutingRequest("TH", Routing.Policy("ASEAN"), Routing.Model, Routing.Replicas("th-1:TH:up:1/2, sg-1:SG:up:1/2"));

        Assert.Equal(RoutingDecider.Decide(request), RoutingDecider.Decide(request));
        Assert.Equal("th-1", RoutingDecider.Decide(request).SelectedReplica?.NodeId);
    }

    [Fact]
    public void Decide_PrefixAffinity_BreaksATieInLoad_ButNeverLocalityOrLoad()
    {
        ModelReplica[] Replicas(string spec, string holder) =>
            [.. Routing.Replicas(spec).Select(r => r with { HoldsPrefix = r.NodeId == holder })];

        // Equal load in TH: the node holding the prefix wins over the one whose id sorts first, and says why.
        var tie = RoutingDecider.Decide(new RoutingRequest("TH", Routing.Policy("ASEAN"), Routing.Model, Replicas("th-1:TH:up:1/4, th-2:TH:up:1/4", "th-2")));
        Assert.Equal("th-2", tie.SelectedReplica?.NodeId);
        Assert.EndsWith("holds the prompt's prefix", tie.Reasons[^1], StringComparison.Ordinal);

        // Less load beats affinity; locality beats both.
        Assert.Equal("th-1", RoutingDecider.Decide(new RoutingRequest("TH", Routing.Policy("ASEAN"), Routing.Model, Replicas("th-1:TH:up:0/4, th-2:TH:up:1/4", "th-2"))).SelectedReplica?.NodeId);
        Assert.Equal("th-1", RoutingDecider.Decide(new RoutingRequest("TH", Routing.Policy("ASEAN"), Routing.Model, Replicas("th-1:TH:up:1/4, sg-1:SG:up:1/4", "sg-1"))).SelectedReplica?.NodeId);
    }

    [Fact]
    public void Decide_LocalReplica_PreferredOverALessLoadedOneAbroad()
    {
        // Locality before load: the TH node beside the gateway, though busier, rather than the idle SG one.
        var decision = Routing.Decide("TH", Routing.Policy("ASEAN"), "sg-1:SG:up:0/10, th-1:TH:up:5/10");

        Assert.Equal("th-1", decision.SelectedReplica?.NodeId);
        Assert.Equal("selected:th-1:in the gateway's jurisdiction TH, least loaded (5/10) of 1 local of 2 compliant with capacity", decision.Reasons[^1]);
    }

    [Fact]
    public void Decide_LocalReplicasFullOrDown_AnotherAllowedJurisdictionServes()
    {
        var decision = Routing.Decide("TH", Routing.Policy("ASEAN"), "th-1:TH:up:10/10, th-2:TH:down:0/10, sg-1:SG:up:7/10, my-1:MY:up:2/10");

        Assert.Equal("my-1", decision.SelectedReplica?.NodeId);
        Assert.Equal("selected:my-1:least loaded (2/10) of 2 compliant with capacity, none in the gateway's jurisdiction TH", decision.Reasons[^1]);
    }

    [Fact]
    public void Decide_NullPolicyAndModel_FailsClosed()
    {
        var decision = RoutingDecider.Decide(new RoutingRequest("TH", null!, null!, null!));

        Assert.Equal(403, decision.HttpStatus);
        Assert.Equal(RoutingCodes.ResidencyViolation, decision.Code);
        Assert.Empty(decision.AllowedJurisdictions);
    }

    [Theory]
    [InlineData(true, 3, 4, true)]
    [InlineData(true, 4, 4, false)]
    [InlineData(false, 0, 4, false)]
    [InlineData(true, 0, 0, false)]
    [InlineData(true, -1, 0, false)]
    public void HasCapacity_HealthyWithFreeSlot_Only(bool healthy, int load, int capacity, bool expected)
    {
        Assert.Equal(expected, new ModelReplica("n", "TH", NodeKind.Local, healthy, load, capacity).HasCapacity);
    }
}
