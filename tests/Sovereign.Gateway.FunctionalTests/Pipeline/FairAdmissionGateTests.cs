using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Pipeline;
using Sovereign.Inference.Scheduling;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>The queue in front of routes without an engine queue of their own: fair, bounded, refusing only when full.</summary>
public sealed class FairAdmissionGateTests
{
    private static FairQueueEntry Entry(string tenant, int weight = 1, PriorityClass priority = PriorityClass.Interactive) => new(tenant, weight, priority, 1);

    [Fact]
    public async Task BusySlots_QueueTheRequest_AndAReleaseAdmitsIt()
    {
        var gate = new FairAdmissionGate("m", slots: 1, queueCapacity: 4);
        var first = await gate.AcquireAsync(Entry("a"), default);
        var second = gate.AcquireAsync(Entry("a"), default).AsTask();

        Assert.False(second.IsCompleted);
        Assert.Equal(2, gate.Load);
        first.Dispose();
        (await second).Dispose();
        Assert.Equal(0, gate.Load);
    }

    [Fact]
    public async Task FullQueue_Is503WithRetryAfter_AndATenantOverItsShareIs429()
    {
        var gate = new FairAdmissionGate("m", slots: 1, queueCapacity: 2);
        using var running = await gate.AcquireAsync(Entry("a"), default);
        var waiting = gate.AcquireAsync(Entry("a"), default).AsTask();

        var share = await Assert.ThrowsAsync<OpenAIException>(async () => await gate.AcquireAsync(Entry("a"), default));
        Assert.Equal(429, share.Status);
        Assert.Equal("tenant_queue_full", share.Code);

        var other = gate.AcquireAsync(Entry("b"), default).AsTask();
        var full = await Assert.ThrowsAsync<OpenAIException>(async () => await gate.AcquireAsync(Entry("c"), default));
        Assert.Equal(503, full.Status);
        Assert.Equal("queue_full", full.Code);
        Assert.NotNull(full.RetryAfter);
        Assert.False(waiting.IsCompleted || other.IsCompleted);
    }

    [Fact]
    public async Task Waiters_AreAdmittedWeightedFair_AcrossTenants()
    {
        var gate = new FairAdmissionGate("m", slots: 1, queueCapacity: 64);
        var holder = await gate.AcquireAsync(Entry("x"), default);
        var order = new List<string>();
        var waiters = new List<Task>();
        // Tenant a floods first; b arrives after. b must not wait behind all of a's backlog.
        foreach (var tenant in new[] { "a", "a", "a", "a", "b", "b" })
        {
            var t = tenant;
            waiters.Add(gate.AcquireAsync(Entry(t), default).AsTask().ContinueWith(task =>
            {
                lock (order)
                {
                    order.Add(t);
                }

                task.Result.Dispose();
            }, TaskScheduler.Default));
        }

        holder.Dispose();
        await Task.WhenAll(waiters);
        Assert.Equal(["a", "b", "a", "b", "a", "a"], order);
    }

    [Fact]
    public async Task CancelledWaiter_LeavesTheQueue_AndNeverTakesASlot()
    {
        var gate = new FairAdmissionGate("m", slots: 1, queueCapacity: 4);
        var running = await gate.AcquireAsync(Entry("a"), default);
        using var leave = new CancellationTokenSource();
        var cancelled = gate.AcquireAsync(Entry("a"), leave.Token).AsTask();
        var next = gate.AcquireAsync(Entry("b"), default).AsTask();

        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        running.Dispose();
        (await next).Dispose();
        Assert.Equal(0, gate.Load);
    }
}
