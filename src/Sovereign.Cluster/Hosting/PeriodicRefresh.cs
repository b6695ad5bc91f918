namespace Sovereign.Cluster.Hosting;

/// <summary>
/// The loop of a background refresh that keeps its last good state when a round fails (a member leaving, the
/// database restarting): one round per interval until stopped, each failure told once per outage, not once per round.
/// </summary>
public static class PeriodicRefresh
{
    /// <summary>Runs <paramref name="round"/> every <paramref name="interval"/>; <paramref name="failed"/> hears the first failure of each outage.</summary>
    public static async Task RunAsync(TimeSpan interval, Func<CancellationToken, Task> round, Action<Exception> failed, CancellationToken stoppingToken)
    {
        ArgumentNullException.ThrowIfNull(round);
        ArgumentNullException.ThrowIfNull(failed);
        var failing = false;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(interval, stoppingToken);
                try
                {
                    await round(stoppingToken);
                    failing = false;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    if (!failing)
                    {
                        failed(ex);
                    }

                    failing = true;
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}
