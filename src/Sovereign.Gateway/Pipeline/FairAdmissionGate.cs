using Sovereign.Gateway.OpenAI;
using Sovereign.Inference.Scheduling;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// A fixed number of execution slots in front of one route (an external engine's model, an embedding model), with
/// the engine's weighted-fair, bounded wait queue (<see cref="FairQueue{T}"/>) behind them: interactive before batch,
/// shares by plan weight, each tenant held to half the queue. A request is refused only when the queue is full
/// (503 with Retry-After) or its tenant already holds its share (429), never merely because every slot is busy.
/// </summary>
internal sealed class FairAdmissionGate
{
    private readonly Lock _lock = new();
    private readonly FairQueue<Waiter> _queue;
    private readonly string _route;
    private int _free;
    private int _running;

    // Running plus waiting, published after every change under the lock: the router reads every route's load per
    // request, and a read needs no lock.
    private int _load;

    // Told under the lock when the load leaves or returns to zero: the router reads busy routes only.
    private readonly Action<FairAdmissionGate, bool>? _busyChanged;

    public FairAdmissionGate(string route, int slots, int queueCapacity, Action<FairAdmissionGate, bool>? busyChanged = null)
    {
        _busyChanged = busyChanged;
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(queueCapacity, 0);
        _route = route;
        Slots = slots;
        _free = slots;
        _queue = new FairQueue<Waiter>(Math.Max(1, queueCapacity), Math.Max(1, queueCapacity / 2));
        QueueCapacity = queueCapacity;
    }

    /// <summary>Requests that may run at once.</summary>
    public int Slots { get; }

    /// <summary>Requests that may wait for a slot.</summary>
    public int QueueCapacity { get; }

    /// <summary>Running plus waiting: the load the router compares with <see cref="Slots"/> + <see cref="QueueCapacity"/>.</summary>
    public int Load
    {
        get
        {
            return Volatile.Read(ref _load);
        }
    }

    /// <summary>Requests running and waiting now, read together (a node's load report; not on the request path).</summary>
    public (int Running, int Waiting) Occupancy
    {
        get
        {
            lock (_lock)
            {
                return (_running, _queue.Count);
            }
        }
    }

    /// <summary>Waits for a slot, fairly; throws the OpenAI error to answer with when the request cannot even wait.</summary>
    public async ValueTask<IDisposable> AcquireAsync(FairQueueEntry entry, CancellationToken cancellationToken)
    {
        Waiter waiter;
        lock (_lock)
        {
            if (_free > 0 && _queue.Count == 0)
            {
                _free--;
                _running++;
                PublishLoad();
                return new Lease(this);
            }

            if (QueueCapacity == 0)
            {
                throw QueueRefusal(EnqueueRefusal.QueueFull);
            }

            waiter = new Waiter();
            if (!_queue.TryEnqueue(waiter, entry, out var refusal))
            {
                throw QueueRefusal(refusal);
            }

            PublishLoad();
        }

        using (cancellationToken.Register(static state => ((Waiter)state!).Cancel(), waiter))
        {
            try
            {
                await waiter.Granted.Task.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // A cancelled waiter is never granted (ReleaseLocked skips it), so it only has to leave the queue.
                lock (_lock)
                {
                    _queue.Remove(waiter);
                    PublishLoad();
                }

                throw;
            }
        }

        return new Lease(this);
    }

    private void Release()
    {
        lock (_lock)
        {
            ReleaseLocked();
        }
    }

    private void ReleaseLocked()
    {
        while (_queue.TryDequeue(out var next))
        {
            if (next.Granted.TrySetResult())
            {
                PublishLoad();
                return;
            }
        }

        _running--;
        _free++;
        PublishLoad();
    }

    private void PublishLoad()
    {
        var load = _running + _queue.Count;
        var wasBusy = _load != 0;
        Volatile.Write(ref _load, load);
        if (wasBusy != (load != 0))
        {
            _busyChanged?.Invoke(this, load != 0);
        }
    }

    private OpenAIException QueueRefusal(EnqueueRefusal refusal) => refusal == EnqueueRefusal.TenantQueueFull
        ? new OpenAIException(StatusCodes.Status429TooManyRequests,
            $"Too many of your requests are already waiting for '{_route}' (at most {_queue.PerTenantCapacity}). Retry later.",
            "requests", null, "tenant_queue_full", TimeSpan.FromSeconds(1))
        : new OpenAIException(StatusCodes.Status503ServiceUnavailable,
            $"'{_route}' is at capacity: {Slots} requests are running and {QueueCapacity} are waiting. Retry later.",
            "server_error", null, "queue_full", TimeSpan.FromSeconds(1));

    private sealed class Waiter
    {
        public TaskCompletionSource Granted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Cancel() => Granted.TrySetCanceled();
    }

    private sealed class Lease(FairAdmissionGate gate) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                gate.Release();
            }
        }
    }
}
