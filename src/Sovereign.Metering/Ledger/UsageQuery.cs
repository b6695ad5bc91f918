namespace Sovereign.Metering.Ledger;

/// <summary>Dimensions to group aggregated usage by; combine with |. Rows are always split by currency too.</summary>
[Flags]
public enum UsageGroupBy
{
    /// <summary>One row per currency over the whole range.</summary>
    None = 0,

    /// <summary>Per UTC day.</summary>
    Day = 1,

    /// <summary>Per model.</summary>
    Model = 2,

    /// <summary>Per jurisdiction.</summary>
    Jurisdiction = 4,

    /// <summary>Per tenant.</summary>
    Tenant = 8,

    /// <summary>Per pool of the serving node.</summary>
    Pool = 16,

    /// <summary>Per device class of the serving node.</summary>
    DeviceClass = 32,

    /// <summary>Per API key (within its tenant).</summary>
    Key = 64,
}

/// <summary>
/// A question to the aggregates. They are per UTC day, so the answer covers every UTC day that overlaps
/// [<see cref="From"/>, <see cref="To"/>): pass midnights for exact bounds.
/// </summary>
public sealed record UsageQuery
{
    /// <summary>Only this tenant, or all.</summary>
    public string? Tenant { get; init; }

    /// <summary>
    /// Left out when no <see cref="Tenant"/> is named: a cluster node's records of the work gateways relayed to it (the
    /// gateway's record of the same request, under the real tenant, is the one that counts).
    /// </summary>
    public string? ExcludedTenant { get; init; }

    /// <summary>Only this model, or all.</summary>
    public string? Model { get; init; }

    /// <summary>Only this jurisdiction, or all.</summary>
    public string? Jurisdiction { get; init; }

    /// <summary>Only this pool, or all.</summary>
    public string? Pool { get; init; }

    /// <summary>Only this API key id, or all.</summary>
    public string? KeyId { get; init; }

    /// <summary>Start (inclusive).</summary>
    public required DateTimeOffset From { get; init; }

    /// <summary>End (exclusive).</summary>
    public required DateTimeOffset To { get; init; }

    /// <summary>How to group the rows.</summary>
    public UsageGroupBy GroupBy { get; init; } = UsageGroupBy.None;

    /// <summary>At most this many rows (null: all of them).</summary>
    public int? Limit { get; init; }

    /// <summary>
    /// Only the rows after this one in the answer's order: <see cref="UsageLedger.CursorOf"/> of the previous page's
    /// last row, made with the same <see cref="GroupBy"/> (null: from the first row).
    /// </summary>
    public string? After { get; init; }
}

/// <summary>One row of aggregated usage; a dimension not grouped by is null.</summary>
public sealed record UsageRow
{
    /// <summary>The UTC day, when grouped by day.</summary>
    public DateOnly? Day { get; init; }

    /// <summary>The tenant, when grouped by tenant.</summary>
    public string? Tenant { get; init; }

    /// <summary>The model, when grouped by model.</summary>
    public string? Model { get; init; }

    /// <summary>The jurisdiction, when grouped by jurisdiction.</summary>
    public string? Jurisdiction { get; init; }

    /// <summary>The pool, when grouped by pool (null also for usage recorded before pools or refused before routing).</summary>
    public string? Pool { get; init; }

    /// <summary>The device class, when grouped by device class (null as for <see cref="Pool"/>).</summary>
    public string? DeviceClass { get; init; }

    /// <summary>
    /// The API key id, when grouped by key: <c>-</c> for requests without a key (anonymous), null for usage aggregated
    /// before keys were a dimension of the aggregates.
    /// </summary>
    public string? KeyId { get; init; }

    /// <summary>The currency of <see cref="Cost"/>.</summary>
    public required string Currency { get; init; }

    /// <summary>All requests, whatever the outcome.</summary>
    public long Requests { get; init; }

    /// <summary>Requests completed.</summary>
    public long Completed { get; init; }

    /// <summary>Requests refused.</summary>
    public long Refused { get; init; }

    /// <summary>Requests cancelled.</summary>
    public long Cancelled { get; init; }

    /// <summary>Requests failed.</summary>
    public long Failed { get; init; }

    /// <summary>Prompt tokens.</summary>
    public long PromptTokens { get; init; }

    /// <summary>Completion tokens.</summary>
    public long CompletionTokens { get; init; }

    /// <summary>Cached prompt tokens.</summary>
    public long CachedTokens { get; init; }

    /// <summary>Compute seconds (exact to the microsecond).</summary>
    public decimal ComputeSeconds { get; init; }

    /// <summary>Cost (exact to 1e-6).</summary>
    public decimal Cost { get; init; }

    /// <summary>Requests billed per character-equivalent (the language tax waived for their language).</summary>
    public long WaivedRequests { get; init; }

    /// <summary>Prompt tokens counted but not billed because of the waiver (billed = <see cref="PromptTokens"/> less these).</summary>
    public long WaivedPromptTokens { get; init; }

    /// <summary>Completion tokens counted but not billed because of the waiver.</summary>
    public long WaivedCompletionTokens { get; init; }
}

/// <summary>The periods the ledger keeps per-tenant totals for (UTC), for budgets; they survive retention.</summary>
public enum UsagePeriod
{
    /// <summary>A UTC day.</summary>
    Day = 0,

    /// <summary>A UTC calendar month.</summary>
    Month = 1,

    /// <summary>All time (one row per tenant and currency, period start 0).</summary>
    Total = 2,
}

/// <summary>A tenant's totals in one budget period and currency.</summary>
public sealed record TenantPeriodTotals
{
    /// <summary>The tenant.</summary>
    public required string Tenant { get; init; }

    /// <summary>Day or month.</summary>
    public UsagePeriod Period { get; init; }

    /// <summary>The period's first instant (UTC midnight; the Unix epoch for <see cref="UsagePeriod.Total"/>).</summary>
    public DateTimeOffset PeriodStart { get; init; }

    /// <summary>The currency of <see cref="Cost"/>.</summary>
    public required string Currency { get; init; }

    /// <summary>Requests, whatever the outcome.</summary>
    public long Requests { get; init; }

    /// <summary>Prompt tokens.</summary>
    public long PromptTokens { get; init; }

    /// <summary>Completion tokens.</summary>
    public long CompletionTokens { get; init; }

    /// <summary>Compute seconds.</summary>
    public decimal ComputeSeconds { get; init; }

    /// <summary>Spend (exact to 1e-6).</summary>
    public decimal Cost { get; init; }
}

/// <summary>The stored names of <see cref="UsagePeriod"/> values.</summary>
internal static class UsagePeriodNames
{
    public const string Day = "day";
    public const string Month = "month";
    public const string Total = "total";

    public static string Of(UsagePeriod period) => period switch
    {
        UsagePeriod.Day => Day,
        UsagePeriod.Month => Month,
        UsagePeriod.Total => Total,
        _ => throw new ArgumentOutOfRangeException(nameof(period), period, "unknown budget period"),
    };
}

/// <summary>Counters of the ledger's writer since it was opened.</summary>
/// <param name="Stored">Records inserted.</param>
/// <param name="Duplicates">Appends whose request id was already stored (nothing written, nothing counted).</param>
/// <param name="Batches">Transactions committed.</param>
/// <param name="FailedBatches">Transactions that failed (their callers got the exception).</param>
public readonly record struct UsageLedgerStatistics(long Stored, long Duplicates, long Batches, long FailedBatches);
