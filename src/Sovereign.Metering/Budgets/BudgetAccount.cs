using System.Runtime.CompilerServices;

namespace Sovereign.Metering.Budgets;

/// <summary>
/// A tenant's budgets as a state machine: reserve the most a request can cost before any work, settle the actual cost
/// after, release what was never used. One instance per tenant, owned by that tenant's grain.
/// </summary>
/// <remarks>
/// <para>
/// Not thread-safe, by design: it must have a single writer (the tenant grain's turn-based scheduler). That single
/// writer is what makes a reservation atomic across the tenant budget and the key budget, and it is why concurrent
/// requests cannot overspend: each one's maximum is already subtracted from what the next one sees.
/// </para>
/// <para>
/// Invariant: for every limit, in its current period, settled + outstanding reservations &lt;= amount after every
/// successful reservation; so, as long as each actual cost is at most its reservation, settled spend never exceeds
/// the amount. An actual cost above the reservation is recorded in full and flagged (<see cref="Settlement.Overrun"/>).
/// </para>
/// <para>
/// Periods: a Day budget resets at 00:00 UTC, a Month budget at 00:00 UTC on the 1st, a Total budget never. Rollover
/// happens lazily, on the first call whose <c>now</c> falls in a later period: the new period starts with nothing
/// settled and nothing reserved. A reservation is counted in the periods that were current when it was made
/// (<see cref="Reservation.Charges"/>), and its settlement goes to those same periods: a request reserved at 23:59 and
/// settled at 00:01 costs yesterday's budget, not today's (<see cref="Settlement.ClosedPeriod"/>). Each period's spend
/// therefore stays within its own limit. Each limit remembers its last <see cref="RememberedPeriods"/> periods: a clock
/// that steps ahead into a later period and back (a bad NTP answer, a virtual machine resumed on a host whose clock is
/// wrong) returns to the period it left with that period's spend, as the ledger, which dates each record by the same
/// clock, has it; it used to reset the period at the step (its spend forgotten: up to twice the amount spendable in it)
/// and, after the step back, count its spend into the later period, which then started with it. A clock that goes back
/// into a period the account never saw (or forgot) stays in the current one: that period's spend so far is in the
/// ledger, not here, so it is never started again from nothing.
/// </para>
/// </remarks>
public sealed class BudgetAccount
{
    /// <summary>How long settled ids are remembered so that settling again is a no-op, unless told otherwise.</summary>
    public static readonly TimeSpan DefaultSettlementRetention = TimeSpan.FromDays(2);

    // Fixed order of lookups, so that refusals and snapshots never depend on dictionary order.
    private static readonly BudgetPeriod[] PeriodOrder = [BudgetPeriod.Day, BudgetPeriod.Month, BudgetPeriod.Total];

    /// <summary>How many periods each limit remembers, the current one included (see the remarks).</summary>
    public const int RememberedPeriods = 3;

    private readonly Dictionary<(string? KeyId, BudgetPeriod Period), LimitState> _limits = [];
    private readonly Dictionary<string, Reservation> _reservations = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Settlement> _settled = new(StringComparer.Ordinal);
    private readonly Queue<Settlement> _settledOrder = new();

    /// <summary>Creates an account with no limits (everything is allowed until <see cref="SetLimit"/>).</summary>
    public BudgetAccount(string tenantId, string currency, TimeSpan? settlementRetention = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(tenantId);
        ArgumentException.ThrowIfNullOrEmpty(currency);
        var retention = settlementRetention ?? DefaultSettlementRetention;
        ArgumentOutOfRangeException.ThrowIfLessThan(retention, TimeSpan.Zero, nameof(settlementRetention));
        TenantId = tenantId;
        Currency = currency;
        SettlementRetention = retention;
    }

    /// <summary>The tenant whose spend this caps.</summary>
    public string TenantId { get; }

    /// <summary>The currency of every amount (ISO 4217 code).</summary>
    public string Currency { get; }

    /// <summary>How long a settlement is remembered for idempotent re-settles.</summary>
    public TimeSpan SettlementRetention { get; }

    /// <summary>Reservations neither settled nor released.</summary>
    public int OutstandingCount => _reservations.Count;

    /// <summary>The limits in force.</summary>
    public IReadOnlyList<BudgetLimit> Limits => [.. OrderedLimits().Select(s => s.Limit)];

    /// <summary>An outstanding reservation, if there is one with this id.</summary>
    public Reservation? FindReservation(string reservationId) =>
        _reservations.TryGetValue(reservationId, out var reservation) ? reservation : null;

