using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime.Placement;
using Orleans.TestingHost;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Metering;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Residency.ControlPlane;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// Lease churn near a limit: two in-process silos (Orleans' TestingHost) play gateway A, which holds a budget lease and
/// has admitted requests from it whose relays have left (their confirmations not yet at the grain), and gateway B, whose
/// requests the tenant's grain admits directly until the budget is spent. A refusal of B's while A's lease holds money
/// reclaims it: A's gateway says what it had not admitted (<see cref="IBudgetLeaseHolderGrain.ReclaimAsync"/>), only
/// that returns, and A's requests in flight are confirmed. The lease was closed whole, so they were admitted afresh
/// after B had taken the money, and refused with their relays gone.
/// </summary>
public sealed class BudgetLeaseReclaimTests : IAsyncLifetime
{
    private const string FixtureIdProperty = "SovereignLeaseReclaimFixture";
    private const long Tokens = 10;
    private static readonly ConcurrentDictionary<string, BudgetLeaseReclaimTests> s_fixtures = new();
    private readonly string _fixtureId = Guid.NewGuid().ToString("N");
    private readonly string _folder = Directory.CreateTempSubdirectory("sovereign-lease-reclaim-").FullName;
    private TestCluster _cluster = null!;
    private SqlDatabase _database = null!;
    private ControlPlaneStore _store = null!;
    private UsageLedger _ledger = null!;
    private PriceBookProvider _prices = null!;

