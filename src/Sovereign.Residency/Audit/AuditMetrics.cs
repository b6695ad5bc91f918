using System.Diagnostics.Metrics;

namespace Sovereign.Residency.Audit;

/// <summary>
/// The audit log's commits as an on-call engineer watches them (meter <c>Sovereign.Audit</c>): every request waits on
/// its decision entry committing, so a database that slows down shows here before requests time out
/// (<c>sovereign_audit_commit_duration_seconds</c>, by outcome: <c>committed</c>, <c>failed</c>, <c>timed_out</c>), and
/// <c>sovereign_audit_entries_total</c> counts the entries those commits carried. Ids, tenants and content never.
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

    /// <summary>Records one batch of <paramref name="count"/> entries that ended as <paramref name="outcome"/> after <paramref name="elapsed"/>.</summary>
    internal static void BatchEnded(string outcome, int count, TimeSpan elapsed)
    {
        var tag = new KeyValuePair<string, object?>("outcome", outcome);
        CommitDuration.Record(elapsed.TotalSeconds, tag);
        Entries.Add(count, tag);
    }
}
