using Orleans.Concurrency;
using Sovereign.Gateway.OpenAI;
using Sovereign.Inference.Scheduling;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// The reserved capacity of one model in one pool, for the whole cluster: one activation (on a gateway) holds the
/// <see cref="PoolGate"/> that every gateway's requests take their slots from, so a plan's reservation is a guarantee
/// however many gateways relay to the pool. Keyed by <see cref="KeyOf"/>.
/// </summary>
/// <remarks>
/// A wait is not one long grain call (calls time out): <see cref="AcquireAsync"/> answers at once, with a slot, a
/// refusal, or a ticket for a place in the queue, and <see cref="AwaitAsync"/> waits for that ticket a bounded time per
/// call, as often as needed.
/// </remarks>
public interface IPoolSlotsGrain : IGrainWithStringKey
{
    Task<PoolSlotAnswer> AcquireAsync(PoolSlotRequest request);

    Task<PoolSlotAnswer> AwaitAsync(Guid ticket);

    /// <summary>Gives a slot back, or gives up a place in the queue (an answer granted meanwhile is given back too).</summary>
    Task ReleaseAsync(Guid ticket);

    /// <summary>The plan's requests on reserved slots, all requests on unreserved slots, and those waiting, cluster-wide.</summary>
    Task<PoolSlotCounts> CountsAsync(string plan);
}

/// <summary>A pool gate's counters for one plan.</summary>
[GenerateSerializer, Immutable]
public sealed record PoolSlotCounts([property: Id(0)] int ReservedRunning, [property: Id(1)] int UnreservedRunning, [property: Id(2)] int Waiting);

/// <summary>What a request asks of a pool's slots: the numbers <see cref="PoolGate.AcquireAsync"/> decides from.</summary>
[GenerateSerializer, Immutable]
public sealed record PoolSlotRequest(
    [property: Id(0)] Guid Ticket,
    [property: Id(1)] string Pool,
    [property: Id(2)] string Model,
    [property: Id(3)] string Plan,
    [property: Id(4)] int Reserved,
    [property: Id(5)] int ReservedTotal,
    [property: Id(6)] int Capacity,
    [property: Id(7)] int QueueCapacity,
    [property: Id(8)] string TenantId,
    [property: Id(9)] int Weight,
    [property: Id(10)] int Priority,
    [property: Id(11)] SiloAddress? Holder);

/// <summary>A slot, a place in the queue, or the refusal to answer with (an OpenAI error, carried as data between silos).</summary>
[GenerateSerializer, Immutable]
public sealed record PoolSlotAnswer(
    [property: Id(0)] PoolSlotState State,
    [property: Id(1)] int Status = 0,
    [property: Id(2)] string? Message = null,
    [property: Id(3)] string? Type = null,
    [property: Id(4)] string? Code = null,
    [property: Id(5)] double? RetryAfterSeconds = null)
{
    public static readonly PoolSlotAnswer Granted = new(PoolSlotState.Granted);
    public static readonly PoolSlotAnswer Queued = new(PoolSlotState.Queued);
    public static readonly PoolSlotAnswer Gone = new(PoolSlotState.Gone);
}

public enum PoolSlotState
{
    /// <summary>The ticket holds a slot until it is released.</summary>
    Granted,

    /// <summary>The ticket waits in the queue: ask again with <see cref="IPoolSlotsGrain.AwaitAsync"/>.</summary>
    Queued,

    /// <summary>Refused: the answer names the error.</summary>
    Refused,

    /// <summary>The grain does not know the ticket (released, or its holder was declared dead).</summary>
    Gone,
}

[Reentrant]
internal sealed partial class PoolSlotsGrain(IClusterMembershipService membership, IGrainFactory grains, ILogger<PoolSlotsGrain> logger) : Grain, IPoolSlotsGrain
{
    /// <summary>The longest one <see cref="AwaitAsync"/> call waits, well inside Orleans' response timeout.</summary>
    internal static readonly TimeSpan AwaitSlice = TimeSpan.FromSeconds(10);

