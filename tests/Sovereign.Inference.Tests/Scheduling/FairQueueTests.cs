using Sovereign.Inference.Scheduling;

namespace Sovereign.Inference.Tests.Scheduling;

public sealed class FairQueueTests
{
    private static FairQueueEntry Entry(string tenant, int weight = 1, PriorityClass priority = PriorityClass.Interactive, long cost = 1) =>
        new(tenant, weight, priority, cost);

    private static List<string> DrainTenants(FairQueue<string> queue)
    {
        var order = new List<string>();
        while (queue.TryDequeue(out var item))
        {
            order.Add(item.Split('/')[0]);
        }

        return order;
    }

    [Fact]
    public void TryDequeue_OneRequestArrivesBehindFiftyOfAnotherTenant_IsAdmittedSecond()
    {
        var queue = new FairQueue<string>(1000, 100);
        for (var i = 0; i < 50; i++)
        {
            Assert.True(queue.TryEnqueue($"A/{i}", Entry("A")));
        }

        Assert.True(queue.TryEnqueue("B/0", Entry("B")));

        var order = DrainTenants(queue);
        Assert.True(order.IndexOf("B") + 1 <= 2);
        Assert.Equal(["A", "B", "A"], order.Take(3));
    }

    [Fact]
    public void TryDequeue_NewTenantArrivesMidBacklog_IsAdmittedNext()
    {
        var queue = new FairQueue<string>(1000, 100);
        for (var i = 0; i < 50; i++)
        {
            queue.TryEnqueue($"A/{i}", Entry("A"));
        }

        for (var i = 0; i < 10; i++)
        {
            queue.TryDequeue(out _);
        }

        queue.TryEnqueue("B/0", Entry("B"));

        Assert.True(queue.TryDequeue(out var next));
        Assert.Equal("B/0", next);
    }

    [Fact]
    public void TryDequeue_Weights3To1_AdmitsExactly3To1()
    {
        var queue = new FairQueue<string>(10_000, 5_000);
        for (var i = 0; i < 1000; i++)
        {
            queue.TryEnqueue($"A/{i}", Entry("A", weight: 3));
            queue.TryEnqueue($"B/{i}", Entry("B", weight: 1));
        }

        var first = DrainTenants(queue).Take(1200).ToList();

        Assert.Equal(900, first.Count(t => t == "A"));
        Assert.Equal(300, first.Count(t => t == "B"));
        for (var block = 0; block < first.Count; block += 4)
        {
            Assert.Equal(1, first.Skip(block).Take(4).Count(t => t == "B"));
        }
    }

    [Fact]
    public void TryDequeue_ThreeTenantsWeights1To2To5_SharesFollowWeights()
    {
        var queue = new FairQueue<string>(10_000, 5_000);
        foreach (var (tenant, weight) in new[] { ("A", 1), ("B", 2), ("C", 5) })
        {
            for (var i = 0; i < 1000; i++)
            {
                queue.TryEnqueue($"{tenant}/{i}", Entry(tenant, weight));
            }
        }

        var first = DrainTenants(queue).Take(800).ToList();

        Assert.Equal(100, first.Count(t => t == "A"));
        Assert.Equal(200, first.Count(t => t == "B"));
        Assert.Equal(500, first.Count(t => t == "C"));
    }

    [Fact]
    public void TryDequeue_CostInTokens_SharesTokensNotRequests()
    {
        var queue = new FairQueue<string>(10_000, 5_000);
        for (var i = 0; i < 400; i++)
        {
            queue.TryEnqueue($"Big/{i}", Entry("Big", cost: 4000));
            queue.TryEnqueue($"Small/{i}", Entry("Small", cost: 1000));
        }

        var first = DrainTenants(queue).Take(500).ToList();

        Assert.Equal(100, first.Count(t => t == "Big"));
        Assert.Equal(400, first.Count(t => t == "Small"));
    }

    [Fact]
    public void TryDequeue_InteractiveAndBatch_InteractiveAlwaysFirst()
    {
        var queue = new FairQueue<string>(100, 100);
        for (var i = 0; i < 5; i++)
        {
            queue.TryEnqueue($"batch/{i}", Entry("A", weight: 8, priority: PriorityClass.Batch));
        }

        queue.TryEnqueue("interactive/0", Entry("B"));
        queue.TryEnqueue("interactive/1", Entry("C"));
        Assert.Equal(5, queue.CountOf(PriorityClass.Batch));
        Assert.Equal(2, queue.CountOf(PriorityClass.Interactive));

        Assert.Equal(["interactive", "interactive", "batch"], Enumerable.Range(0, 3).Select(_ => Dequeue(queue).Split('/')[0]));
        queue.TryEnqueue("interactive/2", Entry("A"));
        Assert.Equal("interactive/2", Dequeue(queue));
        Assert.Equal(["batch", "batch", "batch", "batch"], DrainTenants(queue));
    }

    [Fact]
    public void TryDequeue_SameTenant_KeepsArrivalOrder()
    {
        var queue = new FairQueue<string>(100, 100);
        queue.TryEnqueue("A/0", Entry("A"));
        queue.TryEnqueue("B/0", Entry("B"));
        queue.TryEnqueue("A/1", Entry("A"));
        queue.TryEnqueue("A/2", Entry("A"));

        Assert.Equal(["A/0", "B/0", "A/1", "A/2"], Enumerable.Range(0, 4).Select(_ => Dequeue(queue)));
    }

