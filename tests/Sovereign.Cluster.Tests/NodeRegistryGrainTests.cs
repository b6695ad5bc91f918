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

    /// <summary>
    /// A node's load report was kept as sent: negative free slots and queue depth (a node that looked better than idle
    /// to the router), a NaN or negative KV-cache use, memory used above total or negative, and names of any length
    /// (a 100,000-character accelerator name went into every snapshot every gateway read each second).
    /// </summary>
    [Fact]
    public async Task LoadReport_WithNonsenseValues_IsHeldToWhatANodeCanReport()
    {
        var registry = fixture.Grains.GetGrain<INodeRegistryGrain>("bounds-test");
        await registry.UpsertAsync(new NodeView("node-liar", "TH", "Local", "https://127.0.0.1:11", [new NodeModel("m", "m", 2)], "Active", "credential", null, 0));
        var huge = new string('x', 100_000);
        var load = new NodeLoad(0,
            [new ModelLoad("m", -5, -100, int.MinValue, double.NaN, new Dictionary<string, int> { ["gw-1"] = -3, [huge] = int.MaxValue }), new ModelLoad(huge, int.MaxValue, 3, 2, 7.5)],
            [new Accelerator("gpu", huge, -1, 5), new Accelerator("gpu", "H100", 81_559, 90_000), new Accelerator("gpu", "big", long.MaxValue, -7)],
            [.. Enumerable.Range(0, 1000).Select(i => "model-" + i)], huge);

        Assert.True(await registry.ReportAsync("node-liar", [new NodeModel("m", "m", 2)], load));
        var kept = (await registry.GetAsync()).Nodes.Single(n => n.Id == "node-liar").Load!;
        // The table is shared by the fixture's registries: leave none of this node for the others.
        Assert.True(await registry.DeleteAsync("node-liar"));

        var (first, second) = (kept.Models[0], kept.Models[1]);
        Assert.Equal((0, 0, 0, 0.0), (first.Running, first.FreeSlots, first.QueueDepth, first.KvCacheUse));
        Assert.Equal(0, first.FromGateways!["gw-1"]);
        Assert.Equal(NodeLoadBounds.MaxCount, first.FromGateways[huge[..NodeLoadBounds.MaxNameLength]]);
        Assert.Equal((NodeLoadBounds.MaxNameLength, NodeLoadBounds.MaxCount, 1.0), (second.Model.Length, second.Running, second.KvCacheUse));
        Assert.Equal((NodeLoadBounds.MaxNameLength, 0L, 0L), (kept.Accelerators[0].Name.Length, kept.Accelerators[0].MemoryTotalMiB, kept.Accelerators[0].MemoryUsedMiB));
        Assert.Equal((81_559L, 81_559L), (kept.Accelerators[1].MemoryTotalMiB, kept.Accelerators[1].MemoryUsedMiB));
        Assert.Equal((NodeLoadBounds.MaxMemoryMiB, 0L), (kept.Accelerators[2].MemoryTotalMiB, kept.Accelerators[2].MemoryUsedMiB));
        Assert.Equal(NodeLoadBounds.MaxItems, kept.Available!.Count);
        Assert.Equal(NodeLoadBounds.MaxNameLength, kept.DeviceClass!.Length);
    }

    /// <summary>
    /// The registry held a node's nonsense load report to its bounds without a word: an operator never learnt that a
    /// node's software reported negative slots or a 100,000-character name. Now each kind of clamp is logged (4171,
    /// Warning) once per node, however often the node reports it, with the node's id and its example escaped
    /// (a node id or a model name holding an ESC sequence reaches the log as \u001B, never as the character).
    /// </summary>
    [Fact]
    public async Task LoadReport_Clamped_IsLoggedOncePerNodeAndKind_Escaped_NotAtEveryReport()
    {
        var registry = fixture.Grains.GetGrain<INodeRegistryGrain>("bounds-log-test");
        const string node = "node-\u001b[2J-log";
        await registry.UpsertAsync(new NodeView(node, "TH", "Local", "https://127.0.0.1:12", [new NodeModel("m", "m", 2)], "Active", "credential", null, 0));
        var huge = new string('x', 100_000);
        var load = new NodeLoad(0,
            [new ModelLoad("m\u001b]52;c;", -5, 2, 0, double.NaN), new ModelLoad(huge, 1, 3, 2, 0.5)],
            [new Accelerator("gpu", "H100", 81_559, 90_000)],
            [.. Enumerable.Range(0, 1000).Select(i => "model-" + i)]);
        var sane = new NodeLoad(0, [new ModelLoad("m", 1, 1, 0, 0.5)], [new Accelerator("gpu", "H100", 81_559, 1_000)]);

        for (var i = 0; i < 5; i++)
        {
            Assert.True(await registry.ReportAsync(node, [new NodeModel("m", "m", 2)], load));
            Assert.True(await registry.ReportAsync(node, [new NodeModel("m", "m", 2)], sane));
        }

        Assert.True(await registry.DeleteAsync(node));
        var lines = fixture.LoadClamps.Select(l => l.Message).Where(m => m.Contains("node-\\u001B[2J-log", StringComparison.Ordinal)).ToList();
        Assert.Equal(5, lines.Count); // counts, KV-cache use, memory, names, lists: once each over ten reports
        foreach (var kind in new[] { "Counts:", "KvCacheUse:", "Memory:", "Names:", "Lists:" })
        {
            Assert.Single(lines, l => l.Contains(kind, StringComparison.Ordinal));
        }

        Assert.All(lines, l => Assert.DoesNotContain('\u001b', l));
        Assert.Contains(lines, l => l.Contains("running -5 on model 'm\\u001B]52;c;', kept 0", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("of 100000 characters, cut at 256", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("memory used 90000 of 81559 MiB, kept 81559 of 81559", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("1000 available models, kept 256", StringComparison.Ordinal));
        Assert.All(lines, l => Assert.True(l.Length < 1000, l)); // the 100,000-character name is never in the line
    }
}
