using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Routing;
using Sovereign.Gateway.OpenAI;
using Sovereign.Metering.Pricing;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// Pools in the request path: places a routed request in its node's pool and device class (what prices it), and,
/// where any plan reserves slots in that pool, holds the request at the pool's <see cref="PoolGate"/> for its model
/// until it gets a reserved or an unreserved slot. A pool nobody reserves in costs no gate and no wait.
/// </summary>
/// <remarks>
/// The gate is the cluster's: one <see cref="IPoolSlotsGrain"/> activation per pool and model, on a gateway, so the
/// reservation holds across every gateway that relays to the pool, and its count survives the death of the gateway
/// hosting it (<see cref="PoolLeaseTable"/>; see docs/architecture.md, "Reserved capacity").
/// </remarks>
internal sealed class PoolAdmission(
    NodeDirectory nodes,
    Models.ModelCatalog catalog,
    Models.FrontedEngines engines,
    PriceBookProvider prices,
    IGrainFactory grains,
    ILocalSiloDetails silo,
    IOptions<SovereignOptions> options,
    IOptions<Cluster.Hosting.SovereignClusterOptions> cluster,
    PoolSlotClient slots)
{
    private volatile LocalPlacement? _local;

    /// <summary>A model's slots in a pool, cluster-wide: the plan's on reserved slots, all on unreserved ones, and those waiting.</summary>
    internal Task<PoolSlotCounts> CountsAsync(string pool, string model, string plan) =>
        grains.GetGrain<IPoolSlotsGrain>(PoolSlotsGrain.KeyOf(pool, model)).CountsAsync(plan);

    /// <summary>
    /// This process's own node's placement (its models run here): the pool its verified credential names, as every
    /// gateway sees it (a node that joined with a token is in the token's pool), else the one it would issue itself.
    /// </summary>
    public async ValueTask<Placement> LocalPlacementAsync(CancellationToken cancellationToken = default)
    {
        // Every locally served request asks: computed once per registry snapshot (the node's view changes only with it).
        var self = await nodes.GetLocalNodeAsync();
        if (_local is { } known && ReferenceEquals(known.Node, self))
        {
            return known.Placement;
        }

        var pool = self is not null ? nodes.PlacementOf(self).Pool : LocalDevice.PoolOf(cluster.Value, options.Value.Jurisdiction ?? "xx");
        // A device class the operator signed into the credential (a join token's) wins, as it does at the gateways.
        var placement = new Placement(pool, (self is not null ? nodes.SignedDeviceClassOf(self) : null) ?? await LocalDevice.DeviceClassAsync(cluster.Value, cancellationToken));
        _local = new LocalPlacement(self, placement);
        return placement;
    }

    /// <summary>Sets <see cref="RoutedRequest.Placement"/>: the pool and device class of the node that runs the request.</summary>
    public async ValueTask PlaceAsync(RoutedRequest route, CancellationToken cancellationToken)
    {
        route.Placement = route.ExternalNode is { } node ? nodes.PlacementOf(node) : await LocalPlacementAsync(cancellationToken);
    }

    /// <summary>
    /// Waits for a slot of the request's pool when plans reserve slots there; null (nothing to release) otherwise.
    /// Throws the OpenAI error to answer with when it cannot get one.
    /// </summary>
    public async ValueTask<IAsyncDisposable?> AcquireAsync(GovernedRequest request)
    {
        // Work a gateway relays here already holds its slot of the pool at that gateway.
        if (request.Route is not { Placement: { } placement } route || request.Ticket is not { } ticket
            || request.Caller.TenantId == ClusterRelay.RelayTenant)
        {
            return null;
        }

        var book = prices.Current;
        var reservedTotal = 0;
        foreach (var plan in book.Plans)
        {
            reservedTotal += plan.ReservedSlotsIn(placement.Pool);
        }

        if (reservedTotal == 0)
        {
            return null;
        }

        var reserved = book.FindPlan(request.Caller.Plan)?.ReservedSlotsIn(placement.Pool) ?? 0;
        var capacity = await CapacityAsync(placement.Pool, route.Model);
        var slot = new PoolSlotRequest(Guid.NewGuid(), placement.Pool, route.Model, request.Caller.Plan, reserved, reservedTotal, capacity,
            options.Value.Limits.RouteQueue, request.Caller.TenantId, ticket.Weight, (int)ticket.Priority, silo.SiloAddress);
        return await slots.AcquireAsync(slot, route.RequestId, request.Aborted);
    }

    /// <summary>
    /// The slots the pool has for a model now: the sequences of this process's engine when this node is in the pool,
    /// plus, for every other node of the pool that is up, the slots it reports (a cluster node) or was registered with
    /// (an external engine). A model with no replica in the pool has none.
    /// </summary>
    public async ValueTask<int> CapacityAsync(string pool, string model)
    {
        var slots = 0;
        if (catalog.TryGet(model, out var local) && (await LocalPlacementAsync()).Pool == pool)
        {
            slots += local.Batcher?.Model.Options.Parallel ?? Executors.EmbeddingExecutor.Slots;
        }
        else if (engines.TryGet(model, out var fronted) && engines.IsUp(fronted.Engine) && (await LocalPlacementAsync()).Pool == pool)
        {
            slots += fronted.Model.Capacity;
        }

        // Chat and embedding replicas alike: a pool's reservations hold for both kinds of route.
        foreach (var kind in RemoteKinds)
        {
            foreach (var (node, replica) in await nodes.ExternalReplicasAsync(model, kind))
            {
                if (nodes.IsUp(node) && nodes.PlacementOf(node).Pool == pool)
                {
                    // A cluster node reports each model's slots (its chat models' sequences, an embedding model's
                    // executor slots, a fronted engine's capacity); an external engine has the capacity it was registered with.
                    var load = node.Load?.Models.FirstOrDefault(m => m.Model == model);
                    slots += load is not null && (NodeDirectory.IsClusterNode(node) || !replica.IsEmbedding) ? load.Running + load.FreeSlots
                        : replica.IsEmbedding && NodeDirectory.IsClusterNode(node) ? Executors.EmbeddingExecutor.Slots
                        : replica.Capacity;
                }
            }
        }

        return slots;
    }

    /// <summary>The slots of every model the pool serves now, by model (for checking reservations against them).</summary>
    public async ValueTask<IReadOnlyDictionary<string, int>> CapacityByModelAsync(string pool)
    {
        var models = new SortedSet<string>(StringComparer.Ordinal);
        if ((await LocalPlacementAsync()).Pool == pool)
        {
            models.UnionWith(catalog.All.Select(m => m.Id));
        }

        foreach (var node in await nodes.GetNodesAsync())
        {
            if (node.Id != options.Value.NodeId && nodes.IsUp(node) && nodes.PlacementOf(node).Pool == pool)
            {
                models.UnionWith(node.Models.Select(m => m.Id));
            }
        }

        var capacity = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var model in models)
        {
            capacity[model] = await CapacityAsync(pool, model);
        }

        return capacity;
    }

    private static readonly Sovereign.Inference.Engine.ModelKind[] RemoteKinds = [Sovereign.Inference.Engine.ModelKind.Chat, Sovereign.Inference.Engine.ModelKind.Embedding];

    private sealed record LocalPlacement(NodeView? Node, Placement Placement);
}
