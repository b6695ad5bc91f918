using System.Diagnostics.CodeAnalysis;

namespace Sovereign.Metering.Budgets;

/// <summary>One budget period a reservation was counted in; its settlement goes to that same period.</summary>
public sealed record BudgetCharge(string? KeyId, BudgetPeriod Period, DateTimeOffset PeriodStart);

/// <summary>
/// The most a request may cost, held against every budget that applies to it (the tenant's and its key's) until it
/// is settled or released. <see cref="RenewedAt"/> is when its caller last said the request is still running.
/// </summary>
public sealed record Reservation(
    string ReservationId,
    string? KeyId,
    decimal Amount,
    DateTimeOffset ReservedAt,
    IReadOnlyList<BudgetCharge> Charges,
    DateTimeOffset? RenewedAt = null)
{
    /// <summary>Since when it is held without word from its caller: its lifetime counts from there.</summary>
    public DateTimeOffset HeldSince => RenewedAt ?? ReservedAt;
}

/// <summary>
/// Why a reservation was refused: the budget that could not hold it and what it had left. <paramref name="Final"/>:
/// a budget that applies could not hold it even with every reservation released (its settled spend leaves too little),
/// so retrying before the period resets cannot succeed; otherwise requests in flight hold the difference and may give it back.
/// </summary>
public sealed record BudgetRefusal(
    string? KeyId,
    BudgetPeriod Period,
    decimal Limit,
    decimal Remaining,
    decimal Requested,
    DateTimeOffset? ResetsAt,
    bool Final = false)
{
    /// <summary>The error code the API answers with.</summary>
    public const string ErrorCode = "budget_exceeded";

    /// <summary>Always <see cref="ErrorCode"/>.</summary>
    public string Code => ErrorCode;

    /// <summary>Tenant or key budget.</summary>
    public BudgetScope Scope => KeyId is null ? BudgetScope.Tenant : BudgetScope.Key;
}

/// <summary>The answer to <see cref="BudgetAccount.TryReserve"/>: a reservation or a refusal, never both.</summary>
public sealed record ReserveResult
{
    private ReserveResult(Reservation? reservation, BudgetRefusal? refusal)
    {
        Reservation = reservation;
        Refusal = refusal;
    }

    /// <summary>The reservation, when it succeeded.</summary>
    public Reservation? Reservation { get; }

    /// <summary>The refusal, when it did not.</summary>
    public BudgetRefusal? Refusal { get; }

    /// <summary>True when the amount is reserved.</summary>
    [MemberNotNullWhen(true, nameof(Reservation))]
    [MemberNotNullWhen(false, nameof(Refusal))]
    public bool Succeeded => Reservation is not null;

    internal static ReserveResult Reserved(Reservation reservation) => new(reservation, null);

    internal static ReserveResult Refused(BudgetRefusal refusal) => new(null, refusal);
}

/// <summary>
/// The outcome of settling a reservation. Settling the same id again returns this same record (idempotent).
/// </summary>
/// <param name="ReservationId">The reservation settled.</param>
/// <param name="KeyId">Its key, if any.</param>
/// <param name="Reserved">What was held (0 when <paramref name="Unreserved"/>).</param>
/// <param name="Actual">The actual cost, recorded in full even above <paramref name="Reserved"/>.</param>
/// <param name="SettledAt">When it was settled.</param>
/// <param name="Unreserved">
/// No outstanding reservation had this id (never made, released, or expired): the cost was recorded in the current
/// periods anyway, because the work was done. Should not happen; alert on it.
/// </param>
/// <param name="ClosedPeriod">
/// At least one of its periods had already ended: the cost belongs to that closed period and no longer changes the
/// current one.
/// </param>
public sealed record Settlement(
    string ReservationId,
    string? KeyId,
    decimal Reserved,
    decimal Actual,
    DateTimeOffset SettledAt,
    bool Unreserved,
    bool ClosedPeriod)
{
    /// <summary>The actual cost exceeded what was reserved (should not happen: the reservation is the maximum).</summary>
    public bool Overrun => Actual > Reserved;

    /// <summary>How much above the reservation the actual cost was (0 normally).</summary>
    public decimal OverrunAmount => Math.Max(0m, Actual - Reserved);
}

/// <summary>One budget's position in its current period, for metrics and the usage API.</summary>
public sealed record BudgetStatus(
    BudgetLimit Limit,
    DateTimeOffset PeriodStart,
    DateTimeOffset? ResetsAt,
    decimal Settled,
    decimal Reserved)
{
    /// <summary>What can still be reserved: limit - settled - reserved, never below 0.</summary>
    public decimal Remaining => Math.Max(0m, Limit.Amount - Settled - Reserved);
}

/// <summary>One budget's persisted position: the outstanding part is rebuilt from the reservations on restore.</summary>
public sealed record BudgetLimitState(BudgetLimit Limit, DateTimeOffset PeriodStart, decimal Settled);

/// <summary>
/// Everything a <see cref="BudgetAccount"/> needs to resume after its grain is reactivated: limits with their current
/// period's settled spend, outstanding reservations, and recent settlements (for idempotent re-settles).
/// </summary>
public sealed record BudgetState(
    string TenantId,
    string Currency,
    TimeSpan SettlementRetention,
    IReadOnlyList<BudgetLimitState> Limits,
    IReadOnlyList<Reservation> Reservations,
    IReadOnlyList<Settlement> RecentSettlements);
