using Sovereign.Cluster.Hosting;

namespace Sovereign.Cluster.Tests;

/// <summary>The start-up messages of the cluster settings: each names the setting or flag the operator must change.</summary>
public sealed class ClusterOptionsTests
{
    [Fact]
    public void NodeWithAJoinTokenButNoJoinUrl_IsToldToAddTheJoinUrl_NotRedis()
    {
        // Redis comes with the join: "needs Sovereign:Cluster:Redis" sent the operator the wrong way, and "JoinToken is
        // for --role node" was said to a --role node.
        var problem = Assert.Single(new SovereignClusterOptions { Role = ServerRole.Node, JoinToken = "sjt_x" }.Problems());

        Assert.Contains("--join-url", problem, StringComparison.Ordinal);
        Assert.Contains("Sovereign:Cluster:JoinUrl", problem, StringComparison.Ordinal);
        Assert.DoesNotContain("Sovereign:Cluster:Redis", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void GatewayWithAJoinToken_IsToldItIsForNodesOnly()
    {
        var problem = Assert.Single(new SovereignClusterOptions { Redis = "r", Secret = "s", Role = ServerRole.Gateway, JoinToken = "sjt_x", JoinUrl = "http://g" }.Problems());

        Assert.Contains("--role node", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void NodeWithoutRedisOrToken_IsToldBothWaysIn()
    {
        var problem = Assert.Single(new SovereignClusterOptions { Role = ServerRole.Node }.Problems());

        Assert.Contains("Sovereign:Cluster:Redis", problem, StringComparison.Ordinal);
        Assert.Contains("--join-token", problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ServerRole.Node)]
    [InlineData(ServerRole.All)]
    public void NodeInACluster_AtPortZero_IsToldToNameItsUrl(ServerRole role)
    {
        // Its NodeUrl defaults to --urls: on port 0 it advertised ':0', where no gateway reaches it.
        var problem = Assert.Single(new SovereignClusterOptions { Redis = "r", Secret = "s", Role = role, NodeUrl = "http://127.0.0.1:0" }.Problems());
        Assert.Contains("Sovereign:Cluster:NodeUrl names port 0", problem, StringComparison.Ordinal);
        Assert.Contains("--node-url", problem, StringComparison.Ordinal);
        Assert.Empty(new SovereignClusterOptions { Redis = "r", Secret = "s", Role = role, NodeUrl = "http://127.0.0.1:8080" }.Problems());
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(3651)]
    [InlineData(double.NaN)]
    public void CaExpiryWarningDays_OutsideZeroTo3650_IsNamed(double days)
    {
        var problem = Assert.Single(new SovereignClusterOptions { CaExpiryWarningDays = days }.Problems());

        Assert.Contains("Sovereign:Cluster:CaExpiryWarningDays", problem, StringComparison.Ordinal);
    }

    /// <summary>Found restarting a gateway with a mistyped cluster id: 'sov prod/x' started and formed a cluster of its own.</summary>
    [Theory]
    [InlineData("sov prod")]
    [InlineData("prod/x")]
    [InlineData("")]
    public void ClusterId_ThatCannotNameACluster_IsNamed(string clusterId)
    {
        var problem = Assert.Single(new SovereignClusterOptions { Redis = "r", Secret = "s", Role = ServerRole.Gateway, ClusterId = clusterId }.Problems());

        Assert.Contains("Sovereign:Cluster:ClusterId", problem, StringComparison.Ordinal);
        Assert.Contains($"got '{clusterId}'", problem, StringComparison.Ordinal);
    }
}
