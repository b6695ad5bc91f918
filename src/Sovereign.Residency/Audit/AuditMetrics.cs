using System.Diagnostics.Metrics;

namespace Sovereign.Residency.Audit;

/// <summary>
/// The audit log's commits as an on-call engineer watches them (meter <c>Sovereign.Audit</c>): every request waits on
/// its decision entry committing, so a database that slows down shows here before requests time out
/// (<c>sovereign_audit_commit_duration_seconds</c>, by outcome: <c>committed</c>, <c>failed</c>, <c>timed_out</c>), and
/// <c>sovereign_audit_entries_total</c> counts the entries those commits carried; <c>sovereign_audit_checkpoint_lag_entries</c>
/// and <c>sovereign_audit_checkpoint_lag_seconds</c> say how far each open writer's head is ahead of its newest signed
/// checkpoint (what a verifier cannot yet prove untouched). Ids, tenants and content never.
/// </summary>
public static class AuditMetrics
{
    /// <summary>The meter name to subscribe to.</summary>
    public const string MeterName = "Sovereign.Audit";

    /// <summary>A batch committed.</summary>
    internal const string Committed = "committed";

    /// <summary>A batch that failed after its retries (the database refused it).</summary>
    internal const string Failed = "failed";

    /// <summary>A batch given up on at the commit timeout.</summary>
    internal const string TimedOut = "timed_out";

    private static readonly Meter Meter = new(MeterName);

    private static readonly Histogram<double> CommitDuration = Meter.CreateHistogram("sovereign.audit.commit.duration", "s",
        "Time to commit one batch of audit entries (its retries included), by outcome.", tags: null,
        new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });

    private static readonly Counter<long> Entries = Meter.CreateCounter<long>("sovereign.audit.entries", "{entry}",
        "Audit entries and checkpoints in the batches that ended, by outcome.");

    private static readonly Lock Gate = new();
    private static readonly List<AuditLog> Open = [];

    /// <summary>The entries no checkpoint covers (<c>sovereign_audit_checkpoint_lag_entries</c>).</summary>
    internal static ObservableGauge<long> LagEntries { get; } = Meter.CreateObservableGauge("sovereign.audit.checkpoint.lag.entries",
        () => Observe(lag => lag.Entries), "{entry}",
        "Entries of this writer's chain that no signed checkpoint covers yet, by chain (shared, or a member chain's name).");

    /// <summary>The seconds since the newest checkpoint with entries unsigned (<c>sovereign_audit_checkpoint_lag_seconds</c>).</summary>
    internal static ObservableGauge<double> LagSeconds { get; } = Meter.CreateObservableGauge("sovereign.audit.checkpoint.lag",
        () => Observe(lag => lag.Seconds), "s",
        "Seconds since this writer's newest signed checkpoint while entries wait unsigned (0 when the head is signed), by chain.");

    /// <summary>Exports <paramref name="log"/>'s checkpoint lag until <see cref="Untrack"/>.</summary>
    internal static void Track(AuditLog log)
    {
        lock (Gate)
        {
            Open.Add(log);
        }
    }

    /// <summary>Stops exporting <paramref name="log"/>'s checkpoint lag (it is closed).</summary>
    internal static void Untrack(AuditLog log)
    {
        lock (Gate)
        {
            Open.Remove(log);
        }
    }

    private static IEnumerable<Measurement<T>> Observe<T>(Func<(long Entries, double Seconds), T> pick)
        where T : struct
    {
        AuditLog[] open;
        lock (Gate)
        {
            open = [.. Open];
        }

        return open.Select(log => new Measurement<T>(pick(log.CheckpointLag()), new KeyValuePair<string, object?>("chain", log.Scope.Name ?? "shared")));
    }

    /// <summary>Records one batch of <paramref name="count"/> entries that ended as <paramref name="outcome"/> after <paramref name="elapsed"/>.</summary>
    internal static void BatchEnded(string outcome, int count, TimeSpan elapsed)
    {
        var tag = new KeyValuePair<string, object?>("outcome", outcome);
        CommitDuration.Record(elapsed.TotalSeconds, tag);
        Entries.Add(count, tag);
    }
}