    /// <summary>
    /// Adds a limit, or changes the amount of the existing one for the same (key, period), keeping its spend. A new
    /// limit starts its current period at <paramref name="spentThisPeriod"/> (seed it from the ledger when a budget
    /// is added mid-period) and also counts the outstanding reservations it applies to.
    /// </summary>
    public void SetLimit(BudgetLimit limit, DateTimeOffset now, decimal spentThisPeriod = 0m)
    {
        ArgumentNullException.ThrowIfNull(limit);
        ArgumentOutOfRangeException.ThrowIfNegative(limit.Amount, nameof(limit));
        spentThisPeriod = NotNegative(spentThisPeriod);
        if (limit.KeyId is { Length: 0 })
        {
            throw new ArgumentException("A key budget needs a key id; use null for the tenant budget.", nameof(limit));
        }

        var id = (limit.KeyId, limit.Period);
        if (_limits.TryGetValue(id, out var existing))
        {
            existing.Limit = limit;
            return;
        }

        var state = new LimitState(limit, BudgetPeriods.StartOf(limit.Period, now), spentThisPeriod);
        _limits.Add(id, state);

        // Outstanding requests already hold money; the new limit must see it, or it could be overspent at once.
        var charge = new BudgetCharge(limit.KeyId, limit.Period, state.PeriodStart);
        foreach (var reservation in _reservations.Values.ToList())
        {
            if (limit.KeyId is null || string.Equals(limit.KeyId, reservation.KeyId, StringComparison.Ordinal))
            {
                var charges = reservation.Charges.Where(c => !SameBudget(c, limit)).Append(charge).ToArray();
                _reservations[reservation.ReservationId] = reservation with { Charges = charges };
                state.Reserved += reservation.Amount;
            }
        }
    }

    /// <summary>Removes the limit for (key, period); outstanding reservations simply stop counting against it.</summary>
    public bool RemoveLimit(string? keyId, BudgetPeriod period) => _limits.Remove((keyId, period));

    /// <summary>
    /// Reserves <paramref name="maxCost"/> (the most the request can cost) against the tenant's budgets and, when
    /// <paramref name="keyId"/> is given, that key's budgets, all or nothing. Refused when any of them has less than
    /// <paramref name="maxCost"/> available (limit - settled - outstanding); the refusal names the budget with the
    /// least left. Repeating an outstanding id with the same key and amount returns the same reservation.
    /// </summary>
    /// <exception cref="InvalidOperationException">The id is outstanding with other values, or was already settled.</exception>
    public ReserveResult TryReserve(string reservationId, string? keyId, decimal maxCost, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrEmpty(reservationId);
        maxCost = NotNegative(maxCost);
        if (_reservations.TryGetValue(reservationId, out var existing))
        {
            if (existing.Amount == maxCost && string.Equals(existing.KeyId, keyId, StringComparison.Ordinal))
            {
                return ReserveResult.Reserved(existing);
            }

            throw new InvalidOperationException($"Reservation '{reservationId}' is already outstanding with another key or amount.");
        }

        PruneSettlements(now);
        if (_settled.ContainsKey(reservationId))
        {
            throw new InvalidOperationException($"Reservation '{reservationId}' was already settled; reservation ids must be unique.");
        }

        Roll(now);
        var applicable = Applicable(keyId);
        BudgetRefusal? refusal = null;
        var final = false;
        foreach (var state in applicable)
        {
            var available = state.Limit.Amount - state.Settled - state.Reserved;
            if (maxCost > available)
            {
                final |= maxCost > state.Limit.Amount - state.Settled;
                var remaining = Math.Max(0m, available);
                if (refusal is null || remaining < refusal.Remaining)
                {
                    refusal = new BudgetRefusal(
                        state.Limit.KeyId,
                        state.Limit.Period,
                        state.Limit.Amount,
                        remaining,
                        maxCost,
                        BudgetPeriods.EndOf(state.Limit.Period, state.PeriodStart));
                }
            }
        }

        if (refusal is not null)
        {
            return ReserveResult.Refused(refusal with { Final = final });
        }

        var charges = new BudgetCharge[applicable.Count];
        for (var i = 0; i < applicable.Count; i++)
        {
            var state = applicable[i];
            state.Reserved += maxCost;
            charges[i] = new BudgetCharge(state.Limit.KeyId, state.Limit.Period, state.PeriodStart);
        }

        var reservation = new Reservation(reservationId, keyId, maxCost, now, charges);
        _reservations.Add(reservationId, reservation);
        return ReserveResult.Reserved(reservation);
    }

