using CsCheck;
using Sovereign.Inference.Scheduling;

namespace Sovereign.Inference.Tests.Scheduling;

/// <summary>
/// The bounds stated on <see cref="FairQueue{T}"/>, checked on random interleavings of enqueues, dequeues and
/// cancellations. Weights are 1 to 8 (exact virtual costs), costs 1 to 6.
/// </summary>
public sealed class FairQueuePropertyTests
{
    private static readonly Gen<Op> OpGen = Gen.Frequency(
        (5, Gen.Int[0, 5].Select(Gen.Int[1, 6], (tenant, cost) => (Op)new EnqueueOp(tenant, cost))),
        (4, Gen.Const((Op)new DequeueOp())),
        (1, Gen.Int[0, 10_000].Select(pick => (Op)new RemoveOp(pick))));

    [Fact]
    public void TryDequeue_AnyInterleaving_RespectsTheStarvationAndNewcomerBounds()
    {
        var gen = Gen.Select(Gen.Int[1, 8].Array[6], OpGen.Array[1, 300]);
        gen.Sample((weights, ops) =>
        {
            var queue = new FairQueue<int>(10_000, 10_000);
            var items = new Dictionary<int, (int Tenant, int Cost)>();
            var waiting = new List<int>();
            var fifo = Enumerable.Range(0, 6).Select(_ => new Queue<int>()).ToArray();
            var tenants = Enumerable.Range(0, 6).Select(_ => new TenantTrack()).ToArray();
            var dequeues = new List<int>();
            var nextId = 0;
            foreach (var op in ops)
            {
                switch (op)
                {
                    case EnqueueOp enqueue:
                        var t = enqueue.Tenant;
                        var id = nextId++;
                        if (!tenants[t].EverSeen)
                        {
                            // A brand-new tenant: at most one item of each tenant backlogged now goes before it.
                            tenants[t].EverSeen = true;
                            tenants[t].NewcomerSince = dequeues.Count;
                            tenants[t].NewcomerBound = fifo.Count(q => q.Count > 0);
                        }

                        Assert.True(queue.TryEnqueue(id, new FairQueueEntry($"t{t}", weights[t], PriorityClass.Interactive, enqueue.Cost)));
                        items[id] = (t, enqueue.Cost);
                        waiting.Add(id);
                        fifo[t].Enqueue(id);
                        break;

                    case RemoveOp remove when waiting.Count > 0:
                        var victim = waiting[remove.Pick % waiting.Count];
                        Assert.True(queue.Remove(victim));
                        waiting.Remove(victim);
                        var owner = items[victim].Tenant;
                        fifo[owner] = new Queue<int>(fifo[owner].Where(x => x != victim));
                        if (fifo[owner].Count == 0)
                        {
                            tenants[owner].Continuous = false;
                            tenants[owner].NewcomerSince = null;
                        }

                        break;

                    case DequeueOp:
                        Assert.Equal(waiting.Count > 0, queue.TryPeek(out var peeked));
                        if (!queue.TryDequeue(out var got))
                        {
                            break;
                        }

                        Assert.Equal(peeked, got);
                        var (tenant, cost) = items[got];
                        Assert.Equal(fifo[tenant].Dequeue(), got);
                        waiting.Remove(got);
                        CheckBounds(tenant, dequeues, items, weights, tenants);
                        dequeues.Add(got);
                        tenants[tenant].LastIndex = dequeues.Count - 1;
                        tenants[tenant].LastCost = cost;
                        tenants[tenant].Continuous = fifo[tenant].Count > 0;
                        tenants[tenant].NewcomerSince = null;
                        break;
                }

                Assert.Equal(waiting.Count, queue.Count);
            }
        }, iter: 500);
    }

    private static void CheckBounds(int i, List<int> dequeues, Dictionary<int, (int Tenant, int Cost)> items, int[] weights, TenantTrack[] tenants)
    {
        var track = tenants[i];
        if (track.NewcomerSince is { } since)
        {
            var before = dequeues.Count - since;
            Assert.True(before <= track.NewcomerBound, $"newcomer t{i} waited {before} > {track.NewcomerBound}");
        }

        if (!track.Continuous)
        {
            return;
        }

        // Per other tenant j: at most ceil(d(p) / d_min(j)) items between two dequeues of i, where p is i's previous
        // item and d = cost / weight; d_min(j) over j's items served in between (the spacing of j's tags).
        var between = dequeues.Skip(track.LastIndex + 1).Select(id => items[id]).ToList();
        foreach (var group in between.GroupBy(x => x.Tenant))
        {
            var j = group.Key;
            var minCost = group.Min(x => x.Cost);

            // ceil((c_p / w_i) / (c_j / w_j)) = ceil(c_p * w_j / (w_i * c_j))
            var numerator = track.LastCost * weights[j];
            var denominator = weights[i] * minCost;
            var bound = (numerator + denominator - 1) / denominator;
            Assert.True(group.Count() <= bound, $"t{i} (w{weights[i]}, prev cost {track.LastCost}) waited for {group.Count()} of t{j} (w{weights[j]}) > {bound}");
        }

        // The headline form for cost 1: sum over j of ceil(w_j / w_i) <= (k - 1) * ceil(w_max / w_min).
        if (track.LastCost == 1 && between.All(x => x.Cost == 1))
        {
            var others = between.Select(x => x.Tenant).Distinct().ToList();
            var headline = others.Sum(j => (weights[j] + weights[i] - 1) / weights[i]);
            Assert.True(between.Count <= headline);
        }
    }

    private abstract record Op;

    private sealed record EnqueueOp(int Tenant, int Cost) : Op;

    private sealed record DequeueOp : Op;

    private sealed record RemoveOp(int Pick) : Op;

    private sealed class TenantTrack
    {
        public bool EverSeen { get; set; }

        public int? NewcomerSince { get; set; }

        public int NewcomerBound { get; set; }

        public bool Continuous { get; set; }

        public int LastIndex { get; set; }

        public int LastCost { get; set; }
    }
}
