using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;

namespace Sovereign.Gateway.Metering;

/// <summary>
/// The budget leases this gateway holds, one per tenant and key (<see cref="TenantMoneyOptions.LeaseTerm"/>; on by
/// default on a <c>--role gateway</c> member of a multi-process cluster, else off): a slice of the key's remaining budget and rate limits that the tenant's grain granted beside an admission,
/// from which this gateway admits the key's next requests without a grain call before their relay leaves. Each such
/// request is still confirmed by the grain (<see cref="ITenantGrain.AdmitFromLeaseAsync"/>) before any of its content
/// reaches the client, so a revoked key, a disabled tenant, a changed policy or a lowered budget refuses it there.
/// </summary>
/// <remarks>
/// This side counts a lease down before the grain does (a request takes its share here first), so it never admits
/// more than the grain holds for it. A lease past its term, used up, or that the grain says is closed is dropped, and
/// the key's next request asks the grain again (for a new lease). At stop, every lease held is given back.
/// </remarks>
public sealed partial class BudgetLeases(GrainReferences<ITenantGrain> tenants, IOptions<TenantMoneyOptions> money, ILogger<BudgetLeases> logger, ILocalSiloDetails? silo = null) : IHostedService
{
    private readonly ConcurrentDictionary<(string Tenant, string Key), Held> _held = new();
    // The lease asks on their way to a grain, one per key: a recall or reclaim of their tenant marks them, and a lease
    // granted by a marked ask is not used. Only asks in flight are kept (a per-tenant count of recalls was kept for
    // every tenant ever recalled, and grew without bound on a long-running gateway with many tenants).
    private readonly ConcurrentDictionary<(string Tenant, string Key), LeaseAsk> _asking = new();

    // Every lease from its install until it is closed here and its last request admitted from it is confirmed: a
    // reclaim asks about each one its grain may still count requests in flight against.
    private readonly ConcurrentDictionary<Guid, Held> _unsettled = new();

    /// <summary>Whether leases are on (<see cref="TenantMoneyOptions.LeaseTerm"/> above 0).</summary>
    public bool Enabled => money.Value.LeaseTerm > TimeSpan.Zero;

    /// <summary>The leases held now (for tests and diagnostics).</summary>
    internal int Count => _held.Count;

    /// <summary>The lease held for a tenant's key, if any (for tests).</summary>
    internal Held? Of(string tenant, string keyId) => _held.GetValueOrDefault((tenant, keyId));

    /// <summary>What to ask a lease for, sized by the request asking: <see cref="TenantMoneyOptions.LeaseRequests"/> times its most cost and tokens.</summary>
    internal BudgetLeaseAsk Ask(decimal maxCost, long tokens, string currency)
    {
        var options = money.Value;
        return new BudgetLeaseAsk(Guid.NewGuid(), maxCost * options.LeaseRequests, maxCost * options.LeaseMinRequests,
            options.LeaseRequests, tokens * options.LeaseRequests, tokens * options.LeaseMinRequests, currency, silo?.SiloAddress);
    }

    /// <summary>The tenant's grain closed every lease of <paramref name="tenant"/> (a change of it): none is used again here.</summary>
    internal void Recall(string tenant)
    {
        Cross(tenant);
        foreach (var held in _held.Values.Where(h => h.Tenant == tenant).ToList())
        {
            Drop(held, giveBack: false);
        }
    }

    /// <summary>
    /// Marks every lease ask of <paramref name="tenant"/> on its way (<see cref="TryBeginAsk"/>) as crossed by a recall or
    /// reclaim: the lease it brings back is not used (its grain may have closed it before its answer arrived). Asks
    /// begun after this cannot have been granted before it.
    /// </summary>
    private void Cross(string tenant)
    {
        foreach (var ask in _asking.Values)
        {
            if (string.Equals(ask.Tenant, tenant, StringComparison.Ordinal))
            {
                ask.Cross();
            }
        }

        // Ordered before reading the leases held: one installed meanwhile is either seen by the caller or refused by Install.
        Interlocked.MemoryBarrier();
    }

    /// <summary>The lease asks on their way now (for tests: nothing is kept per tenant beyond them).</summary>
    internal int AsksInFlight => _asking.Count;

