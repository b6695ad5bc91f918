using Sovereign.Residency.Jurisdictions;

namespace Sovereign.Residency.Policies;

/// <summary>Where a replica is and who runs it: the part of a <see cref="ModelReplica"/> that a registry snapshot fixes.</summary>
public readonly record struct ReplicaSite(string NodeId, string Jurisdiction, NodeKind Kind);

/// <summary>
/// A replica's state at the moment of a decision: the part of a <see cref="ModelReplica"/> that changes per request
/// (<paramref name="Draining"/>: not healthy because drained, as <see cref="ModelReplica.Draining"/>).
/// </summary>
public readonly record struct ReplicaState(bool Healthy, int Load, int Capacity, bool Draining = false, ReplicaOutage Outage = ReplicaOutage.Unknown)
{
    /// <summary>Healthy with a free slot, as <see cref="ModelReplica.HasCapacity"/>.</summary>
    public bool HasCapacity => Healthy && Capacity > 0 && Load < Capacity;
}

/// <summary>
/// Reads the current state of the replicas of a <see cref="ReplicaIndex"/> (by their index in it) for one decision.
/// </summary>
public interface IReplicaStates
{
    /// <summary>The state of the <paramref name="index"/>th replica now.</summary>
    ReplicaState Read(int index);

    /// <summary>
    /// The record of the <paramref name="index"/>th replica in <paramref name="state"/>, for the decision's selected
    /// replica (an implementation may reuse one record per state).
    /// </summary>
    ModelReplica Record(int index, ReplicaState state, bool holdsPrefix);
}

/// <summary>
/// The replicas of one model as one registry snapshot has them, indexed once by jurisdiction and kind, so a decision
/// (<see cref="RoutingDecider.Decide(RoutingRequest, ReplicaIndex, IReplicaStates, string?)"/>) visits only the
/// replicas a tenant's policy allows, and orders them by a precomputed rank instead of comparing node ids. Immutable.
/// </summary>
public sealed class ReplicaIndex
{
    private readonly Dictionary<string, int[]> _byNode;

    /// <summary>Indexes <paramref name="sites"/>; a replica keeps its position in the list as its index.</summary>
    public ReplicaIndex(IReadOnlyList<ReplicaSite> sites)
    {
        ArgumentNullException.ThrowIfNull(sites);
        Sites = [.. sites];
        Places = new string?[Sites.Length];
        for (var i = 0; i < Sites.Length; i++)
        {
            Places[i] = JurisdictionCatalog.Normalize(Sites[i].Jurisdiction);
        }

        // The total order of RoutingDecider on what a snapshot fixes (node id, jurisdiction as written, kind):
        // replicas equal on all three share a rank, and only their state can order them.
        InRankOrder = [.. Enumerable.Range(0, Sites.Length).Order(Comparer<int>.Create((x, y) => CompareSites(Sites[x], Sites[y])))];
        Ranks = new int[Sites.Length];
        for (var k = 0; k < InRankOrder.Length; k++)
        {
            var i = InRankOrder[k];
            Ranks[i] = k > 0 && CompareSites(Sites[InRankOrder[k - 1]], Sites[i]) == 0 ? Ranks[InRankOrder[k - 1]] : k;
        }

        // One group per jurisdiction and kind, each in rank order: a policy allows or excludes a group as a whole.
        var groups = new Dictionary<(string? Place, bool External), List<int>>();
        foreach (var i in InRankOrder)
        {
            var key = (Places[i], Sites[i].Kind != NodeKind.Local);
            if (!groups.TryGetValue(key, out var members))
            {
                groups[key] = members = [];
            }

            members.Add(i);
        }

        Groups = [.. groups.Select(g => new ReplicaGroup(g.Key.Place, g.Key.External, [.. g.Value]))];
        GroupOf = new int[Sites.Length];
        for (var g = 0; g < Groups.Length; g++)
        {
            foreach (var i in Groups[g].Members)
            {
                GroupOf[i] = g;
            }
        }

        _byNode = Enumerable.Range(0, Sites.Length).GroupBy(i => Sites[i].NodeId ?? string.Empty, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.ToArray(), StringComparer.Ordinal);
    }

