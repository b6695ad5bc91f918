using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Pipeline;
using Sovereign.Residency.Policies;

namespace Sovereign.Gateway.Routing;

/// <summary>
/// The other nodes' replicas of one model in one registry snapshot, prepared once for every decision that reads the
/// snapshot: the <see cref="ReplicaIndex"/> (by jurisdiction and kind, node order as ranks), and per replica what
/// does not change until the next snapshot (cluster node or external engine, its capacity, the load its node last
/// reported, the record of it idle). A request then reads only what does change: each route gate's load and each
/// node's health, through a <see cref="Reader"/>.
/// </summary>
internal sealed class SnapshotReplicas
{
    private readonly NodeView[] _nodes;
    private readonly NodeModel[] _models;
    private readonly bool[] _cluster;
    private readonly bool[] _active;
    private readonly bool[] _draining;
    private readonly int[] _capacity;
    private readonly int[] _reported;

    // Per cluster replica: what the other gateways had sent it at its report (-1: the node does not say), and the slots
    // its KV-cache use amounts to.
    private readonly int[] _others;
    private readonly int[] _kvSlots;
    private readonly ModelReplica?[] _idle;
    private readonly FairAdmissionGate?[] _found;

    /// <summary>
    /// The load a cluster node's report means for routing, in slots: its running and queued requests, or, where its KV
    /// cache is the scarcer resource, the slots its KV-cache use amounts to. KV use alone never makes a replica full
    /// (at most one slot short of it): a node whose cache is taken still queues, so it orders replicas, it does not
    /// refuse them.
    /// </summary>
    internal static int ReportedLoad(ModelLoad report, int capacity) => Math.Max(report.Running + report.QueueDepth, KvSlots(report, capacity));

    /// <summary>
    /// The requests of other gateways than <paramref name="gateway"/> in a cluster node's report: all it runs and queues
    /// less what <paramref name="gateway"/> had relayed at the report; -1 when the node does not break its load down.
    /// </summary>
    internal static int OthersLoad(ModelLoad report, string? gateway) =>
        report.FromGateways is not { } byGateway ? -1
        : Math.Max(0, report.Running + report.QueueDepth - (gateway is not null && byGateway.TryGetValue(gateway, out var mine) ? mine : 0));

    private static int KvSlots(ModelLoad report, int capacity)
    {
        var kvUse = double.IsFinite(report.KvCacheUse) ? Math.Clamp(report.KvCacheUse, 0, 1) : 0;
        return Math.Min(capacity - 1, (int)Math.Floor(kvUse * capacity));
    }

    /// <summary>
    /// A cluster replica's load for routing: this gateway's own requests on the route now (exact) plus what the other
    /// gateways had sent it at its report, or its KV slots if more. A node that does not break its load down: the
    /// larger of its report and this gateway's count (the report, up to a second old, also counts this gateway's).
    /// </summary>
    private int ClusterLoad(int index, int gateLoad) =>
        _others[index] >= 0 ? Math.Max(gateLoad + _others[index], _kvSlots[index]) : Math.Max(gateLoad, _reported[index]);

    public SnapshotReplicas(IReadOnlyList<(NodeView Node, NodeModel Model)> replicas, RouteGates gates, double staleSeconds, string? gateway = null)
    {
        var count = replicas.Count;
        _nodes = new NodeView[count];
        _models = new NodeModel[count];
        _cluster = new bool[count];
        _active = new bool[count];
        _draining = new bool[count];
        _capacity = new int[count];
        _reported = new int[count];
        _others = new int[count];
        _kvSlots = new int[count];
        _idle = new ModelReplica?[count];
        var sites = new ReplicaSite[count];
        for (var i = 0; i < count; i++)
        {
            var (node, model) = replicas[i];
            var cluster = NodeDirectory.IsClusterNode(node);
            (_nodes[i], _models[i], _cluster[i], _active[i]) = (node, model, cluster, node.State == nameof(Residency.ControlPlane.NodeState.Active));
            _draining[i] = node.State == nameof(Residency.ControlPlane.NodeState.Draining);

            // A cluster node's own queue holds what waits, so its registered capacity is the limit; an external
            // engine is full when every slot is busy and the route's fair queue is full.
            _capacity[i] = cluster ? Math.Max(1, model.Capacity) : gates.CapacityOf(model.Capacity);
            var report = cluster ? node.Load?.Models.FirstOrDefault(m => m.Model == model.Id) : null;
            _reported[i] = report is null ? 0 : ReportedLoad(report, _capacity[i]);
            _others[i] = report is null ? -1 : OthersLoad(report, gateway);
            _kvSlots[i] = report is null ? 0 : KvSlots(report, _capacity[i]);
            sites[i] = new ReplicaSite(node.Id, node.Jurisdiction, cluster ? NodeKind.Local : NodeKind.External);
        }

        Index = new ReplicaIndex(sites);
        _found = new FairAdmissionGate?[count];

        // While nothing happens to a replica: its route idle, its node active and (a cluster node) reporting. That
        // lasts until the first cluster node's last report grows stale, or a route gets a request, or a node is
        // marked unreachable; a decision reads only the replicas those touch.
        var baseline = new ReplicaState[count];
        var staleAt = long.MaxValue;
        _routes = new Dictionary<(string, string, int), int[]>();
        var routes = new Dictionary<(string, string, int), List<int>>();
        for (var i = 0; i < count; i++)
        {
            var (node, model) = replicas[i];
            var reporting = !_cluster[i] || node.Load is not null;
            baseline[i] = new ReplicaState(_active[i] && reporting, _cluster[i] ? ClusterLoad(i, 0) : 0, _capacity[i], _draining[i]);
            if (_cluster[i] && node.Load is { } load)
            {
                staleAt = Math.Min(staleAt, load.ReportedAt + (long)Math.Floor(staleSeconds * 1000));
            }

            var route = (node.Id, model.Id, Math.Max(1, model.Capacity));
            if (!routes.TryGetValue(route, out var on))
            {
                routes[route] = on = [];
            }

            on.Add(i);
        }

        foreach (var (route, on) in routes)
        {
            _routes[route] = [.. on];
        }

        _staleAt = staleAt;
        Baseline = new ReplicaBaseline(Index, baseline);
    }

