using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// Rotating the cluster's relay secret (<c>Sovereign:Cluster:Secret</c>) member by member. Gateways present one secret
/// and nodes accepted exactly one, so from the first gateway restarted with a new secret until the last node was, every
/// relay between a moved and an unmoved member was refused (the client got 502 <c>upstream_auth_failed</c>): the only
/// rotation was stopping the whole cluster. A node now also accepts <c>Sovereign:Cluster:AcceptedSecrets</c>, so nodes
/// take the new secret first, gateways move to it one at a time, and the old one is dropped last.
/// </summary>
public sealed class ClusterSecretRotationTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-secret-").FullName;

    [Fact]
    public void ANodeMidRotation_AcceptsItsSecretAndTheAcceptedOnes_AndRefusesAnyOther()
    {
        var relay = NodeRelay(new Dictionary<string, string?>
        {
            ["Sovereign:Cluster:Secret"] = "cluster-secret-old-0123456789",
            ["Sovereign:Cluster:AcceptedSecrets:0"] = "cluster-secret-new-0123456789",
        });

        // A gateway not yet moved, and one already moved: both relay.
        Assert.Equal(ClusterRelay.RelayTenant, relay.Authenticate("cluster-secret-old-0123456789", new DefaultHttpContext())?.TenantId);
        Assert.Equal(ClusterRelay.RelayTenant, relay.Authenticate("cluster-secret-new-0123456789", new DefaultHttpContext())?.TenantId);

        var refused = Assert.Throws<OpenAIException>(() => relay.Authenticate("cluster-secret-other-012345678", new DefaultHttpContext()));
        Assert.Equal(401, refused.Status);
    }

    [Fact]
    public void AnEmptyAcceptedSecret_StopsTheStart_NamingIt()
    {
        var options = Bind(new Dictionary<string, string?>
        {
            ["Sovereign:Cluster:Secret"] = "cluster-secret-old-0123456789",
            ["Sovereign:Cluster:AcceptedSecrets:0"] = " ",
        });

        Assert.Contains(options.Problems(), problem => problem.Contains("Sovereign:Cluster:AcceptedSecrets:0", StringComparison.Ordinal));
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private ClusterRelay NodeRelay(Dictionary<string, string?> settings)
    {
        var options = Bind(settings);
        return new ClusterRelay(Options.Create(options), new ClusterTlsCredentials(options, _directory, "node-th-1", TimeProvider.System));
    }

    private static SovereignClusterOptions Bind(Dictionary<string, string?> settings)
    {
        settings["Sovereign:Cluster:Redis"] = "127.0.0.1:6379";
        settings["Sovereign:Cluster:Role"] = "Node";
        settings["Sovereign:Cluster:NodeUrl"] = "http://127.0.0.1:8080";
        settings["Sovereign:Cluster:InsecureTransport"] = "true";
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        return configuration.GetSection("Sovereign:Cluster").Get<SovereignClusterOptions>()!;
    }
}
