using Sovereign.Metering.RateLimiting;

namespace Sovereign.Metering.Tests.RateLimiting;

public sealed class OpenAIRateLimitHeadersTests
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 14, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(0L, "0s")]
    [InlineData(1L, "1ms")]
    [InlineData(9 * TimeSpan.TicksPerMillisecond, "9ms")]
    [InlineData(20 * TimeSpan.TicksPerMillisecond, "20ms")]
    [InlineData(547 * TimeSpan.TicksPerMillisecond, "547ms")]
    [InlineData(999 * TimeSpan.TicksPerMillisecond, "999ms")]
    [InlineData(TimeSpan.TicksPerSecond, "1s")]
    [InlineData(1500 * TimeSpan.TicksPerMillisecond, "1.5s")]
    [InlineData(33_023 * TimeSpan.TicksPerMillisecond, "33.023s")]
    [InlineData(60 * TimeSpan.TicksPerSecond, "1m0s")]
    [InlineData(60_050 * TimeSpan.TicksPerMillisecond, "1m0.05s")]
    [InlineData(172_800 * TimeSpan.TicksPerMillisecond, "2m52.8s")]
    [InlineData(6 * TimeSpan.TicksPerMinute, "6m0s")]
    [InlineData(TimeSpan.TicksPerHour, "1h0m0s")]
    [InlineData(3_723_004 * TimeSpan.TicksPerMillisecond, "1h2m3.004s")]
    [InlineData(26 * TimeSpan.TicksPerHour, "26h0m0s")]
    [InlineData(1_080 * TimeSpan.TicksPerMillisecond, "1.08s")]
    [InlineData(1_101 * TimeSpan.TicksPerMillisecond, "1.101s")]
    [InlineData(1_110 * TimeSpan.TicksPerMillisecond, "1.11s")]
    [InlineData(1_001 * TimeSpan.TicksPerMillisecond, "1.001s")]
    [InlineData(3_599_999 * TimeSpan.TicksPerMillisecond, "59m59.999s")]
    public void FormatDuration_Value_FormatsLikeOpenAI(long ticks, string expected)
    {
        // Twice: the second may be the text kept from the first (below a second), and must read the same.
        Assert.Equal(expected, OpenAIRateLimitHeaders.FormatDuration(TimeSpan.FromTicks(ticks)));
        Assert.Equal(expected, OpenAIRateLimitHeaders.FormatDuration(TimeSpan.FromTicks(ticks)));
    }

    [Fact]
    public void FormatLimit_KeptText_IsTheValuesOwn()
    {
        // 0 and 64 share a slot of the kept texts: each still reads as itself, however they alternate.
        foreach (var value in new long[] { 0, 64, 0, 100_000_000, 64, 100_000_000 + 64, long.MaxValue, -1 })
        {
            Assert.Equal(value.ToString(System.Globalization.CultureInfo.InvariantCulture), OpenAIRateLimitHeaders.FormatLimit(value));
        }
    }

    [Theory]
    [InlineData(0L, 1L)]
    [InlineData(1L, 1L)]
    [InlineData(TimeSpan.TicksPerSecond, 1L)]
    [InlineData(1001 * TimeSpan.TicksPerMillisecond, 2L)]
    [InlineData(20 * TimeSpan.TicksPerSecond, 20L)]
    public void RetryAfterSeconds_Wait_RoundsUpToAtLeastOne(long ticks, long expected)
    {
        Assert.Equal(expected, OpenAIRateLimitHeaders.RetryAfterSeconds(TimeSpan.FromTicks(ticks)));
    }

    [Fact]
    public void For_AllowedDecision_SendsTheSixHeadersInOpenAIOrder()
    {
        var limiter = new RateLimiter(new RateLimitPolicy(60, 150_000));
        var decision = limiter.TryAcquire(1, 24, T0);

        var headers = OpenAIRateLimitHeaders.For(decision);

        Assert.Equal(
            [
                new("x-ratelimit-limit-requests", "60"),
                new("x-ratelimit-limit-tokens", "150000"),
                new("x-ratelimit-remaining-requests", "59"),
                new("x-ratelimit-remaining-tokens", "149976"),
                new("x-ratelimit-reset-requests", "1s"),
                new KeyValuePair<string, string>("x-ratelimit-reset-tokens", "10ms"),
            ],
            headers);
    }

    [Fact]
    public void For_LimitedDecision_AddsRetryAfterInWholeSeconds()
    {
        var limiter = new RateLimiter(new RateLimitPolicy(7, null));
        for (var i = 0; i < 7; i++)
        {
            limiter.TryAcquire(1, 0, T0);
        }

        var refused = limiter.TryAcquire(1, 0, T0);
        var headers = OpenAIRateLimitHeaders.For(refused);

        Assert.Equal(TimeSpan.FromMilliseconds(8572), refused.RetryAfter);
        Assert.Contains(new KeyValuePair<string, string>("Retry-After", "9"), headers);
        Assert.Contains(new KeyValuePair<string, string>("x-ratelimit-remaining-requests", "0"), headers);
        Assert.Contains(new KeyValuePair<string, string>("x-ratelimit-reset-requests", "1m0s"), headers);
    }

    [Fact]
    public void For_TooLargeDecision_SendsNoRetryAfter()
    {
        var limiter = new RateLimiter(new RateLimitPolicy(null, 100));

        var headers = OpenAIRateLimitHeaders.For(limiter.TryAcquire(1, 101, T0));

        Assert.DoesNotContain(headers, h => h.Key == OpenAIRateLimitHeaders.RetryAfter);
        Assert.Contains(new KeyValuePair<string, string>("x-ratelimit-remaining-tokens", "100"), headers);
    }
}
