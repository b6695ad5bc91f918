using Microsoft.Extensions.DependencyInjection;
using Orleans.Metadata;
using Orleans.TestingHost;
using Sovereign.Cluster.Grains;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// The version a grain interface carries is the one this member advertises to the cluster: what lets Orleans move an
/// activation of an older release to a member that has a method added since (a rolling upgrade), instead of failing
/// the call there.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class GrainVersioningTests(ClusterFixture fixture)
{
    [Fact]
    public void TenantGrain_IsAdvertisedAtVersion4_WhichAddedBudgetLeases()
    {
        var silo = ((InProcessSiloHandle)fixture.Cluster.Primary!).SiloHost.Services;
        var resolver = silo.GetRequiredService<GrainInterfaceTypeResolver>();
        var manifest = silo.GetRequiredService<IClusterManifestProvider>().LocalGrainManifest;

        string? Version(Type grain) =>
            manifest.Interfaces[resolver.GetGrainInterfaceType(grain)].Properties.GetValueOrDefault(WellKnownGrainInterfaceProperties.Version);

        Assert.Equal("4", Version(typeof(ITenantGrain))); // 1 added TryUpdateIfVersionAsync, 2 RefundRequestAsync, 3 AdmitAuthorizedAsync, 4 the budget leases
        Assert.Null(Version(typeof(IApiKeyGrain))); // never versioned: 0
    }
}
