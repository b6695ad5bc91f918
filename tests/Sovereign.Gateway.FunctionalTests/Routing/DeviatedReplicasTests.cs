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

/// <summary>
/// A gateway's reading of cluster nodes that break their load down by gateway: its own requests count as it holds them
/// now, the others' as reported. Before, a node whose report (up to a second old) showed this gateway's eight requests
/// still read as eight after seven had finished, so the gateway sent new work to a busier node.
/// </summary>
public sealed class ClusterReplicaLoadTests
{
    [Fact]
    public async Task NodeReportingThisGatewaysFinishedRequests_ReadsAsItsLoadNow_PlusTheOtherGateways()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-gateway-share-").FullName;
        try
        {
            using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(folder, "operator-key.pem"));
            var options = Options.Create(new SovereignOptions { NodeId = "gw-th" });
            var nodes = new NodeDirectory(null!, key, options, Options.Create(new Sovereign.Cluster.Hosting.SovereignClusterOptions()), TimeProvider.System, NullLogger<NodeDirectory>.Instance);
            var gates = new RouteGates(options);
            var now = nodes.NowMs;
            NodeView Node(string id, ModelLoad load) =>
                new(id, "TH", "Local", $"https://{id}:8080", [new NodeModel("m", "m", 264)], "Active", "", null, 0, new NodeLoad(now, [load], []));

            // node-a's report: 8 running, all from this gateway; node-b's: 5 of another gateway's and 1 of this one's.
            // node-c reports no breakdown (an older node): its report and this gateway's count, whichever is larger.
            var views = new[]
            {
                Node("node-a", new ModelLoad("m", 8, 0, 0, 0, new Dictionary<string, int> { ["gw-th"] = 8 })),
                Node("node-b", new ModelLoad("m", 6, 2, 0, 0, new Dictionary<string, int> { ["gw-sg"] = 5, ["gw-th"] = 1 })),
                Node("node-c", new ModelLoad("m", 8, 0, 0, 0)),
            };
            var replicas = new SnapshotReplicas([.. views.Select(v => (v, v.Models[0]))], gates, staleSeconds: 3600, gateway: "gw-th");
            var entry = new FairQueueEntry("t", 1, PriorityClass.Interactive, 1);
            var held = new List<IDisposable> { await gates.For("node-a", "m", 264).AcquireAsync(entry, default) };
            held.Add(await gates.For("node-b", "m", 264).AcquireAsync(entry, default));
            held.Add(await gates.For("node-c", "m", 264).AcquireAsync(entry, default));

            var reader = replicas.ReadAt(nodes, gates);
            Assert.Equal((1, 6, 8), (reader.Read(0).Load, reader.Read(1).Load, reader.Read(2).Load));
            held.ForEach(h => h.Dispose());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
