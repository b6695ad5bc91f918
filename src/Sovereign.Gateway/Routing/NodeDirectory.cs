using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Metering.Pricing;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Gateway.Routing;

/// <summary>
/// The gateway's view of the node registry: a snapshot re-read from the registry grain when its version changes,
/// with each node's credential verified against the operator key. A node whose credential does not verify, or
/// does not bind the jurisdiction the registry row claims, is treated as absent (fail closed).
/// </summary>
public sealed class NodeDirectory(
    IGrainFactory grains,
    OperatorSigningKey operatorKey,
    IOptions<SovereignOptions> options,
    IOptions<Cluster.Hosting.SovereignClusterOptions> cluster,
    TimeProvider time,
    ILogger<NodeDirectory> logger)
{
    /// <summary>How long an external engine that refused a connection is routed around before it is tried again.</summary>
    public static readonly TimeSpan UnreachableRetryAfter = TimeSpan.FromSeconds(5);

    /// <summary>The registry key of the one registry grain.</summary>
    public const string RegistryKey = "default";

    private static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(1);

    // A node that joined with a token holds no operator key (its operator-key.pem is one of its own that signs
    // nothing): the operator's public half came with its join. Checked with its own key, every node of the cluster,
    // itself included, failed, so its own usage records fell into <jurisdiction>-default.
    // Every key of the operator's history: a credential signed by a retired key still verifies, one signed by a key
    // marked compromised does not (that node must join again or be registered again).
    private readonly OperatorKeyHistory _operatorKeys =
        (cluster.Value is { Role: Cluster.Hosting.ServerRole.Node, IsDistributed: true } ? ClusterJoiner.Kept(options.Value)?.OperatorKeys : null)
        ?? operatorKey.History;
    private readonly ConcurrentDictionary<string, int> _inFlight = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Unreachable> _unreachable = new(StringComparer.Ordinal);

    // How many nodes are marked: routing reads every replica's mark, and almost always there is none to find.
    private int _unreachableCount;
    private readonly Lock _refreshGate = new();
    private volatile Snapshot _snapshot = new(-1, [], DateTimeOffset.MinValue, new Dictionary<string, (NodeView, NodeModel)[]>(), new Dictionary<string, (NodeView, NodeModel)[]>(), new Dictionary<string, NodeClaims>(), null, 0, new Dictionary<string, NodeClaims?>(), 0, new HashSet<string>(StringComparer.Ordinal));
    private Task<Snapshot>? _refreshing;
    private long _generation;

    /// <summary>The registry grain.</summary>
    public INodeRegistryGrain Registry => grains.GetGrain<INodeRegistryGrain>(RegistryKey);

    /// <summary>
    /// Verified nodes; refreshed at most every second, and at once after <see cref="Invalidate"/>. One refresh runs
    /// at a time: while it does, other requests keep the view it replaces (a second old), instead of each re-reading
    /// and re-verifying a thousand nodes at once; a view 2 s old or more (half <c>NodeStaleSeconds</c> if less) is not
    /// kept: they wait for the refresh, and keep the old view only if it fails.
    /// </summary>
    public async ValueTask<IReadOnlyList<NodeView>> GetNodesAsync()
    {
        var snapshot = _snapshot;
        var now = time.GetUtcNow();

        // A view read "in the future" (this clock stepped back since) is due too: it was kept until the clock caught up.
        if (!Sovereign.Cluster.Hosting.WallClock.HasPassed(now, snapshot.ReadAt, RefreshInterval))
        {
            return snapshot.Nodes;
        }

        // A view older than that is not served while a refresh runs: after an idle spell its nodes' last reports are
        // as old as the view, and the first request read every node as stale (503 no_compliant_capacity while all idle).
        var tooOld = Sovereign.Cluster.Hosting.WallClock.HasPassed(now, snapshot.ReadAt, TimeSpan.FromSeconds(Math.Min(2 * RefreshInterval.TotalSeconds, cluster.Value.NodeStaleSeconds / 2)));
        var invalidated = snapshot.ReadAt == DateTimeOffset.MinValue;
        var wanted = Volatile.Read(ref _generation);
        while (true)
        {
            var refresh = StartRefresh();
            if (!invalidated && !refresh.IsCompleted && !tooOld)
            {
                return snapshot.Nodes;
            }

            Snapshot refreshed;
            try
            {
                refreshed = await refresh;
            }
            catch (Exception) when (!invalidated)
            {
                // Logged by the refresh; the last verified view is all there is (its stale nodes read as stale).
                return snapshot.Nodes;
            }

            // After Invalidate(), only a refresh that started after it will do (an admin change in this process).
            snapshot = refreshed;
            if (snapshot.Generation >= wanted)
            {
                return snapshot.Nodes;
            }
        }
    }

    private Task<Snapshot> StartRefresh()
    {
        lock (_refreshGate)
        {
            if (_refreshing is not { IsCompleted: false } running)
            {
                running = _refreshing = Task.Run(RefreshLoggedAsync);
            }

            return running;
        }
    }

    // Requests that do not wait for a refresh never see its failure: it is logged here, and the next request retries.
    private async Task<Snapshot> RefreshLoggedAsync()
    {
        try
        {
            return await RefreshAsync();
        }
        catch (Exception ex)
        {
            Observability.GatewayLog.RegistryRefreshFailed(logger, ex);
            throw;
        }
    }

    private async Task<Snapshot> RefreshAsync()
    {
        var generation = Volatile.Read(ref _generation);
        var previous = _snapshot;
        var askedAt = time.GetUtcNow().ToUnixTimeMilliseconds();
        var registry = await Registry.GetAsync();

        // How far this process's clock is from the registry's (which stamps load reports), taken at the middle of
        // the call; a registry that sends no clock (an older gateway during an upgrade) is taken as this one's.
        var clockOffset = registry.Now == 0 ? 0 : askedAt + ((time.GetUtcNow().ToUnixTimeMilliseconds() - askedAt) / 2) - registry.Now;
        Snapshot snapshot;
        if (registry.Version != previous.Version)
        {
            // A credential is signed data, and the operator key is fixed for the process: a load report changes the
            // registry's version every second, but only a new or changed credential needs a signature check.
            var verified = new Dictionary<string, NodeClaims?>(StringComparer.Ordinal);
            var claims = new Dictionary<string, NodeClaims>(StringComparer.Ordinal);
            var trusted = new List<NodeView>();
            var keyRefusals = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var node in registry.Nodes)
            {
                if (!verified.TryGetValue(node.Credential, out var credential))
                {
                    string? problem = null;
                    credential = previous.Verified.TryGetValue(node.Credential, out var known) ? known : NodeCredentials.Verify(node.Credential, _operatorKeys, out problem);
                    verified[node.Credential] = credential;
                    if (problem is not null && (problem.Contains("operator key history", StringComparison.Ordinal) || problem.Contains("compromised", StringComparison.Ordinal)))
                    {
                        keyRefusals[node.Credential] = problem;
                    }
                }

                if (credential is not null && NodeCredentials.Mismatch(credential, node.Id, node.Jurisdiction, node.Kind, node.BaseUrl) is null)
                {
                    trusted.Add(node);
                    claims[node.Id] = credential;
                }
                else if (!previous.Untrusted.Contains(node.Id) && cluster.Value.Role != Cluster.Hosting.ServerRole.Node)
                {
                    // Once per node, not per refresh: it registered and reports, so only this says why it gets nothing.
                    Observability.GatewayLog.NodeNotTrusted(logger, node.Id, node.Jurisdiction);
                    if (keyRefusals.TryGetValue(node.Credential, out var refusal))
                    {
                        // Signed by a key this gateway's history does not hold, or marks compromised: say which.
                        Observability.GatewayLog.NodeCredentialKeyRefused(logger, node.Id, node.Jurisdiction, refusal);
                    }
                }
            }

            // This process's own node is looked up on every locally served request: found once per registry version.
            var self = trusted.Find(n => n.Id == options.Value.NodeId && n.Kind == nameof(Residency.Policies.NodeKind.Local));
            var untrusted = registry.Nodes.Select(n => n.Id).Where(id => !claims.ContainsKey(id)).ToHashSet(StringComparer.Ordinal);
            snapshot = new Snapshot(registry.Version, trusted, time.GetUtcNow(), IndexRemoteModels(trusted, options.Value.NodeId, embedding: false),
                IndexRemoteModels(trusted, options.Value.NodeId, embedding: true), claims, self, generation, verified, clockOffset, untrusted);
        }
        else
        {
            snapshot = previous with { ReadAt = time.GetUtcNow(), Generation = generation, ClockOffsetMs = clockOffset };
        }

        lock (_refreshGate)
        {
            // Invalidated while this refresh ran: published, but still due for a refresh that starts after it.
            _snapshot = _generation == generation ? snapshot : snapshot with { ReadAt = DateTimeOffset.MinValue };
        }

        return snapshot;
    }

    /// <summary>
    /// The other nodes serving a model of <paramref name="kind"/>, from the current snapshot's index (built once per
    /// registry version, so a request does not scan every node): external engines, and the cluster's own nodes that
    /// this process reaches at their URL. A chat model is never a replica for embeddings, nor the other way round.
    /// </summary>
    public async ValueTask<IReadOnlyList<(NodeView Node, NodeModel Model)>> ExternalReplicasAsync(string model, Sovereign.Inference.Engine.ModelKind kind = Sovereign.Inference.Engine.ModelKind.Chat)
    {
        await GetNodesAsync();
        var index = kind == Sovereign.Inference.Engine.ModelKind.Embedding ? _snapshot.EmbeddingByModel : _snapshot.ChatByModel;
        return index.TryGetValue(model, out var replicas) ? replicas : [];
    }

    private static Dictionary<string, (NodeView, NodeModel)[]> IndexRemoteModels(IEnumerable<NodeView> nodes, string self, bool embedding) =>
        nodes.Where(n => n.Kind == nameof(Residency.Policies.NodeKind.External) || (n.Id != self && IsClusterNode(n)))
            .SelectMany(n => n.Models.Where(m => m.IsEmbedding == embedding).Select(m => (Node: n, Model: m)))
            .GroupBy(x => x.Model.Id, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.ToArray(), StringComparer.Ordinal);

    /// <summary>A node of this cluster (the operator's own, kind local) that is reached over HTTP at its URL.</summary>
    public static bool IsClusterNode(NodeView node) => node.Kind == nameof(Residency.Policies.NodeKind.Local) && node.BaseUrl is not null;

    /// <summary>
    /// Whether a node can take requests: marked active and, for a cluster node, its last load report is recent (a
    /// node that stopped reporting is down, or cut off from the registry).
    /// </summary>
    public bool IsUp(NodeView node) => IsUp(node, NowMs);

    /// <summary>As <see cref="IsUp(NodeView)"/> at <paramref name="nowMs"/> (<see cref="NowMs"/>): a decision reads the clock once, not per replica.</summary>
    internal bool IsUp(NodeView node, long nowMs) =>
        node.State == nameof(NodeState.Active)
        && !IsMarkedUnreachable(node)
        && (IsClusterNode(node) ? IsFresh(node, nowMs) : !IsAnotherProcessesOwnNode(node));

    /// <summary>
    /// A single server's own node (local, no URL: it runs in that server's process) under another id than this
    /// process's: a machine whose node id changed, or whose database was copied into a cluster's
    /// (<c>sovereign database copy</c>). No process serves it and nothing reports for it; it was shown as up, with its
    /// models, and counted among its jurisdiction's nodes up.
    /// </summary>
    private bool IsAnotherProcessesOwnNode(NodeView node) =>
        node.Kind == nameof(Residency.Policies.NodeKind.Local) && node.BaseUrl is null && node.Id != options.Value.NodeId;

    /// <summary>Whether a cluster node's last load report is recent at <paramref name="nowMs"/> (<see cref="NowMs"/>).</summary>
    internal bool IsFresh(NodeView node, long nowMs) =>
        node.Load is { } load && nowMs - load.ReportedAt <= cluster.Value.NodeStaleSeconds * 1000;

    /// <summary>The ids of the nodes marked unreachable (some may have recovered: <see cref="IsUp(NodeView)"/> decides).</summary>
    internal IEnumerable<string> MarkedUnreachable => _unreachable.Select(static mark => mark.Key);

    /// <summary>How long a cluster node's last report counts (seconds).</summary>
    internal double NodeStaleSeconds => cluster.Value.NodeStaleSeconds;

    /// <summary>Whether any node is marked unreachable now (routing then checks each replica's mark).</summary>
    internal bool AnyMarkedUnreachable => Volatile.Read(ref _unreachableCount) > 0;

    /// <summary>
    /// The clock routing decisions read (Unix ms): the registry's, as this process's clock and the offset measured at
    /// the last refresh give it, since the registry stamps the load reports whose age it measures.
    /// </summary>
    internal long NowMs => time.GetUtcNow().ToUnixTimeMilliseconds() - _snapshot.ClockOffsetMs;

    /// <summary>Why a node does or does not take requests now, for the operator's view of the pool.</summary>
    public NodeHealth HealthOf(NodeView node) =>
        !IsTrusted(node) ? NodeHealth.Untrusted
        : node.State == nameof(NodeState.Draining) ? NodeHealth.Draining
        : node.State != nameof(NodeState.Active) ? NodeHealth.Down
        : IsMarkedUnreachable(node) ? NodeHealth.Unreachable
        : IsUp(node) ? NodeHealth.Up
        : NodeHealth.Stale;

    /// <summary>
    /// Whether the node's credential verifies with the operator key and binds its row (id, jurisdiction, kind, URL):
    /// only such a node is ever routed to. A row read after the last refresh is checked here, from the same cache.
    /// </summary>
    public bool IsTrusted(NodeView node)
    {
        ArgumentNullException.ThrowIfNull(node);
        var credential = _snapshot.Verified.TryGetValue(node.Credential, out var known) ? known : NodeCredentials.Verify(node.Credential, _operatorKeys, out _);
        return credential is not null && NodeCredentials.Mismatch(credential, node.Id, node.Jurisdiction, node.Kind, node.BaseUrl) is null;
    }

    /// <summary>
    /// Routes around a node from its first failed connection, without waiting for membership to declare it dead: a
    /// cluster node until it reports again (a report the registry stamped after the failure), an external engine for
    /// <see cref="UnreachableRetryAfter"/>.
    /// </summary>
    /// <param name="logged">Whether to log it (event 4100); not for a node that answered, saying it did not start a request (event 4130 says so).</param>
    public void MarkUnreachable(NodeView node, bool logged = true)
    {
        var mark = new Unreachable(time.GetUtcNow(), Math.Max(node.Load?.ReportedAt ?? 0, NowMs));
        if (_unreachable.TryAdd(node.Id, mark))
        {
            Interlocked.Increment(ref _unreachableCount);
        }
        else
        {
            _unreachable[node.Id] = mark;
        }

        if (logged)
        {
            Observability.GatewayLog.NodeUnreachable(logger, node.Id);
        }
    }

    private bool IsMarkedUnreachable(NodeView node)
    {
        if (Volatile.Read(ref _unreachableCount) == 0 || !_unreachable.TryGetValue(node.Id, out var mark))
        {
            return false;
        }

        // Not merely a report newer than the view the failure was seen in: a dying node's last report, sent before the
        // failure but read after it, made a killed node "up" again until its report went stale.
        var recovered = IsClusterNode(node)
            ? node.Load?.ReportedAt > mark.ReportedAfter
            : Sovereign.Cluster.Hosting.WallClock.HasPassed(time.GetUtcNow(), mark.At, UnreachableRetryAfter);
        if (recovered)
        {
            if (_unreachable.TryRemove(new KeyValuePair<string, Unreachable>(node.Id, mark)))
            {
                Interlocked.Decrement(ref _unreachableCount);
            }
        }

        return !recovered;
    }

    /// <summary>
    /// Trusted cluster nodes that have <paramref name="model"/> in their registry but not loaded: the model exists in
    /// the pool, it just has no capacity now (an operator may load it a minute later).
    /// </summary>
    public async ValueTask<IReadOnlyList<NodeView>> NodesWithUnloadedAsync(string model) =>
        [.. (await GetNodesAsync()).Where(n => IsClusterNode(n) || n.Id == options.Value.NodeId).Where(n => n.Load?.Available?.Contains(model, StringComparer.Ordinal) == true)];

    /// <summary>Forces the next read to go to the registry (after an admin change in this process).</summary>
    public void Invalidate()
    {
        lock (_refreshGate)
        {
            _generation++;
            _snapshot = _snapshot with { ReadAt = DateTimeOffset.MinValue };
        }
    }

    /// <summary>This process's own node, if registered and trusted (indexed when the snapshot is built).</summary>
    public async ValueTask<NodeView?> GetLocalNodeAsync()
    {
        await GetNodesAsync();
        return _snapshot.Local;
    }

    /// <summary>Requests in flight to an external node, for load-aware selection.</summary>
    public int InFlight(string nodeId) => _inFlight.TryGetValue(nodeId, out var n) ? n : 0;

    /// <summary>Counts a request to an external node until the returned handle is disposed.</summary>
    public IDisposable Track(string nodeId)
    {
        _inFlight.AddOrUpdate(nodeId, 1, static (_, n) => n + 1);
        return new InFlightHandle(_inFlight, nodeId);
    }

    /// <summary>
    /// A node's pool and device class, for prices and reservations: the pool its verified credential names (else
    /// <c>&lt;jurisdiction&gt;-default</c>), the device class the operator named in it, else the one the node reports
    /// (configured there or derived from its accelerators), else <see cref="DeviceClasses.Unknown"/>.
    /// </summary>
    public Placement PlacementOf(NodeView node)
    {
        ArgumentNullException.ThrowIfNull(node);
        var claims = _snapshot.Claims.GetValueOrDefault(node.Id);
        return new Placement(
            claims?.Pool ?? DefaultPool(node.Jurisdiction),
            // Canonical here too: credentials signed, and reports sent, before classes were stored in lower case.
            DeviceClasses.Canonical(claims?.DeviceClass ?? node.Load?.DeviceClass) ?? DeviceClasses.Of(node.Load?.Accelerators) ?? DeviceClasses.Unknown);
    }

    /// <summary>The device class the operator signed into the node's verified credential, if it names one (lower case).</summary>
    internal string? SignedDeviceClassOf(NodeView node) => DeviceClasses.Canonical(_snapshot.Claims.GetValueOrDefault(node.Id)?.DeviceClass);

    /// <summary>The pool of a node whose credential names none.</summary>
    public static string DefaultPool(string jurisdiction) => jurisdiction.ToLowerInvariant() + "-default";

    /// <param name="At">When the connection failed (this process's clock).</param>
    /// <param name="ReportedAfter">A cluster node is reachable again with a report stamped after this (the registry's clock, Unix ms).</param>
    private sealed record Unreachable(DateTimeOffset At, long ReportedAfter);

    /// <summary>A verified view of the registry; <see cref="Verified"/> holds each credential's check (null: it failed).</summary>
    private sealed record Snapshot(
        long Version, IReadOnlyList<NodeView> Nodes, DateTimeOffset ReadAt, IReadOnlyDictionary<string, (NodeView, NodeModel)[]> ChatByModel,
        IReadOnlyDictionary<string, (NodeView, NodeModel)[]> EmbeddingByModel, IReadOnlyDictionary<string, NodeClaims> Claims, NodeView? Local, long Generation, IReadOnlyDictionary<string, NodeClaims?> Verified,
        long ClockOffsetMs, IReadOnlySet<string> Untrusted);

    private sealed class InFlightHandle(ConcurrentDictionary<string, int> counts, string nodeId) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                counts.AddOrUpdate(nodeId, 0, static (_, n) => Math.Max(0, n - 1));
            }
        }
    }
}

/// <summary>A node's health for routing, as the operator sees it.</summary>
public enum NodeHealth
{
    /// <summary>Active, reporting, reachable: takes requests.</summary>
    Up,

    /// <summary>Finishing its work; takes nothing new.</summary>
    Draining,

    /// <summary>Taken out of rotation by the operator.</summary>
    Down,

    /// <summary>Its last connection failed; routed around until it reports again.</summary>
    Unreachable,

    /// <summary>Its last load report is too old (stopped, or cut off from the registry).</summary>
    Stale,

    /// <summary>
    /// Its credential is not signed by this cluster's operator key, or does not bind its id, jurisdiction or URL (a
    /// member started with a key of its own): never routed to, whatever its state.
    /// </summary>
    Untrusted,
}