    /// <summary>How long a new activation waits for one gateway's table before counting without it.</summary>
    private static readonly TimeSpan TableAnswer = TimeSpan.FromSeconds(5);

    private static readonly TimeSpan HolderCheck = TimeSpan.FromSeconds(5);
    private readonly Dictionary<Guid, Ticket> _tickets = [];
    private PoolGate? _gate;
    private IGrainTimer? _holderTimer;

    public static string KeyOf(string pool, string model) => $"{pool}/{model}";

    /// <summary>
    /// Rebuilds the count before the first call is answered: the previous activation (on a gateway that died, or
    /// that was collected) left no state, but every live gateway's <see cref="PoolLeaseTable"/> names the tickets its
    /// requests hold or wait for. Granted ones are counted as running (whatever the pool's size now), then waiting
    /// ones queue again. Releases that reach this activation afterwards find them; a release that came before (the
    /// ticket already out of its table) finds nothing and changes nothing.
    /// </summary>
    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var key = this.GetPrimaryKeyString();
        var gateways = membership.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active && m.Name?.StartsWith("node/", StringComparison.Ordinal) != true)
            .Select(m => m.SiloAddress)
            .ToList();
        var answers = await Task.WhenAll(gateways.Select(async gateway =>
        {
            try
            {
                return await PoolLeaseTableGrain.AskAsync(grains, gateway, key).WaitAsync(TableAnswer, cancellationToken);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // A gateway that cannot answer is dying or gone: its requests end with it (and its tickets would be
                // given back once membership declares it dead).
                LogTableUnread(logger, ex, key, gateway);
                return [];
            }
        }));

        var held = answers.SelectMany(a => a).ToList();
        foreach (var slot in held.Where(s => s.Granted))
        {
            Restore(slot.Request);
        }

        foreach (var slot in held.Where(s => !s.Granted))
        {
            Take(slot.Request);
        }

        if (held.Count > 0)
        {
            LogRecovered(logger, key, held.Count(s => s.Granted), held.Count(s => !s.Granted), gateways.Count);
        }
    }

    public Task<PoolSlotAnswer> AcquireAsync(PoolSlotRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);

        // Asked again (the count was rebuilt from the gateway's table while the first ask travelled): where it stands.
        if (_tickets.TryGetValue(request.Ticket, out var known))
        {
            return Task.FromResult(known.Lease is not null ? PoolSlotAnswer.Granted : PoolSlotAnswer.Queued);
        }

        return Task.FromResult(Take(request));
    }

    private PoolSlotAnswer Take(PoolSlotRequest request)
    {
        _gate ??= new PoolGate(request.Pool, request.Model, request.QueueCapacity);
        var ticket = new Ticket(request.Holder);
        ValueTask<IDisposable> acquiring;
        try
        {
            acquiring = _gate.AcquireAsync(request.Plan, request.Reserved, request.ReservedTotal, request.Capacity,
                new FairQueueEntry(request.TenantId, request.Weight, (PriorityClass)request.Priority, 1), ticket.Cancellation.Token);
        }
        catch (OpenAIException refusal)
        {
            ticket.Cancellation.Dispose();
            return Refusal(refusal);
        }

        _tickets[request.Ticket] = ticket;
        EnsureHolderTimer();
        if (acquiring.IsCompletedSuccessfully)
        {
            ticket.Lease = acquiring.Result;
            return PoolSlotAnswer.Granted;
        }

        ticket.Waiting = acquiring.AsTask();
        return PoolSlotAnswer.Queued;
    }

    private void Restore(PoolSlotRequest request)
    {
        if (_tickets.ContainsKey(request.Ticket))
        {
            return;
        }

        _gate ??= new PoolGate(request.Pool, request.Model, request.QueueCapacity);
        _tickets[request.Ticket] = new Ticket(request.Holder) { Lease = _gate.Restore(request.Plan, request.Reserved, request.ReservedTotal, request.Capacity) };
        EnsureHolderTimer();
    }

    public async Task<PoolSlotAnswer> AwaitAsync(Guid ticketId)
    {
        if (!_tickets.TryGetValue(ticketId, out var ticket))
        {
            return PoolSlotAnswer.Gone;
        }

        if (ticket.Lease is not null)
        {
            return PoolSlotAnswer.Granted;
        }

        var waiting = ticket.Waiting!;
        await Task.WhenAny(waiting, Task.Delay(AwaitSlice));
        if (!waiting.IsCompleted)
        {
            return PoolSlotAnswer.Queued;
        }

        if (waiting.IsCompletedSuccessfully)
        {
            ticket.Lease = waiting.Result;
            return _tickets.ContainsKey(ticketId) ? PoolSlotAnswer.Granted : Release(ticket);
        }

        _tickets.Remove(ticketId);
        return PoolSlotAnswer.Gone;
    }

    public Task ReleaseAsync(Guid ticketId)
    {
        if (_tickets.Remove(ticketId, out var ticket))
        {
            Release(ticket);
        }

        return Task.CompletedTask;
    }

    public Task<PoolSlotCounts> CountsAsync(string plan) =>
        Task.FromResult(_gate is null ? new PoolSlotCounts(0, 0, 0) : new PoolSlotCounts(_gate.ReservedRunning(plan), _gate.UnreservedRunning, _gate.Waiting));

    private static PoolSlotAnswer Release(Ticket ticket)
    {
        ticket.Cancellation.Cancel();
        ticket.Lease?.Dispose();

        // A wait that was granted after its ticket was given up gives its slot straight back.
        ticket.Waiting?.ContinueWith(static granted => granted.Result.Dispose(), CancellationToken.None, TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return PoolSlotAnswer.Gone;
    }

    private static PoolSlotAnswer Refusal(OpenAIException refusal) =>
        new(PoolSlotState.Refused, refusal.Status, refusal.Message, refusal.Type, refusal.Code, refusal.RetryAfter?.TotalSeconds);

    /// <summary>
    /// While tickets exist, the activation stays (collecting it would forget who holds slots), and every few seconds the
    /// tickets of gateways that membership declared dead are given back: their requests ended with them.
    /// </summary>
    private void EnsureHolderTimer()
    {
        if (_holderTimer is not null)
        {
            return;
        }

        DelayDeactivation(Timeout.InfiniteTimeSpan);
        _holderTimer = this.RegisterGrainTimer(_ =>
        {
            var members = membership.CurrentSnapshot.Members;
            foreach (var (id, ticket) in _tickets.ToList())
            {
                if (ticket.Holder is { } holder && members.TryGetValue(holder, out var member) && member.Status == SiloStatus.Dead)
                {
                    _tickets.Remove(id);
                    Release(ticket);
                }
            }

            if (_tickets.Count == 0)
            {
                _holderTimer?.Dispose();
                _holderTimer = null;
                DelayDeactivation(TimeSpan.Zero);
            }

            return Task.CompletedTask;
        }, new GrainTimerCreationOptions(HolderCheck, HolderCheck));
    }

    [LoggerMessage(EventId = 4113, EventName = "PoolCountRecovered", Level = LogLevel.Information,
        Message = "Pool gate {Key} rebuilt its count from {Gateways} gateways' tables: {Running} slots in use, {Waiting} waiting")]
    private static partial void LogRecovered(ILogger logger, string key, int running, int waiting, int gateways);

    [LoggerMessage(EventId = 4108, EventName = "PoolLeaseTableUnread", Level = LogLevel.Warning,
        Message = "Pool gate {Key} could not read the slots held by gateway {Gateway}; it counts without them")]
    private static partial void LogTableUnread(ILogger logger, Exception exception, string key, SiloAddress gateway);

    private sealed class Ticket(SiloAddress? holder)
    {
        public SiloAddress? Holder { get; } = holder;

        public CancellationTokenSource Cancellation { get; } = new();

        public IDisposable? Lease { get; set; }

        public Task<IDisposable>? Waiting { get; set; }
    }
}
