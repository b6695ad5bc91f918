using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.OpenAI;
using Sovereign.Residency.Audit;

namespace Sovereign.Gateway.Metering;

/// <summary>
/// Bounds the evidence a key over its rate limit leaves. A key's first rate-limit refusal keeps its own entries (the
/// decision, its rejection) and usage record, and marks the key limited for <see cref="AuditOptions.RateLimitSummaryInterval"/>;
/// while it is, its requests are admitted before their decision is recorded, and each one the rate limit refuses
/// (requests or tokens per minute, before any work, no money) is counted here instead. Every interval, and when the
/// server stops, the counts become one <c>inference.rate_limited</c> entry per key: "refused N times between t1 and
/// t2". A flood wrote two entries per 429 (16,150 in 10 s), so a tenant with a key chose the chain's length.
/// </summary>
/// <remarks>
/// Counts live in memory until written: a process killed meanwhile loses at most one interval's count of refusals
/// that ran nothing and billed nothing (each such key's first refusal is in the log). Budget and residency refusals are
/// never counted here: they keep their own entries.
/// </remarks>
internal sealed class RateLimitRefusals(AuditLog audit, IOptions<Hosting.SovereignOptions> options, TimeProvider time, ILogger<RateLimitRefusals> logger) : BackgroundService
{
    /// <summary>The summary entry's action.</summary>
    public const string Action = "inference.rate_limited";

    private readonly ConcurrentDictionary<(string Tenant, string Key), Window> _windows = new();

    private TimeSpan Interval => options.Value.Audit.RateLimitSummaryInterval;

    /// <summary>Whether the rate limit refused this key within the interval: its next requests are admitted before their decision is recorded.</summary>
    public bool IsLimited(Caller caller) =>
        !caller.IsAnonymous && _windows.TryGetValue((caller.TenantId, caller.KeyId!), out var window) && window.LimitedUntil > time.GetUtcNow();

    /// <summary>Whether <paramref name="refusal"/> is the rate limit's (RPM or TPM, also a request that can never fit).</summary>
    public static bool IsRateLimit(OpenAIException refusal) =>
        refusal is { Status: StatusCodes.Status429TooManyRequests, Code: "rate_limit_exceeded" or "rate_limit_request_too_large" };

    /// <summary>Marks the key limited after a refusal recorded with its own entries.</summary>
    public void NoteLimited(Caller caller)
    {
        if (!caller.IsAnonymous)
        {
            Update(caller, window => window.LimitedUntil = time.GetUtcNow() + Interval);
        }
    }

    /// <summary>Counts a rate-limit refusal of a limited key, which has no entries of its own.</summary>
    public void Count(Caller caller, OpenAIException refusal)
    {
        var now = time.GetUtcNow();
        Update(caller, window =>
        {
            window.First ??= now;
            window.Last = now;
            window.Count++;
            if (refusal.Type == "tokens")
            {
                window.Tokens++;
            }
            else
            {
                window.Requests++;
            }

            if (refusal.Code == "rate_limit_request_too_large")
            {
                window.TooLarge++;
            }

            window.LimitedUntil = now + Interval;
        });
    }

    /// <summary>Marks an answer as a counted refusal: its 4001 line is written at Debug, the summary's line says how many.</summary>
    public static void MarkCounted(Microsoft.AspNetCore.Http.HttpContext context) => context.Items[CountedKey] = true;

    /// <summary>Whether <see cref="MarkCounted"/> marked this answer.</summary>
    public static bool WasCounted(Microsoft.AspNetCore.Http.HttpContext context) => context.Items.ContainsKey(CountedKey);

    private static readonly object CountedKey = new();

