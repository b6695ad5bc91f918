using System.Globalization;
using System.Text;

namespace Sovereign.Metering.RateLimiting;

/// <summary>
/// OpenAI's rate-limit response headers, formatted as OpenAI formats them: counts as integers, resets as Go-style
/// durations at millisecond precision ("20ms", "1s", "1.5s", "6m0s", "1h0m0s"), and an integer Retry-After in
/// seconds (at least 1) on a refusal that waiting can cure.
/// </summary>
public static class OpenAIRateLimitHeaders
{
    /// <summary>Requests per minute allowed.</summary>
    public const string LimitRequests = "x-ratelimit-limit-requests";

    /// <summary>Tokens per minute allowed.</summary>
    public const string LimitTokens = "x-ratelimit-limit-tokens";

    /// <summary>Requests left.</summary>
    public const string RemainingRequests = "x-ratelimit-remaining-requests";

    /// <summary>Tokens left.</summary>
    public const string RemainingTokens = "x-ratelimit-remaining-tokens";

    /// <summary>Time until the request counter is back to its initial state.</summary>
    public const string ResetRequests = "x-ratelimit-reset-requests";

    /// <summary>Time until the token counter is back to its initial state.</summary>
    public const string ResetTokens = "x-ratelimit-reset-tokens";

    /// <summary>Whole seconds to wait before retrying (only on a <see cref="RateLimitOutcome.Limited"/> refusal).</summary>
    public const string RetryAfter = "Retry-After";

    /// <summary>
    /// The headers for a decision, in OpenAI's order. A dimension with no limit sends nothing; Retry-After is sent
    /// only when the request was limited (not when it is too large to ever fit).
    /// </summary>
    public static IReadOnlyList<KeyValuePair<string, string>> For(RateLimitDecision decision)
    {
        ArgumentNullException.ThrowIfNull(decision);
        var headers = new List<KeyValuePair<string, string>>(7);
        if (decision.LimitRequests is { } limitRequests)
        {
            headers.Add(new(LimitRequests, limitRequests.ToString(CultureInfo.InvariantCulture)));
        }

        if (decision.LimitTokens is { } limitTokens)
        {
            headers.Add(new(LimitTokens, limitTokens.ToString(CultureInfo.InvariantCulture)));
        }

        if (decision.RemainingRequests is { } remainingRequests)
        {
            headers.Add(new(RemainingRequests, remainingRequests.ToString(CultureInfo.InvariantCulture)));
        }

        if (decision.RemainingTokens is { } remainingTokens)
        {
            headers.Add(new(RemainingTokens, remainingTokens.ToString(CultureInfo.InvariantCulture)));
        }

        if (decision.LimitRequests is not null)
        {
            headers.Add(new(ResetRequests, FormatDuration(decision.ResetRequests)));
        }

        if (decision.LimitTokens is not null)
        {
            headers.Add(new(ResetTokens, FormatDuration(decision.ResetTokens)));
        }

        if (decision.Outcome == RateLimitOutcome.Limited && decision.RetryAfter is { } retryAfter)
        {
            headers.Add(new(RetryAfter, RetryAfterSeconds(retryAfter).ToString(CultureInfo.InvariantCulture)));
        }

        return headers;
    }

    /// <summary>Whole seconds, rounded up, at least 1 (a client told "0" would retry at once and be refused again).</summary>
    public static long RetryAfterSeconds(TimeSpan wait) =>
        Math.Max(1, (wait.Ticks + TimeSpan.TicksPerSecond - 1) / TimeSpan.TicksPerSecond);

    /// <summary>
    /// Go's <c>time.Duration.String()</c> at millisecond precision (sub-millisecond rounds up), which is what OpenAI
    /// sends: "0s", "547ms", "1s", "2m52.8s", "6m0s", "1h0m0s".
    /// </summary>
    public static string FormatDuration(TimeSpan value)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.Zero);
        var ms = (value.Ticks + TimeSpan.TicksPerMillisecond - 1) / TimeSpan.TicksPerMillisecond;
        if (ms == 0)
        {
            return "0s";
        }

        if (ms < 1000)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{ms}ms");
        }

        var hours = ms / 3_600_000;
        var minutes = ms / 60_000 % 60;
        var seconds = ms / 1000 % 60;
        var fraction = ms % 1000;
        var text = new StringBuilder();
        if (hours > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"{hours}h");
        }

        if (hours > 0 || minutes > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"{minutes}m");
        }

        text.Append(CultureInfo.InvariantCulture, $"{seconds}");
        if (fraction > 0)
        {
            text.Append('.').Append(fraction.ToString("D3", CultureInfo.InvariantCulture).TrimEnd('0'));
        }

        return text.Append('s').ToString();
    }
}
