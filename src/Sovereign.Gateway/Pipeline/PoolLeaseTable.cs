using System.Collections.Concurrent;
using Orleans.Concurrency;
using Orleans.Runtime.Placement;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// The pool slots this gateway's requests hold or wait for, by ticket: the evidence a new <see cref="PoolSlotsGrain"/>
/// activation rebuilds its count from when the gateway that hosted the last one died (<see cref="IPoolLeaseTableGrain"/>).
/// </summary>
/// <remarks>
/// A ticket is entered before it is asked for and removed before it is given back, so a new count sees every slot a
/// request may be running on, and a release it hears of for a ticket it never saw changes nothing.
/// </remarks>
internal sealed class PoolLeaseTable
{
    private readonly ConcurrentDictionary<Guid, Entry> _entries = new();

    /// <summary>Tickets held now (for tests and diagnostics).</summary>
    public int Count => _entries.Count;

    public void Want(PoolSlotRequest request) => _entries[request.Ticket] = new Entry(request);

    public void Granted(Guid ticket)
    {
        if (_entries.TryGetValue(ticket, out var entry))
        {
            entry.Granted = true;
        }
    }

    public void Forget(Guid ticket) => _entries.TryRemove(ticket, out _);

    /// <summary>The tickets of one pool gate (<see cref="PoolSlotsGrain.KeyOf"/>).</summary>
    public HeldPoolSlot[] Of(string key)
    {
        var held = new List<HeldPoolSlot>();
        foreach (var entry in _entries.Values)
        {
            if (PoolSlotsGrain.KeyOf(entry.Request.Pool, entry.Request.Model) == key)
            {
                held.Add(new HeldPoolSlot(entry.Request, entry.Granted));
            }
        }

        return [.. held];
    }

    private sealed class Entry(PoolSlotRequest request)
    {
        private volatile bool _granted;

        public PoolSlotRequest Request { get; } = request;

        public bool Granted
        {
            get => _granted;
            set => _granted = value;
        }
    }
}

/// <summary>A ticket a gateway holds: its request, and whether the pool gate granted it a slot (else it waits).</summary>
[GenerateSerializer, Immutable]
public sealed record HeldPoolSlot([property: Id(0)] PoolSlotRequest Request, [property: Id(1)] bool Granted);

/// <summary>
/// One gateway's <see cref="PoolLeaseTable"/>, asked by a new <see cref="PoolSlotsGrain"/> activation. Keyed by the
/// gateway's silo address (<see cref="SiloAddress.ToParsableString"/>) and placed on that silo by a placement hint; an
/// activation anywhere else refuses to start, so an answer always comes from the table it names.
/// </summary>
public interface IPoolLeaseTableGrain : IGrainWithStringKey
{
    Task<HeldPoolSlot[]> HeldAsync(string key);
}

[Reentrant]
internal sealed class PoolLeaseTableGrain(PoolLeaseTable table, ILocalSiloDetails silo) : Grain, IPoolLeaseTableGrain
{
    /// <summary>Asks the table of the gateway at <paramref name="gateway"/> for the tickets of the pool gate <paramref name="key"/>.</summary>
    public static async Task<HeldPoolSlot[]> AskAsync(IGrainFactory grains, SiloAddress gateway, string key)
    {
        RequestContext.Set(IPlacementDirector.PlacementHintKey, gateway);
        try
        {
            return await grains.GetGrain<IPoolLeaseTableGrain>(gateway.ToParsableString()).HeldAsync(key);
        }
        finally
        {
            RequestContext.Remove(IPlacementDirector.PlacementHintKey);
        }
    }

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        // The hint is not honoured when the named silo is gone or hosts no gateway grains: answering from another
        // gateway's table would report its tickets as the missing one's.
        var here = silo.SiloAddress.ToParsableString();
        return this.GetPrimaryKeyString() == here
            ? Task.CompletedTask
            : throw new InvalidOperationException($"The pool lease table of silo {this.GetPrimaryKeyString()} cannot be read on silo {here}.");
    }

    public Task<HeldPoolSlot[]> HeldAsync(string key) => Task.FromResult(table.Of(key));
}

/// <summary>
/// A gateway's side of the cluster's pool gates: takes a slot of <see cref="IPoolSlotsGrain"/> (waiting for it as long
/// as needed), with the ticket in this gateway's <see cref="PoolLeaseTable"/> while it lives.
/// </summary>
internal sealed class PoolSlotClient(IGrainFactory grains, PoolLeaseTable table, ILogger<PoolSlotClient> logger)
{
    /// <summary>
    /// Raised with each answer the gate gives a request here (queued, granted, refused), once the gate has counted it:
    /// tests wait on it for a request to hold its slot or to wait for one, rather than on time.
    /// </summary>
    internal event Action<PoolSlotRequest, PoolSlotState>? Answered;

    /// <summary>A slot for <paramref name="slot"/>, given back when the lease is disposed; throws the OpenAI error to answer with otherwise.</summary>
    public async ValueTask<IAsyncDisposable> AcquireAsync(PoolSlotRequest slot, string requestId, CancellationToken aborted)
    {
        ArgumentNullException.ThrowIfNull(slot);
        var gate = grains.GetGrain<IPoolSlotsGrain>(PoolSlotsGrain.KeyOf(slot.Pool, slot.Model));
        var lease = new PoolSlotLease(gate, table, slot.Ticket, requestId, slot.Pool, logger);
        table.Want(slot);
        PoolSlotAnswer answer;
        try
        {
            answer = await gate.AcquireAsync(slot);
            Answered?.Invoke(slot, answer.State);
            while (answer.State == PoolSlotState.Queued)
            {
                answer = await gate.AwaitAsync(slot.Ticket).WaitAsync(aborted);
                Answered?.Invoke(slot, answer.State);
            }
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The client left while waiting, or the gate could not be reached: the place (or a slot granted
            // meanwhile, maybe by a successor that rebuilt its count from this table) is given back.
            await lease.DisposeAsync();
            throw;
        }

        if (answer.State == PoolSlotState.Granted)
        {
            table.Granted(slot.Ticket);
            return lease;
        }

        table.Forget(slot.Ticket);
        throw answer.State == PoolSlotState.Refused
            ? new OpenAIException(answer.Status, answer.Message ?? "No slot of the pool.", answer.Type ?? "server_error", null, answer.Code,
                answer.RetryAfterSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null)
            : new OpenAIException(StatusCodes.Status503ServiceUnavailable, $"The slot this request waited for in pool '{slot.Pool}' was lost; try again.",
                "server_error", null, "queue_full", TimeSpan.FromSeconds(1));
    }

    /// <summary>A slot of the cluster's pool gate, given back once when the request ends.</summary>
    private sealed class PoolSlotLease(IPoolSlotsGrain gate, PoolLeaseTable table, Guid ticket, string requestId, string pool, ILogger logger) : IAsyncDisposable
    {
        private int _released;

        public async ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                // Out of the table first: a count rebuilt from now on does not see the slot, whether or not the release reaches it.
                table.Forget(ticket);
                try
                {
                    await gate.ReleaseAsync(ticket);
                }
                catch (Exception ex) when (ex is not OutOfMemoryException)
                {
                    // The request itself is done and accounted; only the pool's count could not hear of it.
                    Observability.GatewayLog.PoolSlotReleaseFailed(logger, ex, requestId, pool);
                }
            }
        }
    }
}
