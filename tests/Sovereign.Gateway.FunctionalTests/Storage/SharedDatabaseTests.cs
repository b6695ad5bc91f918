using Microsoft.AspNetCore.Builder;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// Servers that share one PostgreSQL database must be one cluster. Found by trying it: two <c>serve</c> processes
/// without Redis (an operator scaling a deployment to two replicas) both started on one database, each with its own
/// grains, so each admitted spend against its own view of a budget and a key revoked at one still worked at the other.
/// </summary>
public sealed class SharedDatabaseTests(PostgreSqlFixture postgres) : IClassFixture<PostgreSqlFixture>, IDisposable
{
    private readonly List<string> _directories = [];

    public void Dispose()
    {
        foreach (var directory in _directories)
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task ASecondServerWithoutACluster_OnTheSameDatabase_StopsTheStart_AndStartsOnceTheFirstHasStopped()
    {
        var connectionString = await OwnDatabaseAsync();
        var first = Build(connectionString);
        await first.StartAsync();
        try
        {
            await using var second = Build(connectionString);
            var refused = await Assert.ThrowsAsync<DatabaseClaimedException>(() => second.StartAsync());
            Assert.Contains("is in use by a sovereign server without a cluster", refused.Message, StringComparison.Ordinal);
            Assert.Contains($"process {Environment.ProcessId}", refused.Message, StringComparison.Ordinal);
            Assert.Contains("Sovereign:Cluster:Redis", refused.Message, StringComparison.Ordinal);

            using var health = await new HttpClient().GetAsync(new Uri(new Uri(first.Urls.First()), "/health"));
            Assert.True(health.IsSuccessStatusCode);
        }
        finally
        {
            await first.StopAsync();
            await first.DisposeAsync();
        }

        await using var after = Build(connectionString);
        await after.StartAsync();
        await after.StopAsync();
    }

    [Fact]
    public async Task MembersOfOneCluster_ShareTheDatabase_AnythingElseIsRefused_UntilTheClusterHasGone()
    {
        var database = SqlDatabase.PostgreSql(await OwnDatabaseAsync());
        var member = await SharedDatabaseClaim.TakeAsync(database, "cluster:th", "the cluster 'th'");
        await using (var anotherMember = await SharedDatabaseClaim.TakeAsync(database, "cluster:th", "the cluster 'th'"))
        {
            var alone = await Assert.ThrowsAsync<DatabaseClaimedException>(() => SharedDatabaseClaim.TakeAsync(database, "server:x", "a server"));
            Assert.Contains("is in use by the cluster 'th'", alone.Message, StringComparison.Ordinal);
            await Assert.ThrowsAsync<DatabaseClaimedException>(() => SharedDatabaseClaim.TakeAsync(database, "cluster:sg", "the cluster 'sg'"));
        }

        // One member left still holds it for the cluster.
        await Assert.ThrowsAsync<DatabaseClaimedException>(() => SharedDatabaseClaim.TakeAsync(database, "cluster:sg", "the cluster 'sg'"));
        await member.DisposeAsync();

        // Every member gone (as a killed one: its session's lock went with its connection): the database is free.
        await using var next = await SharedDatabaseClaim.TakeAsync(database, "cluster:sg", "the cluster 'sg'");
        var refused = await Assert.ThrowsAsync<DatabaseClaimedException>(() => SharedDatabaseClaim.TakeAsync(database, "cluster:th", "the cluster 'th'"));
        Assert.Contains("is in use by the cluster 'sg'", refused.Message, StringComparison.Ordinal);
    }

    private async Task<string> OwnDatabaseAsync()
    {
        var name = "claim_" + Guid.NewGuid().ToString("N")[..8];
        await using (var admin = new Npgsql.NpgsqlConnection(postgres.ConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new Npgsql.NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new Npgsql.NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = name }.ConnectionString;
    }

    private WebApplication Build(string connectionString)
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-shared-db-").FullName;
        _directories.Add(directory);
        return ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Threads = 1, Parallel = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = directory,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:BuiltInEmbeddings"] = "false",
                ["Sovereign:Database:Provider"] = "PostgreSql",
                ["Sovereign:Database:ConnectionString"] = connectionString,
            },
        }, []);
    }
}
