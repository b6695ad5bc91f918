using System.Globalization;

namespace Sovereign.Metering.RateLimiting;

/// <summary>
/// Requests-per-minute and tokens-per-minute limits for one scope (a tenant or a key): two exact integer token
/// buckets (capacity = the per-minute limit, refilled continuously at limit/minute) on an injected clock.
/// </summary>
/// <remarks>
/// <para>
/// Not thread-safe: one writer, the tenant's grain. Keeping the counters in that one grain (not in each gateway pod)
/// is what makes a limit cluster-wide instead of per pod.
/// </para>
/// <para>
/// Tokens are charged at admission as prompt + max_tokens (the most the request can use), then corrected at settle
/// with <see cref="Settle"/>: the unused part is refunded at once (never above a full bucket), an overrun (should not
/// happen) is charged unconditionally. Over any interval of length T, units taken minus units refunded is at most
/// limit * (1 + T / 1 minute): a full burst, then the refill rate.
/// </para>
/// </remarks>
public sealed class RateLimiter
{
    internal const long WindowMs = 60_000;

    private readonly TimeProvider _time;

    /// <summary>Creates a limiter with full buckets.</summary>
    public RateLimiter(RateLimitPolicy policy, TimeProvider? time = null, RateLimitScope scope = RateLimitScope.Tenant)
    {
        _time = time ?? TimeProvider.System;
        Scope = scope;
        Policy = RateLimitPolicy.Unlimited;
        UpdatePolicy(policy);
    }

    /// <summary>The limits in force.</summary>
    public RateLimitPolicy Policy { get; private set; }

    /// <summary>Tenant or key, for refusals.</summary>
    public RateLimitScope Scope { get; }

    internal TokenBucket? RequestCounter { get; private set; }

    internal TokenBucket? TokenCounter { get; private set; }

    /// <summary>Admits <paramref name="requests"/> and <paramref name="tokens"/> at the clock's current time, or refuses without taking anything.</summary>
    public RateLimitDecision TryAcquire(int requests, long tokens) => TryAcquire(requests, tokens, _time.GetUtcNow());

    /// <summary>Admits <paramref name="requests"/> and <paramref name="tokens"/> at <paramref name="now"/>, or refuses without taking anything.</summary>
    public RateLimitDecision TryAcquire(int requests, long tokens, DateTimeOffset now) =>
        RateLimitEvaluator.TryAcquire([this], requests, tokens, now);

    /// <summary>The current header values without taking anything.</summary>
    public RateLimitDecision Peek(DateTimeOffset now) => RateLimitEvaluator.TryAcquire([this], 0, 0, now);

    /// <summary>Gives unused tokens back at once (never above the limit).</summary>
    public void Refund(long tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        TokenCounter?.Refund(tokens);
    }

    /// <summary>Gives one request back at once (never above the limit): one counted for work then refused as the client's mistake.</summary>
    public void RefundRequest() => RequestCounter?.Refund(1);

    /// <summary>Takes tokens unconditionally (an overrun found at settle); the debt is capped at two minutes' worth.</summary>
    public void Charge(long tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        TokenCounter?.Charge(tokens);
    }