    /// <summary>
    /// The tenant's grain reclaims <paramref name="tenant"/>'s leases (a request it would refuse needs what they hold):
    /// none is used again here, and for each one this gateway still knows, what it had not taken returns. What it took
    /// for requests not yet confirmed stays with the grain for their confirmations (it closes the lease at the last),
    /// so nothing is given back here.
    /// </summary>
    internal IReadOnlyList<BudgetLeaseUnused> Reclaim(string tenant)
    {
        // Marked before looking: a lease installed meanwhile is either seen below or refused by Install.
        Cross(tenant);
        var unused = new List<BudgetLeaseUnused>();
        foreach (var held in _unsettled.Values.Where(h => h.Tenant == tenant).ToList())
        {
            bool settled;
            lock (held)
            {
                held.Closed = true;
                held.ReturnDue = false;
                unused.Add(new BudgetLeaseUnused(held.Id, held.Lease.BudgetApplies ? held.Money : 0m, held.Requests, held.Tokens));
                settled = held.InFlight == 0;
            }

            _held.TryRemove(new KeyValuePair<(string, string), Held>((held.Tenant, held.Lease.KeyId ?? ""), held));
            if (settled)
            {
                _unsettled.TryRemove(new KeyValuePair<Guid, Held>(held.Id, held));
            }
        }

        return unused;
    }

    /// <summary>
    /// Takes one request of <paramref name="tokens"/> and <paramref name="maxCost"/> from the key's lease, or null (no
    /// lease, or one that cannot admit it: past its term, decided on another version of the tenant, used up).
    /// </summary>
    internal Held? TryTake(string tenant, string keyId, string decisionVersion, decimal maxCost, long tokens, string currency, bool unpriced)
    {
        if (!_held.TryGetValue((tenant, keyId), out var held))
        {
            return null;
        }

        lock (held)
        {
            if (held.Closed)
            {
                return null;
            }

            var lease = held.Lease;
            var fits = Stopwatch.GetTimestamp() < held.ExpiresAt
                && string.Equals(lease.DecisionVersion, decisionVersion, StringComparison.Ordinal)
                && held.Requests >= 1 && held.Tokens >= tokens
                && (!lease.BudgetApplies || (held.Money >= maxCost && !unpriced && (maxCost == 0 || string.Equals(currency, lease.Currency, StringComparison.Ordinal))));
            if (fits)
            {
                held.InFlight++;
                held.Requests--;
                held.Tokens -= tokens;
                if (lease.BudgetApplies)
                {
                    held.Money -= maxCost;
                }

                return held;
            }
        }

        // Past its term or spent (for this request): what is left goes back, and the next request asks for a new one.
        Drop(held, giveBack: true);
        return null;
    }

    /// <summary>
    /// The ask of this request for the key's lease, or null: one ask at a time per key, the others admitted by the grain
    /// meanwhile. Begun before the grain is asked, given to <see cref="Install"/>, and ended with <see cref="EndAsk"/>.
    /// </summary>
    internal LeaseAsk? TryBeginAsk(string tenant, string keyId)
    {
        var ask = new LeaseAsk(tenant, keyId);
        return _asking.TryAdd((tenant, keyId), ask) ? ask : null;
    }

    internal void EndAsk(LeaseAsk ask) => _asking.TryRemove(new KeyValuePair<(string, string), LeaseAsk>((ask.Tenant, ask.KeyId), ask));

    /// <summary>
    /// Keeps a lease the grain granted, usable until its term counted from <paramref name="askedAt"/> (a
    /// <see cref="Stopwatch"/> timestamp taken before asking); not used, and given back, when a recall or reclaim of the
    /// tenant came while <paramref name="ask"/> (<see cref="TryBeginAsk"/>, begun before asking) was on its way: the
    /// grain may have closed it before its answer arrived, and each request admitted from it would have been admitted
    /// afresh at its confirmation (refused near a limit, its relay gone).
    /// </summary>
    internal void Install(string tenant, string keyId, BudgetLease lease, long askedAt, LeaseAsk? ask = null)
    {
        var held = new Held(tenant, lease, askedAt + (long)(lease.Term.TotalSeconds * Stopwatch.Frequency));
        if (_held.TryGetValue((tenant, keyId), out var old))
        {
            Drop(old, giveBack: true);
        }

        _unsettled[held.Id] = held;
        _held[(tenant, keyId)] = held;

        // Checked after it is in place: a reclaim that marked the ask before this read either found it above or is seen here.
        Interlocked.MemoryBarrier();
        if (ask is { Crossed: true })
        {
            Drop(held, giveBack: true);
        }
    }

    /// <summary>The grain's answer to a request admitted from <paramref name="held"/>: a lease it no longer holds (null) is dropped here too.</summary>
    internal void Answered(Held held, BudgetLease? stillOpen)
    {
        bool giveBackNow;
        lock (held)
        {
            held.InFlight--;
            giveBackNow = stillOpen is not null && held.Closed && held.ReturnDue && held.InFlight == 0;
            if (giveBackNow)
            {
                held.ReturnDue = false;
            }

            if (held.Closed && held.InFlight == 0)
            {
                _unsettled.TryRemove(new KeyValuePair<Guid, Held>(held.Id, held));
            }
        }

        if (stillOpen is null)
        {
            Drop(held, giveBack: false);
        }
        else if (giveBackNow)
        {
            _ = GiveBackAsync(held);
        }
    }

