using System.Diagnostics.CodeAnalysis;

namespace Sovereign.Inference.Scheduling;

/// <summary>
/// A bounded, weighted-fair admission queue: strict priority between <see cref="PriorityClass"/>es and, within a
/// class, start-time fair queuing (SFQ, Goyal et al. 1996) over per-tenant FIFOs, so one tenant's backlog cannot hold
/// back the others (the FIFO failure of llama.cpp #6607).
/// </summary>
/// <remarks>
/// <para>
/// Algorithm, per class: a virtual time V (the start tag of the item dequeued last). Only each tenant's head has a tag:
/// when a tenant's FIFO becomes non-empty its head gets start S = max(V, F) where F is the finish tag of the tenant's
/// last dequeued item; dequeuing an item with start S sets V = S and gives it finish F = S + cost / weight, and the
/// tenant's next head starts at F. The next item is the head with the smallest (S, activation order). Virtual costs
/// are integers: ceil(cost * 232792560 / weight), exact for every weight from 1 to 22 (232792560 = lcm(1..22)). When
/// a class empties, its virtual time and every tenant's F start again from 0. Removing (cancelling) an item never
/// charges its tenant: a removed head's successor inherits its start tag.
/// </para>
/// <para>
/// Guarantees, within one class (items of a higher class always go first), with d(x) = the virtual cost of x:
/// (1) a tenant that becomes backlogged with F &lt;= V (new, or not served since the class last emptied, or idle long
/// enough) is dequeued after at most one item of each other tenant backlogged when it arrived: position &lt;= k
/// among k backlogged tenants. (2) Between two consecutive dequeues of a continuously backlogged tenant i whose
/// earlier item was p, at most sum over j != i of ceil(d(p) / d_min(j)) items of other tenants are dequeued, d_min(j)
/// being the virtual cost of j's cheapest item; with cost 1 per request that is sum ceil(w_j / w_i) &lt;=
/// (k - 1) * ceil(w_max / w_min). (3) Over any interval where tenants i and j are both backlogged, their served
/// cost / weight differ by at most d_max(i) + d_max(j) (SFQ's fairness bound), so shares are proportional to weights;
/// with equal costs the order is exactly periodic (weights 3:1 give 3 and 1 of every 4).
/// </para>
/// <para>
/// Not thread-safe: it belongs to the engine's single admission loop. Enqueue where requests are drained into the
/// loop, and dequeue only there.
/// </para>
/// </remarks>
public sealed class FairQueue<T>
    where T : notnull
{
    /// <summary>lcm(1..22): the scale of virtual time, so that cost / weight is an exact integer for weights 1 to 22.</summary>
    internal const long VirtualScale = 232_792_560;

    private readonly ClassQueue[] _classes = [new(), new()];
    private readonly Dictionary<T, Node> _nodes;
    private readonly Dictionary<string, int> _tenantCounts = new(StringComparer.Ordinal);
    private long _activations;

    /// <summary>Creates an empty queue holding at most <paramref name="capacity"/> items, <paramref name="perTenantCapacity"/> per tenant.</summary>
    public FairQueue(int capacity, int perTenantCapacity, IEqualityComparer<T>? comparer = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(perTenantCapacity, 1);
        Capacity = capacity;
        PerTenantCapacity = perTenantCapacity;
        _nodes = new Dictionary<T, Node>(comparer);
    }

    /// <summary>Most items waiting in all.</summary>
    public int Capacity { get; }

    /// <summary>Most items waiting per tenant (all classes together).</summary>
    public int PerTenantCapacity { get; }

    /// <summary>Items waiting.</summary>
    public int Count => _nodes.Count;

    /// <summary>Items waiting per tenant (tenants with none are absent).</summary>
    public IReadOnlyDictionary<string, int> TenantCounts => _tenantCounts;

    /// <summary>Items a tenant has waiting.</summary>
    public int CountOf(string tenantId) => _tenantCounts.GetValueOrDefault(tenantId);

    /// <summary>Items waiting in a class.</summary>
    public int CountOf(PriorityClass priority) => Class(priority).Count;

    /// <summary>Whether the item is waiting.</summary>
    public bool Contains(T item) => _nodes.ContainsKey(item);

    /// <summary>Every waiting item, in no particular order (e.g. to fail them all at shutdown).</summary>
    public T[] ToArray() => [.. _nodes.Keys];

    /// <summary>Queues an item; false when the queue or the tenant is at capacity.</summary>
    public bool TryEnqueue(T item, FairQueueEntry entry) => TryEnqueue(item, entry, out _);

    /// <summary>Queues an item; false (with the reason) when the queue or the tenant is at capacity.</summary>
    /// <exception cref="ArgumentException">The item is already queued, or the entry is invalid.</exception>
    public bool TryEnqueue(T item, FairQueueEntry entry, out EnqueueRefusal refusal)
    {
        ArgumentNullException.ThrowIfNull(item);
        ArgumentException.ThrowIfNullOrEmpty(entry.TenantId, nameof(entry));
        ArgumentOutOfRangeException.ThrowIfLessThan(entry.Weight, 1, nameof(entry));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(entry.Weight, FairQueueEntry.MaxWeight, nameof(entry));
        ArgumentOutOfRangeException.ThrowIfLessThan(entry.Cost, 1, nameof(entry));
        if (!Enum.IsDefined(entry.Priority))
        {
            throw new ArgumentOutOfRangeException(nameof(entry), entry.Priority, "Unknown priority class.");
        }

        if (_nodes.ContainsKey(item))
        {
            throw new ArgumentException("The item is already queued.", nameof(item));
        }

        if (_nodes.Count >= Capacity)
        {
            refusal = EnqueueRefusal.QueueFull;
            return false;
        }

        var tenantCount = CountOf(entry.TenantId);
        if (tenantCount >= PerTenantCapacity)
        {
            refusal = EnqueueRefusal.TenantQueueFull;
            return false;
        }

        var queue = Class(entry.Priority);
        if (!queue.Lanes.TryGetValue(entry.TenantId, out var lane))
        {
            lane = new Lane(entry.TenantId);
            queue.Lanes.Add(entry.TenantId, lane);
        }

        var node = new Node(item, entry, lane);
        node.ListNode = lane.Items.AddLast(node);
        _nodes.Add(item, node);
        _tenantCounts[entry.TenantId] = tenantCount + 1;
        queue.Count++;
        if (lane.Items.Count == 1)
        {
            // Newly backlogged: start no earlier than now (V), nor before its own last finish (no gain from idling).
            lane.HeadStart = Int128.Max(queue.VirtualTime, lane.LastFinish);
            lane.Activation = ++_activations;
            queue.Active.Add(lane);
        }

        refusal = EnqueueRefusal.None;
        return true;
    }

    /// <summary>The item that <see cref="TryDequeue"/> would return, without removing it ("peek, then decide").</summary>
    public bool TryPeek([MaybeNullWhen(false)] out T item)
    {
        var lane = NextLane(out _);
        if (lane is null)
        {
            item = default;
            return false;
        }

        item = lane.Items.First!.Value.Item;
        return true;
    }

    /// <summary>Removes and returns the next item fairly; it is the item <see cref="TryPeek"/> just returned.</summary>
    public bool TryDequeue([MaybeNullWhen(false)] out T item)
    {
        var lane = NextLane(out var queue);
        if (lane is null)
        {
            item = default;
            return false;
        }

        var node = lane.Items.First!.Value;
        queue!.Active.Remove(lane);
        lane.Items.RemoveFirst();
        queue.VirtualTime = lane.HeadStart;
        lane.LastFinish = lane.HeadStart + VirtualCost(node.Entry);
        if (lane.Items.Count > 0)
        {
            // Still backlogged: keeps its activation order; its next head starts where this one finished.
            lane.HeadStart = lane.LastFinish;
            queue.Active.Add(lane);
        }

        Forget(node, queue);
        item = node.Item;
        return true;
    }

    /// <summary>
    /// Removes a waiting item without charging its tenant (a cancellation). Never use it to admit the peeked item:
    /// that is <see cref="TryDequeue"/>, which charges the tenant's share.
    /// </summary>
    public bool Remove(T item)
    {
        if (!_nodes.TryGetValue(item, out var node))
        {
            return false;
        }

        var queue = Class(node.Entry.Priority);
        var lane = node.Lane;
        var wasHead = ReferenceEquals(lane.Items.First, node.ListNode);
        if (wasHead && lane.Items.Count == 1)
        {
            queue.Active.Remove(lane);
        }

        // A removed head's successor keeps its start tag (and so its place): the cancelled work cost nothing.
        lane.Items.Remove(node.ListNode!);
        Forget(node, queue);
        return true;
    }

    internal static Int128 VirtualCost(FairQueueEntry entry)
    {
        var scaled = (Int128)entry.Cost * VirtualScale;
        return (scaled + entry.Weight - 1) / entry.Weight;
    }

    private ClassQueue Class(PriorityClass priority) => _classes[(int)priority];

    private Lane? NextLane(out ClassQueue? queue)
    {
        foreach (var candidate in _classes)
        {
            if (candidate.Active.Count > 0)
            {
                queue = candidate;
                return candidate.Active.Min;
            }
        }

        queue = null;
        return null;
    }

    private void Forget(Node node, ClassQueue queue)
    {
        _nodes.Remove(node.Item);
        var tenant = node.Entry.TenantId;
        var left = _tenantCounts[tenant] - 1;
        if (left == 0)
        {
            _tenantCounts.Remove(tenant);
        }
        else
        {
            _tenantCounts[tenant] = left;
        }

        queue.Count--;
        if (queue.Count == 0)
        {
            // An empty class forgets history (SFQ's idle reset): every tenant starts level again.
            queue.VirtualTime = 0;
            queue.Lanes.Clear();
            queue.SweepAt = 64;
        }
        else if (queue.Lanes.Count > queue.SweepAt)
        {
            queue.SweepIdleLanes();
        }
    }

    private sealed class Node(T item, FairQueueEntry entry, Lane lane)
    {
        public T Item { get; } = item;

        public FairQueueEntry Entry { get; } = entry;

        public Lane Lane { get; } = lane;

        public LinkedListNode<Node>? ListNode { get; set; }
    }

    private sealed class Lane(string tenantId)
    {
        public string TenantId { get; } = tenantId;

        public LinkedList<Node> Items { get; } = new();

        /// <summary>Finish tag of the tenant's last dequeued item.</summary>
        public Int128 LastFinish { get; set; }

        /// <summary>Start tag of the head (meaningful while Items is not empty).</summary>
        public Int128 HeadStart { get; set; }

        /// <summary>When the lane last became backlogged: the tie-break, oldest first.</summary>
        public long Activation { get; set; }
    }

    private sealed class ClassQueue
    {
        public Int128 VirtualTime { get; set; }

        public int Count { get; set; }

        public Dictionary<string, Lane> Lanes { get; } = new(StringComparer.Ordinal);

        public SortedSet<Lane> Active { get; } = new(LaneOrder.Instance);

        /// <summary>Lane count that triggers the next sweep; doubling keeps sweeps amortized O(1) per operation.</summary>
        public int SweepAt { get; set; } = 64;

        // An idle lane whose last finish is at or behind V would start at V anyway: forgetting it changes nothing.
        public void SweepIdleLanes()
        {
            foreach (var lane in Lanes.Values.Where(l => l.Items.Count == 0 && l.LastFinish <= VirtualTime).ToList())
            {
                Lanes.Remove(lane.TenantId);
            }

            SweepAt = 64 + (2 * Lanes.Count);
        }
    }

    private sealed class LaneOrder : IComparer<Lane>
    {
        public static readonly LaneOrder Instance = new();

        public int Compare(Lane? x, Lane? y)
        {
            if (ReferenceEquals(x, y))
            {
                return 0;
            }

            var byStart = x!.HeadStart.CompareTo(y!.HeadStart);
            return byStart != 0 ? byStart : x.Activation.CompareTo(y.Activation);
        }
    }
}
