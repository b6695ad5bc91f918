using Sovereign.Gateway.OpenAI;
using Sovereign.Inference.Scheduling;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// Reserved capacity for one model in one pool: <see cref="FairAdmissionGate"/>'s design with a part of the slots held
/// for plans that reserved them. A plan with fewer requests running than it reserved takes a reserved slot at once,
/// however busy the pool is; everyone else (the plan too, once above its reservation: burst) shares the unreserved
/// slots through the weighted-fair, bounded queue. Unreserved work can never take a reserved slot, even an idle one:
/// that is what makes the reservation a guarantee.
/// </summary>
/// <remarks>
/// The gate decides from numbers its caller passes on every acquire (slots the pool has now, the plan's reservation,
/// the reservations of all plans), so a price-book change or a node joining the pool takes effect at the next request.
/// A reserved slot is also bounded by the pool's slots, so a pool that shrank below its reservations never
/// over-commits its nodes.
/// </remarks>
internal sealed class PoolGate
{
    private readonly Lock _lock = new();
    private readonly FairQueue<Waiter> _queue;
    private readonly Dictionary<string, PlanSlots> _plans = new(StringComparer.OrdinalIgnoreCase);
    private readonly string _pool;
    private readonly string _model;
    private int _capacity;
    private int _reservedTotal;
    private int _unreservedRunning;

    public PoolGate(string pool, string model, int queueCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(queueCapacity, 0);
        _pool = pool;
        _model = model;
        QueueCapacity = queueCapacity;
        _queue = new FairQueue<Waiter>(Math.Max(1, queueCapacity), Math.Max(1, queueCapacity / 2));
    }

    /// <summary>Requests that may wait for an unreserved slot.</summary>
    public int QueueCapacity { get; }

    /// <summary>Requests running on unreserved slots (burst included).</summary>
    public int UnreservedRunning
    {
        get
        {
            lock (_lock)
            {
                return _unreservedRunning;
            }
        }
    }

    /// <summary>Requests of <paramref name="plan"/> running on its reserved slots.</summary>
    public int ReservedRunning(string plan)
    {
        lock (_lock)
        {
            return _plans.TryGetValue(plan, out var slots) ? slots.Running : 0;
        }
    }

    /// <summary>Requests waiting.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>
    /// Takes a slot for a request of <paramref name="plan"/>: a reserved one while the plan runs fewer than
    /// <paramref name="reserved"/>, else an unreserved one (waiting fairly for it). <paramref name="capacity"/> is the
    /// slots the pool has for the model now, <paramref name="reservedTotal"/> the slots all plans reserve in the pool.
    /// Throws the OpenAI error to answer with when the request cannot be served or cannot even wait.
    /// </summary>
    public ValueTask<IDisposable> AcquireAsync(string plan, int reserved, int reservedTotal, int capacity, FairQueueEntry entry, CancellationToken cancellationToken)
    {
        Waiter waiter;
        lock (_lock)
        {
            _capacity = Math.Max(0, capacity);
            _reservedTotal = Math.Max(0, reservedTotal);
            var slots = PlanOf(plan);
            slots.Reserved = Math.Max(0, reserved);
            PumpLocked();
            if (slots.Running < slots.Reserved && RunningLocked() < _capacity)
            {
                slots.Running++;
                return ValueTask.FromResult<IDisposable>(new Lease(this, slots));
            }

            var unreserved = _capacity - _reservedTotal;
            if (unreserved <= 0 && slots.Reserved == 0)
            {
                throw Reserved(plan);
            }

            if (_unreservedRunning < unreserved && _queue.Count == 0)
            {
                _unreservedRunning++;
                return ValueTask.FromResult<IDisposable>(new Lease(this, null));
            }

            if (QueueCapacity == 0)
            {
                throw QueueRefusal(EnqueueRefusal.QueueFull, unreserved);
            }

            waiter = new Waiter(slots);
            if (!_queue.TryEnqueue(waiter, entry, out var refusal))
            {
                throw QueueRefusal(refusal, unreserved);
            }

            if (slots.Reserved > 0)
            {
                slots.Waiting.AddLast(waiter);
            }
        }

        return WaitAsync(waiter, cancellationToken);
    }

    /// <summary>
    /// Counts a slot a request already holds (a new count rebuilt from the gateways that hold slots): reserved while the
    /// plan runs fewer than it reserves, else unreserved, whatever the pool's size now, since the request runs anyway.
    /// </summary>
    public IDisposable Restore(string plan, int reserved, int reservedTotal, int capacity)
    {
        lock (_lock)
        {
            _capacity = Math.Max(0, capacity);
            _reservedTotal = Math.Max(0, reservedTotal);
            var slots = PlanOf(plan);
            slots.Reserved = Math.Max(0, reserved);
            if (slots.Running < slots.Reserved)
            {
                slots.Running++;
                return new Lease(this, slots);
            }

            _unreservedRunning++;
            return new Lease(this, null);
        }
    }

