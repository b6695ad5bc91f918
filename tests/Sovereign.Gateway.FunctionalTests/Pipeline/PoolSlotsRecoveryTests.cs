using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime.Placement;
using Orleans.TestingHost;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Pipeline;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// The cluster's count of a pool's slots when the gateway hosting it goes away: three in-process silos (Orleans'
/// TestingHost) play gateways A and B, whose requests hold slots, and H, which hosts the pool's grain until it stops.
/// </summary>
public sealed class PoolSlotsRecoveryTests : IAsyncLifetime
{
    private const string Pool = "th-h100";
    private const string Model = "m";
    private TestCluster _cluster = null!;

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(3);
        builder.AddSiloBuilderConfigurator<GatewaySilo>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task HostingGatewayStops_NewCountSeesEverySlotStillHeld_OnceEach_AndReleasesStayExact()
    {
        var (gatewayA, tableA) = Gateway(0);
        var (gatewayB, tableB) = Gateway(1);
        var host = _cluster.Silos[2];

        // The pool's grain starts on H (placement hint), before any slot is taken.
        RequestContext.Set(IPlacementDirector.PlacementHintKey, host.SiloAddress);
        Assert.Equal(new PoolSlotCounts(0, 0, 0), await Counts("gold"));
        RequestContext.Remove(IPlacementDirector.PlacementHintKey);

        // 3 slots, 2 reserved for gold: gold holds both reserved ones (one per gateway), bronze the unreserved one.
        var goldA = await gatewayA.AcquireAsync(Slot("gold", reserved: 2), "r1", default);
        var goldB = await gatewayB.AcquireAsync(Slot("gold", reserved: 2), "r2", default);
        var bronzeA = await gatewayA.AcquireAsync(Slot("bronze", reserved: 0), "r3", default);
        Assert.Equal(new PoolSlotCounts(2, 1, 0), await Counts("gold"));

        // A place in the queue, held by B while the pool is full (entered as the gateway enters it).
        var waiting = Slot("bronze", reserved: 0) with { Holder = _cluster.Silos[1].SiloAddress };
        tableB.Want(waiting);
        Assert.Equal(PoolSlotState.Queued, (await Grain().AcquireAsync(waiting)).State);

        await _cluster.StopSiloAsync(host);

        // A release for a ticket no activation ever saw is harmless, and it activates the grain afresh: the count it
        // rebuilt from A's and B's tables holds the three running slots and the waiting one, each once.
        await Grain().ReleaseAsync(Guid.NewGuid());
        Assert.Equal(new PoolSlotCounts(2, 1, 1), await Counts("gold"));

        // So the pool is still full: neither bronze nor a third gold request (gold is at its reservation) gets a slot.
        foreach (var plan in new[] { "bronze", "gold" })
        {
            var late = Slot(plan, plan == "gold" ? 2 : 0);
            Assert.Equal(PoolSlotState.Queued, (await Grain().AcquireAsync(late)).State);
            await Grain().ReleaseAsync(late.Ticket);
        }

        // The waiting ticket is known to the new count: asking again tells where it stands; it is granted when bronze ends.
        Assert.Equal(PoolSlotState.Queued, (await Grain().AcquireAsync(waiting)).State);
        await bronzeA.DisposeAsync();
        Assert.Equal(PoolSlotState.Granted, (await Grain().AwaitAsync(waiting.Ticket)).State);
        Assert.Equal(new PoolSlotCounts(2, 1, 0), await Counts("gold"));

        // Every release counts once: a gold slot freed is taken again by gold, and after all ends the pool is empty.
        await goldA.DisposeAsync();
        await goldA.DisposeAsync();
        Assert.Equal(new PoolSlotCounts(1, 1, 0), await Counts("gold"));
        var goldAgain = await gatewayB.AcquireAsync(Slot("gold", reserved: 2), "r6", default);
        Assert.Equal(new PoolSlotCounts(2, 1, 0), await Counts("gold"));
        tableB.Forget(waiting.Ticket);
        await Grain().ReleaseAsync(waiting.Ticket);
        await goldB.DisposeAsync();
        await goldAgain.DisposeAsync();
        Assert.Equal(new PoolSlotCounts(0, 0, 0), await Counts("gold"));
        Assert.Equal(0, tableA.Count);
        Assert.Equal(0, tableB.Count);
    }

    private (PoolSlotClient Client, PoolLeaseTable Table) Gateway(int silo)
    {
        var services = ((InProcessSiloHandle)_cluster.Silos[silo]).SiloHost.Services;
        return (services.GetRequiredService<PoolSlotClient>(), services.GetRequiredService<PoolLeaseTable>());
    }

    private IPoolSlotsGrain Grain() => _cluster.GrainFactory.GetGrain<IPoolSlotsGrain>(PoolSlotsGrain.KeyOf(Pool, Model));

    private Task<PoolSlotCounts> Counts(string plan) => Grain().CountsAsync(plan);

    private static PoolSlotRequest Slot(string plan, int reserved) =>
        new(Guid.NewGuid(), Pool, Model, plan, reserved, ReservedTotal: 2, Capacity: 3, QueueCapacity: 4, "tenant-" + plan, 1, 0, null);

    private sealed class GatewaySilo : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.Services.AddSingleton<PoolLeaseTable>();
            siloBuilder.Services.AddSingleton<PoolSlotClient>();
        }
    }
}