    /// <summary>How many replicas are indexed.</summary>
    public int Count => Sites.Length;

    /// <summary>The replicas, by index.</summary>
    internal ReplicaSite[] Sites { get; }

    /// <summary>Each replica's jurisdiction, normalized once.</summary>
    internal string?[] Places { get; }

    /// <summary>Each replica's rank in RoutingDecider's order (equal for replicas equal on node, jurisdiction and kind).</summary>
    internal int[] Ranks { get; }

    /// <summary>The replica indexes in rank order.</summary>
    internal int[] InRankOrder { get; }

    /// <summary>The groups (jurisdiction, kind).</summary>
    internal ReplicaGroup[] Groups { get; }

    /// <summary>Each replica's group.</summary>
    internal int[] GroupOf { get; }

    /// <summary>The indexes of the replicas on <paramref name="nodeId"/> (none when null or not indexed).</summary>
    public ReadOnlySpan<int> ReplicasOn(string? nodeId) =>
        nodeId is not null && _byNode.TryGetValue(nodeId, out var found) ? found : [];

    /// <summary>The order RoutingDecider puts replicas in, on the fields a site has.</summary>
    internal static int CompareSites(in ReplicaSite x, in ReplicaSite y)
    {
        var c = string.CompareOrdinal(x.NodeId, y.NodeId);
        if (c == 0) c = string.CompareOrdinal(x.Jurisdiction, y.Jurisdiction);
        if (c == 0) c = x.Kind.CompareTo(y.Kind);
        return c;
    }

    /// <summary>Replicas of one jurisdiction (normalized; null when blank) and kind, in rank order.</summary>
    internal sealed record ReplicaGroup(string? Place, bool External, int[] Members);
}

/// <summary>
/// The state each replica of a <see cref="ReplicaIndex"/> has while nothing happens to it (a snapshot's idle loads and
/// health), with each group's replicas put in the decider's order once. A decision given the few replicas whose state
/// differs now (<see cref="RoutingDecider.Decide(RoutingRequest, ReplicaBaseline, IReadOnlyList{int}?, IReplicaStates, string?)"/>)
/// reads only those, and takes the best of the rest from the order. Immutable.
/// </summary>
public sealed class ReplicaBaseline
{
    /// <summary>Puts <paramref name="index"/>'s replicas in <paramref name="states"/> (by index) in order per group.</summary>
    public ReplicaBaseline(ReplicaIndex index, IReadOnlyList<ReplicaState> states)
    {
        ArgumentNullException.ThrowIfNull(index);
        ArgumentNullException.ThrowIfNull(states);
        ArgumentOutOfRangeException.ThrowIfNotEqual(states.Count, index.Count);
        Index = index;
        States = [.. states];
        AllReady = new bool[index.Groups.Length];
        Order = new int[index.Groups.Length][];
        for (var g = 0; g < index.Groups.Length; g++)
        {
            var members = index.Groups[g].Members;
            AllReady[g] = members.All(i => States[i].HasCapacity);

            // Within a group locality is the same and, at baseline, nobody holds the prompt's prefix: load, then rank.
            Order[g] = AllReady[g]
                ? [.. members.Order(Comparer<int>.Create((x, y) => RoutingDecider.CompareIndexed(index, x, States[x], false, false, y, States[y], false, false)))]
                : [];
        }
    }

    /// <summary>The replicas.</summary>
    public ReplicaIndex Index { get; }

    /// <summary>Each replica's state while nothing happens to it.</summary>
    internal ReplicaState[] States { get; }

    /// <summary>Per group: every replica has capacity at baseline (only such groups are decided from the order).</summary>
    internal bool[] AllReady { get; }

    /// <summary>Per group whose replicas are all ready: the replicas in the decider's order.</summary>
    internal int[][] Order { get; }
}
