using System.Globalization;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Hosting;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Observability;
using Sovereign.Residency.Audit;
using Sovereign.Storage;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Scheduled audit retention (<c>Sovereign:Audit:Archive</c>): every <see cref="AuditArchiveOptions.Interval"/>, from
/// start, archives the entries older than <see cref="AuditArchiveOptions.AfterDays"/> whole UTC days into a new file
/// of the archive directory, through <see cref="AuditArchive.ArchiveToFileAsync"/>, the path <c>sovereign audit
/// archive</c> takes: written, flushed, read back and verified before anything is removed, under the database-wide
/// archive lock so two gateways (or a gateway and the CLI) never archive at once. Off unless set; runs only on
/// processes that sign checkpoints (gateways and <c>--role all</c>, never a node). A failure removes nothing, is
/// logged (event 4202) and tried again at the next run, except a log that no longer holds the head this server last
/// signed (its witness): that is the finding the running log stops the server on, so it is handed to the log
/// (<see cref="AuditLog.ReportIntegrityLost"/>): nothing more is appended or signed, event 4220, and serve exits 3.
/// </summary>
/// <remarks>
/// The database and the operator key are resolved only when a run archives: a node, or a process with retention off,
/// never opens the key for it.
/// </remarks>
internal sealed class AuditRetention(
    Lazy<SqlDatabase> database,
    Lazy<OperatorSigningKey> signingKey,
    Lazy<AuditLog> log,
    IOptions<SovereignOptions> options,
    IOptions<SovereignClusterOptions> cluster,
    TimeProvider time,
    ILogger<AuditRetention> logger) : BackgroundService
{
    /// <summary>Whether this process archives: the setting is on and it signs checkpoints (not a cluster node).</summary>
    public bool Enabled => options.Value.Audit.Archive.AfterDays > 0 && ControlPlaneServices.SignsAuditCheckpoints(cluster.Value);

    /// <summary>The archive directory (the setting, or &lt;data dir&gt;/audit-archive).</summary>
    public string Directory => options.Value.Audit.Archive.ResolvedDirectory(options.Value.ResolvedDataDirectory);

    /// <summary>This server's witness: the last head it signed.</summary>
    private string WitnessPath => Path.Combine(options.Value.ResolvedDataDirectory, AuditWitness.FileName);

    /// <summary>Entries written before this time are due at <paramref name="now"/>: midnight UTC, AfterDays days back.</summary>
    public DateTimeOffset CutoffAt(DateTimeOffset now) =>
        new DateTimeOffset(now.UtcDateTime.Date, TimeSpan.Zero).AddDays(-options.Value.Audit.Archive.AfterDays);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!Enabled)
        {
            return;
        }

        using var timer = new PeriodicTimer(options.Value.Audit.Archive.Interval, time);
        do
        {
            await RunOnceAsync(stoppingToken);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>
    /// One run: archives what is due now and logs the outcome. Null when this process does not archive (off, or a node);
    /// a failure is logged and returned as null too (nothing was removed; the next run tries again).
    /// </summary>
    public async Task<AuditArchiveFileOutcome?> RunOnceAsync(CancellationToken cancellationToken = default)
    {
        if (!Enabled)
        {
            return null;
        }

        var cutoff = CutoffAt(time.GetUtcNow());
        var directory = Directory;
        var interval = options.Value.Audit.Archive.Interval;
        try
        {
            System.IO.Directory.CreateDirectory(directory);
            // This server's witness: a log rewritten since it last signed is refused (event 4202), nothing archived or removed.
            var witness = AuditWitness.Read(WitnessPath);
            var outcome = await AuditArchive.ArchiveToFileAsync(database.Value, signingKey.Value, cutoff, FreeFileName(directory, cutoff), witness, time, cancellationToken);
            switch (outcome.Status)
            {
                case AuditArchiveFileStatus.Archived:
                    GatewayLog.AuditArchived(logger, outcome.Summary!.FirstSequence, outcome.Summary.LastSequence, outcome.Summary.Entries, cutoff, outcome.Path, outcome.Sha256, outcome.Removal!.Removed);
                    break;
                case AuditArchiveFileStatus.Busy:
                    GatewayLog.AuditArchiveBusy(logger, cutoff);
                    break;
                case AuditArchiveFileStatus.NothingToArchive:
                    GatewayLog.AuditArchiveNothingDue(logger, cutoff);
                    break;
                case AuditArchiveFileStatus.NotVerified:
                    GatewayLog.AuditArchiveFailed(logger, null, cutoff, directory,
                        $"the file {outcome.Path} did not verify when read back ({outcome.Problems.FirstOrDefault()}); it is kept for inspection", interval);
                    break;
            }

            return outcome;
        }
        catch (AuditIntegrityException lost) when (lost.Problems.Any(p => p.Kind == AuditProblemKind.WitnessMismatch))
        {
            // The chain was rewritten under this server: it used to log 4202, wait for the next run and serve on, and on
            // PostgreSQL its unsigned appends extended the rewritten chain until the next signature stopped it. Fail
            // closed at once instead, as the log does when it finds the same (event 4220, exit 3).
            log.Value.ReportIntegrityLost(new AuditIntegrityException(
                $"Scheduled audit retention found that the audit log no longer holds the head this server last signed (recorded in {WitnessPath}): " +
                $"{lost.Problems.First(p => p.Kind == AuditProblemKind.WitnessMismatch).Message}. Nothing was archived or removed.", lost.Problems));
            return null;
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            // Not writable, disk full, the database unreachable, a chain that does not verify: the entries stay.
            GatewayLog.AuditArchiveFailed(logger, exception, cutoff, directory, exception.Message, interval);
            return null;
        }
    }

    /// <summary>
    /// <c>audit-before-2026-09-05.jsonl</c>, or <c>audit-before-2026-09-05.2.jsonl</c> and so on when that name is taken
    /// (a run of the same day that failed after writing): an archive file is never overwritten (the file is also
    /// created with CreateNew).
    /// </summary>
    internal static string FreeFileName(string directory, DateTimeOffset cutoff)
    {
        var stem = "audit-before-" + cutoff.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var path = Path.Combine(directory, stem + ".jsonl");
        for (var n = 2; File.Exists(path); n++)
        {
            path = Path.Combine(directory, string.Create(CultureInfo.InvariantCulture, $"{stem}.{n}.jsonl"));
        }

        return path;
    }
}
