using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using Sovereign.Cluster.Grains;
using Sovereign.Cluster.Hosting;
using Sovereign.Metering.Budgets;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Residency.ControlPlane;
using Sovereign.Storage;
using Sovereign.Tests;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// The tenant grain's timer releases reservations past their lifetime after asking the ledger whether each was billed.
/// During a database outage longer than that lifetime the read threw, and Orleans' timer logged the driver's stack
/// trace on every tick (as PriceBookGrain's timer did until session 45). Now the tick is skipped: the reservation stays
/// held (whether it was billed is unknown, so it is neither released nor charged unread) until the ledger can be read.
/// </summary>
public sealed class ReservationExpiryOutageTests : IAsyncLifetime
{
    // The silo configurator is created by the TestingHost: it finds the test's state here.
    private static ReservationExpiryOutageTests? s_current;

    private readonly string _folder = Directory.CreateTempSubdirectory("sovereign-expiry-outage-").FullName;
    private readonly ShiftedClock _clock = new();
    private TestCluster _cluster = null!;
    private UsageLedger _ledger = null!;
    private PriceBookProvider _prices = null!;
    private ControlPlaneStore _store = null!;

    /// <summary>The ledger's own folder: removed to take its database away, as an outage does.</summary>
    private string LedgerFolder => Path.Combine(_folder, "ledger");

    public async Task InitializeAsync()
    {
        var control = SqlDatabase.Sqlite(Path.Combine(_folder, "sovereign.db"));
        await control.MigrateAsync([.. ControlPlaneStore.Migrations, .. PriceBookStore.Migrations]);
        _store = new ControlPlaneStore(control);
        _prices = new PriceBookProvider(new PriceBookStore(control));
        var now = DateTimeOffset.FromUnixTimeMilliseconds(_clock.GetUtcNow().ToUnixTimeMilliseconds());
        await _prices.UpdateAsync(book => book.WithPlan(new Plan { Name = "euro", Currency = "EUR" }, now), now);
        var ledgerDatabase = SqlDatabase.Sqlite(Path.Combine(LedgerFolder, "ledger.db"));
        await ledgerDatabase.MigrateAsync([.. UsageLedger.Migrations]);
        _ledger = await UsageLedger.OpenAsync(ledgerDatabase);

        s_current = this;
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<SiloSetup>();
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
    }

    [Fact]
    public async Task ExpiredReservation_WhileTheLedgerCannotBeRead_StaysHeld_AndTheTickDoesNotThrow()
    {
        var tenant = _cluster.GrainFactory.GetGrain<ITenantGrain>("tenant-expiry-outage");
        await tenant.UpsertAsync("Test", """{"allowed_jurisdictions":["DE"]}""", "euro", false);
        await tenant.SetLimitsAsync(new TenantLimits([new BudgetSetting(null, "total", 10m)], []));
        Assert.True((await tenant.AdmitAsync(new AdmissionRequest("held-1", null, 10, 6m, "EUR"))).Allowed);

        // The ledger's database goes away (its connections closed, its files gone): every read fails.
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(LedgerFolder, recursive: true);
        _clock.Advance(new TenantMoneyOptions().ReservationLifetime + TimeSpan.FromMinutes(1));

        Assert.Equal(0, await tenant.ReleaseExpiredReservationsAsync());
        var budget = Assert.Single(await tenant.GetBudgetsAsync());
        Assert.Equal((0m, 6m), (budget.Settled, budget.Reserved));
    }

    private sealed class SiloSetup : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            var test = s_current!;
            siloBuilder.Services.AddSingleton(test._store);
            siloBuilder.Services.AddSingleton(test._ledger);
            siloBuilder.Services.AddSingleton(test._prices);
            siloBuilder.Services.AddSingleton<TimeProvider>(test._clock);
            siloBuilder.AddSovereignGrainFilters();
        }
    }
}
