using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Pipeline;
using Sovereign.Inference.Scheduling;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>Reserved capacity in a pool: guaranteed slots per plan, burst into unreserved slots, fairness for the rest.</summary>
public sealed class PoolGateTests
{
    private static FairQueueEntry Entry(string tenant, int weight = 1) => new(tenant, weight, PriorityClass.Interactive, 1);

    /// <summary>Pool of 4 slots, 2 reserved for plan "gold"; others share the 2 unreserved ones.</summary>
    private static ValueTask<IDisposable> Take(PoolGate gate, string plan, string tenant, int capacity = 4) =>
        gate.AcquireAsync(plan, plan == "gold" ? 2 : 0, reservedTotal: 2, capacity, Entry(tenant), default);

    [Fact]
    public async Task OthersSaturatingThePool_NeverTakeTheReservedSlots_AndTheReservedPlanIsAdmittedAtOnce()
    {
        var gate = new PoolGate("th-h100", "m", queueCapacity: 8);
        var busy = new List<IDisposable> { await Take(gate, "free", "a"), await Take(gate, "free", "b") };
        var waiting = Take(gate, "free", "c").AsTask();

        // Two slots are idle, but they are gold's: the third unreserved request waits.
        Assert.False(waiting.IsCompleted);
        Assert.Equal(2, gate.UnreservedRunning);

        var gold1 = Take(gate, "gold", "g");
        var gold2 = Take(gate, "gold", "g");
        Assert.True(gold1.IsCompletedSuccessfully && gold2.IsCompletedSuccessfully);
        Assert.Equal(2, gate.ReservedRunning("gold"));

        // A gold request ending frees a reserved slot, which the waiting unreserved request still cannot take.
        (await gold1).Dispose();
        Assert.False(waiting.IsCompleted);

        busy[0].Dispose();
        (await waiting).Dispose();
        busy[1].Dispose();
        (await gold2).Dispose();
        Assert.Equal((0, 0, 0), (gate.UnreservedRunning, gate.ReservedRunning("gold"), gate.Waiting));
    }

    [Fact]
    public async Task AReservedPlanAboveItsReservation_BurstsIntoUnreservedSlots_AndThenWaitsFairly()
    {
        var gate = new PoolGate("th-h100", "m", queueCapacity: 8);
        var gold = new List<IDisposable>();
        for (var i = 0; i < 4; i++)
        {
            var lease = Take(gate, "gold", "g");
            Assert.True(lease.IsCompletedSuccessfully, $"gold request {i} should run: 2 reserved + 2 burst");
            gold.Add(await lease);
        }

        Assert.Equal((2, 2), (gate.ReservedRunning("gold"), gate.UnreservedRunning));
        var other = Take(gate, "free", "a").AsTask();
        var fifthGold = Take(gate, "gold", "g").AsTask();
        Assert.False(other.IsCompleted || fifthGold.IsCompleted);

        // An unreserved slot frees: the fair queue serves the unreserved request that came first.
        gold[3].Dispose();
        var otherLease = await other;
        Assert.False(fifthGold.IsCompleted);

        // A reserved slot frees: the waiting gold request takes it, though no unreserved slot is free.
        gold[0].Dispose();
        var fifth = await fifthGold;
        Assert.Equal((2, 2), (gate.ReservedRunning("gold"), gate.UnreservedRunning));

        foreach (var lease in new[] { fifth, otherLease, gold[1], gold[2] })
        {
            lease.Dispose();
        }

        Assert.Equal((0, 0, 0), (gate.UnreservedRunning, gate.ReservedRunning("gold"), gate.Waiting));
    }

    [Fact]
    public async Task UnreservedSlots_AreSharedWeightedFair()
    {
        var gate = new PoolGate("p", "m", queueCapacity: 64);
        var holder = await gate.AcquireAsync("free", 0, 1, 2, Entry("x"), default);
        var order = new List<string>();
        var waits = new List<Task>();
        foreach (var tenant in new[] { "a", "a", "a", "b", "b", "b" })
        {
            var lease = gate.AcquireAsync("free", 0, 1, 2, Entry(tenant), default).AsTask();
            waits.Add(lease.ContinueWith(t => { lock (order) { order.Add(tenant); } t.Result.Dispose(); }, TaskScheduler.Default));
        }

        holder.Dispose();
        await Task.WhenAll(waits);

        // Equal weights alternate between the tenants instead of serving "a" first because it came first.
        Assert.Equal(["a", "b", "a", "b", "a", "b"], order);
    }

