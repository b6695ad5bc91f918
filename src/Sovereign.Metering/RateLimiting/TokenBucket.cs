namespace Sovereign.Metering.RateLimiting;

/// <summary>
/// A token bucket of capacity <c>limit</c> that refills continuously at <c>limit</c> per window, kept in exact integer
/// arithmetic: the state is the debt in token-milliseconds (taking n units adds n * window; each millisecond repays
/// <c>limit</c>). No floating point, so the same inputs always give the same answers on every silo.
/// </summary>
/// <remarks>
/// Guarantee: over any interval of length T, units taken minus units refunded is at most limit * (1 + T / window).
/// </remarks>
internal sealed class TokenBucket
{
    private long _debt;
    private long _asOfMs;

    public TokenBucket(long limit, long windowMs)
    {
        ValidateLimit(limit, windowMs);
        Limit = limit;
        WindowMs = windowMs;
    }

    public long Limit { get; private set; }

    public long WindowMs { get; }

    private long Capacity => Limit * WindowMs;

    public static void ValidateLimit(long limit, long windowMs)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);

        // Debt may reach twice the capacity (overrun charges), which must stay a long.
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, long.MaxValue / 4 / windowMs);
    }

    /// <summary>
    /// Repays the debt for the time elapsed since the last call. A clock going backwards repays nothing and moves the
    /// bucket's "as of" back with it: kept at the later time, the debt was frozen until the clock caught up again (a
    /// step back of an hour refused a limited key for the hour, each 429's Retry-After saying less than a minute).
    /// </summary>
    public void Advance(long nowMs)
    {
        if (nowMs <= _asOfMs)
        {
            _asOfMs = nowMs;
            return;
        }

        var elapsed = nowMs - _asOfMs;
        _asOfMs = nowMs;
        _debt = elapsed >= CeilDiv(_debt, Limit) ? 0 : _debt - (elapsed * Limit);
    }

    /// <summary>More units than the whole limit: can never fit.</summary>
    public bool TooLarge(long units) => units > Limit;

    /// <summary>0 when <paramref name="units"/> fit now, else the exact milliseconds until they would.</summary>
    public long WaitMs(long units)
    {
        var excess = _debt + (units * WindowMs) - Capacity;
        return excess <= 0 ? 0 : CeilDiv(excess, Limit);
    }

    public void Take(long units) => _debt += units * WindowMs;

    /// <summary>Gives units back at once; never above full.</summary>
    public void Refund(long units)
    {
        if (units <= 0)
        {
            return;
        }

        _debt = units >= CeilDiv(_debt, WindowMs) ? 0 : _debt - (units * WindowMs);
    }

    /// <summary>Takes units unconditionally (settle overruns); the debt is capped at two windows' worth.</summary>
    public void Charge(long units)
    {
        if (units <= 0)
        {
            return;
        }

        var max = 2 * Capacity;
        _debt = units >= CeilDiv(max - _debt, WindowMs) ? max : _debt + (units * WindowMs);
    }

    public long Remaining => Math.Max(0, Limit - CeilDiv(_debt, WindowMs));

    public TimeSpan Reset => TimeSpan.FromMilliseconds(CeilDiv(_debt, Limit));

    /// <summary><see cref="Remaining"/> as it would be once <paramref name="units"/> were given back (<see cref="Refund"/>), changing nothing.</summary>
    public long RemainingIfRefunded(long units) => Math.Max(0, Limit - CeilDiv(DebtIfRefunded(units), WindowMs));

    /// <summary><see cref="Reset"/> as it would be once <paramref name="units"/> were given back, changing nothing.</summary>
    public TimeSpan ResetIfRefunded(long units) => TimeSpan.FromMilliseconds(CeilDiv(DebtIfRefunded(units), Limit));

    private long DebtIfRefunded(long units) => units <= 0 ? _debt : units >= CeilDiv(_debt, WindowMs) ? 0 : _debt - (units * WindowMs);

    /// <summary>Changes the limit, keeping what is owed (capped at the new capacity, so a downgrade locks out at most one window).</summary>
    public void SetLimit(long limit)
    {
        ValidateLimit(limit, WindowMs);
        Limit = limit;
        _debt = Math.Min(_debt, Capacity);
    }

    public RateBucketState Snapshot() => new(Limit, _debt, _asOfMs);

    public static TokenBucket Restore(RateBucketState state, long windowMs)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(state.DebtTokenMilliseconds, nameof(state));
        var bucket = new TokenBucket(state.Limit, windowMs);
        bucket._debt = Math.Min(state.DebtTokenMilliseconds, 2 * bucket.Capacity);
        bucket._asOfMs = state.AsOfUnixMilliseconds;
        return bucket;
    }

    private static long CeilDiv(long value, long divisor) => value <= 0 ? 0 : ((value - 1) / divisor) + 1;
}
