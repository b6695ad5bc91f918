using Sovereign.Cluster.Hosting;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>What a gateway tells a node it admits about the cluster, database credentials above all.</summary>
public sealed class JoinedClusterTests
{
    private const string GatewayDatabase = "Host=db;Username=sovereign;Password=gateway-secret";

    private static SovereignClusterOptions Cluster(string? nodeDatabase = null) =>
        new() { Redis = "redis:6379", ClusterId = "national-pool", Secret = "relay-secret", NodeDatabaseConnectionString = nodeDatabase };

    [Fact]
    public void Of_WithANodeDatabaseRole_HandsNodesThatRoleNotTheGatewaysCredentials()
    {
        var joined = JoinedCluster.Of(Cluster("Host=db;Username=sovereign_node;Password=node-secret"),
            new DatabaseOptions { Provider = "PostgreSql", ConnectionString = GatewayDatabase });

        Assert.Equal("PostgreSql", joined.DatabaseProvider);
        Assert.Equal("Host=db;Username=sovereign_node;Password=node-secret", joined.DatabaseConnectionString);
        Assert.Equal(("redis:6379", "national-pool", "relay-secret"), (joined.Redis, joined.ClusterId, joined.Secret));
    }

    [Fact]
    public void Of_WithoutANodeDatabaseRole_HandsNodesTheGatewaysDatabase()
    {
        var joined = JoinedCluster.Of(Cluster(), new DatabaseOptions { Provider = "PostgreSql", ConnectionString = GatewayDatabase });

        Assert.Equal(GatewayDatabase, joined.DatabaseConnectionString);
    }

    [Fact]
    public void Of_WithANodeRedisAddress_HandsNodesThatAddressNotTheGatewaysOwn()
    {
        var cluster = Cluster();
        cluster.Redis = "localhost:6379";
        cluster.NodeRedis = "redis.cluster.internal:6380,ssl=true";

        var joined = JoinedCluster.Of(cluster, new DatabaseOptions { Provider = "PostgreSql", ConnectionString = GatewayDatabase });

        Assert.Equal("redis.cluster.internal:6380,ssl=true", joined.Redis);
        Assert.Equal("national-pool", joined.ClusterId);
    }

    [Fact]
    public void Of_WithoutANodeRedisAddress_HandsNodesTheGatewaysRedis()
    {
        var joined = JoinedCluster.Of(Cluster(), new DatabaseOptions { Provider = "PostgreSql", ConnectionString = GatewayDatabase });

        Assert.Equal("redis:6379", joined.Redis);
    }

    [Fact]
    public void Of_AGatewayOnSqlite_SharesNoDatabase()
    {
        var joined = JoinedCluster.Of(Cluster("Host=db;Username=sovereign_node"), new DatabaseOptions { Provider = "Sqlite" });

        Assert.Null(joined.DatabaseProvider);
        Assert.Null(joined.DatabaseConnectionString);
    }
}
