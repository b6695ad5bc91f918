using Microsoft.Extensions.Hosting;

namespace Sovereign.Cluster.Hosting;

/// <summary>
/// Runs <see cref="ClusterRedisMark.CheckCredentialsAsync"/> before the silo starts: a start whose Redis refuses the
/// member's password fails with one line naming <c>Sovereign:Cluster:Redis</c>, as <c>ClusterCaProbe</c> does for a CA.
/// </summary>
internal sealed class ClusterRedisProbe(SovereignClusterOptions cluster) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => ClusterRedisMark.CheckCredentialsAsync(cluster);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
