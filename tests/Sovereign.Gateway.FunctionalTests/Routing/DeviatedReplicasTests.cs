using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Scheduling;
using Sovereign.Residency.Audit;

namespace Sovereign.Gateway.FunctionalTests.Routing;

/// <summary>
/// The replicas a decision must read beyond the snapshot's baseline: those on busy routes (collected again only when
/// the busy set changed) and those on nodes marked unreachable. A stale list would route to a full replica as idle.
/// </summary>
public sealed class DeviatedReplicasTests
{
    [Fact]
    public async Task Deviated_FollowsEveryChangeOfTheBusySet_AndAddsUnreachableNodes()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-deviated-").FullName;
        try
        {
            using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(folder, "operator-key.pem"));
            var options = Options.Create(new SovereignOptions());
            var nodes = new NodeDirectory(null!, key, options, Options.Create(new Sovereign.Cluster.Hosting.SovereignClusterOptions()), TimeProvider.System, NullLogger<NodeDirectory>.Instance);
            var gates = new RouteGates(options);
            var views = new[] { "node-a", "node-b", "node-c" }
                .Select(id => new NodeView(id, "TH", "External", "http://127.0.0.1:9", [new NodeModel("m", "m", 1)], "Active", "", null, 0))
                .ToArray();
            var replicas = new SnapshotReplicas([.. views.Select(v => (v, v.Models[0]))], gates, staleSeconds: 5);
            int[] Deviated() => [.. replicas.Deviated(nodes, gates, nodes.NowMs)!.Select(i => replicas[i].Node.Id == "node-a" ? 0 : replicas[i].Node.Id == "node-b" ? 1 : 2).Order()];

            Assert.Empty(Deviated());
            var onA = await gates.For("node-a", "m", 1).AcquireAsync(new FairQueueEntry("t", 1, PriorityClass.Interactive, 1), default);
            Assert.Equal([0], Deviated());
            Assert.Equal([0], Deviated()); // the same busy set: the list collected before

            var onC = await gates.For("node-c", "m", 1).AcquireAsync(new FairQueueEntry("t", 1, PriorityClass.Interactive, 1), default);
            Assert.Equal([0, 2], Deviated());
            onA.Dispose();
            Assert.Equal([2], Deviated());

            nodes.MarkUnreachable(views[1]);
            Assert.Equal([1, 2], Deviated());
            onC.Dispose();
            Assert.Equal([1], Deviated());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
