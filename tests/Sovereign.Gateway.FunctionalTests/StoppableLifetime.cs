namespace Sovereign.Gateway.FunctionalTests;

/// <summary>A host lifetime whose stop the test awaits (<see cref="Stopping"/>) instead of a host that stops.</summary>
internal sealed class StoppableLifetime : Microsoft.Extensions.Hosting.IHostApplicationLifetime
{
    private readonly TaskCompletionSource _stopping = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Stopping => _stopping.Task;

    public CancellationToken ApplicationStarted => CancellationToken.None;

    public CancellationToken ApplicationStopping => CancellationToken.None;

    public CancellationToken ApplicationStopped => CancellationToken.None;

    public void StopApplication() => _stopping.TrySetResult();
}
