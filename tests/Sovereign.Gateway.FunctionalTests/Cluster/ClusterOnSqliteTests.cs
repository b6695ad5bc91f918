namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// A cluster member on SQLite started without complaint: each gateway then kept its own budgets (a tenant could spend
/// its budget once per gateway) and its own audit chain, and a node's entries were never checkpointed. The start is
/// refused now, naming the settings, before Redis or the database is touched (no Redis runs here).
/// </summary>
public sealed class ClusterOnSqliteTests : IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-cluster-sqlite-").FullName;

    public void Dispose() => Directory.Delete(_data, recursive: true);

    [Theory]
    [InlineData("gateway", null)]
    [InlineData("node", null)]
    [InlineData("all", "Sqlite")]
    public async Task Serve_AClusterMemberOnSqlite_StopsTheStart_NamingTheDatabaseSetting(string role, string? provider)
    {
        var (exitCode, _, stderr) = await CliProcess.RunAsync(
            new Dictionary<string, string?>
            {
                ["Sovereign__Cluster__Redis"] = "127.0.0.1:1",
                ["Sovereign__Cluster__Secret"] = "cluster-secret",
                ["Sovereign__Cluster__NodeUrl"] = "http://127.0.0.1:9",
                ["Sovereign__Cluster__InsecureTransport"] = "true",
                ["Sovereign__Database__Provider"] = provider,
            },
            "serve", "--role", role, "--node-id", "member-1", "--urls", "http://127.0.0.1:0", "--data-dir", _data);

        Assert.True(exitCode == 2, $"exit {exitCode}: {stderr}");
        Assert.Contains("sovereign serve: cannot start: a cluster member (Sovereign:Cluster:Redis is set) needs the cluster's shared PostgreSQL database", stderr, StringComparison.Ordinal);
        Assert.Contains("Sovereign__Database__Provider=PostgreSql", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_data, "sovereign.db")), "the refused member created its own database file");
    }
}
