using Microsoft.Extensions.Hosting;
using Sovereign.Cluster.Hosting;
using Sovereign.Residency.Audit;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Counts this cluster process's heartbeats in its <c>audit_instances</c> row every <see cref="Interval"/>
/// (<see cref="AuditLog.HeartbeatInstanceAsync"/>), gateway or node: the proof, beside Orleans' membership, that it still
/// runs. A gateway closes the open decisions of a process that membership declared dead or no longer lists only once
/// its count has stopped moving (<see cref="InterruptedRequests"/>), so a process the table lost (Redis restarted empty)
/// is closed once it has really stopped, and one cut off from Redis that still writes to PostgreSQL never is.
/// </summary>
/// <remarks>
/// A process that could not count for that long (cut off from PostgreSQL as well) may have been closed by then. Its
/// next heartbeat finds its row claimed: it then stops, as a silo declared dead does (event 4216, serve exits 75 for its
/// supervisor to start a new process). Outcomes it wrote before that stand beside the closing entries (the ledger keeps
/// the first record).
/// </remarks>
public sealed partial class InstanceHeartbeat(
    Lazy<AuditLog> audit,
    GatewayInstance instance,
    IHostApplicationLifetime lifetime,
    ILogger<InstanceHeartbeat> logger) : BackgroundService
{
    /// <summary>How often a process counts a heartbeat.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    /// <summary><c>serve</c>'s exit status once another gateway took this process for dead: a supervisor starts it again.</summary>
    public const int ClosedByAnotherExitCode = 75;

    private int _closedByAnother;

    /// <summary>True once another gateway claimed this process's open decisions and the host was told to stop.</summary>
    public bool ClosedByAnother => Volatile.Read(ref _closedByAnother) != 0;

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        instance.Id is { } id
            ? PeriodicRefresh.RunAsync(Interval, cancellationToken => BeatAsync(cancellationToken), ex => LogHeartbeatFailed(logger, ex, id), stoppingToken)
            : Task.CompletedTask;

    /// <summary>One heartbeat; false (and the host told to stop, once) when another gateway has taken this process for dead.</summary>
    internal async Task<bool> BeatAsync(CancellationToken cancellationToken)
    {
        var id = instance.Id ?? throw new InvalidOperationException("Only a cluster process on the shared database counts heartbeats.");
        if (ClosedByAnother || await audit.Value.HeartbeatInstanceAsync(id, cancellationToken))
        {
            return !ClosedByAnother;
        }

        if (Interlocked.Exchange(ref _closedByAnother, 1) == 0)
        {
            LogClosedByAnother(logger, id);
            // Off this loop: the stopping callbacks wait for the hosted services, this one included.
            _ = Task.Run(lifetime.StopApplication);
        }

        return false;
    }

    [LoggerMessage(EventId = 4215, EventName = "InstanceHeartbeatFailed", Level = LogLevel.Warning,
        Message = "Process {Instance} could not count its heartbeat in audit_instances (tried again every 5 s): while it cannot, a gateway that no longer sees it in the cluster's membership may take it for dead and close its open requests. Check the database and the role's UPDATE right on audit_instances")]
    private static partial void LogHeartbeatFailed(ILogger logger, Exception exception, string instance);

    [LoggerMessage(EventId = 4216, EventName = "InstanceClosedByAnotherStopping", Level = LogLevel.Critical,
        Message = "Another gateway took process {Instance} for dead (it counted no heartbeat for longer than the grace) and closed its open requests as inference.interrupted: this process stops (serve exits 75) so that its supervisor starts a new one")]
    private static partial void LogClosedByAnother(ILogger logger, string instance);
}
