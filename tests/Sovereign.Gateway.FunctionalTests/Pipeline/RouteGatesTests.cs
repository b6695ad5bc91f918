using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Pipeline;
using Sovereign.Inference.Scheduling;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// The route gates know which routes hold a request: the router reads only those and takes every other route as
/// idle, so a route must be listed from its first request until its last one ends, queued requests included.
/// </summary>
public sealed class RouteGatesTests
{
    private static FairQueueEntry Entry(string tenant) => new(tenant, 1, PriorityClass.Interactive, 1);

    [Fact]
    public async Task ARouteIsBusyFromItsFirstRequestUntilItsLastEnds()
    {
        var gates = new RouteGates(Options.Create(new SovereignOptions()));
        var gate = gates.For("node-a", "m", 1);
        gates.For("node-b", "m", 1);
        Assert.Equal(0, gates.BusyCount);
        Assert.Empty(gates.Busy);

        var idle = gates.BusyVersion;

        var first = await gate.AcquireAsync(Entry("t1"), default);
        var queued = gate.AcquireAsync(Entry("t2"), default).AsTask();
        Assert.Equal(1, gates.BusyCount);
        Assert.Equal([("node-a", "m", 1)], gates.Busy.Select(b => b.Key));

        // The version moves when the set changes, and only then: a router reuses what it collected while it holds.
        var busy = gates.BusyVersion;
        Assert.NotEqual(idle, busy);
        first.Dispose();
        var second = await queued;
        Assert.Equal(1, gates.BusyCount);
        Assert.Equal(busy, gates.BusyVersion);

        second.Dispose();
        Assert.Equal(0, gates.BusyCount);
        Assert.Empty(gates.Busy);
        Assert.NotEqual(busy, gates.BusyVersion);
    }
}
