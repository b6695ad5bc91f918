namespace Sovereign.Metering.RateLimiting;

/// <summary>
/// Per-minute limits for one scope (a tenant or a key). Null means unlimited in that dimension. Tokens are counted
/// at admission as prompt tokens + max_tokens (the most the request can use) and corrected at settle.
/// </summary>
public sealed record RateLimitPolicy(long? RequestsPerMinute, long? TokensPerMinute)
{
    /// <summary>
    /// The largest limit per minute (about 3.8e13): the token buckets count in token-milliseconds, which must stay a
    /// long. Leave a dimension out (null) for no limit.
    /// </summary>
    public const long MaxPerMinute = long.MaxValue / 4 / RateLimiter.WindowMs;

    /// <summary>Requests per minute; null for no limit. Above <see cref="MaxPerMinute"/> (stored before such limits were refused) it is no limit.</summary>
    public long? RequestsPerMinute { get; init; } = Countable(RequestsPerMinute);

    /// <summary>Tokens per minute; null for no limit, as <see cref="RequestsPerMinute"/>.</summary>
    public long? TokensPerMinute { get; init; } = Countable(TokensPerMinute);

    /// <summary>No limit at all.</summary>
    public static RateLimitPolicy Unlimited { get; } = new(null, null);

    // A limit no bucket can count is one no caller can reach: the same as none, instead of an overflow on every request.
    private static long? Countable(long? perMinute) => perMinute > MaxPerMinute ? null : perMinute;
}

/// <summary>Whose limit answered.</summary>
public enum RateLimitScope
{
    /// <summary>The tenant's limits (all its keys together).</summary>
    Tenant,

    /// <summary>The limits of the API key used.</summary>
    Key,
}

/// <summary>Which counter.</summary>
public enum RateLimitDimension
{
    /// <summary>Requests per minute (RPM).</summary>
    Requests,

    /// <summary>Tokens per minute (TPM).</summary>
    Tokens,
}

/// <summary>What <c>TryAcquire</c> decided.</summary>
public enum RateLimitOutcome
{
    /// <summary>Admitted: the requests and tokens were taken.</summary>
    Allowed,

    /// <summary>Not now: retry after <see cref="RateLimitDecision.RetryAfter"/> (HTTP 429 with Retry-After).</summary>
    Limited,

    /// <summary>
    /// Never: the request alone exceeds the whole per-minute limit, so waiting cannot help. Answer without
    /// Retry-After and tell the caller to shrink the prompt or max_tokens.
    /// </summary>
    TooLarge,
}

/// <summary>
/// A rate-limit decision with the values OpenAI reports in its <c>x-ratelimit-*</c> headers. When several scopes
/// apply (tenant and key), each dimension reports the scope with the least remaining.
/// </summary>
public sealed record RateLimitDecision
{
    /// <summary>Allowed, limited (try later) or too large (never).</summary>
    public required RateLimitOutcome Outcome { get; init; }

    /// <summary>True when admitted.</summary>
    public bool Allowed => Outcome == RateLimitOutcome.Allowed;

    /// <summary>When <see cref="RateLimitOutcome.Limited"/>: the exact wait after which the same request fits, if nothing else is admitted meanwhile.</summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>The scope that refused, when refused.</summary>
    public RateLimitScope? RefusedScope { get; init; }

    /// <summary>The dimension that refused, when refused.</summary>
    public RateLimitDimension? RefusedDimension { get; init; }

    /// <summary>A human-readable reason when refused (OpenAI-style wording), else null.</summary>
    public string? Message { get; init; }

    /// <summary>Requests per minute allowed; null when unlimited.</summary>
    public long? LimitRequests { get; init; }

    /// <summary>Requests left now (after this one, when allowed).</summary>
    public long? RemainingRequests { get; init; }

    /// <summary>Time until the request counter is full again.</summary>
    public TimeSpan ResetRequests { get; init; }

    /// <summary>Tokens per minute allowed; null when unlimited.</summary>
    public long? LimitTokens { get; init; }

    /// <summary>Tokens left now (after this one, when allowed).</summary>
    public long? RemainingTokens { get; init; }

    /// <summary>Time until the token counter is full again.</summary>
    public TimeSpan ResetTokens { get; init; }
}

/// <summary>One counter's persisted state: token-milliseconds owed as of a time (0 owed = full).</summary>
public sealed record RateBucketState(long Limit, long DebtTokenMilliseconds, long AsOfUnixMilliseconds);

/// <summary>One scope's persisted state.</summary>
public sealed record RateLimiterState(RateLimitPolicy Policy, RateBucketState? Requests, RateBucketState? Tokens);

/// <summary>A tenant's persisted rate-limit state: its own counters and those of its keys that have limits.</summary>
public sealed record TenantRateLimiterState(RateLimiterState Tenant, IReadOnlyDictionary<string, RateLimiterState> Keys);
