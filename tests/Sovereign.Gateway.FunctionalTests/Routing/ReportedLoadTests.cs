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
