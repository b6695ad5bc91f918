using CsCheck;
using Sovereign.Metering.RateLimiting;

namespace Sovereign.Metering.Tests.RateLimiting;

public sealed class RateLimiterPropertyTests
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 14, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void TryAcquire_AnySequence_NeverAdmitsMoreThanBurstPlusRefill()
    {
        // Gaps of 0 ms are common on purpose: bursts within one millisecond are where rounding and refunds bite.
        var gap = Gen.OneOf(Gen.Const(0), Gen.Int[0, 4000]);
        var gen = Gen.Select(Gen.Int[1, 60], Gen.Select(gap, Gen.Int[1, 70], Gen.Int[0, 3], Gen.Bool).Array[1, 80]);
        gen.Sample((limit, steps) =>
        {
            var limiter = new RateLimiter(new RateLimitPolicy(null, limit));
            var now = T0;
            var events = new List<(long AtMs, long Delta)>();
            var pendingRefunds = new List<long>();
            foreach (var (gapMs, tokens, refundQuarters, refundLater) in steps)
            {
                now = now.AddMilliseconds(gapMs);
                var atMs = (long)(now - T0).TotalMilliseconds;

                // Refunds settle late too (after the counter refilled): they must never push it above full.
                foreach (var pending in pendingRefunds)
                {
                    limiter.Refund(pending);
                    events.Add((atMs, -pending));
                }

                pendingRefunds.Clear();
                var decision = limiter.TryAcquire(1, tokens, now);
                Assert.Equal(tokens > limit, decision.Outcome == RateLimitOutcome.TooLarge);
                if (!decision.Allowed)
                {
                    continue;
                }

                events.Add((atMs, tokens));
                var refund = tokens * refundQuarters / 4;
                if (refundLater)
                {
                    pendingRefunds.Add(refund);
                }
                else
                {
                    limiter.Refund(refund);
                    events.Add((atMs, -refund));
                }
            }

            // Any run of consecutive events: tokens taken minus refunded <= limit * (1 + span / 1 min).
            for (var i = 0; i < events.Count; i++)
            {
                long sum = 0;
                for (var j = i; j < events.Count; j++)
                {
                    sum += events[j].Delta;
                    var span = events[j].AtMs - events[i].AtMs;
                    Assert.True(sum * 60_000 <= (limit * 60_000L) + (limit * span), $"{sum} tokens in {span} ms with limit {limit}/min");
                }
            }
        }, iter: 400);
    }

    [Fact]
    public void TryAcquire_Refused_RetryAfterIsExact()
    {
        var gen = Gen.Select(Gen.Int[1, 1000], Gen.Int[1, 100], Gen.Select(Gen.Int[0, 3000], Gen.Int[1, 1000]).Array[1, 40]);
        gen.Sample((tokenLimit, requestLimit, steps) =>
        {
            var limiter = new RateLimiter(new RateLimitPolicy(requestLimit, tokenLimit));
            var now = T0;
            foreach (var (gapMs, tokens) in steps)
            {
                now = now.AddMilliseconds(gapMs);
                var decision = limiter.TryAcquire(1, tokens, now);
                if (decision.Outcome != RateLimitOutcome.Limited)
                {
                    Assert.Equal(tokens > tokenLimit, decision.Outcome == RateLimitOutcome.TooLarge);
                    continue;
                }

                var wait = decision.RetryAfter!.Value;
                Assert.True(wait > TimeSpan.Zero);
                var early = RateLimiter.Restore(limiter.Snapshot());
                Assert.False(early.TryAcquire(1, tokens, now + wait - TimeSpan.FromMilliseconds(1)).Allowed);
                var onTime = RateLimiter.Restore(limiter.Snapshot());
                Assert.True(onTime.TryAcquire(1, tokens, now + wait).Allowed);
            }
        }, iter: 400);
    }
}
