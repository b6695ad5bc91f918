using Microsoft.Extensions.Hosting;
using Sovereign.Residency.Audit;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// Stops the server when its running audit log finds the chain truncated or rewritten (<see cref="AuditLogOptions.IntegrityLost"/>):
/// fail closed, as at start. It used to stop appending and answer every request 503 <c>audit_unavailable</c> while the
/// process ran on, so nothing told a supervisor or an operator's alert; now the event is Critical (4220), the host
/// stops (requests in flight drain within the shutdown timeout), and <c>serve</c> exits 3 as it does when the same
/// finding stops its start.
/// </summary>
public sealed partial class AuditIntegrityWatch(IHostApplicationLifetime lifetime, ILogger<AuditIntegrityWatch> logger)
{
    private AuditIntegrityException? _lost;

    /// <summary>What stopped the server, once it did; null while the log holds.</summary>
    public AuditIntegrityException? Lost => Volatile.Read(ref _lost);

    /// <summary>Logs the finding and stops the host, once.</summary>
    internal void Report(AuditIntegrityException lost)
    {
        if (Interlocked.CompareExchange(ref _lost, lost, null) is not null)
        {
            return;
        }

        LogStopping(logger, lost.Message);

        // Off the audit writer's thread: the stopping callbacks must not run inside its commit.
        _ = Task.Run(lifetime.StopApplication);
    }

    [LoggerMessage(EventId = 4220, EventName = "AuditLogRewrittenStopping", Level = LogLevel.Critical,
        Message = "The audit log was truncated or rewritten while this server ran: nothing more is appended to it or signed over it, and the server stops (serve exits 3). Run 'sovereign audit verify'. {Reason}")]
    private static partial void LogStopping(ILogger logger, string reason);
}
