using System.Globalization;

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
    /// A limit as its header's value. Limits change only when the operator sets them, and every admitted request of a
    /// tenant sends the same ones, so the last text made for each of a few values is kept and reused.
    /// </summary>
    public static string FormatLimit(long limit)
    {
        var slot = (int)((ulong)limit % (ulong)RecentLimits.Length);
        if (Volatile.Read(ref RecentLimits[slot]) is { } recent && recent.Value == limit)
        {
            return recent.Text;
        }

        var made = new FormattedCount(limit, limit.ToString(CultureInfo.InvariantCulture));
        Volatile.Write(ref RecentLimits[slot], made);
        return made.Text;
    }

    private static readonly FormattedCount?[] RecentLimits = new FormattedCount?[64];

    private sealed record FormattedCount(long Value, string Text);

    /// <summary>
    /// Go's <c>time.Duration.String()</c> at millisecond precision (sub-millisecond rounds up), which is what OpenAI
    /// sends: "0s", "547ms", "1s", "2m52.8s", "6m0s", "1h0m0s". Below a second (a reset under a busy limit: every
    /// request's header) the text is made once per value and reused.
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
            return Volatile.Read(ref Milliseconds[ms]) ?? (Milliseconds[ms] = string.Create(CultureInfo.InvariantCulture, $"{ms}ms"));
        }

        var hours = ms / 3_600_000;
        var minutes = ms / 60_000 % 60;
        var seconds = ms / 1000 % 60;
        var fraction = ms % 1000;
        Span<char> text = stackalloc char[48];
        var length = 0;
        if (hours > 0)
        {
            Append(text, ref length, hours);
            text[length++] = 'h';
        }

        if (hours > 0 || minutes > 0)
        {
            Append(text, ref length, minutes);
            text[length++] = 'm';
        }

        Append(text, ref length, seconds);
        if (fraction > 0)
        {
            // Three digits, trailing zeros dropped: 500 -> ".5", 80 -> ".08".
            text[length++] = '.';
            text[length++] = (char)('0' + fraction / 100);
            if (fraction % 100 > 0)
            {
                text[length++] = (char)('0' + fraction / 10 % 10);
                if (fraction % 10 > 0)
                {
                    text[length++] = (char)('0' + fraction % 10);
                }
            }
        }

        text[length++] = 's';
        return new string(text[..length]);

        static void Append(Span<char> text, ref int length, long value)
        {
            value.TryFormat(text[length..], out var written, provider: CultureInfo.InvariantCulture);
            length += written;
        }
    }

    private static readonly string?[] Milliseconds = new string?[1000];
}