    public async Task InitializeAsync()
    {
        _database = SqlDatabase.Sqlite(Path.Combine(_folder, "sovereign.db"));
        await _database.MigrateAsync([.. ControlPlaneStore.Migrations, .. UsageLedger.Migrations, .. PriceBookStore.Migrations]);
        _store = new ControlPlaneStore(_database);
        _ledger = await UsageLedger.OpenAsync(_database);
        _prices = new PriceBookProvider(new PriceBookStore(_database));
        var now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        await _prices.UpdateAsync(book => book.WithPlan(new Plan { Name = "euro", Currency = "EUR" }, now), now);
        await _prices.UpdateAsync(book => book.WithPrice("euro", new ModelPrice { Model = "m", EffectiveFrom = now, InputPerMillion = 1_000_000m, OutputPerMillion = 1_000_000m }, now), now);

        s_fixtures[_fixtureId] = this;
        var builder = new TestClusterBuilder(2);
        builder.Properties[FixtureIdProperty] = _fixtureId;
        builder.AddSiloBuilderConfigurator<GatewaySilo>();
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync();
        await _cluster.DisposeAsync();
        await _ledger.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_folder, recursive: true);
        s_fixtures.TryRemove(_fixtureId, out _);
    }

    private BudgetLeases LeasesOf(int silo) => ((InProcessSiloHandle)_cluster.Silos[silo]).SiloHost.Services.GetRequiredService<BudgetLeases>();

    private static AuthorizedAdmissionRequest Request(string id, string keyId, string version) =>
        new(new AdmissionRequest(id, keyId, Tokens, 1m, "EUR"), null, version);

    /// <summary>
    /// A tenant with a budget of 100 EUR whose grain lives on gateway B; gateway A holds a lease of 9.9 (a tenth of the
    /// 99 left after its first request) and has admitted <paramref name="taken"/> requests of 1 EUR from it (their
    /// relays left; their confirmations not sent yet).
    /// </summary>
    private async Task<(ITenantGrain Tenant, string KeyId, string Version, List<BudgetLeases.Held> Taken)> LeaseWithRequestsInFlightAsync(int taken)
    {
        var id = "tenant-" + Guid.NewGuid().ToString("N");
        RequestContext.Set(IPlacementDirector.PlacementHintKey, _cluster.Silos[1].SiloAddress);
        var tenant = _cluster.GrainFactory.GetGrain<ITenantGrain>(id);
        await tenant.UpsertAsync("Test", """{"allowed_jurisdictions":["DE"]}""", "euro", false);
        RequestContext.Remove(IPlacementDirector.PlacementHintKey);
        var keyId = (await tenant.CreateKeyAsync("k", null)).Key.Id;
        Assert.True((await tenant.SetLimitsAsync(new TenantLimits([new BudgetSetting(null, "month", 100m)], []))).Applied);
        var version = TenantVersions.DecisionOf((await tenant.GetAsync())!);

        var leases = LeasesOf(0);
        var ask = leases.TryBeginAsk(id, keyId)!;
        var first = await tenant.AdmitAuthorizedLeasingAsync(Request("a-0", keyId, version), leases.Ask(1m, Tokens, "EUR"));
        Assert.True(first.Answer.Admission!.Allowed);
        var lease = Assert.IsType<BudgetLease>(first.Lease);
        Assert.Equal(9.9m, lease.Money);
        Assert.Equal(_cluster.Silos[0].SiloAddress, leases.Ask(1m, Tokens, "EUR").Holder);
        leases.Install(id, keyId, lease, System.Diagnostics.Stopwatch.GetTimestamp(), ask);
        leases.EndAsk(ask);
        var held = Enumerable.Range(1, taken).Select(_ => leases.TryTake(id, keyId, version, 1m, Tokens, "EUR", unpriced: false)!).ToList();
        Assert.All(held, Assert.NotNull);
        return (tenant, keyId, version, held);
    }

    /// <summary>Gateway A's confirmation of a request it admitted from its lease, as RequestMetering sends it.</summary>
    private async Task<bool> ConfirmAsync(ITenantGrain tenant, BudgetLeases.Held held, string requestId, string keyId, string version)
    {
        var answer = await tenant.AdmitFromLeaseAsync(held.Id, Request(requestId, keyId, version));
        LeasesOf(0).Answered(held, answer.Lease);
        return answer.Answer.Admission?.Allowed == true;
    }

    [Fact]
    public async Task ABudgetRefusalElsewhere_ReclaimsOnlyWhatTheLeaseHadNotAdmitted_ItsRequestsInFlightAreConfirmed()
    {
        var (tenant, keyId, version, taken) = await LeaseWithRequestsInFlightAsync(taken: 3);

        // Gateway B spends the rest, one request at a time: 89 fit beside the first request and the lease; the 90th is
        // refused at first and reclaims the lease. A had not admitted 6.9 of its 9.9: that returns (with the 0.1 left,
        // 7 more of B's), and the 3 A admitted stay held for their confirmations.
        var admittedAtB = 0;
        while ((await tenant.AdmitAuthorizedAsync(Request("b-" + admittedAtB, keyId, version))).Admission!.Allowed)
        {
            Assert.True(++admittedAtB <= 100, "more than the budget admitted");
        }

        Assert.Equal(96, admittedAtB);
        Assert.Null(LeasesOf(0).TryTake(tenant.GetPrimaryKeyString(), keyId, version, 1m, Tokens, "EUR", unpriced: false));

        // A's requests in flight are confirmed, not refused after their relays left: exactly the budget, all of it spent.
        for (var i = 0; i < taken.Count; i++)
        {
            Assert.True(await ConfirmAsync(tenant, taken[i], "a-" + (i + 1), keyId, version), $"A's request {i + 1} refused at its confirmation");
        }

        var budget = Assert.Single(await tenant.GetBudgetsAsync());
        Assert.Equal((100m, 0m, 0m), (budget.Reserved, budget.Leased, budget.Remaining));
        Assert.Equal(AdmissionOutcome.BudgetExceeded, (await tenant.AdmitAuthorizedAsync(Request("past", keyId, version))).Admission!.Outcome);
    }

    [Fact]
    public async Task AsConfirmationsAndAnotherGatewaysRequestsRace_EveryRequestInFlightIsConfirmed_AndTheBudgetIsSpentExactly()
    {
        // Set up and awaited before the race: the lease, A's 4 requests admitted from it, and B's 89 requests beside it.
        var (tenant, keyId, version, taken) = await LeaseWithRequestsInFlightAsync(taken: 4);
        for (var i = 0; i < 89; i++)
        {
            Assert.True((await tenant.AdmitAuthorizedAsync(Request("b-" + i, keyId, version))).Admission!.Allowed);
        }

        // Then A's confirmations and 20 more of B's at once, in whatever order the grain gets them: a confirmation
        // before the reclaim is carved from the lease, one after from what the reclaim kept for it.
        var confirmations = taken.Select((held, i) => ConfirmAsync(tenant, held, "a-" + (i + 1), keyId, version)).ToList();
        var atB = Enumerable.Range(89, 20).Select(async i => (await tenant.AdmitAuthorizedAsync(Request("b-" + i, keyId, version))).Admission!.Allowed).ToList();
        var confirmed = await Task.WhenAll(confirmations);
        var admittedAtB = await Task.WhenAll(atB);

        Assert.All(confirmed, Assert.True);
        // 100 = A's first and its 4 + B's 89 + the 6 the lease had not admitted (5.9) with the 0.1 nobody held.
        Assert.Equal(6, admittedAtB.Count(a => a));
        var budget = Assert.Single(await tenant.GetBudgetsAsync());
        Assert.Equal((100m, 0m, 0m), (budget.Reserved, budget.Leased, budget.Remaining));
    }

    private sealed class GatewaySilo : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            var fixture = s_fixtures[siloBuilder.Configuration[FixtureIdProperty]!];
            siloBuilder.Services.AddSingleton(fixture._store);
            siloBuilder.Services.AddSingleton(fixture._ledger);
            siloBuilder.Services.AddSingleton(fixture._prices);
            siloBuilder.Services.AddSingleton(TimeProvider.System);
            siloBuilder.Services.Configure<TenantMoneyOptions>(o => o.LeaseTerm = TimeSpan.FromMinutes(1));
            siloBuilder.Services.AddSingleton(typeof(GrainReferences<>));
            siloBuilder.Services.AddSingleton<BudgetLeases>();
        }
    }
}
