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
    OperatorSigningKey operatorKey,
    IOptions<SovereignOptions> options,
    TimeProvider time,
    ILogger<LocalNodeRegistrar> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (string.IsNullOrWhiteSpace(settings.Jurisdiction))
        {
            LogNoJurisdiction(settings.NodeId);
            return;
        }

        var jurisdiction = settings.Jurisdiction.ToUpperInvariant();
        var kind = nameof(NodeKind.Local);
        var credential = settings.NodeCredential;
        if (string.IsNullOrWhiteSpace(credential))
        {
            credential = NodeCredentials.Issue(new NodeClaims(settings.NodeId, jurisdiction, kind, null, time.GetUtcNow().ToUnixTimeMilliseconds()), operatorKey);
        }
        else
        {
            var claims = NodeCredentials.Verify(credential, operatorKey.PublicKeyPem, out var problem)
                ?? throw new InvalidOperationException($"Sovereign:NodeCredential does not verify: {problem}.");
            if (NodeCredentials.Mismatch(claims, settings.NodeId, jurisdiction, kind, null) is { } mismatch)
            {
                throw new InvalidOperationException($"Sovereign:NodeCredential does not match this node: {mismatch}.");
            }
        }

        var models = catalog.All.Select(m => new NodeModel(m.Id, m.Id, m.Model is { } model ? model.Options.Parallel + model.Options.MaxQueue : 64, m.Model?.Options.License, m.Model?.Options.Origin)).ToList();
        var existing = (await nodes.Registry.GetAsync()).Nodes.FirstOrDefault(n => n.Id == settings.NodeId);
        await nodes.Registry.UpsertAsync(new NodeView(settings.NodeId, jurisdiction, kind, null, models, existing?.State ?? nameof(NodeState.Active), credential, null, 0));
        nodes.Invalidate();
        LogRegistered(settings.NodeId, jurisdiction);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "Sovereign:Jurisdiction is not set: node {NodeId} declares no jurisdiction, so requests of tenants with a residency policy will be refused here.")]
    private partial void LogNoJurisdiction(string nodeId);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Information, Message = "Node {NodeId} registered in jurisdiction {Jurisdiction}")]
    private partial void LogRegistered(string nodeId, string jurisdiction);
}
