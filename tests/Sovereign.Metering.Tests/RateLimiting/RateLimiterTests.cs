using System.Text.Json;
using Sovereign.Metering.RateLimiting;
using Sovereign.Tests;

namespace Sovereign.Metering.Tests.RateLimiting;

public sealed class RateLimiterTests
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 14, 12, 0, 0, TimeSpan.Zero);

    private static RateLimiter Limiter(long? rpm, long? tpm, ManualClock? clock = null) =>
        new(new RateLimitPolicy(rpm, tpm), clock ?? new ManualClock(T0));

    [Fact]
    public void TryAcquire_WithinLimits_AllowsAndReportsOpenAIValues()
    {
        var limiter = Limiter(3, 1000);

        var decision = limiter.TryAcquire(1, 100, T0);

        Assert.True(decision.Allowed);
        Assert.Null(decision.RetryAfter);
        Assert.Equal(3, decision.LimitRequests);
        Assert.Equal(2, decision.RemainingRequests);
        Assert.Equal(TimeSpan.FromSeconds(20), decision.ResetRequests);
        Assert.Equal(1000, decision.LimitTokens);
        Assert.Equal(900, decision.RemainingTokens);
        Assert.Equal(TimeSpan.FromSeconds(6), decision.ResetTokens);
    }

    [Fact]
    public void TryAcquire_RequestsUsedUp_RefusesWithExactRetryAfter()
    {
        var limiter = Limiter(3, null);
        for (var i = 0; i < 3; i++)
        {
            Assert.True(limiter.TryAcquire(1, 0, T0).Allowed);
        }

        var refused = limiter.TryAcquire(1, 0, T0);

        Assert.Equal(RateLimitOutcome.Limited, refused.Outcome);
        Assert.Equal(TimeSpan.FromSeconds(20), refused.RetryAfter);
        Assert.Equal(RateLimitScope.Tenant, refused.RefusedScope);
        Assert.Equal(RateLimitDimension.Requests, refused.RefusedDimension);
        Assert.Equal(0, refused.RemainingRequests);
        Assert.Equal(TimeSpan.FromMinutes(1), refused.ResetRequests);
        Assert.Contains("requests per min (RPM)", refused.Message, StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromMilliseconds(1), limiter.TryAcquire(1, 0, T0.AddMilliseconds(19_999)).RetryAfter);
        Assert.True(limiter.TryAcquire(1, 0, T0.AddSeconds(20)).Allowed);
        Assert.False(limiter.TryAcquire(1, 0, T0.AddSeconds(20)).Allowed);
    }

    [Fact]
    public void TryAcquire_TokensShort_WaitsOnlyForTheMissingPart()
    {
        var limiter = Limiter(100, 1000);
        Assert.True(limiter.TryAcquire(1, 800, T0).Allowed);

        var refused = limiter.TryAcquire(1, 500, T0);

        Assert.Equal(RateLimitOutcome.Limited, refused.Outcome);
        Assert.Equal(RateLimitDimension.Tokens, refused.RefusedDimension);
        Assert.Equal(TimeSpan.FromSeconds(18), refused.RetryAfter);
        Assert.Equal(200, refused.RemainingTokens);
        Assert.Equal(99, refused.RemainingRequests);
        Assert.True(limiter.TryAcquire(1, 500, T0.AddSeconds(18)).Allowed);
    }

    [Fact]
    public void TryAcquire_LargerThanTheWholeLimit_RefusedAsTooLargeNotLater()
    {
        var limiter = Limiter(10, 1000);

        var refused = limiter.TryAcquire(1, 1001, T0);

        Assert.Equal(RateLimitOutcome.TooLarge, refused.Outcome);
        Assert.Null(refused.RetryAfter);
        Assert.Equal(RateLimitDimension.Tokens, refused.RefusedDimension);
        Assert.Contains("can never fit", refused.Message, StringComparison.Ordinal);
        Assert.Equal(1000, refused.RemainingTokens);
        Assert.Equal(10, refused.RemainingRequests);
    }

    [Fact]
    public void TryAcquire_TooLargeAndCountersEmpty_StillReportsTooLarge()
    {
        var limiter = Limiter(1, 1000);
        limiter.TryAcquire(1, 1000, T0);

        Assert.Equal(RateLimitOutcome.TooLarge, limiter.TryAcquire(1, 5000, T0).Outcome);
    }

    [Fact]
    public void TryAcquire_ExactlyTheWholeLimit_FitsWhenFull()
    {
        var limiter = Limiter(null, 1000);

        Assert.True(limiter.TryAcquire(1, 1000, T0).Allowed);
        Assert.Equal(TimeSpan.FromMinutes(1), limiter.TryAcquire(1, 1000, T0).RetryAfter);
    }

    [Fact]
    public void TryAcquire_Unlimited_AllowsAndReportsNothing()
    {
        var limiter = Limiter(null, null);

        var decision = limiter.TryAcquire(1, 1_000_000, T0);

        Assert.True(decision.Allowed);
        Assert.Null(decision.LimitRequests);
        Assert.Null(decision.LimitTokens);
        Assert.Empty(OpenAIRateLimitHeaders.For(decision));
    }

    [Fact]
    public void TryAcquire_WithoutNow_UsesTheInjectedClock()
    {
        var clock = new ManualClock(T0);
        var limiter = Limiter(2, null, clock);
        limiter.TryAcquire(1, 0);
        limiter.TryAcquire(1, 0);
        Assert.False(limiter.TryAcquire(1, 0).Allowed);

        clock.Advance(TimeSpan.FromSeconds(30));

        Assert.True(limiter.TryAcquire(1, 0).Allowed);
        Assert.False(limiter.TryAcquire(1, 0).Allowed);
    }

    [Fact]
    public void TryAcquire_ClockGoesBackwards_RefillsNothing()
    {
        var limiter = Limiter(1, null);
        limiter.TryAcquire(1, 0, T0);

        var refused = limiter.TryAcquire(1, 0, T0.AddMinutes(-5));

        Assert.False(refused.Allowed);
        Assert.Equal(TimeSpan.FromMinutes(1), refused.RetryAfter);
    }

    /// <summary>
    /// A gateway whose clock steps back (an NTP correction) must keep the Retry-After it gave: the bucket used to keep
    /// its "as of" at the old, later time and repay nothing until the clock caught up with it, so a key limited to 1
    /// request a minute whose clock went back an hour was refused for an hour and a minute, each 429 saying "retry in
    /// under a minute".
    /// </summary>
    [Fact]
    public void TryAcquire_ClockStepsBackAnHour_RetryAfterStillHolds()
    {
        var clock = new ManualClock(T0);
        var limiter = Limiter(1, 1000, clock);
        Assert.True(limiter.TryAcquire(1, 1000).Allowed);

        clock.Set(T0.AddHours(-1));
        var refused = limiter.TryAcquire(1, 0);
        Assert.False(refused.Allowed);
        Assert.Equal(TimeSpan.FromMinutes(1), refused.RetryAfter);
        Assert.Equal(TimeSpan.FromMinutes(1), refused.ResetTokens);

        clock.Advance(refused.RetryAfter!.Value);
        var retried = limiter.TryAcquire(1, 1000);
        Assert.True(retried.Allowed, $"refused again after the Retry-After it was given: retry after {retried.RetryAfter}");
        Assert.False(limiter.TryAcquire(1, 0).Allowed);
    }

    [Fact]
    public void Refund_UnusedTokens_AvailableAtOnce()
    {
        var limiter = Limiter(null, 1000);
        limiter.TryAcquire(1, 1000, T0);

        limiter.Refund(600);

        Assert.Equal(600, limiter.Peek(T0).RemainingTokens);
        Assert.True(limiter.TryAcquire(1, 600, T0).Allowed);
        Assert.False(limiter.TryAcquire(1, 1, T0).Allowed);
    }

    [Fact]
    public void Refund_MoreThanWasTaken_NeverAboveTheLimit()
    {
        var limiter = Limiter(null, 1000);
        limiter.TryAcquire(1, 100, T0);

        limiter.Refund(50_000);

        Assert.Equal(1000, limiter.Peek(T0).RemainingTokens);
        Assert.True(limiter.TryAcquire(1, 1000, T0).Allowed);
        Assert.False(limiter.TryAcquire(1, 1, T0).Allowed);
    }

    [Fact]
    public void Settle_ActualBelowAdmitted_RefundsTheDifference()
    {
        var limiter = Limiter(null, 1000);
        limiter.TryAcquire(1, 900, T0);

        limiter.Settle(admittedTokens: 900, actualTokens: 250);

        Assert.Equal(750, limiter.Peek(T0).RemainingTokens);
    }

    [Fact]
    public void Settle_ActualAboveAdmitted_ChargesTheExcessUnconditionally()
    {
        var limiter = Limiter(null, 1000);
        limiter.TryAcquire(1, 900, T0);

        limiter.Settle(admittedTokens: 900, actualTokens: 1500);

        var peek = limiter.Peek(T0);
        Assert.Equal(0, peek.RemainingTokens);
        Assert.Equal(TimeSpan.FromSeconds(90), peek.ResetTokens);
        Assert.Equal(TimeSpan.FromSeconds(90), limiter.TryAcquire(1, 1000, T0).RetryAfter);
    }

    [Fact]
    public void UpdatePolicy_Downgrade_KeepsUsageCappedAtOneWindow()
    {
        var limiter = Limiter(null, 1000);
        limiter.TryAcquire(1, 800, T0);

        limiter.UpdatePolicy(new RateLimitPolicy(null, 500));

        var peek = limiter.Peek(T0);
        Assert.Equal(500, peek.LimitTokens);
        Assert.Equal(0, peek.RemainingTokens);
        Assert.Equal(TimeSpan.FromMinutes(1), peek.ResetTokens);
    }

    [Fact]
    public void UpdatePolicy_Upgrade_KeepsUsedTokens()
    {
        var limiter = Limiter(null, 1000);
        limiter.TryAcquire(1, 800, T0);

        limiter.UpdatePolicy(new RateLimitPolicy(10, 2000));

        var peek = limiter.Peek(T0);
        Assert.Equal(1200, peek.RemainingTokens);
        Assert.Equal(10, peek.RemainingRequests);
    }

    [Fact]
    public void Snapshot_RoundTripThroughJson_ContinuesWhereItStopped()
    {
        var limiter = Limiter(5, 1000);
        limiter.TryAcquire(1, 700, T0);
        limiter.TryAcquire(1, 200, T0.AddSeconds(3));

        var json = JsonSerializer.Serialize(limiter.Snapshot());
        var restored = RateLimiter.Restore(JsonSerializer.Deserialize<RateLimiterState>(json)!);

        var later = T0.AddSeconds(7);
        Assert.Equal(limiter.Peek(later), restored.Peek(later));
        Assert.Equal(limiter.TryAcquire(1, 300, later), restored.TryAcquire(1, 300, later));
    }

    [Fact]
    public void TenantTryAcquire_KeyLimitTighter_KeyRefusesAndTenantIsNotCharged()
    {
        var limiter = new TenantRateLimiter(new RateLimitPolicy(10, 10_000), new ManualClock(T0));
        limiter.SetKeyPolicy("k1", new RateLimitPolicy(2, null));
        limiter.TryAcquire("k1", 1, 100, T0);
        var second = limiter.TryAcquire("k1", 1, 100, T0);

        var refused = limiter.TryAcquire("k1", 1, 100, T0);

        Assert.Equal(0, second.RemainingRequests);
        Assert.Equal(2, second.LimitRequests);
        Assert.Equal(RateLimitOutcome.Limited, refused.Outcome);
        Assert.Equal(RateLimitScope.Key, refused.RefusedScope);
        Assert.Equal(TimeSpan.FromSeconds(30), refused.RetryAfter);
        Assert.Equal(8, limiter.Tenant.Peek(T0).RemainingRequests);
        Assert.Equal(9_800, limiter.Tenant.Peek(T0).RemainingTokens);
        Assert.True(limiter.TryAcquire("k2", 1, 100, T0).Allowed);
    }

    [Fact]
    public void TenantTryAcquire_TenantLimitTighter_KeyIsNotCharged()
    {
        var limiter = new TenantRateLimiter(new RateLimitPolicy(1, null), new ManualClock(T0));
        limiter.SetKeyPolicy("k1", new RateLimitPolicy(5, null));
        limiter.TryAcquire("k2", 1, 0, T0);

        var refused = limiter.TryAcquire("k1", 1, 0, T0);

        Assert.Equal(RateLimitScope.Tenant, refused.RefusedScope);
        Assert.Equal(5, limiter.Key("k1")!.Peek(T0).RemainingRequests);
    }

    [Fact]
    public void TenantRefund_KeyWithLimits_RefundsBoth()
    {
        var limiter = new TenantRateLimiter(new RateLimitPolicy(null, 1000), new ManualClock(T0));
        limiter.SetKeyPolicy("k1", new RateLimitPolicy(null, 500));
        limiter.TryAcquire("k1", 1, 500, T0);

        limiter.Settle("k1", admittedTokens: 500, actualTokens: 100);

        Assert.Equal(900, limiter.Tenant.Peek(T0).RemainingTokens);
        Assert.Equal(400, limiter.Key("k1")!.Peek(T0).RemainingTokens);
    }

    [Fact]
    public void TenantSnapshot_RoundTripThroughJson_KeepsKeyCounters()
    {
        var limiter = new TenantRateLimiter(new RateLimitPolicy(10, 1000), new ManualClock(T0));
        limiter.SetKeyPolicy("k1", new RateLimitPolicy(2, null));
        limiter.TryAcquire("k1", 1, 100, T0);
        limiter.TryAcquire("k1", 1, 100, T0);

        var json = JsonSerializer.Serialize(limiter.Snapshot());
        var restored = TenantRateLimiter.Restore(JsonSerializer.Deserialize<TenantRateLimiterState>(json)!, new ManualClock(T0));

        Assert.Equal(RateLimitScope.Key, restored.TryAcquire("k1", 1, 100, T0).RefusedScope);
        Assert.Equal(800, restored.Tenant.Peek(T0).RemainingTokens);
    }

    [Fact]
    public void UpdatePolicies_KeepsWhatEachCounterOwes_DropsKeysNotListed_StartsNewKeysFull()
    {
        var limiter = new TenantRateLimiter(new RateLimitPolicy(10, 1000), new ManualClock(T0));
        limiter.SetKeyPolicy("k1", new RateLimitPolicy(2, null));
        limiter.SetKeyPolicy("k2", new RateLimitPolicy(3, null));
        limiter.TryAcquire("k1", 1, 600, T0);
        limiter.TryAcquire("k1", 1, 100, T0);

        limiter.UpdatePolicies(new RateLimitPolicy(10, 500), new Dictionary<string, RateLimitPolicy> { ["k1"] = new(2, null), ["k3"] = new(1, null) });

        Assert.Equal(0, limiter.Tenant.Peek(T0).RemainingTokens); // 700 owed, capped at the new 500
        Assert.Equal(0, limiter.Key("k1")!.Peek(T0).RemainingRequests);
        Assert.Null(limiter.Key("k2"));
        Assert.Equal(1, limiter.Key("k3")!.Peek(T0).RemainingRequests);
    }

    [Fact]
    public void Constructor_LimitBelowOne_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Limiter(0, null));
    }

    [Fact]
    public void ALimitAboveTheLargestCountable_StoredBeforeItWasRefused_MeansNoLimit_NotAnOverflow()
    {
        // Limits above MaxPerMinute are refused by the admin API now; one stored before that must still serve.
        var policy = new RateLimitPolicy(long.MaxValue, RateLimitPolicy.MaxPerMinute + 1);
        Assert.Null(policy.RequestsPerMinute);
        Assert.Null(policy.TokensPerMinute);
        Assert.Equal(RateLimitPolicy.MaxPerMinute, new RateLimitPolicy(RateLimitPolicy.MaxPerMinute, null).RequestsPerMinute);

        var limiter = new RateLimiter(new RateLimitPolicy(long.MaxValue, long.MaxValue));
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(RateLimitOutcome.Allowed, limiter.TryAcquire(1, 1_000_000, new DateTimeOffset(2026, 3, 14, 12, 0, i, TimeSpan.Zero)).Outcome);
        }
    }

    /// <summary>A request given back (the work refused it as the client's mistake) frees its place for tenant and key, never above the limit.</summary>
    [Fact]
    public void TenantRefundRequest_GivesOneRequestBackToTenantAndKey_NeverAboveTheLimit()
    {
        var limiter = new TenantRateLimiter(new RateLimitPolicy(3, null), new ManualClock(T0));
        limiter.SetKeyPolicy("k1", new RateLimitPolicy(1, null));
        Assert.True(limiter.TryAcquire("k1", 1, 0, T0).Allowed);
        Assert.False(limiter.TryAcquire("k1", 1, 0, T0).Allowed);

        limiter.RefundRequest("k1");
        limiter.RefundRequest("k1");

        Assert.Equal(3, limiter.Tenant.Peek(T0).RemainingRequests);
        Assert.Equal(1, limiter.Key("k1")!.Peek(T0).RemainingRequests);
        Assert.True(limiter.TryAcquire("k1", 1, 0, T0).Allowed);
    }

    [Fact]
    public void TenantPeekReturning_CountsHeldUnitsAsRemaining_PerScope_AndChangesNothing()
    {
        // A lease of 4 requests and 400 tokens taken for k1 (key limited at 10 requests), one request of 100 for k2.
        var limiter = new TenantRateLimiter(new RateLimitPolicy(60, 6_000), new ManualClock(T0));
        limiter.SetKeyPolicy("k1", new RateLimitPolicy(10, null));
        Assert.True(limiter.TryAcquire("k1", 4, 400, T0).Allowed);
        Assert.True(limiter.TryAcquire("k2", 1, 100, T0).Allowed);

        // k1: the key's 6 left plus its lease's 4 is the tighter (10, full: no reset); the tenant's tokens 5,500 + 400.
        var k1 = limiter.PeekReturning("k1", T0, (4, 400), (4, 400));
        Assert.Equal((10L, TimeSpan.Zero, 5_900L), (k1.RemainingRequests!.Value, k1.ResetRequests, k1.RemainingTokens!.Value));

        // k2 sees the tenant's counters with the lease back: 55 + 4 of 60 requests, reset 1 s (1 request at 60/min).
        var k2 = limiter.PeekReturning("k2", T0, (4, 400), (0, 0));
        Assert.Equal((59L, TimeSpan.FromSeconds(1), 5_900L), (k2.RemainingRequests!.Value, k2.ResetRequests, k2.RemainingTokens!.Value));

        // Never above the limit, and nothing changed: the counters still hold what was taken.
        Assert.Equal(60, limiter.PeekReturning(null, T0, (1_000, 0), (0, 0)).RemainingRequests);
        Assert.Equal(6, limiter.Key("k1")!.Peek(T0).RemainingRequests);
        Assert.Equal(55, limiter.Tenant.Peek(T0).RemainingRequests);
        Assert.Equal(5_500, limiter.Tenant.Peek(T0).RemainingTokens);
    }
}
