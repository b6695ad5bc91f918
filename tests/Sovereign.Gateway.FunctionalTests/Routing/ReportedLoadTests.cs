using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests.Routing;

/// <summary>
/// A cluster node's report orders its replicas by load: queue depth and KV-cache use, whichever is scarcer, in slots;
/// KV use alone never makes a replica full (a node whose cache is taken still queues).
/// </summary>
public sealed class ReportedLoadTests
{
    [Theory]
    [InlineData(1, 0, 0.0, 8, 1)]
    [InlineData(2, 3, 0.1, 8, 5)]
    [InlineData(0, 0, 0.5, 8, 4)]
    [InlineData(1, 0, 0.5, 8, 4)]
    [InlineData(0, 0, 1.0, 8, 7)]
    [InlineData(8, 2, 1.0, 8, 10)]
    [InlineData(0, 0, 0.99, 1, 0)]
    [InlineData(0, 0, double.NaN, 8, 0)]
    [InlineData(0, 0, 7.0, 8, 7)]
    [InlineData(0, 0, -1.0, 8, 0)]
    public void LoadInSlots_IsTheScarcerOfSlotsAndKvCache(int running, int queued, double kvUse, int capacity, int expected) =>
        Assert.Equal(expected, SnapshotReplicas.ReportedLoad(new ModelLoad("m", running, Math.Max(0, capacity - running), queued, kvUse), capacity));
}

/// <summary>
/// What a gateway reads into a cluster node's load: its own requests on the route now, exactly, plus the other
/// gateways' at the node's last report. It took the larger of the report and its own count, and the report (up to a
/// second old) also counted its own requests: a node that had just freed its slots looked full for up to a second,
/// so requests piled on the other nodes (scale-out through four nodes reached 3.1-3.3x, with 300-450 served each).
/// </summary>
public sealed class GatewayShareTests
{
    [Theory]
    [InlineData(8, 0, "me:8", "me", 0)]
    [InlineData(8, 0, "me:3,other:5", "me", 5)]
    [InlineData(6, 4, "other:10", "me", 10)]
    [InlineData(2, 0, "me:8", "me", 0)]
    [InlineData(8, 0, "", "me", 8)]
    public void OthersLoad_IsTheReportLessThisGatewaysShare(int running, int queued, string byGateway, string gateway, int expected)
    {
        var breakdown = byGateway.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split(':')).ToDictionary(p => p[0], p => int.Parse(p[1]));
        Assert.Equal(expected, SnapshotReplicas.OthersLoad(new ModelLoad("m", running, 0, queued, 0, breakdown), gateway));
    }

    [Fact]
    public void NodeThatDoesNotBreakItsLoadDown_SaysNothingOfOthers() =>
        Assert.Equal(-1, SnapshotReplicas.OthersLoad(new ModelLoad("m", 8, 0, 0, 0), "me"));
}
