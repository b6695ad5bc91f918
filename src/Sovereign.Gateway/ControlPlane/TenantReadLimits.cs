using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.OpenAI;
using Sovereign.Metering.RateLimiting;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Counts a key's reads of its tenant's own records (<c>/v1/usage</c>, <c>/v1/audit</c>, <c>/v1/keys</c>,
/// <c>/v1/limits</c>) against <see cref="Hosting.LimitsOptions.TenantReadsPerMinute"/>, with OpenAI's 429 and
/// <c>x-ratelimit-*</c> headers. Each is a database or grain read a valid key could repeat without bound (found by an
/// explorer, session 38). A limit of its own, not the tenant's requests per minute: the tenant console reads six of
/// them per page, which would spend a small inference limit. Counted per gateway (in a cluster, each gateway allows
/// the limit).
/// </summary>
internal sealed class TenantReadLimits(IOptions<Hosting.SovereignOptions> options, TimeProvider time)
{
    /// <summary>Keys tracked before the counters are started afresh (keys are created by operators only).</summary>
    private const int MaxTrackedKeys = 100_000;

    private readonly ConcurrentDictionary<(string Tenant, string Key), RateLimiter> _limiters = new();

    /// <summary>Counts one read, or throws the 429 to answer with; the limit's headers either way.</summary>
    public void Count(HttpContext context, Caller caller)
    {
        if (caller.IsAnonymous)
        {
            return;
        }

        if (_limiters.Count >= MaxTrackedKeys)
        {
            _limiters.Clear();
        }

        var perMinute = options.Value.Limits.TenantReadsPerMinute;
        var limiter = _limiters.GetOrAdd((caller.TenantId, caller.KeyId!), _ => new RateLimiter(new RateLimitPolicy(perMinute, null), time, RateLimitScope.Key));
        RateLimitDecision decision;
        lock (limiter)
        {
            decision = limiter.TryAcquire(1, 0);
        }

        foreach (var (name, value) in OpenAIRateLimitHeaders.For(decision))
        {
            context.Response.Headers[name] = value;
        }

        if (!decision.Allowed)
        {
            var wait = decision.RetryAfter ?? TimeSpan.FromSeconds(1);
            throw new OpenAIException(StatusCodes.Status429TooManyRequests,
                string.Create(CultureInfo.InvariantCulture,
                    $"Rate limit reached for reads of your tenant's records per min on this API key: Limit {perMinute}, Remaining 0, Requested 1. Please try again in {OpenAIRateLimitHeaders.FormatDuration(wait)}."),
                "requests", null, "rate_limit_exceeded", TimeSpan.FromSeconds(OpenAIRateLimitHeaders.RetryAfterSeconds(wait)));
        }
    }
}
