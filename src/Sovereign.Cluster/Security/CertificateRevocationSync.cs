using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Sovereign.Cluster.Hosting;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Cluster.Security;

/// <summary>
/// Keeps <see cref="ClusterTlsCredentials.Revocations"/> as the database holds them: read once before the silo opens its
/// first connection (a start-up that cannot read them fails, rather than trusting a revoked peer), then every
/// <see cref="RefreshInterval"/>, and at once where a revocation is made. Only where cluster TLS is on.
/// </summary>
public sealed partial class CertificateRevocationSync(ClusterTlsCredentials tls, ControlPlaneStore store, ILogger<CertificateRevocationSync> logger) : BackgroundService
{
    /// <summary>The most a revocation made at another member takes to apply here.</summary>
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(5);


    /// <summary>Reads the revocations from the database into the credentials.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken = default)
    {
        var revocations = CertificateRevocations.From(await store.ListCertificateRevocationsAsync(cancellationToken));
        if (revocations.Count != tls.Revocations.Count)
        {
            LogLoaded(logger, revocations.Count);
        }

        tls.Revocations = revocations;
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (tls.Enabled)
        {
            await RefreshAsync(cancellationToken);
            if (!tls.AwaitsJoin && !tls.Problems().Any() && tls.OwnCertificateRevoked() is { } revoked)
            {
                // Fail closed at start: a member with a revoked certificate does not run.
                throw new InvalidOperationException(revoked);
            }
        }

        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!tls.Enabled)
        {
            return;
        }

        // The last list read stays in force; say so once per outage.
        await PeriodicRefresh.RunAsync(RefreshInterval, RefreshAsync, ex => LogRefreshFailed(logger, ex.Message), stoppingToken);
    }

    [LoggerMessage(EventId = 3011, Level = LogLevel.Information, Message = "Cluster certificate revocations in force: {Count}")]
    private static partial void LogLoaded(ILogger logger, int count);

    [LoggerMessage(EventId = 3012, Level = LogLevel.Warning, Message = "Could not re-read the cluster certificate revocations (the last list read stays in force): {Problem}")]
    private static partial void LogRefreshFailed(ILogger logger, string problem);
}
