using System.Collections.Immutable;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Metadata;
using Sovereign.Cluster.Hosting;

namespace Sovereign.Cluster.Security;

/// <summary>
/// On gateways of a TLS cluster: watches the grain classes each silo offers to host (Orleans' cluster manifest) and
/// declares dead any silo named as a node (<c>node/…</c>, a name its certificate must bind: see
/// <see cref="SiloConnectionTracking"/>) that offers a gateway-only grain (<see cref="GatewayOnlyGrains"/>). A genuine
/// node never does; a tampered one holding a node's certificate would otherwise be given tenants' money to host.
/// </summary>
internal sealed partial class SiloRoleGuard(
    IClusterManifestProvider manifests,
    IClusterMembershipService membership,
    GrainClassMap classes,
    IOptions<GatewayOnlyGrains> gatewayOnly,
    ILogger<SiloRoleGuard> logger) : BackgroundService
{
    /// <summary>The silos named as nodes that offer to host one of <paramref name="gatewayOnly"/>, and the first such type.</summary>
    public static IEnumerable<(SiloAddress Silo, string Name, GrainType Offered)> Impostors(
        ClusterManifest manifest, IReadOnlyDictionary<SiloAddress, ClusterMember> members, IReadOnlySet<GrainType> gatewayOnly)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(members);
        ArgumentNullException.ThrowIfNull(gatewayOnly);
        foreach (var (silo, grains) in manifest.Silos)
        {
            if (members.TryGetValue(silo, out var member) && member.Status != SiloStatus.Dead
                && member.Name?.StartsWith("node/", StringComparison.Ordinal) == true
                && grains.Grains.Keys.FirstOrDefault(gatewayOnly.Contains) is { IsDefault: false } offered)
            {
                yield return (silo, member.Name, offered);
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // This gateway hosts every gateway-only class: their grain types, as the manifest names them.
        var gatewayOnlyTypes = manifests.LocalGrainManifest.Grains.Keys
            .Where(type => classes.TryGetGrainClass(type, out var grainClass) && gatewayOnly.Value.Classes.Contains(grainClass))
            .ToImmutableHashSet();
        LogWatching(logger, gatewayOnlyTypes.Count, string.Join(", ", gatewayOnlyTypes.Order()));
        try
        {
            await foreach (var manifest in manifests.Updates.WithCancellation(stoppingToken))
            {
                foreach (var (silo, name, offered) in Impostors(manifest, membership.CurrentSnapshot.Members, gatewayOnlyTypes))
                {
                    LogExpelled(logger, name, silo.ToString(), offered.ToString()!);
                    await SiloConnectionTracking.DeclareDeadAsync(membership, silo, logger);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(EventId = 3019, Level = LogLevel.Error, Message = "Silo {SiloName} at {Silo} offers to host the gateway-only grain {GrainType}; declaring it dead")]
    private static partial void LogExpelled(ILogger logger, string siloName, string silo, string grainType);

    [LoggerMessage(EventId = 3020, Level = LogLevel.Information, Message = "Expelling node silos that offer any of {Count} gateway-only grain types: {Types}")]
    private static partial void LogWatching(ILogger logger, int count, string types);
}
