using System.Runtime.CompilerServices;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Residency.Audit;
using Sovereign.Residency.Content;
using Sovereign.Residency.ControlPlane;
using Sovereign.Storage;
using Sovereign.Tests;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>The same schemas and statements that run on SQLite run on PostgreSQL (what clusters use).</summary>
public sealed class PostgreSqlSchemaTests(PostgreSqlFixture postgres) : IClassFixture<PostgreSqlFixture>
{
    private SqlDatabase Database() => SqlDatabase.PostgreSql(postgres.ConnectionString);

    /// <summary>A fresh database of its own on the server, for a test whose chain must start where it says.</summary>
    private async Task<SqlDatabase> OwnDatabaseAsync(string prefix) => SqlDatabase.PostgreSql(await OwnConnectionStringAsync(prefix));

    /// <summary>The connection string of a fresh database of the test's own, for several processes' worth of <see cref="SqlDatabase"/>.</summary>
    private async Task<string> OwnConnectionStringAsync(string prefix)
    {
        var name = prefix + "_" + Guid.NewGuid().ToString("N")[..8];
        await using (var admin = new Npgsql.NpgsqlConnection(postgres.ConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new Npgsql.NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new Npgsql.NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = name }.ConnectionString;
    }

    private async Task<SqlDatabase> MigratedAsync()
    {
        var database = Database();
        await database.MigrateAsync([.. ControlPlaneStore.Migrations, .. AuditLog.Migrations, .. UsageLedger.Migrations, .. PriceBookStore.Migrations, .. ResponseStore.Migrations]);
        return database;
    }

    [Fact]
    public async Task Migrations_RunOnceAndAgain()
    {
        await MigratedAsync();
        await MigratedAsync();
    }

    [Fact]
    public async Task AuditRetention_TwoGatewaysOnOneDatabase_NeverArchiveAtOnce()
    {
        // Two gateways: their own SqlDatabase (own pool) on the one cluster database, their own archive directories.
        var connectionString = await OwnConnectionStringAsync("retention");
        var gatewayA = SqlDatabase.PostgreSql(connectionString);
        var gatewayB = SqlDatabase.PostgreSql(connectionString);
        await gatewayA.MigrateAsync(AuditLog.Migrations);
        using var key = OperatorSigningKey.CreateEphemeral();
        await AuditRetentionTests.SeedAsync(gatewayA, key);
        var directory = Directory.CreateTempSubdirectory("sovereign-pg-retention-").FullName;
        try
        {
            var clock = new ManualClock(AuditRetentionTests.Now);
            var (a, _) = AuditRetentionTests.Create(gatewayA, key, Path.Combine(directory, "a"), clock, afterDays: 60);
            var (b, _) = AuditRetentionTests.Create(gatewayB, key, Path.Combine(directory, "b"), clock, afterDays: 60);

            // While another process holds the archive lock (the CLI, another gateway), neither run archives anything.
            await using (var held = await SqlDatabase.PostgreSql(connectionString).TryLockAsync(AuditArchive.LockName))
            {
                Assert.NotNull(held);
                Assert.Null(await gatewayA.TryLockAsync(AuditArchive.LockName));
                Assert.Equal(AuditArchiveFileStatus.Busy, (await a.RunOnceAsync())!.Status);
                Assert.Equal(AuditArchiveFileStatus.Busy, (await b.RunOnceAsync())!.Status);
            }

            Assert.Equal(25L, await AuditRetentionTests.CountAsync(gatewayA, "SELECT COUNT(*) FROM audit_entries"));

            // Both at once: whichever takes the lock archives; the other finds it taken, or nothing left to do.
            var outcomes = await Task.WhenAll(a.RunOnceAsync(), b.RunOnceAsync());
            var files = Directory.GetFiles(directory, "*.jsonl", SearchOption.AllDirectories);

            Assert.Single(outcomes, o => o!.Status == AuditArchiveFileStatus.Archived);
            Assert.All(outcomes, o => Assert.NotEqual(AuditArchiveFileStatus.NotVerified, o!.Status));
            Assert.Single(files);
            Assert.True(await AuditRetentionTests.VerifiesAsync(files[0], key.PublicKeyPem));
            Assert.Equal(15L, await AuditRetentionTests.CountAsync(gatewayA, "SELECT COUNT(*) FROM audit_entries"));
            Assert.Equal(1L, await AuditRetentionTests.CountAsync(gatewayA, "SELECT COUNT(*) FROM audit_archives"));
            var verdict = await AuditVerifier.VerifyAsync(gatewayB, key.PublicKeyPem);
            Assert.Equal(AuditVerdict.Trusted, verdict.Verdict);
            Assert.StartsWith("Entries 1..10 were archived", verdict.VerdictReason, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task ControlPlaneStore_TenantsKeysAndNodes()
    {
        var store = new ControlPlaneStore(await MigratedAsync());
        await store.UpsertTenantAsync(new TenantRecord("pg-tenant", "PG", """{"allowed_jurisdictions":["TH"]}""", "default", false, 1, 2, """{"budgets":[]}"""));
        var (id, _, prefix, hash) = ApiKeySecrets.Create();
        await store.InsertKeyAsync(new ApiKeyRecord(id, "pg-tenant", prefix, hash, "k", null, 3, null));
        await store.RevokeKeyAsync(id, 4);
        await store.UpsertNodeAsync(new NodeRecord("pg-node", "TH", Residency.Policies.NodeKind.External, "http://x", "[]", NodeState.Active, "cred", null, 5, 6));

        Assert.Equal("""{"budgets":[]}""", (await store.GetTenantAsync("pg-tenant"))!.LimitsJson);
        Assert.Equal(4, (await store.FindKeyByHashAsync(hash))!.RevokedAt);
        Assert.Contains(await store.ListNodesAsync(), n => n.Id == "pg-node" && n.Jurisdiction == "TH");
    }

    [Fact]
    public async Task ResponseStore_TenantScoped_ExpiresAndDeletes()
    {
        var store = new ResponseStore(await MigratedAsync());
        var now = DateTimeOffset.FromUnixTimeMilliseconds(1_000_000);
        await store.InsertAsync(new StoredResponse("resp_pg_live", "pg-a", "TH", "gw", 1, now.AddDays(1).ToUnixTimeMilliseconds(), "{}", "[]"));
        await store.InsertAsync(new StoredResponse("resp_pg_old", "pg-a", "TH", "gw", 1, now.ToUnixTimeMilliseconds(), "{}", "[]"));

        Assert.NotNull(await store.GetAsync("pg-a", "resp_pg_live", now));
        Assert.Null(await store.GetAsync("pg-b", "resp_pg_live", now));
        Assert.Null(await store.GetAsync("pg-a", "resp_pg_old", now));
        Assert.False(await store.DeleteAsync("pg-b", "resp_pg_live"));
        Assert.True(await store.PurgeExpiredAsync(now) >= 1);
        Assert.True(await store.DeleteAsync("pg-a", "resp_pg_live"));
        Assert.Null(await store.GetAsync("pg-a", "resp_pg_live", now));
    }

    [Fact]
    public async Task AuditLog_AppendsAndVerifies()
    {
        var database = await MigratedAsync();
        using var key = OperatorSigningKey.CreateEphemeral();
        await using (var audit = await AuditLog.OpenAsync(database, key, new AuditLogOptions { CheckpointInterval = 10 }))
        {
            await Task.WhenAll(Enumerable.Range(0, 25).Select(i => audit.AppendAsync(new AuditRecord
            {
                Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceAllowed, Tenant = "pg-tenant", Node = "th-1", Jurisdiction = "TH",
            })));
        }

        var result = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.True(result.EntriesChecked >= 25);
    }

    [Fact]
    public async Task AuditLog_TwoWritersAppendingAtOnce_ExtendOneChain_EachEntryStoredAsReturned()
    {
        // Two gateways' logs on one database, each committing batches (its last entry moves the head in the same
        // statement) while the other moves the head under it: every entry lands once, where its writer said.
        var connection = await OwnConnectionStringAsync("two_writers");
        var first = SqlDatabase.PostgreSql(connection);
        await first.MigrateAsync(AuditLog.Migrations);
        var second = SqlDatabase.PostgreSql(connection);
        using var key = OperatorSigningKey.CreateEphemeral();
        var entries = new List<AuditEntry>();
        await using (var a = await AuditLog.OpenAsync(first, key, new AuditLogOptions { CheckpointInterval = 7 }))
        await using (var b = await AuditLog.OpenAsync(second, key, new AuditLogOptions { CheckpointInterval = 7 }))
        {
            AuditRecord Record(string gateway, int i) => new()
            {
                Kind = AuditKind.Inference, Actor = "k", Action = i % 2 == 0 ? AuditActions.InferenceAllowed : AuditActions.InferenceCompleted,
                Tenant = "pg-two", Gateway = gateway, Jurisdiction = "TH", Decision = i % 2 == 0 ? AuditDecision.Allowed : null,
                PromptTokens = i % 2 == 0 ? null : i, CompletionTokens = i % 2 == 0 ? null : 2 * i,
                Details = new Dictionary<string, string> { ["request_id"] = $"{gateway}-{i}" },
            };
            for (var round = 0; round < 4; round++)
            {
                var appended = await Task.WhenAll(Enumerable.Range(0, 15).SelectMany(i => new[]
                {
                    a.AppendAsync(Record("gw-a", (round * 15) + i)), b.AppendAsync(Record("gw-b", (round * 15) + i)),
                }));
                entries.AddRange(appended);
            }
        }

        var stored = await AuditStore.ReadEntriesAsync(first, "ORDER BY seq", _ => { }, CancellationToken.None);
        Assert.Equal(Enumerable.Range(1, 120).Select(i => (long)i), stored.Select(e => e.Sequence));
        foreach (var entry in entries)
        {
            var row = stored[(int)entry.Sequence - 1];
            Assert.Equal((entry.Hash, entry.PreviousHash, entry.Details["request_id"], entry.PromptTokens), (row.Hash, row.PreviousHash, row.Details["request_id"], row.PromptTokens));
        }

        var result = await AuditVerifier.VerifyAsync(first, key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.Equal(120L, result.LastSequence);
    }

    [Fact]
    public async Task AuditLog_MemberChains_CommitApart_TwoProcessesOfOneMemberExtendItsChain_AndAllVerifyTogether()
    {
        // A gateway (two processes of one member id) and a node, each member on its own chain of one database.
        var connection = await OwnConnectionStringAsync("member_chains");
        var gatewayA = SqlDatabase.PostgreSql(connection);
        await gatewayA.MigrateAsync(AuditLog.Migrations);
        var gatewayB = SqlDatabase.PostgreSql(connection);
        var node = SqlDatabase.PostgreSql(connection);
        using var key = OperatorSigningKey.CreateEphemeral();
        var entries = new List<AuditEntry>();
        await using (var a = await AuditLog.OpenAsync(gatewayA, key, new AuditLogOptions { Chain = "gw-th", CheckpointInterval = 7 }))
        await using (var b = await AuditLog.OpenAsync(gatewayB, key, new AuditLogOptions { Chain = "gw-th", CheckpointInterval = 7 }))
        await using (var n = await AuditLog.OpenAsync(node, key, new AuditLogOptions { Chain = "node-th", SignsCheckpoints = false }))
        {
            AuditRecord Record(string member, int i) => new()
            {
                Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceAllowed, Tenant = "pg-members", Gateway = member,
                Jurisdiction = "TH", Decision = AuditDecision.Allowed, Details = new Dictionary<string, string> { ["request_id"] = $"{member}-{i}" },
            };
            for (var round = 0; round < 3; round++)
            {
                entries.AddRange(await Task.WhenAll(Enumerable.Range(0, 10).SelectMany(i => new[]
                {
                    a.AppendAsync(Record("gw-th", (round * 10) + i)), b.AppendAsync(Record("gw-th", 100 + (round * 10) + i)), n.AppendAsync(Record("node-th", (round * 10) + i)),
                })));
            }

            // The gateway's chain lock held elsewhere (as by a commit in flight): the node's commit does not wait for it.
            await using (var holder = new Npgsql.NpgsqlConnection(connection))
            {
                await holder.OpenAsync();
                await using var hold = new Npgsql.NpgsqlCommand($"SELECT pg_advisory_lock({AuditLog.MemberChainLockClass}, hashtext('gw-th'))", holder);
                await hold.ExecuteNonQueryAsync();
                var blocked = a.AppendAsync(Record("gw-th", 999));
                var apart = await n.AppendAsync(Record("node-th", 999)).WaitAsync(TimeSpan.FromSeconds(60));
                Assert.Equal(31, apart.Sequence);
                Assert.False(blocked.IsCompleted, "the gateway's append committed while its chain's lock was held elsewhere");
                await using var release = new Npgsql.NpgsqlCommand($"SELECT pg_advisory_unlock({AuditLog.MemberChainLockClass}, hashtext('gw-th'))", holder);
                await release.ExecuteNonQueryAsync();
                entries.Add(await blocked);
                entries.Add(apart);
            }

            Assert.Equal(1, await a.SignMemberChainsAsync());
        }

        foreach (var chain in new[] { "gw-th", "node-th" })
        {
            var scope = AuditChainScope.Member(chain);
            var stored = await AuditStore.ReadEntriesAsync(gatewayA, scope, "seq >= 1 ORDER BY seq", scope.Bind, CancellationToken.None);
            Assert.Equal(Enumerable.Range(1, stored.Count).Select(i => (long)i), stored.Select(e => e.Sequence));
            foreach (var entry in entries.Where(e => e.Chain == chain))
            {
                var row = stored[(int)entry.Sequence - 1];
                Assert.Equal((entry.Hash, entry.PreviousHash, entry.Details["request_id"]), (row.Hash, row.PreviousHash, row.Details["request_id"]));
            }
        }

        var result = await AuditVerifier.VerifyAsync(gatewayA, key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal([("gw-th", 63L), ("node-th", 31L)], result.Chains.Select(c => (c.Chain, c.LastSequence))); // 61 appended, the announcement and the signed heads
    }

    [Fact]
    public async Task AuditLog_MemberChainCommit_IsOneRoundTrip_AndCommittedWhenTheAppendReturns()
    {
        // A member's decision entry is on a relayed request's path to its first token: its commit is one statement,
        // its own transaction, sent and answered once (not BEGIN + lock and head, the insert, COMMIT).
        var connection = await OwnConnectionStringAsync("one_trip");
        var database = SqlDatabase.PostgreSql(connection);
        await database.MigrateAsync(AuditLog.Migrations);
        await using var proxy = new RoundTripCountingProxy(new Npgsql.NpgsqlConnectionStringBuilder(connection).Port);
        var proxied = SqlDatabase.PostgreSql(new Npgsql.NpgsqlConnectionStringBuilder(connection) { Port = proxy.Port, Pooling = false }.ConnectionString);
        using var key = OperatorSigningKey.CreateEphemeral();
        await using var node = await AuditLog.OpenAsync(proxied, key, new AuditLogOptions { Chain = "node-th", SignsCheckpoints = false });
        AuditRecord Record(int i) => new()
        {
            Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceAllowed, Tenant = "pg-trip", Gateway = "node-th",
            Jurisdiction = "TH", Decision = AuditDecision.Allowed, Details = new Dictionary<string, string> { ["request_id"] = $"r-{i}" },
        };
        await node.AppendAsync(Record(0)); // opens the writer's connection and prepares its statements

        for (var i = 1; i <= 3; i++)
        {
            var before = proxy.RoundTrips;
            var entry = await node.AppendAsync(Record(i));
            Assert.Equal(1, proxy.RoundTrips - before);

            // Committed when the append returned: another connection reads the entry and the head at it.
            var scope = AuditChainScope.Member("node-th");
            var stored = await AuditStore.ReadEntriesAsync(database, scope, "seq >= 1 ORDER BY seq", scope.Bind, CancellationToken.None);
            Assert.Equal((entry.Sequence, entry.Hash), (stored[^1].Sequence, stored[^1].Hash));
            await using var reader = new Npgsql.NpgsqlConnection(connection);
            await reader.OpenAsync();
            await using var head = new Npgsql.NpgsqlCommand("SELECT seq FROM audit_chains WHERE chain = 'node-th'", reader);
            Assert.Equal(entry.Sequence, (long)(await head.ExecuteScalarAsync())!);
        }

        var result = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
    }

    [Fact]
    public async Task AuditLog_TwoProcessesOfOneMember_RacingForItsChain_EachCommitLandsOnce_OneChainThatVerifies()
    {
        // Two processes of one member (a rolling restart) whose heads go stale under each other: each one-statement
        // commit finds the head moved, writes nothing, and commits again under the chain's lock from the head as it is.
        // Both wait on the lock held elsewhere, so the one that goes second checks its head after the first committed.
        var connection = await OwnConnectionStringAsync("one_member_race");
        var first = SqlDatabase.PostgreSql(connection);
        await first.MigrateAsync(AuditLog.Migrations);
        var second = SqlDatabase.PostgreSql(connection);
        using var key = OperatorSigningKey.CreateEphemeral();
        var entries = new List<AuditEntry>();
        AuditRecord Record(string process, int i) => new()
        {
            Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceAllowed, Tenant = "pg-race", Gateway = "gw-th",
            Jurisdiction = "TH", Decision = AuditDecision.Allowed, Details = new Dictionary<string, string> { ["request_id"] = $"{process}-{i}" },
        };
        await using (var a = await AuditLog.OpenAsync(first, key, new AuditLogOptions { Chain = "gw-th", SignsCheckpoints = false }))
        await using (var b = await AuditLog.OpenAsync(second, key, new AuditLogOptions { Chain = "gw-th", SignsCheckpoints = false }))
        {
            for (var round = 0; round < 3; round++)
            {
                // Each appends alone first, so the other's head is stale at its next commit.
                entries.Add(await a.AppendAsync(Record("a", round * 10)));
                entries.Add(await b.AppendAsync(Record("b", round * 10)));

                await using var holder = new Npgsql.NpgsqlConnection(connection);
                await holder.OpenAsync();
                await using (var hold = new Npgsql.NpgsqlCommand($"SELECT pg_advisory_lock({AuditLog.MemberChainLockClass}, hashtext('gw-th'))", holder))
                {
                    await hold.ExecuteNonQueryAsync();
                }

                var racing = new[] { a.AppendAsync(Record("a", (round * 10) + 1)), b.AppendAsync(Record("b", (round * 10) + 1)) };

                // Both commits wait on the lock before it is released (seen in pg_locks, in this test's own database), so
                // each round is the race it means to be at any load: a 200 ms sleep let a loaded machine release it first.
                await using (var waiting = new Npgsql.NpgsqlCommand(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted", holder))
                {
                    var bound = DateTime.UtcNow.AddMinutes(1);
                    while (Convert.ToInt64(await waiting.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture) < 2)
                    {
                        Assert.True(DateTime.UtcNow < bound, "the two commits did not both wait on the chain's lock within a minute");
                        await Task.Delay(20);
                    }
                }

                Assert.DoesNotContain(racing, t => t.IsCompleted);
                await using (var release = new Npgsql.NpgsqlCommand($"SELECT pg_advisory_unlock({AuditLog.MemberChainLockClass}, hashtext('gw-th'))", holder))
                {
                    await release.ExecuteNonQueryAsync();
                }

                entries.AddRange(await Task.WhenAll(racing).WaitAsync(TimeSpan.FromSeconds(60)));
            }
        }

        var scope = AuditChainScope.Member("gw-th");
        var stored = await AuditStore.ReadEntriesAsync(first, scope, "seq >= 1 ORDER BY seq", scope.Bind, CancellationToken.None);
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (long)i), stored.Select(e => e.Sequence));
        Assert.Equal(12, entries.Select(e => e.Sequence).Distinct().Count());
        foreach (var entry in entries)
        {
            var row = stored[(int)entry.Sequence - 1];
            Assert.Equal((entry.Hash, entry.PreviousHash, entry.Details["request_id"]), (row.Hash, row.PreviousHash, row.Details["request_id"]));
        }

        var result = await AuditVerifier.VerifyAsync(first, key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.Equal([("gw-th", 12L)], result.Chains.Select(c => (c.Chain, c.LastSequence)));
    }

    /// <summary>
    /// A loopback TCP proxy to PostgreSQL that counts round trips: each time the client sends after the server spoke
    /// (or first), one more.
    /// </summary>
    private sealed class RoundTripCountingProxy : IAsyncDisposable
    {
        private readonly System.Net.Sockets.TcpListener _listener = new(System.Net.IPAddress.Loopback, 0);
        private readonly int _target;
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _pumps = [];
        private readonly Task _accepting;
        private int _roundTrips;

        public RoundTripCountingProxy(int target)
        {
            _target = target;
            _listener.Start();
            _accepting = AcceptAsync();
        }

        public int Port => ((System.Net.IPEndPoint)_listener.LocalEndpoint).Port;

        public int RoundTrips => Volatile.Read(ref _roundTrips);

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    var server = new System.Net.Sockets.TcpClient();
                    await server.ConnectAsync(System.Net.IPAddress.Loopback, _target, _stop.Token);
                    var clientSpeaks = new StrongBox<bool>(false);
                    lock (_pumps)
                    {
                        _pumps.Add(PumpAsync(client, server, clientSpeaks, fromClient: true));
                        _pumps.Add(PumpAsync(server, client, clientSpeaks, fromClient: false));
                    }
                }
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
            }
        }

        private async Task PumpAsync(System.Net.Sockets.TcpClient from, System.Net.Sockets.TcpClient to, StrongBox<bool> clientSpeaks, bool fromClient)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    var read = await from.GetStream().ReadAsync(buffer, _stop.Token);
                    if (read == 0)
                    {
                        break;
                    }

                    lock (clientSpeaks)
                    {
                        if (fromClient && !clientSpeaks.Value)
                        {
                            Interlocked.Increment(ref _roundTrips);
                        }

                        clientSpeaks.Value = fromClient;
                    }

                    await to.GetStream().WriteAsync(buffer.AsMemory(0, read), _stop.Token);
                }
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or System.Net.Sockets.SocketException)
            {
                // Either side gone: the other is closed below.
            }
            finally
            {
                from.Dispose();
                to.Dispose();
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _accepting;
            Task[] pumps;
            lock (_pumps)
            {
                pumps = [.. _pumps];
            }

            await Task.WhenAll(pumps);
            _stop.Dispose();
        }
    }

    [Fact]
    public async Task MemberChains_AGatewaysFirstUpgradeWalk_TheSharedChainsTailIsSignedByGatewaysOnTheirOwnChains_AndEveryChainEndsCovered()
    {
        // Processes of one cluster on one database; the earlier release is the shared-chain mode (member chains off).
        var connection = await OwnConnectionStringAsync("upgrade_walk");
        await SqlDatabase.PostgreSql(connection).MigrateAsync(AuditLog.Migrations);
        using var key = OperatorSigningKey.CreateEphemeral();
        Task<AuditLog> OpenAsync(string? chain, bool signs = true) =>
            AuditLog.OpenAsync(SqlDatabase.PostgreSql(connection), key, new AuditLogOptions { Chain = chain, SignsCheckpoints = signs });
        AuditRecord Record(string member, int i) => new()
        {
            Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceAllowed, Tenant = "pg-walk", Gateway = member,
            Jurisdiction = "TH", Decision = AuditDecision.Allowed, Details = new Dictionary<string, string> { ["request_id"] = $"{member}-{i}" },
        };

        // Mid-walk: gw-th already on its own chain, gw-sg and the node still of the earlier release on the shared chain.
        await using (var gwTh = await OpenAsync("gw-th"))
        await using (var gwSg = await OpenAsync(null))
        await using (var node = await OpenAsync(null, signs: false))
        {
            await Task.WhenAll(Enumerable.Range(0, 10).SelectMany(i => new[] { gwTh.AppendAsync(Record("gw-th", i)), gwSg.AppendAsync(Record("gw-sg", i)), node.AppendAsync(Record("node-th", i)) }));
            Assert.Equal(1, await gwTh.SignMemberChainsAsync()); // the shared chain's head, beside the shared-chain gateway's own checkpoints
        }

        // The last gateway moves; the node of the earlier release appends on, signed now only by gateways on their own
        // chains, both at once (one checkpoint per key and sequence).
        await using (var gwTh = await OpenAsync("gw-th"))
        await using (var gwSg = await OpenAsync("gw-sg"))
        await using (var node = await OpenAsync(null, signs: false))
        {
            await Task.WhenAll(Enumerable.Range(10, 10).Select(i => node.AppendAsync(Record("node-th", i))));
            var signed = await Task.WhenAll(gwTh.SignMemberChainsAsync(), gwSg.SignMemberChainsAsync());
            Assert.True(signed.Sum() >= 2, string.Join(", ", signed)); // the shared head by each, and each other's chain
        }

        // The node moves too: the shared chain grows no more.
        await using (var gwTh = await OpenAsync("gw-th"))
        await using (var node = await OpenAsync("node-th", signs: false))
        {
            await Task.WhenAll(Enumerable.Range(20, 3).Select(i => node.AppendAsync(Record("node-th", i))));
            await gwTh.SignMemberChainsAsync();
        }

        var result = await AuditVerifier.VerifyAsync(SqlDatabase.PostgreSql(connection), key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        // The shared chain: gw-sg's 10 and the node's 20 (the gateways share the operator key, so gw-th's own
        // checkpoints already covered its chain's head when gw-sg signed others at its shutdown: nothing announced there).
        Assert.Equal((30L, 30L, 0L), (result.LastSequence, result.CoveredThrough, result.Uncovered));
        Assert.Equal(["gw-sg", "gw-th", "node-th"], result.Chains.Select(c => c.Chain));
        Assert.All(result.Chains, c => Assert.True(c.Uncovered == 0, $"{c.Chain}: {c.VerdictReason}"));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
    }

    [Fact]
    public async Task MemberChains_ExportOfEveryChain_ArchivePerChain_WitnessedHeads_AndTheServersClaim_OnPostgreSql()
    {
        // Names whose order by PostgreSQL's collation ("gw-a" before "Node-Z") is not the ordinal one the export lists.
        var connection = await OwnConnectionStringAsync("member_archive");
        var database = SqlDatabase.PostgreSql(connection);
        await database.MigrateAsync(AuditLog.Migrations);
        using var key = OperatorSigningKey.CreateEphemeral();
        AuditRecord Record(string member) => new()
        {
            Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceRefused, Tenant = "pg-chains", Gateway = member, Jurisdiction = "TH", Decision = AuditDecision.Refused,
        };
        await using (var gateway = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = "gw-a" }))
        await using (var node = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = "Node-Z", SignsCheckpoints = false }))
        {
            for (var i = 0; i < 5; i++)
            {
                await gateway.AppendAsync(Record("gw-a"));
                await node.AppendAsync(Record("Node-Z"));
            }

            Assert.Equal(1, await gateway.SignMemberChainsAsync());
        }

