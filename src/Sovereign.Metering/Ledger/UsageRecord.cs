namespace Sovereign.Metering.Ledger;

/// <summary>How a request ended. Every request that reached metering gets a record, refused ones included.</summary>
public enum UsageOutcome
{
    /// <summary>Finished normally (stop, length, tool call).</summary>
    Completed = 0,

    /// <summary>Turned away before running (budget, rate limit, residency, unknown model): see <see cref="UsageRecord.RefusalCode"/>.</summary>
    Refused = 1,

    /// <summary>The client went away or cancelled; what ran until then is billed.</summary>
    Cancelled = 2,

    /// <summary>An internal error ended it.</summary>
    Failed = 3,
}

/// <summary>
/// One metered request: the unit of the usage ledger. <see cref="RequestId"/> is the idempotency key: appending the
/// same id again (a retry after a crash) stores and counts it once. Values are stored with millisecond
/// (<see cref="Timestamp"/>) and microsecond (<see cref="ComputeSeconds"/>) resolution; <see cref="Cost"/> must already
/// be in whole millionths (as <see cref="CostCarry.Bill"/> returns it).
/// </summary>
public sealed record UsageRecord
{
    /// <summary>Unique id of the request (at most 200 characters).</summary>
    public required string RequestId { get; init; }

    /// <summary>When the request arrived; decides the UTC day, month and price version it counts in.</summary>
    public required DateTimeOffset Timestamp { get; init; }

    /// <summary>The tenant billed.</summary>
    public required string Tenant { get; init; }

    /// <summary>The API key used (its id, never the secret).</summary>
    public required string KeyId { get; init; }

    /// <summary>The model id requested.</summary>
    public required string Model { get; init; }

    /// <summary>The node that served (or refused) it.</summary>
    public required string Node { get; init; }

    /// <summary>The jurisdiction the request was processed in.</summary>
    public required string Jurisdiction { get; init; }

    /// <summary>The pool of the node that served it (null on records written before pools, or refused before routing).</summary>
    public string? Pool { get; init; }

    /// <summary>That node's device class (<c>h100</c>, <c>cpu</c>), null where <see cref="Pool"/> is.</summary>
    public string? DeviceClass { get; init; }

    /// <summary>Detected language of the prompt (BCP 47), if known.</summary>
    public string? Language { get; init; }

    /// <summary>Prompt (input) tokens, cached ones included.</summary>
    public int PromptTokens { get; init; }

    /// <summary>Completion (output) tokens.</summary>
    public int CompletionTokens { get; init; }

    /// <summary>Prompt tokens served from the prefix cache.</summary>
    public int CachedTokens { get; init; }

    /// <summary>Time waiting for admission.</summary>
    public long QueueTimeMs { get; init; }

    /// <summary>Time to the first token, when one was produced.</summary>
    public long? TimeToFirstTokenMs { get; init; }

    /// <summary>Total time from arrival to the end.</summary>
    public long DurationMs { get; init; }

    /// <summary>The request's share of each batched decode step it took part in, in seconds (stored to the microsecond, half to even).</summary>
    public decimal ComputeSeconds { get; init; }

    /// <summary>How it ended.</summary>
    public UsageOutcome Outcome { get; init; }

    /// <summary>Why it was refused (required when <see cref="Outcome"/> is Refused), or an error code for other outcomes.</summary>
    public string? RefusalCode { get; init; }

    /// <summary>What it is billed, &gt;= 0 and in whole millionths (0 for a refused request); see <see cref="ExactCost"/>.</summary>
    public decimal Cost { get; init; }

    /// <summary>
    /// What the request really cost when <see cref="Cost"/> is not it exactly (<see cref="CostCarry.Bill"/>): the
    /// difference stays in the tenant's carry, which the ledger keeps with the record. Not stored on the record; null
    /// when <see cref="Cost"/> is exact. Within a millionth of <see cref="Cost"/>, at most 18 decimals.
    /// </summary>
    public decimal? ExactCost { get; init; }

    /// <summary>ISO 4217 code of <see cref="Cost"/> (the tenant's plan currency, also for a refusal).</summary>
    public required string Currency { get; init; }

    /// <summary>The price that applied (<c>EffectivePrice.Version</c>); required when <see cref="Cost"/> is not zero.</summary>
    public string? PriceVersion { get; init; }

    /// <summary>
    /// Why the request was billed for fewer tokens than counted: its plan bills <see cref="Language"/> per
    /// character-equivalent (the language tax is waived), with the letters and ratio the bill rests on. Null when it
    /// was billed per token as counted (and on records written before the basis was stored).
    /// </summary>
    public Pricing.CharacterEquivalentBasis? CharacterEquivalent { get; init; }

    /// <summary>Prompt tokens not billed because of the waiver: <see cref="PromptTokens"/> less those billed.</summary>
    public int WaivedPromptTokens { get; init; }

    /// <summary>Completion tokens not billed because of the waiver: <see cref="CompletionTokens"/> less those billed.</summary>
    public int WaivedCompletionTokens { get; init; }
}
