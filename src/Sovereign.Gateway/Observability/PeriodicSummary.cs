using Microsoft.Extensions.Hosting;

namespace Sovereign.Gateway.Observability;

/// <summary>
/// A counter of repeated refusals that logs what it counted once per <see cref="Interval"/>, and what is left when the
/// host stops, so a client cannot choose the log's volume (<see cref="RefusalLogSummary"/>,
/// <see cref="ControlPlane.TenantReadLimits"/>).
/// </summary>
internal abstract class PeriodicSummary(TimeProvider time) : BackgroundService
{
    /// <summary>The clock the counts and the interval's timer read.</summary>
    protected TimeProvider Time { get; } = time;

    /// <summary>How often <see cref="Flush"/> logs what was counted.</summary>
    protected abstract TimeSpan Interval { get; }

    /// <summary>Logs what was counted since the last call and starts the counts afresh.</summary>
    public abstract void Flush();

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, Time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                Flush();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: StopAsync logs what is left.
        }
    }

    /// <inheritdoc/>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        Flush();
    }
}