        using (var file = new MemoryStream())
        {
            var summary = await AuditClusterExport.WriteAsync(database, key, null, DateTimeOffset.UnixEpoch, DateTimeOffset.UtcNow.AddMinutes(1), file, null);
            Assert.Equal([null, "Node-Z", "gw-a"], summary.Chains.Select(c => c.Chain));
            var exported = await AuditExport.VerifyExportAsync(new MemoryStream(file.ToArray()), key.PublicKeyPem);
            Assert.True(exported.Valid, string.Join("; ", exported.Problems));
            Assert.Equal(AuditVerdict.Trusted, exported.Verdict);
        }

        var directory = Directory.CreateTempSubdirectory("sovereign-pg-chains-").FullName;
        try
        {
            var archived = await AuditArchive.ArchiveToFileAsync(database, key, DateTimeOffset.UtcNow.AddSeconds(1), Path.Combine(directory, "archive.jsonl"));
            Assert.Equal(AuditArchiveFileStatus.Archived, archived.Status);
            Assert.Equal([("Node-Z", 4L), ("gw-a", 6L)], archived.Chains.Select(c => (c.Chain.Chain!, c.Removal.Removed)));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }

        await using (var gateway = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = "gw-a" }))
        await using (var node = await AuditLog.OpenAsync(database, key, new AuditLogOptions { Chain = "Node-Z", SignsCheckpoints = false }))
        {
            await node.AppendAsync(Record("Node-Z"));
            Assert.Equal(1, await gateway.SignMemberChainsAsync());
        }

        var result = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal(6L, result.Chains.Single(c => c.Chain == "Node-Z").LastSequence);

        // The node's tail rewritten after the head the gateway's chain recorded: WitnessMismatch on PostgreSQL too.
        await using (var attacker = new Npgsql.NpgsqlConnection(connection))
        {
            await attacker.OpenAsync();
            await using var rewrite = new Npgsql.NpgsqlCommand("UPDATE audit_chain_entries SET hash = repeat('a', 64) WHERE chain = 'Node-Z' AND seq = 6", attacker);
            await rewrite.ExecuteNonQueryAsync();
        }

        Assert.Contains((await AuditVerifier.VerifyAsync(database, key.PublicKeyPem)).Problems, p => p is { Kind: AuditProblemKind.WitnessMismatch, Chain: "Node-Z", Sequence: 6 });

        // Whether a server holds the database (open decisions: running or interrupted): a claimant's lock.
        Assert.False(await SharedDatabaseClaim.AnyHeldAsync(database));
        await using (await SharedDatabaseClaim.TakeAsync(database, "test:chains", "a test"))
        {
            Assert.True(await SharedDatabaseClaim.AnyHeldAsync(database));
        }

        Assert.False(await SharedDatabaseClaim.AnyHeldAsync(database));
    }

    [Fact]
    public async Task AuditArchive_RemovesUnderASignedRecord_AndTheChainStillVerifiesAndGrows()
    {
        // A database of its own: archiving moves where the chain starts.
        var database = await OwnDatabaseAsync("archived");
        using var key = OperatorSigningKey.CreateEphemeral();
        var entry = new AuditRecord { Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceAllowed, Tenant = "pg-archived", Jurisdiction = "TH" };
        await using (var audit = await AuditLog.OpenAsync(database, key))
        {
            for (var i = 0; i < 30; i++)
            {
                await audit.AppendAsync(entry);
            }
        }

        using var file = new MemoryStream();
        var summary = await AuditArchive.WriteAsync(database, key, DateTimeOffset.UtcNow.AddMilliseconds(1), file);
        var exported = await AuditExport.VerifyExportAsync(new MemoryStream(file.ToArray()), key.PublicKeyPem);
        var removal = await AuditArchive.RemoveAsync(database, key, summary.LastSequence!.Value, summary.Checkpoint!.Hash, summary.Entries);
        await using (var audit = await AuditLog.OpenAsync(database, key))
        {
            await audit.AppendAsync(entry);
        }

        var result = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);

        Assert.True(exported.Valid, string.Join("; ", exported.Problems));
        Assert.Equal((30L, 29L), (summary.Entries, removal.Removed));
        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal((29L, 2L, 31L), (result.Archive!.Sequence, result.EntriesChecked, result.LastSequence));
    }

    [Fact]
    public async Task AuditWitness_TwoGatewaysSignTheSharedChain_EachWitnessHolds_UntilTheTailIsRewritten()
    {
        var database = await OwnDatabaseAsync("witness");
        using var key = OperatorSigningKey.CreateEphemeral();
        var directory = Directory.CreateTempSubdirectory("sovereign-witness-pg-").FullName;
        var (witnessA, witnessB) = (Path.Combine(directory, "a.json"), Path.Combine(directory, "b.json"));
        var entry = new AuditRecord { Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceAllowed, Tenant = "pg-witness", Jurisdiction = "TH" };
        try
        {
            // Each gateway keeps its own witness; the other's appends extend the chain it signed, so both hold.
            await using var a = await AuditLog.OpenAsync(database, key, new AuditLogOptions { WitnessPath = witnessA });
            await using var b = await AuditLog.OpenAsync(database, key, new AuditLogOptions { WitnessPath = witnessB });
            for (var round = 0; round < 3; round++)
            {
                for (var i = 0; i < 5; i++)
                {
                    await a.AppendAsync(entry);
                    await b.AppendAsync(entry);
                }

                await a.CheckpointAsync();
                await b.CheckpointAsync();
            }

            await Task.WhenAll(a.WitnessWritten, b.WitnessWritten);
            Assert.Equal(30L, AuditWitness.Read(witnessB)!.Sequence);
            foreach (var witness in new[] { witnessA, witnessB })
            {
                var verified = await AuditVerifier.VerifyAsync(database, [key.PublicKeyPem], new AuditVerificationOptions { Witness = AuditWitness.Read(witness) }, null);
                Assert.Equal(AuditVerdict.Trusted, verified.Verdict);
            }

            // The attack: checkpoints from 25 on deleted, entries 25..30 rewritten and re-hashed, the head moved along.
            var all = await AuditStore.ReadEntriesAsync(database, "WHERE seq >= 1 ORDER BY seq", _ => { }, CancellationToken.None);
            await using (var connection = await database.OpenAsync())
            {
                var previous = all[23].Hash;
                foreach (var original in all.Skip(24))
                {
                    var rewritten = original with { Tenant = "someone-else", PreviousHash = previous };
                    rewritten = rewritten with { Hash = rewritten.ComputeHash() };
                    await using var update = connection.CreateCommand();
                    update.CommandText = "UPDATE audit_entries SET tenant = @tenant, previous_hash = @prev, hash = @hash WHERE seq = @seq";
                    SqlDatabase.AddParameter(update, "@tenant", rewritten.Tenant);
                    SqlDatabase.AddParameter(update, "@prev", rewritten.PreviousHash);
                    SqlDatabase.AddParameter(update, "@hash", rewritten.Hash);
                    SqlDatabase.AddParameter(update, "@seq", rewritten.Sequence);
                    await update.ExecuteNonQueryAsync();
                    previous = rewritten.Hash;
                }

                await using var head = connection.CreateCommand();
                head.CommandText = "UPDATE audit_head SET hash = @hash WHERE id = 1; DELETE FROM audit_checkpoints WHERE seq >= 25";
                SqlDatabase.AddParameter(head, "@hash", previous);
                await head.ExecuteNonQueryAsync();
            }

            // Both gateways signed entry 25 or later, so neither signs the rewrite. An append that signs nothing still
            // goes on from the shared head (checking every commit would cost each one two reads); the next signature,
            // within the minute on a server, refuses, and from then on that writer commits nothing.
            await a.AppendAsync(entry);
            await Assert.ThrowsAsync<AuditUnavailableException>(() => a.CheckpointAsync());
            await Assert.ThrowsAsync<AuditUnavailableException>(() => b.CheckpointAsync());
            await Assert.ThrowsAsync<AuditUnavailableException>(() => a.AppendAsync(entry));
            await Assert.ThrowsAsync<AuditIntegrityException>(() => AuditLog.OpenAsync(database, key, new AuditLogOptions { WitnessPath = witnessB }));
            var report = await AuditVerifier.VerifyAsync(database, [key.PublicKeyPem], new AuditVerificationOptions { Witness = AuditWitness.Read(witnessB) }, null);
            Assert.Equal(AuditVerdict.Tampered, report.Verdict);
            Assert.Contains(report.Problems, p => p.Kind == AuditProblemKind.WitnessMismatch);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task AuditArchive_RemovalWhileAnotherGatewayAppends_LeavesAChainThatVerifies()
    {
        var database = await OwnDatabaseAsync("archived_live");
        using var key = OperatorSigningKey.CreateEphemeral();
        var entry = new AuditRecord { Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceAllowed, Tenant = "pg-live", Jurisdiction = "TH" };
        await using (var audit = await AuditLog.OpenAsync(database, key))
        {
            for (var i = 0; i < 120; i++)
            {
                await audit.AppendAsync(entry);
            }
        }

        using var file = new MemoryStream();
        var summary = await AuditArchive.WriteAsync(database, key, DateTimeOffset.UtcNow.AddMilliseconds(1), file);

        // Another gateway keeps appending to the shared chain while the archived entries leave, in whatever order.
        var appends = Task.Run(async () =>
        {
            await using var other = await AuditLog.OpenAsync(database, key);
            for (var i = 0; i < 60; i++)
            {
                await other.AppendAsync(entry);
            }
        });
        var removal = await AuditArchive.RemoveAsync(database, key, summary.LastSequence!.Value, summary.Checkpoint!.Hash, summary.Entries);
        await appends;

        var result = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);

        Assert.True(result.Valid, string.Join("; ", result.Problems));
        Assert.Equal(AuditVerdict.Trusted, result.Verdict);
        Assert.Equal(180L, result.LastSequence);
        Assert.Equal(removal.Record!.Sequence, result.Archive!.Sequence);
        Assert.Equal(180L - removal.Removed, result.EntriesChecked);
    }

    [Fact]
    public async Task AuditLog_CarriesAUsageRecord_InItsTransaction()
    {
        // A database of its own: the other tests verify the shared database's chain against their own keys.
        var database = await OwnDatabaseAsync("carried");
        await database.MigrateAsync([.. AuditLog.Migrations, .. UsageLedger.Migrations]);
        using var key = OperatorSigningKey.CreateEphemeral();
        await using var ledger = await UsageLedger.OpenAsync(database);
        await using var audit = await AuditLog.OpenAsync(database, key);
        var now = DateTimeOffset.UtcNow;
        var tenant = "pg-carried-" + Guid.NewGuid().ToString("N")[..8];
        var carried = ledger.Carry(new UsageRecord
        {
            RequestId = tenant + "-1", Timestamp = now, Tenant = tenant, KeyId = "k", Model = "m", Node = "n", Jurisdiction = "TH",
            PromptTokens = 3, CompletionTokens = 2, Cost = 0.25m, Currency = "EUR", PriceVersion = "standard:m@2026-01-01T00:00:00.000Z",
        })!;

        await audit.AppendAsync(new AuditRecord { Kind = AuditKind.Inference, Actor = "k", Action = "inference.completed", Tenant = tenant, Node = "n", Jurisdiction = "TH" }, carried);

        Assert.True(await carried.Stored);
        Assert.Equal(0.25m, await ledger.GetSpendAsync(tenant, "k", UsagePeriod.Total, now, "EUR"));
    }

    /// <summary>
    /// The ledger reconciliation of <c>audit verify</c> streams (its entries by request id in a scratch file, the daily
    /// and period totals summed and compared by the database, one day and one tenant at a time): the same statements
    /// run on PostgreSQL, agree with an intact ledger and name each changed record and total.
    /// </summary>
    [Fact]
    public async Task LedgerReconciliation_Streamed_AgreesWithAnIntactLedger_AndNamesEveryChange_OnPostgreSql()
    {
        var database = await OwnDatabaseAsync("reconcile");
        await database.MigrateAsync([.. AuditLog.Migrations, .. UsageLedger.Migrations]);
        using var key = OperatorSigningKey.CreateEphemeral();
        await using (var ledger = await UsageLedger.OpenAsync(database))
        await using (var audit = await AuditLog.OpenAsync(database, key))
        {
            var now = DateTimeOffset.UtcNow;
            for (var i = 0; i < 6; i++)
            {
                var (tenant, requestId) = ($"t{i % 2}", $"req-{i}");
                await audit.AppendAsync(new AuditRecord
                {
                    Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceAllowed, Tenant = tenant, KeyId = "k", Model = "m", Gateway = "g", Node = "g",
                    Jurisdiction = "TH", Decision = AuditDecision.Allowed, Details = new Dictionary<string, string> { ["request_id"] = requestId },
                });
                var carried = ledger.Carry(new UsageRecord
                {
                    RequestId = requestId, Timestamp = now.AddDays(-i), Tenant = tenant, KeyId = "k", Model = "m", Node = "g", Jurisdiction = "TH",
                    PromptTokens = 10 + i, CompletionTokens = 5, Cost = 0.25m, Currency = "EUR", PriceVersion = "v1",
                })!;
                await audit.AppendAsync(new AuditRecord
                {
                    Kind = AuditKind.Inference, Actor = "k", Action = AuditActions.InferenceCompleted, Tenant = tenant, KeyId = "k", Model = "m", Gateway = "g", Node = "g",
                    Jurisdiction = "TH", Decision = AuditDecision.Allowed, PromptTokens = 10 + i, CompletionTokens = 5,
                    Details = new Dictionary<string, string> { ["request_id"] = requestId, [LedgerAuditDetails.Cost] = "0.250000", [LedgerAuditDetails.Currency] = "EUR" },
                }, carried);
                Assert.True(await carried.Stored);
            }
        }

        Assert.Empty(await global::Sovereign.Gateway.Metering.LedgerReconciliation.CheckAsync(database, CancellationToken.None));

        await using (var connection = await database.OpenAsync())
        await using (var tamper = connection.CreateCommand())
        {
            tamper.CommandText = "UPDATE metering_usage SET cost_micros = 10000 WHERE request_id = 'req-3'; " +
                "UPDATE metering_tenant_periods SET cost_micros = cost_micros + 1 WHERE tenant = 't0' AND period = 'total'";
            await tamper.ExecuteNonQueryAsync();
        }

        var problems = (await global::Sovereign.Gateway.Metering.LedgerReconciliation.CheckAsync(database, CancellationToken.None)).Select(p => p.Message).ToList();
        Assert.Contains(problems, m => m.StartsWith("usage record req-3 disagrees with its audit entry: cost 0.010000 EUR in the ledger, 0.250000 EUR in the log", StringComparison.Ordinal));
        Assert.Contains(problems, m => m.StartsWith("the daily usage totals of tenant 't1' on ", StringComparison.Ordinal) && m.Contains("are not the sum of its usage records", StringComparison.Ordinal));
        Assert.Contains(problems, m => m.StartsWith("the all-time spend totals of tenant 't0' in EUR", StringComparison.Ordinal));
        Assert.Equal(3, problems.Count);
    }

    [Fact]
    public async Task UsageLedger_IsIdempotentAndAggregates()
    {
        var database = await MigratedAsync();
        var now = DateTimeOffset.UtcNow;
        await using var ledger = await UsageLedger.OpenAsync(database);
        UsageRecord Record(string id) => new()
        {
            RequestId = id, Timestamp = now, Tenant = "pg-ledger", KeyId = "k", Model = "m", Node = "n", Jurisdiction = "TH",
            PromptTokens = 10, CompletionTokens = 5, Cost = 0.125m, Currency = "EUR", PriceVersion = "standard:m@2026-01-01T00:00:00.000Z",
        };

        Assert.True(await ledger.AppendAsync(Record("pg-1")));
        Assert.True(await ledger.AppendAsync(Record("pg-2")));
        Assert.False(await ledger.AppendAsync(Record("pg-1")));

        var rows = await ledger.QueryUsageAsync(new UsageQuery { Tenant = "pg-ledger", From = now.AddDays(-1), To = now.AddDays(1), GroupBy = UsageGroupBy.Tenant });
        var row = Assert.Single(rows);
        Assert.Equal(2, row.Requests);
        Assert.Equal(0.25m, row.Cost);
        Assert.True(await ledger.AppendAsync(Record("pg-3") with { KeyId = "k2" }));
        var perKey = await ledger.QueryUsageAsync(new UsageQuery { Tenant = "pg-ledger", From = now.AddDays(-1), To = now.AddDays(1), GroupBy = UsageGroupBy.Key });
        Assert.Equal([("k", 2L), ("k2", 1L)], perKey.Select(r => (r.KeyId, r.Requests)));
        Assert.Equal(0.125m, Assert.Single(await ledger.QueryUsageAsync(new UsageQuery { Tenant = "pg-ledger", KeyId = "k2", From = now.AddDays(-1), To = now.AddDays(1) })).Cost);

        // The budget aggregates: per tenant and per key, day, month and total, in the record's currency only.
        foreach (var period in new[] { UsagePeriod.Day, UsagePeriod.Month, UsagePeriod.Total })
        {
            Assert.Equal(0.375m, await ledger.GetSpendAsync("pg-ledger", null, period, now, "EUR"));
            Assert.Equal(0.25m, await ledger.GetSpendAsync("pg-ledger", "k", period, now, "EUR"));
            Assert.Equal(0m, await ledger.GetSpendAsync("pg-ledger", "k", period, now, "USD"));
        }
    }

    /// <summary>
    /// Period aggregates folded behind a watermark on PostgreSQL (session 55): a sequence value is taken in nextval
    /// order, not commit order, so a record with a lower value can commit after a higher one. The fold locks the raw
    /// table against inserts first, so it waits for that record and folds it with the rest: W never passes over it.
    /// Readers are exact before the fold (they add the records above W) and after.
    /// </summary>
    [Fact]
    public async Task UsageLedger_Fold_WaitsForALowerSequenceCommittingLate_AndReadersAreExactThroughout()
    {
        var database = await OwnDatabaseAsync("fold");
        var options = new UsageLedgerOptions { AggregateFoldInterval = TimeSpan.FromDays(1), AggregateFoldRecords = int.MaxValue };
        await using var ledger = await UsageLedger.OpenAsync(database, options);
        var now = DateTimeOffset.UtcNow;
        UsageRecord Record(string id, decimal cost) => new()
        {
            RequestId = id, Timestamp = now, Tenant = "fold", KeyId = "k", Model = "m", Node = "n", Jurisdiction = "TH",
            PromptTokens = 10, CompletionTokens = 5, Cost = cost, Currency = "EUR", PriceVersion = "v1",
        };

        await using var late = (Npgsql.NpgsqlConnection)await database.OpenAsync();
        await using var lateTransaction = await late.BeginTransactionAsync();
        using (var insert = PreparedStatement.Create(late, LedgerSchema.InsertRecord, portable: true))
        {
            // Takes the lower sequence value and stays uncommitted.
            var low = Record("low", 1m);
            LedgerSchema.BindRecord(insert, low, now.ToUnixTimeMilliseconds(), 0, 1_000_000);
            Assert.Equal(1, await insert.ExecuteAsync(lateTransaction));
        }

        Assert.True(await ledger.AppendAsync(Record("high", 2m)));
        Assert.Equal(2m, await ledger.GetSpendAsync("fold", null, UsagePeriod.Total, now, "EUR"));
        Assert.Equal(0, await ScalarAsync(database, "SELECT COUNT(*) FROM metering_tenant_periods"));

        // The fold waits for the lower value's transaction (its lock is queued behind that insert's)...
        var fold = ledger.FoldAsync();
        while (await ScalarAsync(database, "SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND relation = 'metering_usage'::regclass") == 0)
        {
            Assert.False(fold.IsCompleted, "the fold must wait for the uncommitted insert");
            await Task.Yield();
        }

        // ...which commits late: folded with the other, both once.
        await lateTransaction.CommitAsync();
        Assert.Equal(2, await fold);
        Assert.Equal(0, await ledger.FoldAsync());
        foreach (var period in new[] { UsagePeriod.Day, UsagePeriod.Month, UsagePeriod.Total })
        {
            Assert.Equal(3m, await ledger.GetSpendAsync("fold", null, period, now, "EUR"));
            Assert.Equal(3m, await ledger.GetSpendAsync("fold", "k", period, now, "EUR"));
        }

        Assert.Equal(3_000_000, await ScalarAsync(database, "SELECT cost_micros FROM metering_tenant_periods WHERE tenant = 'fold' AND period = 'total'"));
        Assert.Equal(2, Assert.Single(await ledger.GetTenantTotalsAsync("fold", UsagePeriod.Total, now)).Requests);
    }

    /// <summary>
    /// Two gateways on one database appending and folding at once: every read lies between what was completed before it
    /// and what was started, and at the end every record is counted once in the stored aggregates.
    /// </summary>
    [Fact]
    public async Task UsageLedger_TwoGatewaysAppendingAndFoldingAtOnce_CountEachRecordOnce()
    {
        var connectionString = await OwnConnectionStringAsync("foldrace");
        var options = new UsageLedgerOptions { AggregateFoldInterval = TimeSpan.FromDays(1), AggregateFoldRecords = 7 };
        await using var first = await UsageLedger.OpenAsync(SqlDatabase.PostgreSql(connectionString), options);
        await using var second = await UsageLedger.OpenAsync(SqlDatabase.PostgreSql(connectionString), new UsageLedgerOptions
        {
            AggregateFoldInterval = TimeSpan.FromDays(1), AggregateFoldRecords = 7, Writer = "second",
        });
        var now = DateTimeOffset.UtcNow;
        var records = Enumerable.Range(0, 300).Select(i => new UsageRecord
        {
            RequestId = $"race-{i:D4}", Timestamp = now, Tenant = "race", KeyId = "k", Model = "m", Node = "n", Jurisdiction = "TH",
            PromptTokens = 1, CompletionTokens = 1, Cost = 0.000001m * (i + 1), Currency = "EUR", PriceVersion = "v1",
        }).ToList();
        long started = 0, completed = 0;
        var appending = Parallel.ForEachAsync(records, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (record, _) =>
        {
            var micros = (long)(record.Cost * 1_000_000m);
            Interlocked.Add(ref started, micros);
            Assert.True(await (micros % 2 == 0 ? first : second).AppendAsync(record));
            Interlocked.Add(ref completed, micros);
        });
        var reads = 0;
        while (!appending.IsCompleted || reads == 0)
        {
            await Task.WhenAll(first.FoldAsync(), second.FoldAsync());
            var low = Interlocked.Read(ref completed);
            var read = await (reads % 2 == 0 ? first : second).GetSpendAsync("race", null, UsagePeriod.Total, now, "EUR");
            Assert.InRange(read, low / 1_000_000m, Interlocked.Read(ref started) / 1_000_000m);
            reads++;
        }

        await appending;
        var expected = records.Sum(r => r.Cost);
        Assert.Equal(expected, await first.GetSpendAsync("race", "k", UsagePeriod.Day, now, "EUR"));
        await Task.WhenAll(first.FoldAsync(), second.FoldAsync());
        Assert.Equal(expected, await second.GetSpendAsync("race", null, UsagePeriod.Month, now, "EUR"));
        var database = SqlDatabase.PostgreSql(connectionString);
        Assert.Equal(records.Count, await ScalarAsync(database, "SELECT requests FROM metering_tenant_periods WHERE tenant = 'race' AND period = 'total'"));
        Assert.Equal((long)(expected * 1_000_000m), await ScalarAsync(database, "SELECT SUM(cost_micros) FROM metering_usage_daily WHERE tenant = 'race'"));
    }

    private static async Task<long> ScalarAsync(SqlDatabase database, string sql)
    {
        await using var connection = await database.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var value = await command.ExecuteScalarAsync();
        return value is null or DBNull ? 0 : Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task PoolMigrations_KeepALedgerWrittenBeforePoolsReadable_AndPricesRoundTrip()
    {
        // A schema of its own, migrated only as far as the ledger was before pools.
        var schema = "pools_" + Guid.NewGuid().ToString("N")[..8];
        await using (var connection = await Database().OpenAsync())
        {
            await ExecuteAsync(connection, $"CREATE SCHEMA {schema}");
        }

        var database = SqlDatabase.PostgreSql(postgres.ConnectionString + ";Search Path=" + schema);
        await database.MigrateAsync([.. UsageLedger.Migrations.Take(2)]);
        var day = new DateTimeOffset(DateTime.UtcNow.Date, TimeSpan.Zero);
        await using (var connection = await database.OpenAsync())
        {
            await ExecuteAsync(connection, $"""
                INSERT INTO metering_usage_daily (tenant, day_start, model, jurisdiction, currency, requests, completed, refused, cancelled, failed,
                    prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros)
                VALUES ('pg-pools', {day.ToUnixTimeMilliseconds()}, 'm', 'TH', 'THB', 2, 2, 0, 0, 0, 20, 10, 0, 0, 3000000)
                """);
        }

        await database.MigrateAsync([.. UsageLedger.Migrations, .. PriceBookStore.Migrations]);
        await using (var ledger = await UsageLedger.OpenAsync(database))
        {
            Assert.True(await ledger.AppendAsync(new UsageRecord
            {
                RequestId = "pg-pool-1", Timestamp = day.AddHours(1), Tenant = "pg-pools", KeyId = "k", Model = "m", Node = "n", Jurisdiction = "TH",
                Pool = "th-h100", DeviceClass = "h100", Cost = 1m, Currency = "THB", PriceVersion = "v",
            }));
            var invoice = await new InvoiceBuilder(ledger).BuildAsync("pg-pools", day, day.AddDays(1));
            Assert.Equal([(null, null, 3m), ("th-h100", "h100", 1m)], invoice.Lines.Select(l => (l.Pool, l.DeviceClass, l.Amount)));
            Assert.Equal(("th-h100", "h100"), ((await ledger.GetAsync("pg-pool-1"))!.Pool, (await ledger.GetAsync("pg-pool-1"))!.DeviceClass));
        }

        var store = new PriceBookStore(database);
        var from = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.AddDays(1).ToUnixTimeMilliseconds());
        var plan = new Plan
        {
            Name = "pg-pools",
            Currency = "THB",
            ComputePrices = [new ComputePrice { Pool = "th-h100", EffectiveFrom = from, PerComputeSecond = 0.0125m }],
            Reservations = [new PoolReservation("th-h100", 2)],
        };
        await store.SaveAsync(new PriceBook([plan]), DateTimeOffset.UtcNow);
        var loaded = (await store.LoadAsync()).FindPlan("pg-pools")!;
        Assert.Equal(plan.ComputePrices, loaded.ComputePrices);
        Assert.Equal(2, loaded.ReservedSlotsIn("th-h100"));
    }

    /// <summary>
    /// The billing basis migration on PostgreSQL: a ledger written before it stays readable, several processes that
    /// start at once (each its own pool) apply it once, and a waived record's basis and waived tokens round-trip.
    /// </summary>
    [Fact]
    public async Task BillingBasisMigration_SeveralStartsAtOnce_KeepOlderUsage_AndTheBasisRoundTrips()
    {
        var connectionString = await OwnConnectionStringAsync("basis");
        await SqlDatabase.PostgreSql(connectionString).MigrateAsync([.. UsageLedger.Migrations.Take(3)]);
        var day = new DateTimeOffset(DateTime.UtcNow.Date, TimeSpan.Zero);
        await using (var connection = await SqlDatabase.PostgreSql(connectionString).OpenAsync())
        {
            await ExecuteAsync(connection, $"""
                INSERT INTO metering_usage_daily (tenant, day_start, model, jurisdiction, pool, device_class, currency, requests, completed, refused, cancelled, failed,
                    prompt_tokens, completion_tokens, cached_tokens, compute_us, cost_micros)
                VALUES ('pg-basis', {day.ToUnixTimeMilliseconds()}, 'm', 'TH', '', '', 'THB', 2, 2, 0, 0, 0, 20, 10, 0, 0, 3000000)
                """);
        }

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => SqlDatabase.PostgreSql(connectionString).MigrateAsync(UsageLedger.Migrations)));
        var database = SqlDatabase.PostgreSql(connectionString);
        await using var ledger = await UsageLedger.OpenAsync(database);
        var basis = new CharacterEquivalentBasis("th", 6.308123456789012, 150, 200, "script") { CompletionLanguageLetters = 3, CompletionLetters = 40 };
        Assert.True(await ledger.AppendAsync(new UsageRecord
        {
            RequestId = "pg-basis-1", Timestamp = day.AddHours(1), Tenant = "pg-basis", KeyId = "k", Model = "m", Node = "n", Jurisdiction = "TH",
            Language = "th", PromptTokens = 100, CompletionTokens = 10, Cost = 1m, Currency = "THB", PriceVersion = "v",
            CharacterEquivalent = basis, WaivedPromptTokens = 60, WaivedCompletionTokens = 1,
        }));

        var stored = await ledger.GetAsync("pg-basis-1");
        Assert.Equal((basis, 60, 1), (stored!.CharacterEquivalent, stored.WaivedPromptTokens, stored.WaivedCompletionTokens));
        var line = Assert.Single((await new InvoiceBuilder(ledger).BuildAsync("pg-basis", day, day.AddDays(1))).Lines);
        Assert.Equal((3L, 120L, 60L, 20L, 1L, 4m), (line.Requests, line.InputTokens, line.WaivedInputTokens, line.OutputTokens, line.WaivedOutputTokens, line.Amount));
        await using var check = await database.OpenAsync();
        using var count = check.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM schema_migrations WHERE name = 'metering-ledger-005-billing-basis'";
        Assert.Equal(1L, Convert.ToInt64(await count.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// The carry of sub-millionth remainders on PostgreSQL (<see cref="CostCarry"/>): processes that start at once
    /// create its table once, two nodes appending for one tenant keep their own remainders, and each reads its own back
    /// when it opens again, so tiny requests are billed their sum across restarts.
    /// </summary>
    [Fact]
    public async Task CostCarry_SeveralStartsAtOnce_EachNodeKeepsAndRereadsItsOwnRemainder()
    {
        var connectionString = await OwnConnectionStringAsync("carry");
        await SqlDatabase.PostgreSql(connectionString).MigrateAsync([.. UsageLedger.Migrations.Take(5)]);
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => SqlDatabase.PostgreSql(connectionString).MigrateAsync(UsageLedger.Migrations)));
        var day = new DateTimeOffset(DateTime.UtcNow.Date, TimeSpan.Zero);
        var billed = 0m;
        async Task AppendAsync(UsageLedger ledger, string id)
        {
            var cost = ledger.CostCarry.Bill("pg-carry", "THB", 0.0000003m);
            Assert.True(await ledger.AppendAsync(new UsageRecord
            {
                RequestId = id, Timestamp = day.AddHours(1), Tenant = "pg-carry", KeyId = "k", Model = "m", Node = "n", Jurisdiction = "TH",
                Cost = cost, ExactCost = cost == 0.0000003m ? null : 0.0000003m, Currency = "THB", PriceVersion = "v",
            }));
            billed += cost;
        }

        await using (var one = await UsageLedger.OpenAsync(SqlDatabase.PostgreSql(connectionString), new UsageLedgerOptions { Writer = "gw-1" }))
        await using (var two = await UsageLedger.OpenAsync(SqlDatabase.PostgreSql(connectionString), new UsageLedgerOptions { Writer = "gw-2" }))
        {
            await AppendAsync(one, "a1");
            await AppendAsync(two, "b1");
            await AppendAsync(one, "a2");
        }

        await using var again = await UsageLedger.OpenAsync(SqlDatabase.PostgreSql(connectionString), new UsageLedgerOptions { Writer = "gw-1" });
        Assert.Equal(-0.0000004m, again.CostCarry.RemainderOf("pg-carry", "THB"));
        await AppendAsync(again, "a3");
        await AppendAsync(again, "a4");
        Assert.Equal(0.000001m, billed);
        Assert.Equal(billed, await again.GetSpendAsync("pg-carry", null, UsagePeriod.Total, day, "THB"));
        await using var check = await SqlDatabase.PostgreSql(connectionString).OpenAsync();
        using var count = check.CreateCommand();
        count.CommandText = "SELECT COUNT(*) FROM schema_migrations WHERE name = 'metering-ledger-006-cost-carry'";
        Assert.Equal(1L, Convert.ToInt64(await count.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// The open-decision search for a dead cluster process reads its gateway id's rows from the process's start to the
    /// head: on a log where that id wrote 1 row in 100, PostgreSQL reads them through the gateway index instead of
    /// every row of the range (it had no such index; migration audit-005-entries-by-gateway).
    /// </summary>
    [Fact]
    public async Task OpenDecisionsScan_UsesTheGatewayIndex()
    {
        var database = await OwnDatabaseAsync("scan");
        await database.MigrateAsync(AuditLog.Migrations);
        await using var connection = await database.OpenAsync();
        await ExecuteAsync(connection, """
            INSERT INTO audit_entries (seq, at_ms, kind, actor, action, gateway, reasons, details, format, previous_hash, hash)
            SELECT g, g, 'inference', 'k', CASE WHEN g % 2 = 0 THEN 'inference.allowed' ELSE 'inference.completed' END,
                   CASE WHEN g % 100 = 0 THEN 'gw-rare' ELSE 'gw-' || (g % 7) END, '[]', '{"request_id":"r' || (g / 2) || '"}', 1, '', ''
            FROM generate_series(1, 200000) AS g
            """);
        await ExecuteAsync(connection, "ANALYZE audit_entries");
        using var explain = connection.CreateCommand();
        explain.CommandText = "EXPLAIN " + AuditLog.OpenDecisionsScan;
        foreach (var (name, value) in new (string, object)[] { ("@after", 1000L), ("@through", 200_000L), ("@gateway", "gw-rare"), ("@allowed", AuditActions.InferenceAllowed), ("@completed", AuditActions.InferenceCompleted), ("@interrupted", AuditActions.InferenceInterrupted), ("@refused", AuditActions.InferenceRefused) })
        {
            SqlDatabase.AddParameter(explain, name, value);
        }

        var plan = new List<string>();
        await using (var reader = await explain.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                plan.Add(reader.GetString(0));
            }
        }

        Assert.True(plan.Any(line => line.Contains("audit_entries_gateway_seq", StringComparison.Ordinal)), string.Join('\n', plan));
    }

    private static async Task ExecuteAsync(System.Data.Common.DbConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task TenantAndUsagePages_WalkEveryRowOnce_OnPostgreSql()
    {
        // The pages' SQL (WHERE id > @after, and a row value of the grouped columns compared with the cursor's) is
        // the same text on both databases; PostgreSQL types the cursor's parameters (the day a bigint, the rest text).
        var database = await OwnDatabaseAsync("paging");
        await database.MigrateAsync([.. ControlPlaneStore.Migrations, .. UsageLedger.Migrations]);
        var store = new ControlPlaneStore(database);
        for (var i = 0; i < 5; i++)
        {
            await store.UpsertTenantAsync(new TenantRecord($"pg-page-{i}", "t", "{}", "standard", false, 1, 1));
        }

        var tenants = new List<string>();
        for (string? after = null; ;)
        {
            var page = await store.ListTenantsPageAsync(after, 2);
            tenants.AddRange(page.Select(t => t.Id));
            if (page.Count < 2)
            {
                break;
            }

            after = page[^1].Id;
        }

        Assert.Equal(Enumerable.Range(0, 5).Select(i => $"pg-page-{i}"), tenants);
        Assert.Equal(5, await store.CountTenantsAsync());

        var day = new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero);
        await using var ledger = await UsageLedger.OpenAsync(database);
        var n = 0;
        foreach (var (tenant, model, offset) in new[] { ("a", "m1", 0), ("a", "m2", 0), ("b", "m1", 1), ("b", "m1", 2), ("c", "m2", 2) })
        {
            Assert.True(await ledger.AppendAsync(new UsageRecord
            {
                RequestId = $"pg-page-{n++}", Timestamp = day.AddDays(offset).AddHours(1), Tenant = tenant, KeyId = "k", Model = model, Node = "n", Jurisdiction = "TH",
                Cost = 1m, Currency = "EUR", PriceVersion = "v",
            }));
        }

        foreach (var groupBy in new[] { UsageGroupBy.Day | UsageGroupBy.Tenant | UsageGroupBy.Model, UsageGroupBy.Tenant, UsageGroupBy.None, UsageGroupBy.Day | UsageGroupBy.Key | UsageGroupBy.DeviceClass })
        {
            var query = new UsageQuery { From = day, To = day.AddDays(3), GroupBy = groupBy };
            var whole = await ledger.QueryUsageAsync(query);
            var walked = new List<UsageRow>();
            for (string? after = null; ;)
            {
                var page = await ledger.QueryUsageAsync(query with { Limit = 1, After = after });
                walked.AddRange(page);
                if (page.Count == 0)
                {
                    break;
                }

                after = UsageLedger.CursorOf(page[^1], groupBy);
            }

            Assert.Equal(whole, walked);
        }
    }
}
