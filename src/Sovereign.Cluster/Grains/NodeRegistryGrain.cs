using System.Text.Json;
using Microsoft.Extensions.Logging;
using Sovereign.Cluster.Hosting;
using Sovereign.Residency.ControlPlane;
using Sovereign.Residency.Policies;

namespace Sovereign.Cluster.Grains;

/// <summary>The one writer of the node table; readers cache its snapshot by version.</summary>
internal sealed partial class NodeRegistryGrain(ControlPlaneStore store, TimeProvider time, ILogger<NodeRegistryGrain> logger) : Grain, INodeRegistryGrain
{
    /// <summary>The most (node, kind) pairs whose clamp is remembered as logged; past it no more are logged (a flood of node ids).</summary>
    internal const int MaxClampsLogged = 4096;

    private readonly Dictionary<string, NodeView> _nodes = new(StringComparer.Ordinal);
    private readonly HashSet<(string Node, NodeLoadClamp Kind)> _clampsLogged = [];
    private long _version;

    public override Task OnActivateAsync(CancellationToken cancellationToken) => StorageFailures.ActivateAsync(async () =>
    {
        foreach (var node in await store.ListNodesAsync(cancellationToken))
        {
            _nodes[node.Id] = ToView(node);
        }

        _version = time.GetUtcNow().ToUnixTimeMilliseconds();
    });

    public Task<NodeRegistrySnapshot> GetAsync() =>
        Task.FromResult(new NodeRegistrySnapshot(_version, _nodes.Values.OrderBy(n => n.Id, StringComparer.Ordinal).ToList(), time.GetUtcNow().ToUnixTimeMilliseconds()));

    public async Task<NodeView> UpsertAsync(NodeView node)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var created = _nodes.TryGetValue(node.Id, out var existing) ? existing.UpdatedAt : now;
        var stored = node with { UpdatedAt = now };
        await store.UpsertNodeAsync(ToRecord(stored, created));
        _nodes[node.Id] = stored;
        _version++;
        return stored;
    }

    public Task<NodeView> RegisterAsync(NodeView node) =>
        UpsertAsync(_nodes.TryGetValue(node.Id, out var registered) ? node with { State = registered.State } : node);

    public async Task<bool> SetStateAsync(string nodeId, string state)
    {
        if (!_nodes.TryGetValue(nodeId, out var node))
        {
            return false;
        }

        await UpsertAsync(node with { State = state });
        return true;
    }

    public async Task<bool> DeleteAsync(string nodeId)
    {
        if (!_nodes.Remove(nodeId))
        {
            return false;
        }

        await store.DeleteNodeAsync(nodeId);
        _version++;
        return true;
    }

    public async Task<bool> ReportAsync(string nodeId, IReadOnlyList<NodeModel> models, NodeLoad load)
    {
        if (!_nodes.TryGetValue(nodeId, out var node))
        {
            return false;
        }

        if (!node.Models.SequenceEqual(models))
        {
            // Loading or unloading a model changes what the node serves: persisted at once, like a registration.
            node = await UpsertAsync(node with { Models = [.. models] });
        }

        // Stamped with the registry's clock, not the node's: a GPU server whose clock is off by more than
        // NodeStaleSeconds was always stale (never routed to) or, ahead, stayed fresh after it died.
        // Held to what a node can really report (NodeLoadBounds): the router, the console and the CLI read it as written.
        var kept = NodeLoadBounds.Clamp(load, out var clamped);
        _nodes[nodeId] = node with { Load = kept with { ReportedAt = time.GetUtcNow().ToUnixTimeMilliseconds() } };
        _version++;
        foreach (var (kind, example) in clamped)
        {
            // Once per node and kind while this registry runs: a node that reports nonsense every second logs it once.
            if (_clampsLogged.Count < MaxClampsLogged && _clampsLogged.Add((nodeId, kind)))
            {
                LoadReportClamped(logger, Residency.DisplayText.Escaped(nodeId), kind, example);
            }
        }

        return true;
    }

    [LoggerMessage(EventId = 4171, EventName = "NodeLoadReportClamped", Level = LogLevel.Warning,
        Message = "Node {Node} reported a load no node can have ({Kind}: {Example}); the registry keeps it within bounds (NodeLoadBounds) for routing, the console and the CLI. Logged once per node and kind until the registry restarts: check that node's software")]
    private static partial void LoadReportClamped(ILogger logger, string node, NodeLoadClamp kind, string example);

    private static NodeView ToView(NodeRecord n) => new(
        n.Id, n.Jurisdiction, n.Kind.ToString(), n.BaseUrl, JsonSerializer.Deserialize<List<NodeModel>>(n.ModelsJson, JsonOptions) ?? [],
        n.State.ToString(), n.Credential, n.UpstreamKey, n.UpdatedAt, PromptCache: n.PromptCache);

    private static NodeRecord ToRecord(NodeView n, long created) => new(
        n.Id, n.Jurisdiction, Enum.Parse<NodeKind>(n.Kind), n.BaseUrl, JsonSerializer.Serialize(n.Models, JsonOptions),
        Enum.Parse<NodeState>(n.State), n.Credential, n.UpstreamKey, created, n.UpdatedAt, n.PromptCache);

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);
}
