using Microsoft.AspNetCore.Builder;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.ControlPlane;
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

    /// <summary>
    /// A downgrade on PostgreSQL: a server without a cluster (no rolling upgrade can be under way) started on a
    /// database a newer release migrated stops before it migrates or writes anything, naming the migration; the
    /// release that knows it starts. (A cluster member starts with warning 4151: members of two releases share the
    /// database while a rolling upgrade walks them.)
    /// </summary>
    [Fact]
    public async Task AServerWithoutACluster_OnADatabaseANewerReleaseMigrated_StopsTheStart_AndChangesNothing()
    {
        const string Newer = "audit-999-from-a-newer-release";
        var connectionString = await OwnDatabaseAsync();
        await using (var first = Build(connectionString))
        {
            await first.StartAsync();
            await first.StopAsync();
        }

        await Sql(connectionString, $"INSERT INTO schema_migrations (name, applied_at) VALUES ('{Newer}', 1796600000000)");
        var before = await Sql(connectionString, "SELECT COUNT(*) FROM schema_migrations") + "/" + await Sql(connectionString, "SELECT COUNT(*) FROM audit_entries");
        await using (var older = Build(connectionString))
        {
            var refused = await Assert.ThrowsAsync<DatabaseOfNewerReleaseException>(() => older.StartAsync());
            Assert.Contains($"was upgraded by a newer release of sovereign: it records the migration {Newer}, which this release does not know", refused.Message, StringComparison.Ordinal);
            Assert.StartsWith("PostgreSQL at 127.0.0.1:", refused.Message, StringComparison.Ordinal);
        }

        Assert.Equal(before, await Sql(connectionString, "SELECT COUNT(*) FROM schema_migrations") + "/" + await Sql(connectionString, "SELECT COUNT(*) FROM audit_entries"));

        // A cluster member (the check is given its logger) goes on with one warning naming the migration.
        var logged = new System.Collections.Concurrent.ConcurrentQueue<(string Category, Microsoft.Extensions.Logging.LogLevel Level, Microsoft.Extensions.Logging.EventId Event, string Message)>();
        using (var loggers = new CapturingLoggerProvider(logged))
        {
            await ControlPlaneServices.RefuseNewerAsync(SqlDatabase.PostgreSql(connectionString), "PostgreSQL (test)", loggers.CreateLogger("test"));
        }

        var warning = Assert.Single(logged);
        Assert.Equal((Microsoft.Extensions.Logging.LogLevel.Warning, 4151), (warning.Level, warning.Event.Id));
        Assert.Contains(Newer, warning.Message, StringComparison.Ordinal);

        await Sql(connectionString, $"DELETE FROM schema_migrations WHERE name = '{Newer}'");
        await using var again = Build(connectionString);
        await again.StartAsync();
        await again.StopAsync();
    }

    private static async Task<string> Sql(string connectionString, string statement)
    {
        await using var connection = await SqlDatabase.PostgreSql(connectionString).OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = statement;
        return Convert.ToString(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture) ?? "";
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

    /// <summary>
    /// PostgreSQL restarting ends every session, and the claims' locks with them: a server of another cluster started
    /// then found the database free, and both ran. A holder takes its claim again when it sees its connection gone, or
    /// learns that another took the database meanwhile (its server then stops: <c>DatabaseClaimKeeper</c>).
    /// </summary>
    [Fact]
    public async Task AClaimWhoseSessionWasEnded_IsTakenAgain_OrReportsTheServerThatTookTheDatabaseMeanwhile()
    {
        var connectionString = await OwnDatabaseAsync();
        var database = SqlDatabase.PostgreSql(connectionString);
        await using var claim = await SharedDatabaseClaim.TakeAsync(database, "cluster:th", "the cluster 'th'");
        Assert.False(await claim.RenewAsync());

        // Ended (as a restart ends it): taken again, and it holds the database against others afterwards.
        await EndClaimSessionsAsync(connectionString);
        Assert.True(await claim.RenewAsync());

        // Another server: another process, with connections of its own.
        var elsewhere = SqlDatabase.PostgreSql(connectionString);
        await Assert.ThrowsAsync<DatabaseClaimedException>(() => SharedDatabaseClaim.TakeAsync(elsewhere, "server:x", "a server"));

        // Ended again, and another server starts before the holder notices.
        await EndClaimSessionsAsync(connectionString);
        await using var other = await SharedDatabaseClaim.TakeAsync(SqlDatabase.PostgreSql(connectionString), "server:x", "a sovereign server without a cluster (host h, process 7)");
        var lost = await Assert.ThrowsAsync<DatabaseClaimedException>(() => claim.RenewAsync());
        Assert.Contains("is in use by a sovereign server without a cluster (host h, process 7)", lost.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Two clusters named alike (one ClusterId) on two Redis servers: their members claimed the database under one name
    /// (<c>cluster:prod</c>), so the second cluster started on the first one's database, each with grains of its own (a
    /// budget admitted in both, a key revoked in one still accepted by the other). The claim now carries a mark kept in
    /// the cluster's Redis: members on one Redis share the database, the other cluster's start is refused naming the
    /// setting, and a member of an earlier version (its claim named by the id alone) does not refuse the new ones.
    /// </summary>
    [Fact]
    public async Task TwoClustersOfOneClusterId_OnTheirOwnRedis_TheSecondIsRefused_NamingTheSetting()
    {
        using var redisA = ThrowawayRedis.Start(NewDirectory());
        using var redisB = ThrowawayRedis.Start(NewDirectory());
        var database = SqlDatabase.PostgreSql(await OwnDatabaseAsync());
        await using var memberA = new ServerDatabaseLock();
        await memberA.TakePostgreSqlAsync(database, Cluster(redisA.Port));
        await using var anotherMemberA = new ServerDatabaseLock();
        await anotherMemberA.TakePostgreSqlAsync(database, Cluster(redisA.Port));

        await using var memberB = new ServerDatabaseLock();
        var refused = await Assert.ThrowsAsync<DatabaseClaimedException>(() => memberB.TakePostgreSqlAsync(database, Cluster(redisB.Port)));
        Assert.Contains($"is in use by the cluster 'prod' on Redis 127.0.0.1:{redisA.Port}", refused.Message, StringComparison.Ordinal);
        Assert.Contains("Sovereign:Cluster:Redis", refused.Message, StringComparison.Ordinal);

        // A rolling upgrade: a member of an earlier version of cluster A still runs. (On a Redis of its own: the cluster
        // on redisA recorded the first database as its one, and refuses a member on another.)
        var upgrading = SqlDatabase.PostgreSql(await OwnDatabaseAsync());
        await using var earlier = await SharedDatabaseClaim.TakeAsync(upgrading, "cluster:prod", "the cluster 'prod' (an earlier version)");
        await using var upgraded = new ServerDatabaseLock();
        await upgraded.TakePostgreSqlAsync(upgrading, Cluster(redisB.Port));

        static Sovereign.Cluster.Hosting.SovereignClusterOptions Cluster(int redisPort) =>
            new() { Redis = $"127.0.0.1:{redisPort}", ClusterId = "prod", Role = Sovereign.Cluster.Hosting.ServerRole.Gateway };
    }

    /// <summary>
    /// A dump restored into another database and started while the original still served was a second installation of
    /// the same tenants (explorer32, session 50: a key revoked after the dump answered 200 there, a budget spent twice):
    /// the claim tells servers on one database apart, not a database from its copy. The database now records its
    /// identity and where it lives; a copy (here <c>CREATE DATABASE ... TEMPLATE</c>, as a restore into a new database
    /// is) is refused, naming the identity and Sovereign__Database__Rebind, with nothing changed; given that once, the
    /// copy gets an identity of its own, and a value left set does nothing at the next start. The original is untouched.
    /// </summary>
    [Fact]
    public async Task ACopyOfTheDatabase_IsRefusedNamingTheRebindSetting_UntilTheOperatorRebindsIt()
    {
        var original = await OwnDatabaseAsync();
        await using (var first = new ServerDatabaseLock())
        {
            Assert.Null(await first.TakePostgreSqlAsync(SqlDatabase.PostgreSql(original), new Sovereign.Cluster.Hosting.SovereignClusterOptions()));
        }

        var id = await Sql(original, "SELECT id FROM sovereign_database_identity");
        var copy = await CopyOfAsync(original);

        await using (var restored = new ServerDatabaseLock())
        {
            var refused = await Assert.ThrowsAsync<DatabaseIdentityException>(() => restored.TakePostgreSqlAsync(SqlDatabase.PostgreSql(copy), new Sovereign.Cluster.Hosting.SovereignClusterOptions()));
            Assert.Contains("is a copy of another database", refused.Message, StringComparison.Ordinal);
            Assert.Contains($"Sovereign__Database__Rebind={id}", refused.Message, StringComparison.Ordinal);
            Assert.StartsWith("PostgreSQL at 127.0.0.1:", refused.Message, StringComparison.Ordinal);
        }

        Assert.Equal(id, await Sql(copy, "SELECT id FROM sovereign_database_identity"));
        Assert.False(await ServerDatabaseLock.AnyServerHoldsAsync(SqlDatabase.PostgreSql(copy), CancellationToken.None)); // the refused start let its claim go

        // Another identity named (a setting left from an earlier restore) is no way out.
        await using (var wrong = new ServerDatabaseLock())
        {
            await Assert.ThrowsAsync<DatabaseIdentityException>(() => wrong.TakePostgreSqlAsync(SqlDatabase.PostgreSql(copy), new Sovereign.Cluster.Hosting.SovereignClusterOptions(), rebind: Guid.NewGuid().ToString("N")));
        }

        string newId;
        await using (var rebinding = new ServerDatabaseLock())
        {
            var rebound = await rebinding.TakePostgreSqlAsync(SqlDatabase.PostgreSql(copy), new Sovereign.Cluster.Hosting.SovereignClusterOptions(), rebind: id);
            Assert.NotNull(rebound);
            Assert.NotEqual(id, rebound.Id);
            newId = rebound.Id;
        }

        await using (var again = new ServerDatabaseLock())
        {
            Assert.Null(await again.TakePostgreSqlAsync(SqlDatabase.PostgreSql(copy), new Sovereign.Cluster.Hosting.SovereignClusterOptions(), rebind: id));
        }

        Assert.Equal(newId, await Sql(copy, "SELECT id FROM sovereign_database_identity"));
        await using (var originalAgain = new ServerDatabaseLock())
        {
            Assert.Null(await originalAgain.TakePostgreSqlAsync(SqlDatabase.PostgreSql(original), new Sovereign.Cluster.Hosting.SovereignClusterOptions()));
        }

        Assert.Equal(id, await Sql(original, "SELECT id FROM sovereign_database_identity"));
    }

    /// <summary>
    /// A cluster's members must all use one database: a member on another one (a fresh database by mistake, a member left
    /// pointing at the old database after a restore) started and joined the cluster, each tenant's grains keeping its
    /// money and keys in whichever database the member that activated them used. The first member records its database's
    /// identity in the cluster's Redis; a member on another is refused naming both and the way out; rebound there, the
    /// cluster's Redis records the new one, and a member on the old database is refused in turn.
    /// </summary>
    [Fact]
    public async Task AMemberOnAnotherDatabaseThanItsClusters_IsRefused_AndARebindMovesTheCluster()
    {
        using var redis = ThrowawayRedis.Start(NewDirectory());
        var cluster = new Sovereign.Cluster.Hosting.SovereignClusterOptions { Redis = $"127.0.0.1:{redis.Port}", ClusterId = "prod", Role = Sovereign.Cluster.Hosting.ServerRole.Gateway };
        var first = await OwnDatabaseAsync();
        await using (var member = new ServerDatabaseLock())
        {
            Assert.Null(await member.TakePostgreSqlAsync(SqlDatabase.PostgreSql(first), cluster));
        }

        var firstId = await Sql(first, "SELECT id FROM sovereign_database_identity");
        var other = await OwnDatabaseAsync();
        string otherId;
        await using (var stray = new ServerDatabaseLock())
        {
            var refused = await Assert.ThrowsAsync<DatabaseIdentityException>(() => stray.TakePostgreSqlAsync(SqlDatabase.PostgreSql(other), cluster));
            otherId = await Sql(other, "SELECT id FROM sovereign_database_identity");
            Assert.Contains($"the cluster 'prod' (Redis 127.0.0.1:{redis.Port}) uses the database whose identity is {firstId}", refused.Message, StringComparison.Ordinal);
            Assert.Contains($"Sovereign__Database__Rebind={otherId}", refused.Message, StringComparison.Ordinal);
        }

        await using (var rebinding = new ServerDatabaseLock())
        {
            Assert.NotNull(await rebinding.TakePostgreSqlAsync(SqlDatabase.PostgreSql(other), cluster, rebind: otherId));
        }

        await using (var anotherMember = new ServerDatabaseLock())
        {
            Assert.Null(await anotherMember.TakePostgreSqlAsync(SqlDatabase.PostgreSql(other), cluster));
        }

        await using (var left = new ServerDatabaseLock())
        {
            var refused = await Assert.ThrowsAsync<DatabaseIdentityException>(() => left.TakePostgreSqlAsync(SqlDatabase.PostgreSql(first), cluster));
            Assert.Contains($"{SqlDatabase.PostgreSql(first).Location} is {firstId}", refused.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>A copy of <paramref name="connectionString"/>'s database in a new one (a new oid), as a restore makes.</summary>
    private async Task<string> CopyOfAsync(string connectionString)
    {
        var source = new Npgsql.NpgsqlConnectionStringBuilder(connectionString).Database;
        var name = "copy_" + Guid.NewGuid().ToString("N")[..8];
        Npgsql.NpgsqlConnection.ClearAllPools();
        await using (var admin = new Npgsql.NpgsqlConnection(postgres.ConnectionString))
        {
            await admin.OpenAsync();

            // A template must have no sessions: the pools' idle ones are ended (CREATE DATABASE waits for them to exit).
            await using (var end = new Npgsql.NpgsqlCommand("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = @name", admin))
            {
                end.Parameters.AddWithValue("name", source!);
                await end.ExecuteNonQueryAsync();
            }

            await using var create = new Npgsql.NpgsqlCommand($"CREATE DATABASE {name} TEMPLATE {source}", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new Npgsql.NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = name }.ConnectionString;
    }

    private string NewDirectory()
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-shared-db-redis-").FullName;
        _directories.Add(directory);
        return directory;
    }

    /// <summary>A redis-server of the test's own, without persistence, listening on loopback.</summary>
    private sealed class ThrowawayRedis : IDisposable
    {
        private readonly System.Diagnostics.Process _process;

        private ThrowawayRedis(System.Diagnostics.Process process, int port) => (_process, Port) = (process, port);

        public int Port { get; }

        public static ThrowawayRedis Start(string directory)
        {
            var server = new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists);
            Assert.True(server is not null, "redis-server is not installed: apt-get install redis-server (test.sh does this).");
            var port = ServeProcess.FreePort();
            var start = new System.Diagnostics.ProcessStartInfo(server) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in new[] { "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory })
            {
                start.ArgumentList.Add(arg);
            }

            var process = System.Diagnostics.Process.Start(start)!;
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    using var probe = new System.Net.Sockets.TcpClient();
                    probe.Connect(System.Net.IPAddress.Loopback, port);
                    return new ThrowawayRedis(process, port);
                }
                catch (System.Net.Sockets.SocketException) when (attempt < 1200) // two minutes, a bound for a hang: a loaded machine can take 10 s to start redis-server
                {
                    Thread.Sleep(100);
                }
            }
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit();
            }

            _process.Dispose();
        }
    }

    /// <summary>Ends every other session on the test's database, as PostgreSQL's restart would.</summary>
    private static async Task EndClaimSessionsAsync(string connectionString)
    {
        var name = new Npgsql.NpgsqlConnectionStringBuilder(connectionString).Database;
        await using var admin = new Npgsql.NpgsqlConnection(connectionString);
        await admin.OpenAsync();
        await using var end = new Npgsql.NpgsqlCommand("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = @name AND pid <> pg_backend_pid()", admin);
        end.Parameters.AddWithValue("name", name!);
        await end.ExecuteNonQueryAsync();
        Npgsql.NpgsqlConnection.ClearAllPools();
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