    private async ValueTask<IDisposable> WaitAsync(Waiter waiter, CancellationToken cancellationToken)
    {
        using (cancellationToken.Register(static state => ((Waiter)state!).Cancel(), waiter))
        {
            try
            {
                return await waiter.Granted.Task.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // A cancelled waiter is never granted (Grant skips it), so it only has to leave the queues.
                lock (_lock)
                {
                    _queue.Remove(waiter);
                    waiter.Plan.Waiting.Remove(waiter);
                }

                throw;
            }
        }
    }

    private int RunningLocked()
    {
        var running = _unreservedRunning;
        foreach (var slots in _plans.Values)
        {
            running += slots.Running;
        }

        return running;
    }

    private PlanSlots PlanOf(string plan)
    {
        if (!_plans.TryGetValue(plan, out var slots))
        {
            _plans[plan] = slots = new PlanSlots();
        }

        return slots;
    }

    private void Release(PlanSlots? reservedBy)
    {
        lock (_lock)
        {
            if (reservedBy is null)
            {
                _unreservedRunning--;
            }
            else
            {
                reservedBy.Running--;
            }

            PumpLocked();
        }
    }

    /// <summary>Grants waiting requests every slot they may take now: reserved ones first, then unreserved in fair order.</summary>
    private void PumpLocked()
    {
        foreach (var slots in _plans.Values)
        {
            while (slots.Waiting.First is { } first && slots.Running < slots.Reserved && RunningLocked() < _capacity)
            {
                var waiter = first.Value;
                slots.Waiting.RemoveFirst();
                _queue.Remove(waiter);
                if (waiter.Granted.TrySetResult(new Lease(this, slots)))
                {
                    slots.Running++;
                }
            }
        }

        while (_unreservedRunning < _capacity - _reservedTotal && _queue.TryDequeue(out var next))
        {
            next.Plan.Waiting.Remove(next);
            if (next.Granted.TrySetResult(new Lease(this, null)))
            {
                _unreservedRunning++;
            }
        }
    }

    /// <remarks>
    /// The pool's capacity is what its nodes report now, so a node drained, down or restarting shrinks it for a while:
    /// the refusal says so and carries Retry-After (it said the plan could not run "until the reservations or the pool
    /// change", and SDKs, told nothing to wait for, gave up during a rolling restart).
    /// </remarks>
    private OpenAIException Reserved(string plan) => new(StatusCodes.Status503ServiceUnavailable,
        $"Every slot of '{_model}' in pool '{_pool}' ({_capacity} now) is reserved for other plans, and plan '{plan}' reserves none there. " +
        "Retry later: the pool has unreserved slots again when a node that is drained, down or restarting comes back, or when it grows or its reservations shrink.",
        "server_error", null, "pool_capacity_reserved", ReservedRetryAfter);

    /// <summary>How long a client refused by <see cref="Reserved"/> waits: about a node's restart.</summary>
    internal static readonly TimeSpan ReservedRetryAfter = TimeSpan.FromSeconds(10);

    private OpenAIException QueueRefusal(EnqueueRefusal refusal, int unreserved) => refusal == EnqueueRefusal.TenantQueueFull
        ? new OpenAIException(StatusCodes.Status429TooManyRequests,
            $"Too many of your requests are already waiting for an unreserved slot of '{_model}' in pool '{_pool}' (at most {_queue.PerTenantCapacity}). Retry later.",
            "requests", null, "tenant_queue_full", TimeSpan.FromSeconds(1))
        : new OpenAIException(StatusCodes.Status503ServiceUnavailable,
            $"Pool '{_pool}' is at capacity for '{_model}': its {unreserved} unreserved slots are busy and {QueueCapacity} requests are waiting for them. Retry later.",
            "server_error", null, "queue_full", TimeSpan.FromSeconds(1));

    private sealed class PlanSlots
    {
        public int Reserved { get; set; }

        public int Running { get; set; }

        public LinkedList<Waiter> Waiting { get; } = new();
    }

    private sealed class Waiter(PlanSlots plan)
    {
        public PlanSlots Plan { get; } = plan;

        public TaskCompletionSource<IDisposable> Granted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Cancel() => Granted.TrySetCanceled();
    }

    private sealed class Lease(PoolGate gate, PlanSlots? reservedBy) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Release(reservedBy);
            }
        }
    }
}
