using Microsoft.Extensions.Logging;

namespace Sovereign.Cluster.Grains;

/// <summary>Money corrections, with stable event ids (alert on them: each means a request did not settle normally).</summary>
internal static partial class MoneyLog
{
    [LoggerMessage(EventId = 8101, EventName = "ReservationExpired", Level = LogLevel.Warning,
        Message = "Money correction: reservation {RequestId} of tenant {Tenant} (key {KeyId}) holding {Amount} {Currency}, made at {ReservedAt:O}, was never settled and is released after {Lifetime}")]
    public static partial void ReservationExpired(ILogger logger, string requestId, string tenant, string? keyId, decimal amount, string currency, DateTimeOffset reservedAt, TimeSpan lifetime);

    [LoggerMessage(EventId = 8104, EventName = "ReservationSettledFromLedger", Level = LogLevel.Warning,
        Message = "Money correction: reservation {RequestId} of tenant {Tenant} (key {KeyId}) holding {Reserved} {Currency} was never settled, but its usage record is in the ledger: settled at the record's {Cost} {Currency} when it expired")]
    public static partial void ReservationSettledFromLedger(ILogger logger, string requestId, string tenant, string? keyId, decimal cost, string currency, decimal reserved);

    [LoggerMessage(EventId = 8102, EventName = "UnreservedSettlement", Level = LogLevel.Warning,
        Message = "Money correction: request {RequestId} of tenant {Tenant} (key {KeyId}) settled {Actual} {Currency} with no reservation outstanding (expired or lost); charged in the current periods")]
    public static partial void UnreservedSettlement(ILogger logger, string requestId, string tenant, string? keyId, decimal actual, string currency);

    [LoggerMessage(EventId = 8103, EventName = "SettlementOverrun", Level = LogLevel.Warning,
        Message = "Money correction: request {RequestId} of tenant {Tenant} cost {Actual} {Currency}, more than the {Reserved} reserved for it")]
    public static partial void SettlementOverrun(ILogger logger, string requestId, string tenant, decimal actual, decimal reserved, string currency);

    [LoggerMessage(EventId = 4136, EventName = "BudgetLeaseClosed", Level = LogLevel.Debug,
        Message = "Budget lease {LeaseId} of tenant {Tenant} (key {KeyId}) closed: {Money} of its money, {Requests} requests and {Tokens} tokens return to the budgets and rate limits")]
    public static partial void LeaseClosed(ILogger logger, Guid leaseId, string tenant, string? keyId, decimal? money, int requests, long tokens);

    [LoggerMessage(EventId = 4126, EventName = "BudgetLeasesReclaimed", Level = LogLevel.Debug,
        Message = "Tenant {Tenant}'s {Count} budget leases reclaimed: a request was refused while they held what it needed, and is admitted again")]
    public static partial void LeasesReclaimed(ILogger logger, string tenant, int count);

    [LoggerMessage(EventId = 4127, EventName = "BudgetLeaseHolderDead", Level = LogLevel.Information,
        Message = "Budget lease {LeaseId} of tenant {Tenant} closed before its term: its gateway {Gateway} was declared dead")]
    public static partial void LeaseHolderDead(ILogger logger, Guid leaseId, string tenant, string gateway);

    [LoggerMessage(EventId = 4185, EventName = "BudgetLeaseReclaimedKeepingConfirmations", Level = LogLevel.Debug,
        Message = "Budget lease {LeaseId} of tenant {Tenant} reclaimed: what its gateway had not admitted returned; {Requests} requests it admitted and the grain has not confirmed yet keep {Money} of its money until they are")]
    public static partial void LeaseReclaimedKeeping(ILogger logger, Guid leaseId, string tenant, int requests, decimal money);

    [LoggerMessage(EventId = 4186, EventName = "BudgetLeaseReclaimUnanswered", Level = LogLevel.Warning,
        Message = "Tenant {Tenant}'s budget leases on gateway {Gateway} were reclaimed whole: the gateway did not say what it had admitted from them; requests it admitted that were not confirmed yet are admitted afresh, and may be refused")]
    public static partial void LeaseReclaimUnanswered(ILogger logger, Exception exception, string tenant, string gateway);

