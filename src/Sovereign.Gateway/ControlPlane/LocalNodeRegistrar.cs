using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Models;
using Sovereign.Gateway.Routing;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;
using Sovereign.Residency.Policies;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Registers this process as a node at start-up, bound to its declared jurisdiction by an operator-signed
/// credential: the configured one (verified), or on a single machine one issued with the local operator key.
/// </summary>
internal sealed partial class LocalNodeRegistrar(
    NodeDirectory nodes,
    ModelCatalog catalog,
    FrontedEngines engines,
    OperatorSigningKey operatorKey,
    IOptions<SovereignOptions> options,
    IOptions<Cluster.Hosting.SovereignClusterOptions> cluster,
    TimeProvider time,
    ILogger<LocalNodeRegistrar> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (!cluster.Value.ServesModels)
        {
            return; // a gateway serves no model, so it is no node
        }

        // A node of a multi-process cluster is reached at its URL, which its credential binds (so it cannot be moved).
        var url = cluster.Value.IsDistributed ? cluster.Value.NodeUrl?.TrimEnd('/') : null;
        if (string.IsNullOrWhiteSpace(settings.Jurisdiction))
        {
            LogNoJurisdiction(settings.NodeId);
            return;
        }

        var jurisdiction = settings.Jurisdiction.ToUpperInvariant();
        var kind = nameof(NodeKind.Local);
        var credential = settings.NodeCredential;
        var operatorKeys = operatorKey.History;
        var selfIssued = false;
        if (string.IsNullOrWhiteSpace(credential) && cluster.Value is { Role: Cluster.Hosting.ServerRole.Node, IsDistributed: true }
            && await ClusterJoiner.KeptAsync(settings, cancellationToken) is { } joined)
        {
            // Joined with a token: the credential the operator's gateway signed, checked with the operator's public key.
            if (!string.Equals(joined.Jurisdiction, jurisdiction, StringComparison.Ordinal))
            {
                throw new InvalidOperationException(
                    $"Sovereign:Jurisdiction is {jurisdiction}, but this node joined the cluster in {joined.Jurisdiction} (its token's, kept in {Path.Combine(settings.ResolvedDataDirectory, JoinResponse.FileName)}). " +
                    $"Remove Sovereign:Jurisdiction, or, to move it to {jurisdiction}, delete that file and start it with a token for {jurisdiction} (sovereign nodes join-token --jurisdiction {jurisdiction}).");
            }

            credential = joined.Credential;
            operatorKeys = joined.OperatorKeys;
        }
        else if (string.IsNullOrWhiteSpace(credential))
        {
            // One machine, or a member holding the operator's key file: it issues its own credential.
            credential = NodeCredentials.Issue(
                new NodeClaims(settings.NodeId, jurisdiction, kind, url, time.GetUtcNow().ToUnixTimeMilliseconds(), LocalDevice.PoolOf(cluster.Value, jurisdiction), DeviceClasses.Canonical(cluster.Value.DeviceClass)),
                operatorKey);
            selfIssued = true;
        }

        if (!selfIssued)
        {
            var claims = NodeCredentials.Verify(credential, operatorKeys, out var problem)
                ?? throw new InvalidOperationException($"The node credential does not verify: {problem}.");
            if (NodeCredentials.Mismatch(claims, settings.NodeId, jurisdiction, kind, url) is { } mismatch)
            {
                throw new InvalidOperationException($"The node credential does not match this node: {mismatch}.");
            }
        }

        var models = NodeLoadReporter.ModelsOf(catalog, settings.Limits.RouteQueue, engines);
        for (var waited = false; ; waited = true)
        {
            try
            {
                var existing = (await nodes.Registry.GetAsync()).Nodes.FirstOrDefault(n => n.Id == settings.NodeId);
                await nodes.Registry.UpsertAsync(new NodeView(settings.NodeId, jurisdiction, kind, url, models, existing?.State ?? nameof(NodeState.Active), credential, null, 0));
                break;
            }
            catch (ArgumentException) when (cluster.Value.Role == Cluster.Hosting.ServerRole.Node)
            {
                // The registry lives on gateways only; a node that starts first waits for one to join.
                if (!waited)
                {
                    LogWaitingForGateway(settings.NodeId);
                }

                await Task.Delay(TimeSpan.FromMilliseconds(500), time, cancellationToken);
            }
        }

        nodes.Invalidate();
        LogRegistered(settings.NodeId, jurisdiction);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "Sovereign:Jurisdiction is not set: node {NodeId} declares no jurisdiction, so requests of tenants with a residency policy will be refused here.")]
    private partial void LogNoJurisdiction(string nodeId);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "Node {NodeId} waits for a gateway to join the cluster (the node registry lives on gateways)")]
    private partial void LogWaitingForGateway(string nodeId);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Node {NodeId} registered in jurisdiction {Jurisdiction}")]
    private partial void LogRegistered(string nodeId, string jurisdiction);
}
