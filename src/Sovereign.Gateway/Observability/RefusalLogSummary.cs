using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace Sovereign.Gateway.Observability;

/// <summary>
/// Keeps a known caller's repeated refusals from choosing the log's volume: the first refusal of a caller (a tenant's
/// key, an operator token, a console session) with a status and code is logged at Information (event 4001), the same
/// refusals after it while they keep coming (within <see cref="Hosting.AuditOptions.RateLimitSummaryInterval"/> of the
/// last) at Debug, and every interval one line says how many (event 4170). A client sending only bad requests wrote one
/// line per request at its own rate (explorer21's soak: ~45 bytes a request); only 429s were summarised
/// (<see cref="Metering.RateLimitRefusals"/>, which keeps summarising them: they are not counted here).
/// </summary>
/// <remarks>
/// Keyed by the caller's ids, the status and the error code only, never the path or anything else the client chose, so
/// the memory is bounded by <see cref="MaxTracked"/>: past it, what was counted is logged and the table starts afresh.
/// Anonymous callers (a fresh install open on loopback) are not tracked: each of their refusals is a line, as before.
/// </remarks>
internal sealed class RefusalLogSummary(IOptions<Hosting.SovereignOptions> options, TimeProvider time, ILoggerFactory loggers) : PeriodicSummary(time)
{
    /// <summary>Callers × statuses × codes tracked before the table is logged and started afresh.</summary>
    public const int MaxTracked = 10_000;

    private readonly ConcurrentDictionary<(string Caller, int Status, string Code), Refusals> _refusals = new();
    private readonly ILogger _logger = loggers.CreateLogger(GatewayLog.RequestsCategory);
    private readonly Lock _resetting = new();

    /// <inheritdoc/>
    protected override TimeSpan Interval => options.Value.Audit.RateLimitSummaryInterval;

    /// <summary>
    /// Whether this refusal is one to log at Information: the caller's first with this status and code, or the first
    /// after a quiet interval. Otherwise it is counted for the next summary line and the caller logs it at Debug.
    /// </summary>
    public bool IsFirst(string caller, int status, string? code)
    {
        var key = (caller, status, code ?? "");
        if (!_refusals.TryGetValue(key, out var refusals))
        {
            if (_refusals.Count >= MaxTracked)
            {
                lock (_resetting)
                {
                    if (_refusals.Count >= MaxTracked)
                    {
                        Flush();
                        _refusals.Clear();
                    }
                }
            }

            refusals = _refusals.GetOrAdd(key, _ => new Refusals());
        }

        var now = Time.GetUtcNow();
        lock (refusals)
        {
            var counted = refusals.QuietUntil > now;
            if (counted)
            {
                refusals.First ??= now;
                refusals.Last = now;
                refusals.Counted++;
            }

            refusals.QuietUntil = now + Interval;
            return !counted;
        }
    }

    /// <summary>Logs one line per caller, status and code whose refusals were counted since the last (event 4170), and forgets the quiet ones.</summary>
    public override void Flush()
    {
        var now = Time.GetUtcNow();
        foreach (var (key, refusals) in _refusals)
        {
            long count;
            DateTimeOffset first, last;
            lock (refusals)
            {
                if (refusals.Counted == 0)
                {
                    if (refusals.QuietUntil <= now)
                    {
                        // Quiet for a whole interval: its next refusal is logged again, so the entry is not needed.
                        _refusals.TryRemove(new KeyValuePair<(string, int, string), Refusals>(key, refusals));
                    }

                    continue;
                }

                (count, first, last) = (refusals.Counted, refusals.First!.Value, refusals.Last!.Value);
                (refusals.Counted, refusals.First, refusals.Last) = (0, null, null);
            }

            GatewayLog.RefusalsCounted(_logger, key.Caller, key.Status, key.Code.Length == 0 ? null : key.Code, count, first, last);
        }
    }

    /// <summary>A caller's refusals of one status and code counted since the last summary line (under its lock).</summary>
    private sealed class Refusals
    {
        /// <summary>Until when a refusal is counted rather than logged at Information (the interval after the last).</summary>
        public DateTimeOffset QuietUntil { get; set; }

        public long Counted { get; set; }

        public DateTimeOffset? First { get; set; }

        public DateTimeOffset? Last { get; set; }
    }
}