    /// <summary>
    /// Holds <paramref name="amount"/> for a request admitted before these budgets applied to it (none existed, or they
    /// were cleared and set again): its work is under way, so it is never refused, but it counts against every budget it
    /// falls under until it settles, as a reservation made at <paramref name="reservedAt"/>. An id already held is kept.
    /// </summary>
    public Reservation Hold(string reservationId, string? keyId, decimal amount, DateTimeOffset reservedAt, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrEmpty(reservationId);
        amount = NotNegative(amount);
        if (_reservations.TryGetValue(reservationId, out var existing))
        {
            return existing;
        }

        Roll(now);
        var applicable = Applicable(keyId);
        var charges = new BudgetCharge[applicable.Count];
        for (var i = 0; i < applicable.Count; i++)
        {
            applicable[i].Reserved += amount;
            charges[i] = new BudgetCharge(applicable[i].Limit.KeyId, applicable[i].Limit.Period, applicable[i].PeriodStart);
        }

        var reservation = new Reservation(reservationId, keyId, amount, reservedAt, charges);
        _reservations.Add(reservationId, reservation);
        return reservation;
    }

    /// <summary>
    /// Settles a reservation: releases what it held and adds <paramref name="actualCost"/> to the periods it was made
    /// in. Idempotent: settling an id again returns the first result and changes nothing. An id with no outstanding
    /// reservation is still charged (tenant budgets, plus <paramref name="keyIdIfUnreserved"/>'s) in the current
    /// periods and flagged <see cref="Settlement.Unreserved"/>: the work was done, so the spend is real.
    /// </summary>
    public Settlement Settle(string reservationId, decimal actualCost, DateTimeOffset now, string? keyIdIfUnreserved = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(reservationId);
        actualCost = NotNegative(actualCost);
        PruneSettlements(now);
        if (_settled.TryGetValue(reservationId, out var previous))
        {
            return previous;
        }

        Roll(now);
        Settlement settlement;
        if (_reservations.Remove(reservationId, out var reservation))
        {
            var closed = false;
            foreach (var charge in reservation.Charges)
            {
                if (!_limits.TryGetValue((charge.KeyId, charge.Period), out var state))
                {
                    continue;
                }

                // Into the period it was reserved in, current or not (the clock may come back to it); one forgotten
                // long ago is simply over.
                if (state.Find(charge.PeriodStart) is { } spend)
                {
                    spend.Reserved -= reservation.Amount;
                    spend.Settled += actualCost;
                }

                closed |= state.PeriodStart != charge.PeriodStart;
            }

            settlement = new Settlement(reservationId, reservation.KeyId, reservation.Amount, actualCost, now, Unreserved: false, closed);
        }
        else
        {
            foreach (var state in Applicable(keyIdIfUnreserved))
            {
                state.Settled += actualCost;
            }

            settlement = new Settlement(reservationId, keyIdIfUnreserved, 0m, actualCost, now, Unreserved: true, ClosedPeriod: false);
        }

        _settled.Add(reservationId, settlement);
        _settledOrder.Enqueue(settlement);
        return settlement;
    }

    /// <summary>
    /// Moves <paramref name="amount"/> of the outstanding reservation <paramref name="fromId"/> (a gateway's budget
    /// lease) into a new reservation <paramref name="reservationId"/> of its own, with the same key and the same
    /// periods (the money was already held, so nothing is refused and no budget's totals move): the request it was
    /// admitted for then settles, renews and expires as any reservation. False, changing nothing, when
    /// <paramref name="fromId"/> is not outstanding or holds less than <paramref name="amount"/>, or the new id is already
    /// outstanding or settled.
    /// </summary>
    public bool TryCarve(string fromId, string reservationId, decimal amount, DateTimeOffset now)
    {
        ArgumentException.ThrowIfNullOrEmpty(fromId);
        ArgumentException.ThrowIfNullOrEmpty(reservationId);
        amount = NotNegative(amount);
        PruneSettlements(now);
        if (!_reservations.TryGetValue(fromId, out var lease) || lease.Amount < amount
            || _reservations.ContainsKey(reservationId) || _settled.ContainsKey(reservationId))
        {
            return false;
        }

        _reservations[fromId] = lease with { Amount = lease.Amount - amount };
        _reservations.Add(reservationId, new Reservation(reservationId, lease.KeyId, amount, now, lease.Charges));
        return true;
    }