    private readonly Dictionary<(string Node, string Model, int Slots), int[]> _routes;
    private readonly long _staleAt;

    /// <summary>Each replica's state while nothing happens to it, ordered once.</summary>
    public ReplicaBaseline Baseline { get; }

    /// <summary>
    /// The replicas whose state may differ from <see cref="Baseline"/> now: those on a route that holds a request and
    /// on a node marked unreachable; null when too many do (or a cluster node's report may have gone stale), and every
    /// replica is to be read.
    /// </summary>
    public IReadOnlyList<int>? Deviated(NodeDirectory nodes, RouteGates gates, long nowMs)
    {
        if (nowMs > _staleAt || gates.BusyCount > MaxBusyRoutes)
        {
            return null;
        }

        // The busy routes' replicas, collected again only when the busy set changed since the last decision: while
        // the same routes stay busy (long streams, a pool at work), decisions reuse the list.
        var version = gates.BusyVersion;
        var onBusy = _onBusy;
        if (onBusy is null || onBusy.Version != version)
        {
            var collected = new List<int>();
            foreach (var (route, _) in gates.Busy)
            {
                if (_routes.TryGetValue(route, out var on))
                {
                    collected.AddRange(on);
                }
            }

            _onBusy = onBusy = new OnBusyRoutes(version, [.. collected]);
        }

        if (!nodes.AnyMarkedUnreachable)
        {
            return onBusy.Replicas.Length > MaxBusyRoutes ? null : onBusy.Replicas;
        }

        var deviated = new List<int>(onBusy.Replicas);
        foreach (var node in nodes.MarkedUnreachable)
        {
            foreach (var i in Index.ReplicasOn(node))
            {
                deviated.Add(i);
            }
        }

        return deviated.Count > MaxBusyRoutes ? null : deviated;
    }

    /// <summary>The replicas on busy routes as of one <see cref="RouteGates.BusyVersion"/>.</summary>
    private sealed record OnBusyRoutes(long Version, int[] Replicas);

    private volatile OnBusyRoutes? _onBusy;

    // Beyond this many busy routes, reading every replica costs less than collecting them.
    private const int MaxBusyRoutes = 256;

    /// <summary>The replicas indexed for the decider.</summary>
    public ReplicaIndex Index { get; }

    /// <summary>The node and model of the <paramref name="index"/>th replica.</summary>
    public (NodeView Node, NodeModel Model) this[int index] => (_nodes[index], _models[index]);

    /// <summary>The replicas' state for one decision, the clock read once.</summary>
    public Reader ReadAt(NodeDirectory nodes, RouteGates gates) => new(this, nodes, gates, nodes.NowMs, nodes.AnyMarkedUnreachable);

    /// <summary>Reads the replicas' state for one decision.</summary>
    internal sealed class Reader(SnapshotReplicas replicas, NodeDirectory nodes, RouteGates gates, long nowMs, bool anyUnreachable) : IReplicaStates
    {
        /// <summary>The time the decision is made at (Unix ms).</summary>
        public long NowMs => nowMs;

        public ReplicaState Read(int index)
        {
            var node = replicas._nodes[index];
            var model = replicas._models[index];
            var gateLoad = gates.LoadOf(replicas._found, index, node.Id, model.Id, model.Capacity);
            var cluster = replicas._cluster[index];

            var load = cluster ? replicas.ClusterLoad(index, gateLoad) : gateLoad;

            // Up: as NodeDirectory.IsUp, with what the snapshot fixes read once (almost always no node is marked).
            var up = replicas._active[index]
                && (anyUnreachable ? nodes.IsUp(node, nowMs) : !cluster || nodes.IsFresh(node, nowMs));
            if (up)
            {
                return new ReplicaState(true, load, replicas._capacity[index], replicas._draining[index]);
            }

            // Why, for the decision's reasons (they said "unhealthy" for all): the words of nodes list's health.
            var outage = !replicas._active[index] ? ReplicaOutage.Down
                : cluster && !nodes.IsFresh(node, nowMs) ? ReplicaOutage.Stale
                : ReplicaOutage.Unreachable;
            return new ReplicaState(false, load, replicas._capacity[index], replicas._draining[index], outage);
        }

        public ModelReplica Record(int index, ReplicaState state, bool holdsPrefix)
        {
            var node = replicas._nodes[index];
            var kind = replicas._cluster[index] ? NodeKind.Local : NodeKind.External;
            if (state == new ReplicaState(true, 0, replicas._capacity[index]) && !holdsPrefix)
            {
                // Idle and up: the same record every time until the next snapshot.
                return replicas._idle[index] ??= new ModelReplica(node.Id, node.Jurisdiction, kind, true, 0, state.Capacity);
            }

            return new ModelReplica(node.Id, node.Jurisdiction, kind, state.Healthy, state.Load, state.Capacity) { HoldsPrefix = holdsPrefix, Draining = state.Draining, Outage = state.Outage };
        }
    }
}
