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

    private static Task<AuditEntry> DecideAsync(AuditLog log, SiloAddress silo, string requestId) => log.AppendAsync(new AuditRecord
    {
        Kind = AuditKind.Inference,
        Actor = "anonymous",
        Action = AuditActions.InferenceAllowed,
        Tenant = "anonymous",
        Model = "stories",
        Gateway = "gateway-th",
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

    private static InterruptedRequests Closer(AuditLog log, UsageLedger ledger, SiloAddress silo)
    {
        var name = silo == CloserA ? "gateway-a" : "gateway-b";
        return new InterruptedRequests(
            new(log), new(ledger), new(() => throw new InvalidOperationException("the anonymous tenant has no row")), new(new PriceBookProvider(null!)),
            new GatewayInstance(silo.ToParsableString()),
            Options.Create(new SovereignOptions { NodeId = name }),
            Options.Create(new SovereignClusterOptions { Redis = "127.0.0.1:1", InterruptedGraceSeconds = 0 }),
            new ServiceCollection().BuildServiceProvider(), TimeProvider.System, NullLogger<InterruptedRequests>.Instance);
    }

    private static ClusterMembershipSnapshot Membership(params (SiloAddress Silo, SiloStatus Status)[] members) =>
        new(members.Aggregate(ImmutableDictionary<SiloAddress, ClusterMember>.Empty, (all, m) => all.Add(m.Silo, new ClusterMember(m.Silo, m.Status, "gateway/x"))), new MembershipVersion(1));
}