    /// <summary>
    /// Frees a reservation whose request was refused or cancelled before any work. False when there is no outstanding
    /// reservation with this id (already settled or released: a no-op).
    /// </summary>
    public bool Release(string reservationId)
    {
        ArgumentException.ThrowIfNullOrEmpty(reservationId);
        if (!_reservations.Remove(reservationId, out var reservation))
        {
            return false;
        }

        foreach (var charge in reservation.Charges)
        {
            if (_limits.TryGetValue((charge.KeyId, charge.Period), out var state) && state.Find(charge.PeriodStart) is { } spend)
            {
                spend.Reserved -= reservation.Amount;
            }
        }

        return true;
    }

    /// <summary>
    /// Renews the reservations of requests their caller says are still running (a long stream), so that
    /// <see cref="ReleaseExpired"/> does not give their money back while they spend it. Returns how many it held.
    /// </summary>
    public int Renew(IEnumerable<string> reservationIds, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(reservationIds);
        var renewed = 0;
        foreach (var id in reservationIds)
        {
            if (id is not null && _reservations.TryGetValue(id, out var reservation))
            {
                _reservations[id] = reservation with { RenewedAt = now };
                renewed++;
            }
        }

        return renewed;
    }

    /// <summary>
    /// The reservations held longer than <paramref name="maxAge"/> since they were made or last renewed, oldest first,
    /// still held: the caller settles those whose request closed its books (<see cref="Settle"/>) and releases the rest.
    /// </summary>
    public IReadOnlyList<Reservation> Expired(DateTimeOffset now, TimeSpan maxAge) =>
        [.. _reservations.Values
            .Where(r => r.HeldSince + maxAge <= now)
            .OrderBy(r => r.ReservedAt)
            .ThenBy(r => r.ReservationId, StringComparer.Ordinal)];

    /// <summary>
    /// Releases reservations held longer than <paramref name="maxAge"/> since they were made or last renewed (their
    /// caller crashed or lost the settle), so they stop blocking the budget. If such a request did run, its late settle
    /// is charged as <see cref="Settlement.Unreserved"/>.
    /// </summary>
    public IReadOnlyList<Reservation> ReleaseExpired(DateTimeOffset now, TimeSpan maxAge)
    {
        var expired = Expired(now, maxAge);
        foreach (var reservation in expired)
        {
            Release(reservation.ReservationId);
        }

        return expired;
    }

    /// <summary>Every budget's position in the period that contains <paramref name="now"/> (rolling over first).</summary>
    public IReadOnlyList<BudgetStatus> Remaining(DateTimeOffset now)
    {
        Roll(now);
        if (_limits.Count == 0)
        {
            return [];
        }

        return
        [
            .. OrderedLimits().Select(s => new BudgetStatus(
                s.Limit,
                s.PeriodStart,
                BudgetPeriods.EndOf(s.Limit.Period, s.PeriodStart),
                s.Settled,
                s.Reserved)),
        ];
    }

    /// <summary>A serializable copy of the whole state, in a deterministic order.</summary>
    public BudgetState Snapshot() => new(
        TenantId,
        Currency,
        SettlementRetention,
        [.. OrderedLimits().Select(s => new BudgetLimitState(s.Limit, s.PeriodStart, s.Settled))],
        [.. _reservations.Values.OrderBy(r => r.ReservedAt).ThenBy(r => r.ReservationId, StringComparer.Ordinal)],
        [.. _settledOrder]);

    /// <summary>Rebuilds an account from <see cref="Snapshot"/>; outstanding sums are recomputed from the reservations.</summary>
    public static BudgetAccount Restore(BudgetState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var account = new BudgetAccount(state.TenantId, state.Currency, state.SettlementRetention);
        foreach (var limit in state.Limits)
        {
            account._limits.Add((limit.Limit.KeyId, limit.Limit.Period), new LimitState(limit.Limit, limit.PeriodStart, limit.Settled));
        }

        foreach (var reservation in state.Reservations)
        {
            account._reservations.Add(reservation.ReservationId, reservation);
            foreach (var charge in reservation.Charges)
            {
                if (account._limits.TryGetValue((charge.KeyId, charge.Period), out var limit) && limit.PeriodStart == charge.PeriodStart)
                {
                    limit.Reserved += reservation.Amount;
                }
            }
        }

        foreach (var settlement in state.RecentSettlements)
        {
            if (account._settled.TryAdd(settlement.ReservationId, settlement))
            {
                account._settledOrder.Enqueue(settlement);
            }
        }

        return account;
    }

