using System.Collections.Immutable;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Hosting;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.FunctionalTests.Storage;
using Sovereign.Gateway.Hosting;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;
using Sovereign.Storage;
using Sovereign.Tests;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// The requests a killed cluster gateway left open, closed by the gateways that outlive it: only once membership
/// declares its process dead, never a live twin's under the same gateway id, and exactly once however many gateways
/// look at the same moment (one conditional UPDATE claims the work). On a real PostgreSQL; membership is a snapshot.
/// </summary>
public sealed class InterruptedInstancesTests(PostgreSqlFixture postgres) : IClassFixture<PostgreSqlFixture>, IDisposable
{
    private static readonly SiloAddress Killed = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 21001), 1);
    private static readonly SiloAddress Twin = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 21002), 1);
    private static readonly SiloAddress CloserA = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 21003), 1);
    private static readonly SiloAddress CloserB = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 21004), 1);
    private static readonly SiloAddress Node = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 21005), 1);

    private readonly string _folder = Directory.CreateTempSubdirectory("sovereign-interrupted-cluster-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task DeadProcess_ItsOpenDecisionsAreClosedOnce_ByOneOfTheGatewaysLookingTogether_AndALiveTwinsStayOpen()
    {
        var database = await OwnDatabaseAsync();
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_folder, "operator-key.pem"));
        await using var log = await AuditLog.OpenAsync(database, key);
        await using var ledger = await UsageLedger.OpenAsync(database);

        // Two processes of one gateway id (a killed one and a live twin), each with an answered and an open request.
        await log.RegisterInstanceAsync(Killed.ToParsableString(), "gateway-th");
        await log.RegisterInstanceAsync(Twin.ToParsableString(), "gateway-th");
        foreach (var (silo, prefix) in new[] { (Killed, "killed"), (Twin, "twin") })
        {
            await DecideAsync(log, silo, $"{prefix}-answered");
            await log.AppendAsync(Outcome($"{prefix}-answered"));
            await DecideAsync(log, silo, $"{prefix}-open");
        }

        var a = Closer(log, ledger, CloserA);
        var b = Closer(log, ledger, CloserB);
        await a.StartAsync(CancellationToken.None); // registers CloserA, as a starting gateway does
        await b.StartAsync(CancellationToken.None);
        try
        {
            // While membership shows the process active (or does not know it), nothing is closed.
            var early = await Task.WhenAll(
                a.CloseDeadInstancesAsync(Membership((Killed, SiloStatus.Active)), CancellationToken.None),
                b.CloseDeadInstancesAsync(Membership(), CancellationToken.None));
            Assert.Equal([0, 0], early);

            // Declared dead: both gateways look at once; one closes its one open request, the twin's stays open.
            var dead = Membership((Killed, SiloStatus.Dead), (Twin, SiloStatus.Active), (CloserA, SiloStatus.Active), (CloserB, SiloStatus.Active));
            var closed = await Task.WhenAll(a.CloseDeadInstancesAsync(dead, CancellationToken.None), b.CloseDeadInstancesAsync(dead, CancellationToken.None));
            Assert.Equal(1, closed.Sum());
            Assert.Equal(0, (await Task.WhenAll(a.CloseDeadInstancesAsync(dead, CancellationToken.None), b.CloseDeadInstancesAsync(dead, CancellationToken.None))).Sum());
        }
        finally
        {
            await a.StopAsync(CancellationToken.None);
            await b.StopAsync(CancellationToken.None);
        }

        var interrupted = await InterruptedAsync(log);
        var entry = Assert.Single(interrupted);
        Assert.Equal("killed-open", entry.Details["request_id"]);
        Assert.Equal(("gateway-th", Killed.ToParsableString()), (entry.Gateway, entry.Details[AuditLog.InstanceDetail]));
        Assert.Contains(entry.Details["closed_by"], new[] { "gateway-a", "gateway-b" });
        Assert.Null(entry.PromptTokens);
        var record = await ledger.GetAsync("killed-open");
        Assert.NotNull(record);
        Assert.Equal((UsageOutcome.Failed, InterruptedRequests.Code, 0m), (record.Outcome, record.RefusalCode, record.Cost));
        Assert.Null(await ledger.GetAsync("twin-open"));

        await log.CheckpointAsync();
        var verified = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);
        Assert.True(verified.Valid, string.Join("; ", verified.Problems));
    }

    [Fact]
    public async Task ACloserThatDiedBeforeItFinished_IsReplaced_OnceItIsDeadInTurn()
    {
        var database = await OwnDatabaseAsync();
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_folder, "operator-key.pem"));
        await using var log = await AuditLog.OpenAsync(database, key);
        await using var ledger = await UsageLedger.OpenAsync(database);
        await log.RegisterInstanceAsync(Killed.ToParsableString(), "gateway-th");
        await DecideAsync(log, Killed, "open-1");

        // CloserA claimed the dead process and was killed before it closed anything.
        Assert.True(await log.TryClaimInstanceAsync(Killed.ToParsableString(), CloserA.ToParsableString()));
        Assert.False(await log.TryClaimInstanceAsync(Killed.ToParsableString(), CloserB.ToParsableString()));

        var b = Closer(log, ledger, CloserB);
        Assert.Equal(0, await b.CloseDeadInstancesAsync(Membership((Killed, SiloStatus.Dead), (CloserA, SiloStatus.Active)), CancellationToken.None));
        Assert.Equal(1, await b.CloseDeadInstancesAsync(Membership((Killed, SiloStatus.Dead), (CloserA, SiloStatus.Dead)), CancellationToken.None));
        Assert.Equal("open-1", Assert.Single(await InterruptedAsync(log)).Details["request_id"]);
        Assert.DoesNotContain(await log.ListUnclosedInstancesAsync(), i => i.Instance == Killed.ToParsableString());
    }

    /// <summary>
    /// Redis restarted empty (or membership cleaned the entry up): the table no longer lists a killed process, which was
    /// never declared dead, so its open decisions stayed open for ever. Now a process membership does not list is taken
    /// for dead once its heartbeat count has not moved for the grace (by the closer's own clock); one that still counts
    /// (alive, its table lost) is never closed, and the closed one's next heartbeat is refused.
    /// </summary>
    [Fact]
    public async Task ProcessMembershipNoLongerLists_IsClosedOnceItsHeartbeatsStop_AndALiveOneThatCountsNever()
    {
        var database = await OwnDatabaseAsync();
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_folder, "operator-key.pem"));
        await using var log = await AuditLog.OpenAsync(database, key);
        await using var ledger = await UsageLedger.OpenAsync(database);
        await log.RegisterInstanceAsync(Killed.ToParsableString(), "gateway-th");
        await log.RegisterInstanceAsync(Twin.ToParsableString(), "gateway-th");
        await DecideAsync(log, Killed, "killed-open");
        await DecideAsync(log, Twin, "twin-running");
        Assert.True(await log.HeartbeatInstanceAsync(Killed.ToParsableString())); // it ran a while, then was killed

        var clock = new ManualClock(DateTimeOffset.Parse("2026-12-05T08:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var closer = Closer(log, ledger, CloserB, clock, graceSeconds: 60);
        var lost = Membership((CloserB, SiloStatus.Active)); // the new table lists neither
        Assert.Equal(TimeSpan.FromSeconds(60), closer.UnlistedBound);

        Assert.Equal(0, await closer.CloseDeadInstancesAsync(lost, CancellationToken.None));
        Assert.True(await log.HeartbeatInstanceAsync(Twin.ToParsableString()));
        clock.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(0, await closer.CloseDeadInstancesAsync(lost, CancellationToken.None));
        Assert.True(await log.HeartbeatInstanceAsync(Twin.ToParsableString()));
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(1, await closer.CloseDeadInstancesAsync(lost, CancellationToken.None));

        // The live twin keeps counting: never closed, however long the table does not list it.
        for (var round = 0; round < 3; round++)
        {
            Assert.True(await log.HeartbeatInstanceAsync(Twin.ToParsableString()));
            clock.Advance(TimeSpan.FromMinutes(5));
            Assert.Equal(0, await closer.CloseDeadInstancesAsync(lost, CancellationToken.None));
        }

        var entry = Assert.Single(await InterruptedAsync(log));
        Assert.Equal(("killed-open", Killed.ToParsableString()), (entry.Details["request_id"], entry.Details[AuditLog.InstanceDetail]));
        Assert.Contains("left membership", entry.Details["reason"], StringComparison.Ordinal);
        Assert.Null(await ledger.GetAsync("twin-running"));
        Assert.False(await log.HeartbeatInstanceAsync(Killed.ToParsableString()));
        Assert.Equal([Twin.ToParsableString()], (await log.ListUnclosedInstancesAsync()).Select(i => i.Instance));
    }

    /// <summary>
    /// The closer's clock steps back an hour (an NTP correction) while it waits out a dead process's grace: the wait
    /// starts again from now and ends one grace later, never early. It compared the clock with a sighting stamped
    /// before the step, which stayed in the future: the dead process's requests stayed open for the hour.
    /// </summary>
    [Fact]
    public async Task CloserClockStepsBackAnHour_TheGraceStartsAgainFromNow_NotAfterTheHour()
    {
        var database = await OwnDatabaseAsync();
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_folder, "operator-key.pem"));
        await using var log = await AuditLog.OpenAsync(database, key);
        await using var ledger = await UsageLedger.OpenAsync(database);
        await log.RegisterInstanceAsync(Killed.ToParsableString(), "gateway-th");
        await DecideAsync(log, Killed, "killed-open");

        var start = DateTimeOffset.Parse("2026-12-05T08:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var clock = new ManualClock(start);
        var closer = Closer(log, ledger, CloserB, clock, graceSeconds: 60);
        var dead = Membership((Killed, SiloStatus.Dead), (CloserB, SiloStatus.Active));
        Assert.Equal(0, await closer.CloseDeadInstancesAsync(dead, CancellationToken.None));

        clock.Set(start - TimeSpan.FromHours(1)); // stepped back
        Assert.Equal(0, await closer.CloseDeadInstancesAsync(dead, CancellationToken.None));
        clock.Advance(TimeSpan.FromSeconds(59));
        Assert.Equal(0, await closer.CloseDeadInstancesAsync(dead, CancellationToken.None)); // not early
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(1, await closer.CloseDeadInstancesAsync(dead, CancellationToken.None)); // was 0 until 09:00:00
        Assert.Equal("killed-open", Assert.Single(await InterruptedAsync(log)).Details["request_id"]);
    }

    /// <summary>
    /// A process cut off from Redis and its peers is declared dead while it still serves and writes to PostgreSQL: it
    /// was closed after the grace, and its outcomes then stood beside the closing entries. Now it is closed only once
    /// its heartbeat count has stopped moving for the grace as well.
    /// </summary>
    [Fact]
    public async Task DeclaredDead_ButStillCountingHeartbeats_IsClosedOnlyOnceTheyStop()
    {
        var database = await OwnDatabaseAsync();
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_folder, "operator-key.pem"));
        await using var log = await AuditLog.OpenAsync(database, key);
        await using var ledger = await UsageLedger.OpenAsync(database);
        await log.RegisterInstanceAsync(Twin.ToParsableString(), "gateway-th");
        await DecideAsync(log, Twin, "partitioned-running");

        var clock = new ManualClock(DateTimeOffset.Parse("2026-12-05T08:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var closer = Closer(log, ledger, CloserB, clock, graceSeconds: 60);
        var dead = Membership((Twin, SiloStatus.Dead), (CloserB, SiloStatus.Active));
        Assert.Equal(0, await closer.CloseDeadInstancesAsync(dead, CancellationToken.None));
        for (var round = 0; round < 3; round++)
        {
            Assert.True(await log.HeartbeatInstanceAsync(Twin.ToParsableString()));
            clock.Advance(TimeSpan.FromSeconds(61));
            Assert.Equal(0, await closer.CloseDeadInstancesAsync(dead, CancellationToken.None));
        }

        // It stops (killed at last): closed once its count has stood still for the grace.
        clock.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal(1, await closer.CloseDeadInstancesAsync(dead, CancellationToken.None));
        Assert.Equal("partitioned-running", Assert.Single(await InterruptedAsync(log)).Details["request_id"]);
    }

    /// <summary>
    /// A process another gateway took for dead (it counted no heartbeat for the grace, cut off from PostgreSQL too) finds
    /// out at its next heartbeat and stops, as a silo declared dead does, instead of serving on under a closed row.
    /// </summary>
    [Fact]
    public async Task Heartbeat_OfAProcessAnotherGatewayClaimed_StopsTheHost()
    {
        var database = await OwnDatabaseAsync();
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_folder, "operator-key.pem"));
        await using var log = await AuditLog.OpenAsync(database, key);
        await log.RegisterInstanceAsync(Twin.ToParsableString(), "gateway-th");
        var lifetime = new StoppableLifetime();
        var heartbeat = new InstanceHeartbeat(new(log), new GatewayInstance(Twin.ToParsableString()), lifetime, NullLogger<InstanceHeartbeat>.Instance);

        Assert.True(await heartbeat.BeatAsync(CancellationToken.None));
        Assert.False(heartbeat.ClosedByAnother);
        Assert.Equal(1L, Assert.Single(await log.ListUnclosedInstancesAsync()).Heartbeats);

        Assert.True(await log.TryClaimInstanceAsync(Twin.ToParsableString(), CloserA.ToParsableString()));
        Assert.False(await heartbeat.BeatAsync(CancellationToken.None));
        Assert.True(heartbeat.ClosedByAnother);
        Assert.True(await Task.WhenAny(lifetime.Stopping, Task.Delay(TimeSpan.FromMinutes(1))) == lifetime.Stopping, "the host was not told to stop");
    }

    /// <summary>
    /// A gateway remembered each dead silo it had seen (when it first saw it dead, for the grace) for as long as it ran:
    /// one entry more per dead process, never removed. Now only the processes still unclosed (and their closers) are
    /// remembered: once a dead process is closed, the next round forgets it.
    /// </summary>
    [Fact]
    public async Task ClosedProcess_IsForgotten_SoTheDeadSilosRememberedDoNotGrow()
    {
        var database = await OwnDatabaseAsync();
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_folder, "operator-key.pem"));
        await using var log = await AuditLog.OpenAsync(database, key);
        await using var ledger = await UsageLedger.OpenAsync(database);
        await log.RegisterInstanceAsync(Killed.ToParsableString(), "gateway-th");
        await log.RegisterInstanceAsync(Node.ToParsableString(), "node-th");
        await DecideAsync(log, Killed, "open-1");

        var b = Closer(log, ledger, CloserB);
        var dead = Membership((Killed, SiloStatus.Dead), (Node, SiloStatus.Dead), (CloserB, SiloStatus.Active));
        Assert.Equal(1, await b.CloseDeadInstancesAsync(dead, CancellationToken.None));
        Assert.Empty(await log.ListUnclosedInstancesAsync());

        // The next round finds nothing unclosed, and remembers nothing.
        Assert.Equal(0, await b.CloseDeadInstancesAsync(dead, CancellationToken.None));
        Assert.Equal(0, b.RememberedProcesses);
    }

    /// <summary>
    /// A node killed mid-request left its own decision for the relayed work open forever: a node registered no process
    /// (nor named one in its decisions), and no gateway closes a node's. Now a node's process registers like a
    /// gateway's, a gateway closes it once membership declares it dead (no usage record of money: the relaying gateway
    /// bills the tenant), and the verifier tells the closed decision from one still open.
    /// </summary>
    [Fact]
    public async Task DeadNode_ItsDecisionsForRelayedWork_AreClosedByAGateway_AndVerifyTellsClosedFromOpen()
    {
        var database = await OwnDatabaseAsync();
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(_folder, "operator-key.pem"));
        await using var log = await AuditLog.OpenAsync(database, key);
        await using var ledger = await UsageLedger.OpenAsync(database);
        await log.RegisterInstanceAsync(Node.ToParsableString(), "node-th");
        await log.RegisterInstanceAsync(Twin.ToParsableString(), "gateway-th");
        var relayed = await DecideAsync(log, Node, "node-relayed", gateway: "node-th", tenant: ClusterRelay.RelayTenant);
        await DecideAsync(log, Node, "node-answered", gateway: "node-th", tenant: ClusterRelay.RelayTenant);
        await log.AppendAsync(Outcome("node-answered") with { Gateway = "node-th", Tenant = ClusterRelay.RelayTenant });
        var running = await DecideAsync(log, Twin, "twin-running");

        var gateway = Closer(log, ledger, CloserB);
        Assert.Equal(1, await gateway.CloseDeadInstancesAsync(Membership((Node, SiloStatus.Dead), (Twin, SiloStatus.Active), (CloserB, SiloStatus.Active)), CancellationToken.None));

        var entry = Assert.Single(await InterruptedAsync(log));
        Assert.Equal(("node-relayed", "node-th", Node.ToParsableString(), "gateway-b"), (entry.Details["request_id"], entry.Gateway, entry.Details[AuditLog.InstanceDetail], entry.Details["closed_by"]));
        Assert.Equal((ClusterRelay.RelayTenant, relayed.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture)), (entry.Tenant, entry.Details["decision_sequence"]));
        Assert.StartsWith("the node process stopped", entry.Details["reason"], StringComparison.Ordinal);
        var record = await ledger.GetAsync("node-relayed");
        Assert.NotNull(record);
        Assert.Equal((ClusterRelay.RelayTenant, UsageOutcome.Failed, 0m), (record.Tenant, record.Outcome, record.Cost));

        await log.CheckpointAsync();
        var verified = await AuditVerifier.VerifyAsync(database, key.PublicKeyPem);
        Assert.True(verified.Valid, string.Join("; ", verified.Problems));
        var decisions = verified.Decisions!;
        Assert.Equal((3L, 1L, 1L, 1L), (decisions.Allowed, decisions.Completed, decisions.Interrupted, decisions.Open));
        Assert.Equal([running.Sequence], decisions.OpenSequences);
    }

    /// <summary>A node of a cluster on the shared database has a process id, as a gateway does (it had none: its decisions named no process).</summary>
    [Fact]
    public void ClusterNode_HasAProcessId_ItsSiloAddress()
    {
        var services = new ServiceCollection().AddSingleton<ILocalSiloDetails>(new FixedSiloDetails(Node)).BuildServiceProvider();
        var options = Options.Create(new SovereignOptions { Database = new() { Provider = nameof(SqlProvider.PostgreSql), ConnectionString = "Host=unused" } });
        var node = new GatewayInstance(services, options, Options.Create(new SovereignClusterOptions { Redis = "127.0.0.1:1", Role = ServerRole.Node }));
        var gateway = new GatewayInstance(services, options, Options.Create(new SovereignClusterOptions { Redis = "127.0.0.1:1", Role = ServerRole.Gateway }));
        var alone = new GatewayInstance(services, options, Options.Create(new SovereignClusterOptions { Role = ServerRole.All }));
        Assert.Equal((Node.ToParsableString(), Node.ToParsableString(), (string?)null), (node.Id, gateway.Id, alone.Id));
    }

    private sealed class FixedSiloDetails(SiloAddress silo) : ILocalSiloDetails
    {
        public string Name => "node/node-th";

        public string ClusterId => "test";

        public string DnsHostName => "localhost";

        public SiloAddress SiloAddress => silo;

        public SiloAddress GatewayAddress => silo;
    }

    /// <summary>A fresh database of the test's own: each chain starts empty.</summary>
    private async Task<SqlDatabase> OwnDatabaseAsync()
    {
        var name = "interrupted_" + Guid.NewGuid().ToString("N")[..8];
        await using (var admin = new Npgsql.NpgsqlConnection(postgres.ConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new Npgsql.NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        return SqlDatabase.PostgreSql(new Npgsql.NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = name }.ConnectionString);
    }

    private static Task<AuditEntry> DecideAsync(AuditLog log, SiloAddress silo, string requestId, string gateway = "gateway-th", string tenant = "anonymous") => log.AppendAsync(new AuditRecord
    {
        Kind = AuditKind.Inference,
        Actor = tenant,
        Action = AuditActions.InferenceAllowed,
        Tenant = tenant,
        Model = "stories",
        Gateway = gateway,
        Node = "node-th",
        Jurisdiction = "TH",
        Decision = AuditDecision.Allowed,
        Details = new Dictionary<string, string> { ["request_id"] = requestId, [AuditLog.InstanceDetail] = silo.ToParsableString() },
    });

    private static AuditRecord Outcome(string requestId) => new()
    {
        Kind = AuditKind.Inference,
        Actor = "anonymous",
        Action = AuditActions.InferenceCompleted,
        Tenant = "anonymous",
        Model = "stories",
        Gateway = "gateway-th",
        Decision = AuditDecision.Allowed,
        Details = new Dictionary<string, string> { ["request_id"] = requestId, ["outcome"] = "completed" },
    };

    private static async Task<IReadOnlyList<AuditEntry>> InterruptedAsync(AuditLog log) =>
        (await log.ReadAsync(1, long.MaxValue)).Where(e => e.Action == AuditActions.InferenceInterrupted).ToList();

    private static InterruptedRequests Closer(AuditLog log, UsageLedger ledger, SiloAddress silo, TimeProvider? clock = null, double graceSeconds = 0)
    {
        var name = silo == CloserA ? "gateway-a" : "gateway-b";
        return new InterruptedRequests(
            new(log), new(ledger), new(() => throw new InvalidOperationException("the anonymous tenant has no row")), new(new PriceBookProvider(null!)),
            new GatewayInstance(silo.ToParsableString()),
            Options.Create(new SovereignOptions { NodeId = name }),
            Options.Create(new SovereignClusterOptions { Redis = "127.0.0.1:1", InterruptedGraceSeconds = graceSeconds }),
            new ServiceCollection().BuildServiceProvider(), clock ?? TimeProvider.System, NullLogger<InterruptedRequests>.Instance);
    }

    private static ClusterMembershipSnapshot Membership(params (SiloAddress Silo, SiloStatus Status)[] members) =>
        new(members.Aggregate(ImmutableDictionary<SiloAddress, ClusterMember>.Empty, (all, m) => all.Add(m.Silo, new ClusterMember(m.Silo, m.Status, "gateway/x"))), new MembershipVersion(1));
}