    [Fact]
    public async Task APoolReservedInFull_RefusesPlansWithoutAReservation_NamingTheRule()
    {
        var gate = new PoolGate("th-h100", "m", queueCapacity: 8);

        var refused = await Assert.ThrowsAsync<OpenAIException>(async () => await gate.AcquireAsync("free", 0, reservedTotal: 4, capacity: 4, Entry("a"), default));

        Assert.Equal((503, "pool_capacity_reserved"), (refused.Status, refused.Code));
        Assert.Contains("th-h100", refused.Message, StringComparison.Ordinal);

        // Capacity is what the pool's nodes report now (a drained node shrinks it): transient, so SDKs are told to wait.
        Assert.Equal(PoolGate.ReservedRetryAfter, refused.RetryAfter);
        Assert.Contains("Retry later", refused.Message, StringComparison.Ordinal);
        using var gold = await gate.AcquireAsync("gold", 4, reservedTotal: 4, capacity: 4, Entry("g"), default);
    }

    [Fact]
    public async Task FullQueue_Is503_AndATenantOverItsShareIs429()
    {
        var gate = new PoolGate("p", "m", queueCapacity: 2);
        using var running = await gate.AcquireAsync("free", 0, 1, 2, Entry("a"), default);
        var waiting = gate.AcquireAsync("free", 0, 1, 2, Entry("a"), default).AsTask();

        var share = await Assert.ThrowsAsync<OpenAIException>(async () => await gate.AcquireAsync("free", 0, 1, 2, Entry("a"), default));
        var other = gate.AcquireAsync("free", 0, 1, 2, Entry("b"), default).AsTask();
        var full = await Assert.ThrowsAsync<OpenAIException>(async () => await gate.AcquireAsync("free", 0, 1, 2, Entry("c"), default));

        Assert.Equal((429, "tenant_queue_full"), (share.Status, share.Code));
        Assert.Equal((503, "queue_full"), (full.Status, full.Code));
        Assert.False(waiting.IsCompleted || other.IsCompleted);
    }

    [Fact]
    public async Task ACancelledWaiter_LeavesTheQueue_AndIsNeverGranted()
    {
        var gate = new PoolGate("p", "m", queueCapacity: 4);
        var running = await gate.AcquireAsync("free", 0, 0, 1, Entry("a"), default);
        using var cancel = new CancellationTokenSource();
        var waiting = gate.AcquireAsync("free", 0, 0, 1, Entry("b"), cancel.Token).AsTask();

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        running.Dispose();

        Assert.Equal((0, 0), (gate.UnreservedRunning, gate.Waiting));
    }

    [Fact]
    public async Task APoolThatShrankBelowItsReservations_NeverRunsMoreThanItsSlots()
    {
        var gate = new PoolGate("p", "m", queueCapacity: 4);
        using var first = await gate.AcquireAsync("gold", 3, reservedTotal: 3, capacity: 2, Entry("g"), default);
        using var second = await gate.AcquireAsync("gold", 3, reservedTotal: 3, capacity: 2, Entry("g"), default);

        var third = gate.AcquireAsync("gold", 3, reservedTotal: 3, capacity: 2, Entry("g"), default).AsTask();

        Assert.False(third.IsCompleted);
        Assert.Equal(2, gate.ReservedRunning("gold"));
    }

    [Theory]
    [InlineData("NVIDIA H100 80GB HBM3", "h100")]
    [InlineData("NVIDIA A100-SXM4-80GB", "a100")]
    [InlineData("NVIDIA GeForce RTX 4090", "rtx-4090")]
    [InlineData("Tesla T4", "t4")]
    [InlineData("NVIDIA L40S", "l40s")]
    public void DeviceClass_OfAGpuName_IsItsModel(string name, string expected) => Assert.Equal(expected, DeviceClasses.OfGpuName(name));

    [Fact]
    public void NvidiaSmiOutput_OfAnH200Machine_IsOneGpu_OfClassH200()
    {
        // Exactly what `nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader,nounits` printed on
        // the project's H200 device machine (2026-12-04), with a second GPU line as a two-GPU node would print.
        var gpus = Sovereign.Gateway.ControlPlane.NodeLoadReporter.ParseNvidiaSmi("NVIDIA H200, 143771, 0\nNVIDIA H200, 143771, 81920\n");
        Assert.Equal(
            [new Sovereign.Cluster.Grains.Accelerator("gpu", "NVIDIA H200", 143771, 0), new Sovereign.Cluster.Grains.Accelerator("gpu", "NVIDIA H200", 143771, 81920)],
            gpus);
        Assert.Equal("h200", DeviceClasses.Of(gpus));
        Assert.Empty(Sovereign.Gateway.ControlPlane.NodeLoadReporter.ParseNvidiaSmi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"));
    }

    [Fact]
    public void DeviceClass_OfACpuOnlyNode_IsCpu_AndOfNothingIsNull()
    {
        Assert.Equal("cpu", DeviceClasses.Of([new Sovereign.Cluster.Grains.Accelerator("cpu", "AMD EPYC (2 cores)", 1024, 0)]));
        Assert.Null(DeviceClasses.Of([]));
    }
}
