using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.Pipeline.Executors;

/// <summary>
/// Runs chat and text completions, and embeddings, on another node of the cluster: the same relay as to an external engine (the node
/// speaks OpenAI's wire format), authenticated with the cluster secret, which the node requires, and over https with
/// both ends' cluster certificates (<see cref="ClusterNodeHttp"/>). The policy sees the
/// node as the operator's own (kind local), at the jurisdiction its operator-signed credential binds.
/// </summary>
internal sealed class RemoteNodeExecutor(UpstreamProxy proxy, NodeDirectory nodes, RouteGates gates, IOptions<SovereignOptions> options, EngineOccupancy occupancy, ClusterRelay relay)
    : ExternalEngineExecutor(proxy, nodes, gates, options, occupancy)
{
    public override bool Runs(RoutedRequest route, Workload work) =>
        route is { Fronted: null, ExternalNode.Kind: nameof(Residency.Policies.NodeKind.Local) } && Relays(route, work);

    protected override string? UpstreamKey(NodeView node) => relay.Secret;

    protected override bool FailsOverWhenUnavailable => false;

    /// <summary>A node's 503 of work it never handed to an engine says so (<see cref="RelayNotStarted"/>): that one fails over.</summary>
    protected override bool SaysNotStarted(HttpResponseMessage response) => RelayNotStarted.Said(response);

    /// <summary>The node measures its engine and reports it (<see cref="RelayComputeReport"/>); the gateway cannot.</summary>
    protected override bool ReportsCompute => true;

    /// <summary>
    /// The node counts this gateway's requests apart in its load report (<see cref="RelayLoads"/>), and reuses cached
    /// prompts only within the tenant's partition (<see cref="PrefixCachePartition"/>); a stream asks for the engine's
    /// count on every event where the node's engine gives it (<see cref="RelayUsageSoFar"/>).
    /// </summary>
    protected override IReadOnlyList<(string Name, string Value)> RelayHeaders(GovernedRequest request) =>
        request.Work is GenerationWorkload { Stream: true }
            ? [(RelayLoads.GatewayHeader, NodeId), (ClusterRelay.RelayOfHeader, request.Route!.RequestId), (PrefixCachePartition.Header, PrefixCachePartition.ForRelay(request.Caller)), (RelayUsageSoFar.Header, "1")]
            : [(RelayLoads.GatewayHeader, NodeId), (ClusterRelay.RelayOfHeader, request.Route!.RequestId), (PrefixCachePartition.Header, PrefixCachePartition.ForRelay(request.Caller))];

    /// <summary>Over https, the node must prove it is a node of this cluster (cluster CA), and this gateway presents its own certificate.</summary>
    protected override string HttpClientName => UpstreamProxy.ClusterNodeClientName;
}