    [LoggerMessage(EventId = 4175, EventName = "BudgetLeaseHolderNotAskedAgain", Level = LogLevel.Debug,
        Message = "Tenant {Tenant}'s budget leases on gateway {Gateway} were reclaimed whole without asking it: it did not answer an earlier reclaim or recall (until it answers one, or the cluster declares it dead)")]
    public static partial void LeaseHolderNotAskedAgain(ILogger logger, string tenant, string gateway);

    [LoggerMessage(EventId = 4176, EventName = "ReservationSettledAtHolderDeath", Level = LogLevel.Information,
        Message = "Reservation {RequestId} of tenant {Tenant} (key {KeyId}) holding {Reserved} {Currency}: its gateway {Gateway} was declared dead before settling it; its usage record is in the ledger, so it is settled at the record's {Cost} {Currency}")]
    public static partial void ReservationSettledAtHolderDeath(ILogger logger, string requestId, string tenant, string? keyId, decimal reserved, string currency, string gateway, decimal cost);

    [LoggerMessage(EventId = 4177, EventName = "ReservationReleasedAtHolderDeath", Level = LogLevel.Information,
        Message = "Reservation {RequestId} of tenant {Tenant} (key {KeyId}) holding {Reserved} {Currency}: its gateway {Gateway} was declared dead and the ledger has no usage record of it after the grace; released (charged once if its settlement or record still comes)")]
    public static partial void ReservationReleasedAtHolderDeath(ILogger logger, string requestId, string tenant, string? keyId, decimal reserved, string currency, string gateway);

    [LoggerMessage(EventId = 4178, EventName = "ReleasedReservationRecordedLate", Level = LogLevel.Warning,
        Message = "Money correction: reservation {RequestId} of tenant {Tenant} (key {KeyId}), released when its gateway was declared dead, has a usage record after all: charged its {Cost} {Currency}, once")]
    public static partial void ReleasedReservationRecordedLate(ILogger logger, string requestId, string tenant, string? keyId, decimal cost, string currency);

    [LoggerMessage(EventId = 4179, EventName = "ReservationSettledAtMemberDeath", Level = LogLevel.Information,
        Message = "Reservation {RequestId} of tenant {Tenant} (key {KeyId}) holding {Reserved} {Currency}, admitted at a gateway that did not name itself (an earlier release): member {Member} was declared dead and the ledger has its usage record, so it is settled at the record's {Cost} {Currency}")]
    public static partial void ReservationSettledAtMemberDeath(ILogger logger, string requestId, string tenant, string? keyId, decimal reserved, string currency, string member, decimal cost);

    [LoggerMessage(EventId = 4182, EventName = "BudgetLeaseRecallSkippedDead", Level = LogLevel.Debug,
        Message = "Tenant {Tenant}'s budget leases on gateway {Gateway} were closed; the gateway is not told: the cluster declared it dead (its requests' confirmations, if any still come, are decided afresh)")]
    public static partial void LeaseRecallSkippedDead(ILogger logger, string tenant, string gateway);

    [LoggerMessage(EventId = 4183, EventName = "BudgetLeaseRecallNotAwaited", Level = LogLevel.Debug,
        Message = "Tenant {Tenant}'s budget leases on gateway {Gateway} were closed; the gateway is told, and the change does not wait for it: it did not answer an earlier reclaim or recall")]
    public static partial void LeaseRecallNotAwaited(ILogger logger, string tenant, string gateway);

    [LoggerMessage(EventId = 4138, EventName = "BudgetLeaseRecallFailed", Level = LogLevel.Warning,
        Message = "Tenant {Tenant}'s budget leases on gateway {Gateway} were closed but the gateway could not be told; its next requests from them are refused or admitted afresh by the grain")]
    public static partial void LeaseRecallFailed(ILogger logger, Exception exception, string tenant, string gateway);
}