    [Fact]
    public void TryEnqueue_QueueFull_RefusesWithQueueFull()
    {
        var queue = new FairQueue<string>(2, 10);
        queue.TryEnqueue("A/0", Entry("A"));
        queue.TryEnqueue("B/0", Entry("B"));

        Assert.False(queue.TryEnqueue("C/0", Entry("C"), out var refusal));
        Assert.Equal(EnqueueRefusal.QueueFull, refusal);
        Dequeue(queue);
        Assert.True(queue.TryEnqueue("C/0", Entry("C"), out refusal));
        Assert.Equal(EnqueueRefusal.None, refusal);
    }

    [Fact]
    public void TryEnqueue_TenantFull_RefusesThatTenantOnly()
    {
        var queue = new FairQueue<string>(100, 2);
        queue.TryEnqueue("A/0", Entry("A"));
        queue.TryEnqueue("A/1", Entry("A", priority: PriorityClass.Batch));

        Assert.False(queue.TryEnqueue("A/2", Entry("A"), out var refusal));
        Assert.Equal(EnqueueRefusal.TenantQueueFull, refusal);
        Assert.True(queue.TryEnqueue("B/0", Entry("B")));
        Assert.Equal(2, queue.CountOf("A"));
        Assert.Equal(new Dictionary<string, int> { ["A"] = 2, ["B"] = 1 }, queue.TenantCounts);
    }

    [Fact]
    public void TryEnqueue_SameItemTwice_Throws()
    {
        var queue = new FairQueue<string>(100, 100);
        queue.TryEnqueue("A/0", Entry("A"));

        Assert.Throws<ArgumentException>(() => queue.TryEnqueue("A/0", Entry("A")));
    }

    [Theory]
    [InlineData(0, 1L)]
    [InlineData(1, 0L)]
    [InlineData(FairQueueEntry.MaxWeight + 1, 1L)]
    public void TryEnqueue_InvalidWeightOrCost_Throws(int weight, long cost)
    {
        var queue = new FairQueue<string>(100, 100);

        Assert.Throws<ArgumentOutOfRangeException>(() => queue.TryEnqueue("A/0", Entry("A", weight, cost: cost)));
    }

    [Fact]
    public void TryPeek_ThenDequeue_ReturnsTheSameItemAndPeekChangesNothing()
    {
        var queue = new FairQueue<string>(100, 100);
        Assert.False(queue.TryPeek(out _));
        queue.TryEnqueue("A/0", Entry("A"));
        queue.TryEnqueue("A/1", Entry("A"));
        queue.TryEnqueue("B/0", Entry("B"));

        Assert.True(queue.TryPeek(out var peeked));
        Assert.True(queue.TryPeek(out var again));
        Assert.Equal(3, queue.Count);
        Assert.True(queue.TryDequeue(out var dequeued));

        Assert.Equal("A/0", peeked);
        Assert.Equal(peeked, again);
        Assert.Equal(peeked, dequeued);
        Assert.Equal(["B", "A"], DrainTenants(queue));
    }

    [Fact]
    public void Remove_WaitingItem_IsNeverDequeued()
    {
        var queue = new FairQueue<string>(100, 100);
        queue.TryEnqueue("A/0", Entry("A"));
        queue.TryEnqueue("A/1", Entry("A"));
        queue.TryEnqueue("B/0", Entry("B"));

        Assert.True(queue.Remove("A/1"));
        Assert.False(queue.Remove("A/1"));

        Assert.False(queue.Contains("A/1"));
        Assert.Equal(1, queue.CountOf("A"));
        Assert.Equal(["A/0", "B/0"], Enumerable.Range(0, 2).Select(_ => Dequeue(queue)));
        Assert.Equal(0, queue.Count);
        Assert.Empty(queue.TenantCounts);
    }

    [Fact]
    public void Remove_CancelledHead_DoesNotChargeTheTenant()
    {
        var queue = new FairQueue<string>(100, 100);
        queue.TryEnqueue("A/0", Entry("A"));
        queue.TryEnqueue("A/1", Entry("A"));
        queue.TryEnqueue("B/0", Entry("B"));
        queue.TryEnqueue("B/1", Entry("B"));

        queue.Remove("A/0");

        Assert.Equal(["A/1", "B/0", "B/1"], Enumerable.Range(0, 3).Select(_ => Dequeue(queue)));
    }

    [Fact]
    public void TryDequeue_TenantResubmittingOneAtATime_CannotStarveABackloggedTenant()
    {
        var queue = new FairQueue<string>(1000, 1000);
        for (var i = 0; i < 100; i++)
        {
            queue.TryEnqueue($"A/{i}", Entry("A"));
        }

        var order = new List<string>();
        queue.TryEnqueue("B/0", Entry("B"));
        for (var n = 1; n <= 40; n++)
        {
            var item = Dequeue(queue);
            order.Add(item.Split('/')[0]);
            if (item.StartsWith('B'))
            {
                queue.TryEnqueue($"B/{n}", Entry("B"));
            }
        }

        Assert.Equal(20, order.Count(t => t == "A"));
        Assert.Equal(20, order.Count(t => t == "B"));
    }

    [Fact]
    public void ToArray_WaitingItems_ListsEveryOne()
    {
        var queue = new FairQueue<string>(100, 100);
        queue.TryEnqueue("A/0", Entry("A"));
        queue.TryEnqueue("B/0", Entry("B", priority: PriorityClass.Batch));

        Assert.Equal(["A/0", "B/0"], queue.ToArray().Order(StringComparer.Ordinal));
    }

    private static string Dequeue(FairQueue<string> queue)
    {
        Assert.True(queue.TryDequeue(out var item));
        return item;
    }
}
