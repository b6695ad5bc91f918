using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.OpenAI;
using Sovereign.Gateway.Routing;
using Sovereign.Metering.RateLimiting;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The one door of a key's reads of its tenant's own records (<c>/v1/usage</c>, <c>/v1/usage/{id}</c>,
/// <c>/v1/audit</c>, <c>/v1/keys</c>, <c>/v1/limits</c>) and of the models it may use (<c>/v1/models</c>,
/// <c>/v1/models/{id}</c>): it authenticates the caller and counts the read against
/// <see cref="Hosting.LimitsOptions.TenantReadsPerMinute"/>, with OpenAI's 429 and <c>x-ratelimit-*</c> headers. Each
/// is a database, grain or registry read a valid key could repeat without bound (found by an explorer, session 38;
/// <c>/v1/models</c> was left out). A limit of its own, not the tenant's requests per minute: the tenant console reads
/// six of them per page, which would spend a small inference limit. Counted per gateway (in a cluster, each gateway
/// allows the limit).
/// </summary>
/// <remarks>
/// A key's first refused read is logged at Information (event 4001); the ones after it while the key stays refused
/// (within <see cref="Hosting.AuditOptions.RateLimitSummaryInterval"/> of the last) at Debug, and every interval one
/// line says how many (event 4150), as <see cref="Metering.RateLimitRefusals"/> does for inference: each 429 at
/// Information let a tenant choose the log's volume.
/// </remarks>
internal sealed class TenantReadLimits(InferenceRouter router, IOptions<Hosting.SovereignOptions> options, TimeProvider time, ILogger<TenantReadLimits> logger)
    : Observability.PeriodicSummary(time)
{
    /// <summary>Keys tracked before the counters are started afresh (keys are created by operators only).</summary>
    private const int MaxTrackedKeys = 100_000;

    private readonly ConcurrentDictionary<(string Tenant, string Key), KeyReads> _keys = new();

    /// <inheritdoc/>
    protected override TimeSpan Interval => options.Value.Audit.RateLimitSummaryInterval;

    /// <summary>
    /// Authenticates a read of the caller's own records: a tenant key (403 <c>tenant_key_required</c> without one),
    /// counted, or the 429 to answer with.
    /// </summary>
    /// <param name="context">The request.</param>
    /// <param name="records">What is read, as the 403 names it ("Usage", "The audit trail").</param>
    public async Task<Caller> TenantAsync(HttpContext context, string records)
    {
        var caller = await router.AuthenticateAsync(context);
        if (caller.IsAnonymous)
        {
            throw new OpenAIException(StatusCodes.Status403Forbidden, $"{records} is per tenant: use a tenant API key.", "permission_error", null, "tenant_key_required");
        }

        Count(context, caller);
        return caller;
    }

    /// <summary>Authenticates a read anyone may make where <c>/v1</c> is open (the models): a tenant key's is counted.</summary>
    public async Task<Caller> CallerAsync(HttpContext context)
    {
        var caller = await router.AuthenticateAsync(context);
        Count(context, caller);
        return caller;
    }

    /// <summary>Counts one read, or throws the 429 to answer with; the limit's headers either way.</summary>
    private void Count(HttpContext context, Caller caller)
    {
        if (caller.IsAnonymous)
        {
            return;
        }

        if (_keys.Count >= MaxTrackedKeys)
        {
            _keys.Clear();
        }

        var perMinute = options.Value.Limits.TenantReadsPerMinute;
        var reads = _keys.GetOrAdd((caller.TenantId, caller.KeyId!), _ => new KeyReads(new RateLimiter(new RateLimitPolicy(perMinute, null), Time, RateLimitScope.Key)));
        RateLimitDecision decision;
        var counted = false;
        lock (reads)
        {
            decision = reads.Limiter.TryAcquire(1, 0);
            if (!decision.Allowed)
            {
                var now = Time.GetUtcNow();
                counted = reads.RefusedUntil > now;
                if (counted)
                {
                    reads.First ??= now;
                    reads.Last = now;
                    reads.Counted++;
                }

                reads.RefusedUntil = now + Interval;
            }
        }

        foreach (var (name, value) in OpenAIRateLimitHeaders.For(decision))
        {
            context.Response.Headers[name] = value;
        }

        if (!decision.Allowed)
        {
            if (counted)
            {
                // Its 4001 line at Debug: the key's first refusal was at Information, the summary (4150) says how many.
                Metering.RateLimitRefusals.MarkCounted(context);
            }

            var wait = decision.RetryAfter ?? TimeSpan.FromSeconds(1);
            throw new OpenAIException(StatusCodes.Status429TooManyRequests,
                string.Create(CultureInfo.InvariantCulture,
                    $"Rate limit reached for reads of your tenant's records per min on this API key: Limit {perMinute}, Remaining 0, Requested 1. Please try again in {OpenAIRateLimitHeaders.FormatDuration(wait)}."),
                "requests", null, "rate_limit_exceeded", TimeSpan.FromSeconds(OpenAIRateLimitHeaders.RetryAfterSeconds(wait)));
        }
    }

    /// <summary>Logs one line per key whose refused reads were counted since the last (event 4150).</summary>
    public override void Flush()
    {
        foreach (var ((tenant, key), reads) in _keys)
        {
            long count;
            DateTimeOffset first, last;
            lock (reads)
            {
                if (reads.Counted == 0)
                {
                    continue;
                }

                (count, first, last) = (reads.Counted, reads.First!.Value, reads.Last!.Value);
                (reads.Counted, reads.First, reads.Last) = (0, null, null);
            }

            Observability.GatewayLog.TenantReadRefusalsCounted(logger, tenant, key, count, first, last);
        }
    }

    /// <summary>A key's read counter and the refusals counted since the last summary line (under its lock).</summary>
    private sealed class KeyReads(RateLimiter limiter)
    {
        public RateLimiter Limiter { get; } = limiter;

        /// <summary>Until when a refusal is counted rather than logged at Information (the interval after the last).</summary>
        public DateTimeOffset RefusedUntil { get; set; }

        public long Counted { get; set; }

        public DateTimeOffset? First { get; set; }

        public DateTimeOffset? Last { get; set; }
    }
}
