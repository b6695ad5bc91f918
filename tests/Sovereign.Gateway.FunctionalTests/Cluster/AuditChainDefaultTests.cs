using Microsoft.Extensions.Configuration;
using Sovereign.Cluster.Hosting;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// Since session 44 a member of a distributed cluster appends to its own audit chain unless told otherwise
/// (<c>Sovereign:Audit:MemberChains</c>), and a single machine keeps its one chain whatever the setting.
/// </summary>
public sealed class AuditChainDefaultTests
{
    private static readonly SovereignClusterOptions Distributed = new() { Redis = "127.0.0.1:6379", Secret = "s" };

    [Fact]
    public void AClusterMember_IsOnItsOwnChainByDefault_FalseKeepsTheSharedChain_AndASingleMachineHasOneChain()
    {
        var options = Bind([]);
        Assert.True(options.Audit.MemberChains);
        Assert.Equal("gw-th", ControlPlaneServices.AuditChainOf(options, Distributed));
        Assert.Null(ControlPlaneServices.AuditChainOf(options, new SovereignClusterOptions()));

        var shared = Bind([new("Sovereign:Audit:MemberChains", "false")]);
        Assert.Null(ControlPlaneServices.AuditChainOf(shared, Distributed));
    }

    private static SovereignOptions Bind(KeyValuePair<string, string?>[] settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection([new("Sovereign:NodeId", "gw-th"), .. settings]).Build();
        var options = new SovereignOptions();
        configuration.GetSection("Sovereign").Bind(options);
        return options;
    }
}
