using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Metering;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>The HTTP layer's reading of the grain's domain decisions: status, OpenAI's error type, code and headers.</summary>
public sealed class AdmissionMappingTests
{
    private static readonly RateLimitView Rates = new(60, 0, TimeSpan.FromSeconds(1), 1000, 20, TimeSpan.FromMilliseconds(1500));

    [Theory]
    [InlineData(AdmissionOutcome.RateLimitedTokens, false, "tokens", "rate_limit_exceeded")]
    [InlineData(AdmissionOutcome.RateLimitedTokens, true, "tokens", "rate_limit_request_too_large")]
    [InlineData(AdmissionOutcome.RateLimitedRequests, false, "requests", "rate_limit_exceeded")]
    public void RateLimitRefusal_HasOpenAIsTypeForTheLimit(AdmissionOutcome outcome, bool tooLarge, string type, string code)
    {
        var result = new AdmissionResult(outcome, Rates, tooLarge ? null : TimeSpan.FromMilliseconds(1200), tooLarge);

        var error = RequestMetering.Refusal(result, 500, "EUR");
        var headers = HeadersOf(result);

        Assert.Equal(429, error.Status);
        Assert.Equal(type, error.Type);
        Assert.Equal(code, error.Code);
        Assert.Equal("1000", headers["x-ratelimit-limit-tokens"]);
        Assert.Equal("20", headers["x-ratelimit-remaining-tokens"]);
        Assert.Equal("1.5s", headers["x-ratelimit-reset-tokens"]);
        Assert.Equal(tooLarge, error.Final); // x-should-retry: false only where waiting never helps
        if (tooLarge)
        {
            Assert.Null(error.RetryAfter);
            Assert.False(headers.ContainsKey("Retry-After"));
        }
        else
        {
            Assert.Equal(TimeSpan.FromMilliseconds(1200), error.RetryAfter); // said as Retry-After 2 and retry-after-ms 1200
            Assert.Equal("2", headers["Retry-After"]);
        }
    }

    [Fact]
    public void BudgetRefusal_IsInsufficientQuota_InTheBudgetsCurrency_WithoutRetryAfter()
    {
        var result = new AdmissionResult(AdmissionOutcome.BudgetExceeded, Rates, TimeSpan.FromHours(3),
            Budget: new BudgetRefusalView("key-9", "day", 5m, 0.25m, 0.5m, "EUR", new DateTimeOffset(2026, 12, 3, 0, 0, 0, TimeSpan.Zero)));

        var error = RequestMetering.Refusal(result, 500, "EUR");

        Assert.Equal(429, error.Status);
        Assert.Equal("insufficient_quota", error.Type);
        Assert.Equal("budget_exceeded", error.Code);
        Assert.Equal("This request could cost up to 0.5 EUR, but key key-9's day budget of 5 EUR has 0.25 EUR left; it resets at 2026-12-03T00:00:00Z.", error.Message);
        Assert.Null(error.RetryAfter);
        Assert.False(HeadersOf(result).ContainsKey("Retry-After"));
        Assert.False(error.Final); // requests in flight may give room back
        Assert.True(RequestMetering.Refusal(result with { Budget = result.Budget! with { Final = true } }, 500, "EUR").Final);
    }

    [Fact]
    public void CurrencyMismatch_NamesBothCurrencies()
    {
        var result = new AdmissionResult(AdmissionOutcome.BudgetCurrencyMismatch, Rates, Budget: new BudgetRefusalView(null, "", 0m, 0m, 1m, "EUR", null));

        var error = RequestMetering.Refusal(result, 10, "USD");

        Assert.Equal("insufficient_quota", error.Type);
        Assert.Equal("budget_currency_mismatch", error.Code);
        Assert.Contains("USD", error.Message, StringComparison.Ordinal);
        Assert.Contains("EUR", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RateLimitHeaders_WrittenIntoTheResponse_AreOpenAIRateLimitHeadersFor_TheSameDecision()
    {
        // Every combination of limits set or not, outcome and retry: the headers written straight into the response are
        // exactly the ones the rate limiter's own formatting gives (names, values, which are present).
        var outcomes = new[] { AdmissionOutcome.Admitted, AdmissionOutcome.RateLimitedRequests, AdmissionOutcome.RateLimitedTokens, AdmissionOutcome.BudgetExceeded };
        foreach (var outcome in outcomes)
        {
            foreach (var tooLarge in new[] { false, true })
            {
                foreach (var retry in new TimeSpan?[] { null, TimeSpan.FromMilliseconds(1200) })
                {
                    foreach (var rate in new RateLimitView?[]
                    {
                        null, Rates, new(null, null, TimeSpan.Zero, 1000, 20, TimeSpan.FromMilliseconds(3)),
                        new(60, 59, TimeSpan.FromMinutes(6), null, null, TimeSpan.Zero), new(100_000_000, 99_999_000, TimeSpan.FromTicks(1), 100_000_000_000, 99_999_000_000, TimeSpan.FromTicks(1)),
                    })
                    {
                        var result = new AdmissionResult(outcome, rate, retry, tooLarge);
                        var limited = outcome is AdmissionOutcome.RateLimitedRequests or AdmissionOutcome.RateLimitedTokens;
                        var expected = rate is null ? [] : Sovereign.Metering.RateLimiting.OpenAIRateLimitHeaders.For(new Sovereign.Metering.RateLimiting.RateLimitDecision
                        {
                            Outcome = !limited ? Sovereign.Metering.RateLimiting.RateLimitOutcome.Allowed : tooLarge ? Sovereign.Metering.RateLimiting.RateLimitOutcome.TooLarge : Sovereign.Metering.RateLimiting.RateLimitOutcome.Limited,
                            RetryAfter = limited ? retry : null,
                            LimitRequests = rate.LimitRequests,
                            RemainingRequests = rate.RemainingRequests,
                            ResetRequests = rate.ResetRequests,
                            LimitTokens = rate.LimitTokens,
                            RemainingTokens = rate.RemainingTokens,
                            ResetTokens = rate.ResetTokens,
                        }).ToDictionary(h => h.Key, h => h.Value, StringComparer.OrdinalIgnoreCase);

                        Assert.Equal(expected.OrderBy(h => h.Key, StringComparer.Ordinal), HeadersOf(result).OrderBy(h => h.Key, StringComparer.Ordinal));
                    }
                }
            }
        }
    }

    private static Dictionary<string, string> HeadersOf(AdmissionResult result)
    {
        var headers = new Microsoft.AspNetCore.Http.HeaderDictionary();
        RequestMetering.WriteRateLimitHeaders(headers, result);
        return headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
    }
}