    /// <summary>Corrects an admission's estimate to the actual tokens: refunds the unused part or charges the excess.</summary>
    public void Settle(long admittedTokens, long actualTokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(admittedTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(actualTokens);
        if (actualTokens <= admittedTokens)
        {
            Refund(admittedTokens - actualTokens);
        }
        else
        {
            Charge(actualTokens - admittedTokens);
        }
    }

    /// <summary>
    /// Changes the limits, keeping what is owed in each counter that stays (capped at the new limit); a counter that
    /// becomes limited starts full.
    /// </summary>
    public void UpdatePolicy(RateLimitPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (policy.RequestsPerMinute is { } requests)
        {
            TokenBucket.ValidateLimit(requests, WindowMs);
        }

        if (policy.TokensPerMinute is { } tokens)
        {
            TokenBucket.ValidateLimit(tokens, WindowMs);
        }

        RequestCounter = Update(RequestCounter, policy.RequestsPerMinute);
        TokenCounter = Update(TokenCounter, policy.TokensPerMinute);
        Policy = policy;
    }

    /// <summary>A serializable copy of the counters.</summary>
    public RateLimiterState Snapshot() => new(Policy, RequestCounter?.Snapshot(), TokenCounter?.Snapshot());

    /// <summary>Rebuilds a limiter from <see cref="Snapshot"/>; call <see cref="UpdatePolicy"/> after if the configured limits changed.</summary>
    public static RateLimiter Restore(RateLimiterState state, TimeProvider? time = null, RateLimitScope scope = RateLimitScope.Tenant)
    {
        ArgumentNullException.ThrowIfNull(state);
        var limiter = new RateLimiter(RateLimitPolicy.Unlimited, time, scope)
        {
            Policy = state.Policy,
            RequestCounter = state.Requests is null ? null : TokenBucket.Restore(state.Requests, WindowMs),
            TokenCounter = state.Tokens is null ? null : TokenBucket.Restore(state.Tokens, WindowMs),
        };
        return limiter;
    }

    internal void Advance(long nowMs)
    {
        RequestCounter?.Advance(nowMs);
        TokenCounter?.Advance(nowMs);
    }

    private static TokenBucket? Update(TokenBucket? bucket, long? limit)
    {
        if (limit is not { } value)
        {
            return null;
        }

        if (bucket is null)
        {
            return new TokenBucket(value, WindowMs);
        }

        bucket.SetLimit(value);
        return bucket;
    }
}

/// <summary>All-or-nothing admission across several scopes (tenant and key) and both dimensions.</summary>
internal static class RateLimitEvaluator
{
    public static RateLimitDecision TryAcquire(ReadOnlySpan<RateLimiter> limiters, int requests, long tokens, DateTimeOffset now)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(requests);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var nowMs = now.ToUnixTimeMilliseconds();
        foreach (var limiter in limiters)
        {
            limiter.Advance(nowMs);
        }

        // "Never fits" is checked before "not now": waiting would not help, so it must not be reported as a wait.
        foreach (var limiter in limiters)
        {
            if (requests > 0 && limiter.RequestCounter is { } r && r.TooLarge(requests))
            {
                return Refuse(limiters, RateLimitOutcome.TooLarge, limiter.Scope, RateLimitDimension.Requests, r, requests, null);
            }

            if (tokens > 0 && limiter.TokenCounter is { } t && t.TooLarge(tokens))
            {
                return Refuse(limiters, RateLimitOutcome.TooLarge, limiter.Scope, RateLimitDimension.Tokens, t, tokens, null);
            }
        }

        // The longest wait of any counter is the joint wait: counters only refill while nothing else is admitted.
        long wait = 0;
        (RateLimiter Limiter, RateLimitDimension Dimension, TokenBucket Bucket, long Units)? worst = null;
        foreach (var limiter in limiters)
        {
            if (requests > 0 && limiter.RequestCounter is { } r && r.WaitMs(requests) is var rw && rw > wait)
            {
                wait = rw;
                worst = (limiter, RateLimitDimension.Requests, r, requests);
            }

            if (tokens > 0 && limiter.TokenCounter is { } t && t.WaitMs(tokens) is var tw && tw > wait)
            {
                wait = tw;
                worst = (limiter, RateLimitDimension.Tokens, t, tokens);
            }
        }

        if (worst is { } w)
        {
            return Refuse(limiters, RateLimitOutcome.Limited, w.Limiter.Scope, w.Dimension, w.Bucket, w.Units, TimeSpan.FromMilliseconds(wait));
        }

        foreach (var limiter in limiters)
        {
            if (requests > 0)
            {
                limiter.RequestCounter?.Take(requests);
            }

            if (tokens > 0)
            {
                limiter.TokenCounter?.Take(tokens);
            }
        }

        // Values already says Allowed: a copy of the decision (`with`) for every admitted request was garbage.
        return Values(limiters);
    }

