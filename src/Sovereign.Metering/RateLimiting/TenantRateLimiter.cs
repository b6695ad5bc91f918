namespace Sovereign.Metering.RateLimiting;

/// <summary>
/// A tenant's rate limits and those of its keys, admitted all or nothing: a request must fit both the tenant's
/// counters and its key's (when the key has limits), or nothing is taken from either. One per tenant grain.
/// </summary>
/// <remarks>Not thread-safe: single writer (the tenant grain), which is also what makes the limits cluster-wide.</remarks>
public sealed class TenantRateLimiter
{
    private readonly TimeProvider _time;
    private readonly Dictionary<string, RateLimiter> _keys = new(StringComparer.Ordinal);

    /// <summary>Creates the tenant's limiter with full counters and no key limits.</summary>
    public TenantRateLimiter(RateLimitPolicy tenantPolicy, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        Tenant = new RateLimiter(tenantPolicy, _time, RateLimitScope.Tenant);
    }

    private TenantRateLimiter(RateLimiter tenant, TimeProvider time)
    {
        _time = time;
        Tenant = tenant;
    }

    /// <summary>The tenant-wide counters.</summary>
    public RateLimiter Tenant { get; }

    /// <summary>The key's own limiter, if the key has limits.</summary>
    public RateLimiter? Key(string keyId) => _keys.GetValueOrDefault(keyId);

    /// <summary>Sets a key's limits (keeping its counters if it had some), or removes them with null.</summary>
    public void SetKeyPolicy(string keyId, RateLimitPolicy? policy)
    {
        ArgumentException.ThrowIfNullOrEmpty(keyId);
        if (policy is null)
        {
            _keys.Remove(keyId);
        }
        else if (_keys.TryGetValue(keyId, out var limiter))
        {
            limiter.UpdatePolicy(policy);
        }
        else
        {
            _keys.Add(keyId, new RateLimiter(policy, _time, RateLimitScope.Key));
        }
    }

    /// <summary>
    /// Makes the limits those given: the tenant's and each listed key's counters keep what they owe (capped at the new
    /// limit), a key not listed loses its limits, and a newly limited one starts full.
    /// </summary>
    public void UpdatePolicies(RateLimitPolicy tenantPolicy, IReadOnlyDictionary<string, RateLimitPolicy> keyPolicies)
    {
        ArgumentNullException.ThrowIfNull(tenantPolicy);
        ArgumentNullException.ThrowIfNull(keyPolicies);
        Tenant.UpdatePolicy(tenantPolicy);
        foreach (var keyId in _keys.Keys.Where(k => !keyPolicies.ContainsKey(k)).ToList())
        {
            _keys.Remove(keyId);
        }

        foreach (var (keyId, policy) in keyPolicies)
        {
            SetKeyPolicy(keyId, policy);
        }
    }

    /// <summary>Admits a request at the clock's current time against the tenant and the key, or refuses taking nothing.</summary>
    public RateLimitDecision TryAcquire(string? keyId, int requests, long tokens) => TryAcquire(keyId, requests, tokens, _time.GetUtcNow());

    /// <summary>Admits a request at <paramref name="now"/> against the tenant and the key, or refuses taking nothing.</summary>
    public RateLimitDecision TryAcquire(string? keyId, int requests, long tokens, DateTimeOffset now) =>
        keyId is not null && _keys.TryGetValue(keyId, out var key)
            ? RateLimitEvaluator.TryAcquire([Tenant, key], requests, tokens, now)
            : RateLimitEvaluator.TryAcquire([Tenant], requests, tokens, now);

    /// <summary>
    /// The counters' values at <paramref name="now"/> as if units taken but not used yet were given back:
    /// <paramref name="tenantHeld"/> to the tenant's counters, <paramref name="keyHeld"/> to the key's (a budget lease's
    /// unspent part, which returns when the lease closes and which its holder may still admit). Takes and gives nothing.
    /// </summary>
    public RateLimitDecision PeekReturning(string? keyId, DateTimeOffset now, (long Requests, long Tokens) tenantHeld, (long Requests, long Tokens) keyHeld) =>
        keyId is not null && _keys.TryGetValue(keyId, out var key)
            ? RateLimitEvaluator.PeekReturning([Tenant, key], [tenantHeld, keyHeld], now)
            : RateLimitEvaluator.PeekReturning([Tenant], [tenantHeld], now);

    /// <summary>Gives unused tokens back to the tenant and the key.</summary>
    public void Refund(string? keyId, long tokens)
    {
        Tenant.Refund(tokens);
        KeyOrNull(keyId)?.Refund(tokens);
    }

    /// <summary>Gives one counted request back to the tenant and the key.</summary>
    public void RefundRequest(string? keyId)
    {
        Tenant.RefundRequest();
        KeyOrNull(keyId)?.RefundRequest();
    }

    /// <summary>Corrects an admission's token estimate (prompt + max_tokens) to the actual usage, for tenant and key.</summary>
    public void Settle(string? keyId, long admittedTokens, long actualTokens)
    {
        Tenant.Settle(admittedTokens, actualTokens);
        KeyOrNull(keyId)?.Settle(admittedTokens, actualTokens);
    }

    /// <summary>A serializable copy of every counter.</summary>
    public TenantRateLimiterState Snapshot() => new(
        Tenant.Snapshot(),
        new SortedDictionary<string, RateLimiterState>(_keys.ToDictionary(k => k.Key, k => k.Value.Snapshot(), StringComparer.Ordinal), StringComparer.Ordinal));

    /// <summary>Rebuilds from <see cref="Snapshot"/>.</summary>
    public static TenantRateLimiter Restore(TenantRateLimiterState state, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(state);
        var clock = time ?? TimeProvider.System;
        var limiter = new TenantRateLimiter(RateLimiter.Restore(state.Tenant, clock, RateLimitScope.Tenant), clock);
        foreach (var (keyId, keyState) in state.Keys)
        {
            limiter._keys.Add(keyId, RateLimiter.Restore(keyState, clock, RateLimitScope.Key));
        }

        return limiter;
    }

    private RateLimiter? KeyOrNull(string? keyId) => keyId is null ? null : _keys.GetValueOrDefault(keyId);
}
