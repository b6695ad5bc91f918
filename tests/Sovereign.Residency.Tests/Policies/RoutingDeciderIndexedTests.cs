using CsCheck;
using Sovereign.Residency.Policies;

namespace Sovereign.Residency.Tests.Policies;

/// <summary>
/// The indexed decision (a registry snapshot's replicas in a <see cref="ReplicaIndex"/>, their state read per request)
/// against the plain one over the same replicas as records: the same decision, reasons included, for random policies,
/// places, kinds, loads, prefix holders and duplicated node ids.
/// </summary>
public sealed class RoutingDeciderIndexedTests
{
    private static readonly string[] Places = ["TH", "th", " SG ", "SG", "DE", "MY", "", "US"];

    private static readonly Gen<ResidencyPolicy> GenPolicy =
        Gen.Select(
            Gen.OneOf<string>(Gen.OneOf(Places), Gen.OneOf("ASEAN", "EU", "ATLANTIS")).Array[0, 4],
            Gen.Bool,
            (places, external) => new ResidencyPolicy { AllowedJurisdictions = places, AllowExternalProviders = external });

    private static readonly Gen<(ReplicaSite Site, ReplicaState State)[]> GenSites =
        Gen.Select(Gen.Int[0, 9], Gen.OneOf(Places), Gen.Bool, Gen.Frequency((4, Gen.Const(true)), (1, Gen.Const(false))), Gen.Int[0, 4], Gen.Int[0, 4])
            .Select(r => (new ReplicaSite("n" + r.Item1, r.Item2, r.Item3 ? NodeKind.External : NodeKind.Local), new ReplicaState(r.Item4, r.Item5, r.Item6)))
            .Array[0, 14];

    private static readonly Gen<ModelReplica[]> GenExtras =
        Gen.Select(Gen.Int[0, 9], Gen.OneOf(Places), Gen.Bool, Gen.Bool, Gen.Int[0, 4], Gen.Int[0, 4], Gen.Bool)
            .Select(r => new ModelReplica("n" + r.Item1, r.Item2, r.Item3 ? NodeKind.External : NodeKind.Local, r.Item4, r.Item5, r.Item6) { HoldsPrefix = r.Item7 })
            .Array[0, 3];

    private static readonly Gen<(RoutingRequest Request, (ReplicaSite Site, ReplicaState State)[] Indexed, string? Prefix)> GenCase =
        from policy in GenPolicy
        from gateway in Gen.OneOf("TH", "SG", "DE")
        from indexed in GenSites
        from extras in GenExtras
        from prefix in Gen.OneOf<string?>(null, "n0", "n1", "n2", "n3")
        select (new RoutingRequest(gateway, policy, new ModelFacts("m"), extras), indexed, prefix);

    [Fact]
    public void Decide_Indexed_MakesTheSameDecisionAsOverRecords()
    {
        GenCase.Sample(
            c =>
            {
                var (request, indexed, prefix) = c;
                var sites = indexed.Select(x => x.Site).ToArray();
                var index = new ReplicaIndex(sites);
                var states = new States(sites, [.. indexed.Select(x => x.State)], prefix);
                var expected = RoutingDecider.Decide(request with { Replicas = [.. request.Replicas, .. states.All()] });

                var fast = RoutingDecider.Decide(request, index, states, prefix);

                // Read out of order first (the audit reads the head and the last), then all of it.
                Assert.Equal(expected.Reasons[^1], fast.Reasons[^1]);
                Assert.Equal(expected.Reasons.Count, fast.Reasons.Count);
                Assert.Equal(expected.Reasons[expected.Reasons.Count / 2], fast.Reasons[fast.Reasons.Count / 2]);
                Assert.Equal(expected.Reasons, fast.Reasons);
                Assert.Equal(expected, fast);
            },
            iter: 5_000);
    }