    private static RateLimitDecision Refuse(
        ReadOnlySpan<RateLimiter> limiters,
        RateLimitOutcome outcome,
        RateLimitScope scope,
        RateLimitDimension dimension,
        TokenBucket bucket,
        long units,
        TimeSpan? retryAfter)
    {
        var what = dimension == RateLimitDimension.Requests ? "requests per min (RPM)" : "tokens per min (TPM)";
        var whose = scope == RateLimitScope.Tenant ? "this organization" : "this API key";
        var message = outcome == RateLimitOutcome.TooLarge
            ? string.Create(CultureInfo.InvariantCulture, $"Request too large for {what} on {whose}: Limit {bucket.Limit}, Requested {units}. The request can never fit; reduce the prompt or max_tokens.")
            : string.Create(CultureInfo.InvariantCulture, $"Rate limit reached for {what} on {whose}: Limit {bucket.Limit}, Used {bucket.Limit - bucket.Remaining}, Requested {units}. Please try again in {OpenAIRateLimitHeaders.FormatDuration(retryAfter ?? TimeSpan.Zero)}.");
        return Values(limiters) with
        {
            Outcome = outcome,
            RetryAfter = retryAfter,
            RefusedScope = scope,
            RefusedDimension = dimension,
            Message = message,
        };
    }

    // Per dimension, the scope with the least remaining is the one the client must respect.
    private static RateLimitDecision Values(ReadOnlySpan<RateLimiter> limiters)
    {
        TokenBucket? requests = null;
        TokenBucket? tokens = null;
        foreach (var limiter in limiters)
        {
            requests = Tighter(requests, limiter.RequestCounter);
            tokens = Tighter(tokens, limiter.TokenCounter);
        }

        return new RateLimitDecision
        {
            Outcome = RateLimitOutcome.Allowed,
            LimitRequests = requests?.Limit,
            RemainingRequests = requests?.Remaining,
            ResetRequests = requests?.Reset ?? TimeSpan.Zero,
            LimitTokens = tokens?.Limit,
            RemainingTokens = tokens?.Remaining,
            ResetTokens = tokens?.Reset ?? TimeSpan.Zero,
        };
    }

    /// <summary>
    /// The values at <paramref name="now"/> as if each limiter's <paramref name="held"/> units (taken but not used yet,
    /// and given back when unused: a budget lease's unspent part) were back in it; takes and gives nothing.
    /// </summary>
    public static RateLimitDecision PeekReturning(ReadOnlySpan<RateLimiter> limiters, ReadOnlySpan<(long Requests, long Tokens)> held, DateTimeOffset now)
    {
        var nowMs = now.ToUnixTimeMilliseconds();
        (long Remaining, TimeSpan Reset, long Limit)? requests = null;
        (long Remaining, TimeSpan Reset, long Limit)? tokens = null;
        for (var i = 0; i < limiters.Length; i++)
        {
            var limiter = limiters[i];
            limiter.Advance(nowMs);
            if (limiter.RequestCounter is { } r)
            {
                requests = Tighter(requests, (r.RemainingIfRefunded(held[i].Requests), r.ResetIfRefunded(held[i].Requests), r.Limit));
            }

            if (limiter.TokenCounter is { } t)
            {
                tokens = Tighter(tokens, (t.RemainingIfRefunded(held[i].Tokens), t.ResetIfRefunded(held[i].Tokens), t.Limit));
            }
        }

        return new RateLimitDecision
        {
            Outcome = RateLimitOutcome.Allowed,
            LimitRequests = requests?.Limit,
            RemainingRequests = requests?.Remaining,
            ResetRequests = requests?.Reset ?? TimeSpan.Zero,
            LimitTokens = tokens?.Limit,
            RemainingTokens = tokens?.Remaining,
            ResetTokens = tokens?.Reset ?? TimeSpan.Zero,
        };
    }

    // As the bucket form below: the least remaining, then the longer reset.
    private static (long Remaining, TimeSpan Reset, long Limit) Tighter((long Remaining, TimeSpan Reset, long Limit)? current, (long Remaining, TimeSpan Reset, long Limit) candidate) =>
        current is not { } c || candidate.Remaining < c.Remaining || (candidate.Remaining == c.Remaining && candidate.Reset > c.Reset) ? candidate : c;

    private static TokenBucket? Tighter(TokenBucket? current, TokenBucket? candidate)
    {
        if (candidate is null)
        {
            return current;
        }

        if (current is null || candidate.Remaining < current.Remaining
            || (candidate.Remaining == current.Remaining && candidate.Reset > current.Reset))
        {
            return candidate;
        }

        return current;
    }
}