    /// <summary>
    /// Stops admitting from <paramref name="held"/>; with <paramref name="giveBack"/>, tells its grain to close it (else
    /// it closes after its term) once the requests admitted from it have been confirmed, so that a confirmation on its
    /// way is not turned into a fresh admission by a return that overtook it.
    /// </summary>
    internal void Drop(Held held, bool giveBack)
    {
        bool giveBackNow;
        lock (held)
        {
            if (held.Closed)
            {
                return;
            }

            held.Closed = true;
            giveBackNow = giveBack && held.InFlight == 0;
            held.ReturnDue = giveBack && !giveBackNow;
            if (held.InFlight == 0)
            {
                _unsettled.TryRemove(new KeyValuePair<Guid, Held>(held.Id, held));
            }
        }

        _held.TryRemove(new KeyValuePair<(string, string), Held>((held.Tenant, held.Lease.KeyId ?? ""), held));
        if (giveBackNow)
        {
            _ = GiveBackAsync(held);
        }
    }

    private async Task GiveBackAsync(Held held)
    {
        try
        {
            await tenants.Get(held.Tenant).ReturnLeaseAsync(held.Lease.LeaseId);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Not lost: the grain closes the lease itself once its term has passed.
            LogReturnFailed(logger, ex, held.Lease.LeaseId, held.Tenant);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Gives every lease back (their unspent money returns at once, not after their term).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        var returning = new List<Task>();
        foreach (var held in _held.Values.ToList())
        {
            lock (held)
            {
                if (held.Closed)
                {
                    continue;
                }

                held.Closed = true;
            }

            _held.TryRemove(new KeyValuePair<(string, string), Held>((held.Tenant, held.Lease.KeyId ?? ""), held));
            _unsettled.TryRemove(new KeyValuePair<Guid, Held>(held.Id, held));
            returning.Add(GiveBackAsync(held));
        }

        try
        {
            await Task.WhenAll(returning).WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Stopping ran out of time: the grain closes them after their term.
        }
    }

    [LoggerMessage(EventId = 4137, EventName = "BudgetLeaseNotReturned", Level = LogLevel.Debug,
        Message = "Budget lease {LeaseId} of tenant {Tenant} could not be given back; its grain closes it after its term")]
    private static partial void LogReturnFailed(ILogger logger, Exception exception, Guid leaseId, string tenant);

    /// <summary>One request's ask for its key's lease, on its way to the tenant's grain.</summary>
    internal sealed class LeaseAsk(string tenant, string keyId)
    {
        private int _crossed;

        public string Tenant { get; } = tenant;

        public string KeyId { get; } = keyId;

        /// <summary>Whether a recall or reclaim of the tenant came while it was on its way.</summary>
        public bool Crossed => Volatile.Read(ref _crossed) != 0;

        public void Cross() => Interlocked.Exchange(ref _crossed, 1);
    }

    /// <summary>A lease as this gateway counts it down: what it may still admit, and until when.</summary>
    internal sealed class Held(string tenant, BudgetLease lease, long expiresAt)
    {
        public string Tenant { get; } = tenant;

        public BudgetLease Lease { get; } = lease;

        public Guid Id => Lease.LeaseId;

        /// <summary>When this gateway stops admitting from it (a <see cref="Stopwatch"/> timestamp): its term after it was asked for, before the grain's own.</summary>
        public long ExpiresAt { get; } = expiresAt;

        public decimal Money { get; set; } = lease.Money;

        public int Requests { get; set; } = lease.Requests;

        public long Tokens { get; set; } = lease.Tokens;

        public bool Closed { get; set; }

        /// <summary>Requests admitted from it whose confirmation has not come back yet.</summary>
        public int InFlight { get; set; }

        /// <summary>Closed while requests were in flight: given back when the last of them is confirmed.</summary>
        public bool ReturnDue { get; set; }
    }
}

/// <summary>
/// This gateway's <see cref="BudgetLeases"/>, as tenants' grains reach them to recall leases. Keyed by the gateway's
/// silo address and placed on it by a placement hint; an activation anywhere else refuses to start, so a recall always
/// reaches the table it names.
/// </summary>
[Orleans.Concurrency.Reentrant]
internal sealed class BudgetLeaseHolderGrain(BudgetLeases leases, ILocalSiloDetails silo) : Grain, IBudgetLeaseHolderGrain
{
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var here = silo.SiloAddress.ToParsableString();
        return this.GetPrimaryKeyString() == here
            ? Task.CompletedTask
            : throw new InvalidOperationException($"The budget leases of silo {this.GetPrimaryKeyString()} cannot be recalled on silo {here}.");
    }

    public Task RecallAsync(string tenantId)
    {
        leases.Recall(tenantId);
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<BudgetLeaseUnused>> ReclaimAsync(string tenantId) => Task.FromResult(leases.Reclaim(tenantId));
}
