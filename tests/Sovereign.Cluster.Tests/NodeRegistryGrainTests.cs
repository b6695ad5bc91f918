using Sovereign.Cluster.Grains;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// The registry stamps load reports with its own clock: a node's clock is not trusted to agree with the gateways'
/// (a GPU server an hour off used to read as stale at every report, or as fresh long after it died).
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class NodeRegistryGrainTests(ClusterFixture fixture)
{
    [Fact]
    public async Task LoadReport_IsStampedWithTheRegistrysClock_NotTheNodes()
    {
        var registry = fixture.Grains.GetGrain<INodeRegistryGrain>("clock-test");
        await registry.UpsertAsync(new NodeView("node-skewed", "TH", "Local", "https://127.0.0.1:9", [new NodeModel("m", "m", 2)], "Active", "credential", null, 0));

        // The node's clock is an hour behind, and another node's an hour ahead.
        var before = fixture.Clock.GetUtcNow().ToUnixTimeMilliseconds();
        Assert.True(await registry.ReportAsync("node-skewed", [new NodeModel("m", "m", 2)], new NodeLoad(before - 3_600_000, [], [])));
        var snapshot = await registry.GetAsync();
        var after = fixture.Clock.GetUtcNow().ToUnixTimeMilliseconds();

        Assert.InRange(Assert.Single(snapshot.Nodes).Load!.ReportedAt, before, after);
        Assert.InRange(snapshot.Now, before, after);

        await registry.UpsertAsync(new NodeView("node-ahead", "TH", "Local", "https://127.0.0.1:10", [new NodeModel("m", "m", 2)], "Active", "credential", null, 0));
        Assert.True(await registry.ReportAsync("node-ahead", [new NodeModel("m", "m", 2)], new NodeLoad(after + 3_600_000, [], [])));
        Assert.InRange((await registry.GetAsync()).Nodes.Single(n => n.Id == "node-ahead").Load!.ReportedAt, before, fixture.Clock.GetUtcNow().ToUnixTimeMilliseconds());
    }
}