    [Fact]
    public void Decide_FromBaseline_MakesTheSameDecisionAsOverRecords()
    {
        // Baseline states mostly ready, so groups are decided from the order; some replicas differ now.
        var genBaseline = Gen.Select(Gen.Frequency((6, Gen.Const(true)), (1, Gen.Const(false))), Gen.Int[0, 2], Gen.Int[1, 4])
            .Select(r => new ReplicaState(r.Item1, r.Item2, r.Item3));
        var gen =
            from c in GenCase
            from baseline in genBaseline.Array[c.Indexed.Length]
            from changed in Gen.Bool.Array[c.Indexed.Length]
            select (c.Request, c.Indexed, c.Prefix, baseline, changed);
        gen.Sample(
            c =>
            {
                var (request, indexed, prefix, baselineStates, changed) = c;
                var sites = indexed.Select(x => x.Site).ToArray();
                var now = indexed.Select((x, i) => changed[i] ? x.State : baselineStates[i]).ToArray();
                var deviated = Enumerable.Range(0, sites.Length).Where(i => changed[i]).ToArray();
                var baseline = new ReplicaBaseline(new ReplicaIndex(sites), baselineStates);
                var states = new States(sites, now, prefix);
                var expected = RoutingDecider.Decide(request with { Replicas = [.. request.Replicas, .. states.All()] });

                var fast = RoutingDecider.Decide(request, baseline, deviated, states, prefix);

                Assert.Equal(expected.Reasons, fast.Reasons);
                Assert.Equal(expected, fast);
            },
            iter: 5_000);
    }

    [Fact]
    public void Decide_Indexed_ThousandExcludedReplicas_ExplainsThemInNodeOrder()
    {
        var sites = Enumerable.Range(0, 1_000).Select(i => new ReplicaSite($"node-{999 - i:D4}", i % 2 == 0 ? "SG" : "DE", NodeKind.External)).ToArray();
        var index = new ReplicaIndex(sites);
        var states = new States(sites, [.. sites.Select(_ => new ReplicaState(true, 0, 8))], null);
        var local = new ModelReplica("gateway", "TH", NodeKind.Local, true, 1, 4);
        var request = new RoutingRequest("TH", new ResidencyPolicy { AllowedJurisdictions = ["TH"], AllowExternalProviders = true }, new ModelFacts("m"), [local]);

        var decision = RoutingDecider.Decide(request, index, states, null);

        Assert.Same(local, decision.SelectedReplica);
        Assert.Equal(1_001, decision.Reasons.Count);
        Assert.Equal("replica_excluded:node-0000:jurisdiction DE not allowed", decision.Reasons[0]);
        Assert.Equal("replica_excluded:node-0001:jurisdiction SG not allowed", decision.Reasons[1]);
        Assert.StartsWith("selected:gateway:in the gateway's jurisdiction TH", decision.Reasons[^1], StringComparison.Ordinal);
    }

    [Fact]
    public void Decide_Indexed_PrefersTheLocalLeastLoadedThenThePrefixHolder()
    {
        var sites = new[]
        {
            new ReplicaSite("a", "SG", NodeKind.Local),
            new ReplicaSite("b", "TH", NodeKind.Local),
            new ReplicaSite("c", "TH", NodeKind.Local),
            new ReplicaSite("d", "TH", NodeKind.Local),
        };
        var index = new ReplicaIndex(sites);
        var states = new States(sites, [new(true, 0, 4), new(true, 2, 4), new(true, 1, 4), new(true, 1, 4)], "d");
        var request = new RoutingRequest("TH", new ResidencyPolicy { AllowedJurisdictions = ["ASEAN"] }, new ModelFacts("m"), []);

        var decision = RoutingDecider.Decide(request, index, states, "d");

        Assert.Equal(new ModelReplica("d", "TH", NodeKind.Local, true, 1, 4) { HoldsPrefix = true }, decision.SelectedReplica);
    }

    private sealed class States(ReplicaSite[] sites, ReplicaState[] states, string? prefix) : IReplicaStates
    {
        public ReplicaState Read(int index) => states[index];

        public ModelReplica Record(int index, ReplicaState state, bool holdsPrefix)
        {
            Assert.Equal(holdsPrefix, sites[index].NodeId == prefix);
            var site = sites[index];
            return new ModelReplica(site.NodeId, site.Jurisdiction, site.Kind, state.Healthy, state.Load, state.Capacity) { HoldsPrefix = holdsPrefix };
        }

        public IEnumerable<ModelReplica> All() => Enumerable.Range(0, states.Length).Select(i => Record(i, states[i], sites[i].NodeId == prefix));
    }
}