    private static bool SameBudget(BudgetCharge charge, BudgetLimit limit) =>
        charge.Period == limit.Period && string.Equals(charge.KeyId, limit.KeyId, StringComparison.Ordinal);

    // Tenant budgets first, then the key's, each Day, Month, Total: the order refusals are reported in on ties.
    private List<LimitState> Applicable(string? keyId)
    {
        var result = new List<LimitState>(6);
        foreach (var period in PeriodOrder)
        {
            if (_limits.TryGetValue((null, period), out var state))
            {
                result.Add(state);
            }
        }

        if (keyId is not null)
        {
            foreach (var period in PeriodOrder)
            {
                if (_limits.TryGetValue((keyId, period), out var state))
                {
                    result.Add(state);
                }
            }
        }

        return result;
    }

    // One limit (a tenant's budget, the common case) or none is already in order: the tenant's grain asks on every
    // settlement, and sorting built three ordered enumerables and their buffers each time.
    private IEnumerable<LimitState> OrderedLimits() => _limits.Count <= 1
        ? _limits.Values
        : _limits.Values
            .OrderBy(s => s.Limit.KeyId is not null)
            .ThenBy(s => s.Limit.KeyId, StringComparer.Ordinal)
            .ThenBy(s => s.Limit.Period);

    private void Roll(DateTimeOffset now)
    {
        foreach (var state in _limits.Values)
        {
            // Reservations still open keep their old-period charges and settle into that period.
            var start = BudgetPeriods.StartOf(state.Limit.Period, now);
            if (start != state.PeriodStart)
            {
                state.MoveTo(start);
            }
        }
    }

    private void PruneSettlements(DateTimeOffset now)
    {
        while (_settledOrder.TryPeek(out var oldest) && oldest.SettledAt + SettlementRetention <= now)
        {
            _settledOrder.Dequeue();
            _settled.Remove(oldest.ReservationId);
        }
    }

    private sealed class LimitState
    {
        // The current period and up to RememberedPeriods - 1 others, in no particular order.
        private readonly List<PeriodSpend> _periods;

        public LimitState(BudgetLimit limit, DateTimeOffset periodStart, decimal settled)
        {
            Limit = limit;
            Current = new PeriodSpend(periodStart) { Settled = settled };
            _periods = [Current];
        }

        public BudgetLimit Limit { get; set; }

        public PeriodSpend Current { get; private set; }

        public DateTimeOffset PeriodStart => Current.Start;

        public decimal Settled
        {
            get => Current.Settled;
            set => Current.Settled = value;
        }

        public decimal Reserved
        {
            get => Current.Reserved;
            set => Current.Reserved = value;
        }

        public PeriodSpend? Find(DateTimeOffset start) => _periods.Find(p => p.Start == start);

        /// <summary>
        /// Makes the period starting at <paramref name="start"/> current: a remembered one with its spend, a later one
        /// from nothing (forgetting the earliest beyond <see cref="RememberedPeriods"/>); an earlier one never seen is
        /// not entered.
        /// </summary>
        public void MoveTo(DateTimeOffset start)
        {
            if (Find(start) is { } known)
            {
                Current = known;
                return;
            }

            if (start < Current.Start)
            {
                return;
            }

            Current = new PeriodSpend(start);
            _periods.Add(Current);
            if (_periods.Count > RememberedPeriods)
            {
                _periods.Remove(_periods.Where(p => p != Current).MinBy(p => p.Start)!);
            }
        }
    }

    private sealed class PeriodSpend(DateTimeOffset start)
    {
        public DateTimeOffset Start { get; } = start;

        public decimal Settled { get; set; }

        public decimal Reserved { get; set; }
    }

    // A decimal zero can carry a minus sign (decimal.Ceiling(-0.79m) is -0), which ThrowIfNegative refuses although it
    // is no debt; only an amount below zero is one. Zero comes back unsigned so that no sign leaks into sums or output.
    private static decimal NotNegative(decimal amount, [CallerArgumentExpression(nameof(amount))] string? name = null)
    {
        if (amount < 0m)
        {
            throw new ArgumentOutOfRangeException(name, amount, $"{name} ('{amount}') must be a non-negative value.");
        }

        return amount == 0m ? 0m : amount;
    }
}