    /// <summary>Writes one entry per key with refusals counted since the last, and forgets keys no longer limited.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        foreach (var (scope, window) in _windows)
        {
            Window? counted = null;
            lock (window)
            {
                if (window.Count > 0)
                {
                    counted = window.TakeCounts();
                }
                else if (window.LimitedUntil <= now)
                {
                    // Removed under its lock: a refusal counted after this finds it removed and starts another.
                    window.Removed = true;
                    _windows.TryRemove(new KeyValuePair<(string, string), Window>(scope, window));
                }
            }

            if (counted is null)
            {
                continue;
            }

            try
            {
                await audit.AppendAsync(SummaryOf(scope.Tenant, scope.Key, counted), cancellationToken);
                Observability.GatewayLog.RateLimitRefusalsCounted(logger, scope.Tenant, scope.Key, counted.Count, counted.First!.Value, counted.Last!.Value);
            }
            catch (Exception ex)
            {
                // Not lost: the counts go back, and the next flush (the last one at stop) writes them with the ones
                // counted meanwhile.
                Update(scope.Tenant, scope.Key, window => window.Add(counted));
                if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested)
                {
                    throw;
                }

                Observability.GatewayLog.RateLimitSummaryFailed(logger, ex, scope.Tenant, counted.Count);
            }
        }
    }

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await FlushAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: StopAsync writes what is left.
        }
    }

    /// <inheritdoc/>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await FlushAsync(CancellationToken.None);
    }

    private AuditRecord SummaryOf(string tenant, string key, Window counted)
    {
        var invariant = CultureInfo.InvariantCulture;
        var (first, last) = (counted.First!.Value.ToString("O", invariant), counted.Last!.Value.ToString("O", invariant));
        var jurisdiction = options.Value.Jurisdiction;
        return new AuditRecord
        {
            Kind = AuditKind.Inference,
            Actor = key,
            Action = Action,
            Tenant = tenant,
            KeyId = key,
            Gateway = options.Value.NodeId,
            Jurisdiction = string.IsNullOrWhiteSpace(jurisdiction) ? null : jurisdiction.ToUpperInvariant(),
            Decision = AuditDecision.Refused,
            DecisionCode = "rate_limit_exceeded",
            Reasons = [string.Create(invariant, $"refused {counted.Count} times between {first} and {last} by the rate limit, before any work: nothing ran and nothing was billed")],
            Details = new Dictionary<string, string>
            {
                ["count"] = counted.Count.ToString(invariant),
                ["first_at"] = first,
                ["last_at"] = last,
                ["requests_per_minute"] = counted.Requests.ToString(invariant),
                ["tokens_per_minute"] = counted.Tokens.ToString(invariant),
                ["request_too_large"] = counted.TooLarge.ToString(invariant),
            },
        };
    }

    private void Update(Caller caller, Action<Window> change) => Update(caller.TenantId, caller.KeyId!, change);

    private void Update(string tenant, string key, Action<Window> change)
    {
        while (true)
        {
            var window = _windows.GetOrAdd((tenant, key), _ => new Window());
            lock (window)
            {
                if (!window.Removed)
                {
                    change(window);
                    return;
                }
            }
        }
    }

    private sealed class Window
    {
        public DateTimeOffset LimitedUntil { get; set; }

        public bool Removed { get; set; }

        public long Count { get; set; }

        public long Requests { get; set; }

        public long Tokens { get; set; }

        public long TooLarge { get; set; }

        public DateTimeOffset? First { get; set; }

        public DateTimeOffset? Last { get; set; }

        /// <summary>The counts so far, leaving this window empty (still limited until its time).</summary>
        public Window TakeCounts()
        {
            var taken = new Window { Count = Count, Requests = Requests, Tokens = Tokens, TooLarge = TooLarge, First = First, Last = Last };
            (Count, Requests, Tokens, TooLarge, First, Last) = (0, 0, 0, 0, null, null);
            return taken;
        }

        /// <summary>Takes back counts whose entry could not be written.</summary>
        public void Add(Window counts)
        {
            (Count, Requests, Tokens, TooLarge) = (Count + counts.Count, Requests + counts.Requests, Tokens + counts.Tokens, TooLarge + counts.TooLarge);
            First = First is { } first && first < counts.First ? first : counts.First;
            Last = Last is { } last && last > counts.Last ? last : counts.Last;
        }
    }
}
