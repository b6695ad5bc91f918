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
        var headers = RequestMetering.RateLimitHeaders(result).ToDictionary(h => h.Key, h => h.Value);

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
            Assert.Equal(TimeSpan.FromSeconds(2), error.RetryAfter);
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
        Assert.DoesNotContain(RequestMetering.RateLimitHeaders(result), h => h.Key == "Retry-After");
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
}
