using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using Sovereign.Cluster.Grains;
using Sovereign.Cluster.Hosting;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Residency.ControlPlane;
using Sovereign.Storage;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// A grain that meets its database down answers every caller, in this process or on another cluster member, with one
/// exception the gateway maps to 503 storage_unavailable. The driver's own exception (Npgsql's) does not cross
/// members as itself: a caller elsewhere got Orleans' stand-in for an unknown type, which the gateway answered as 500.
/// </summary>
public sealed class StorageFailureTests : IAsyncLifetime
{
    // The silo configurator is created by the TestingHost: it finds the test's state here.
    private static StorageFailureTests? s_current;

    private readonly string _folder = Directory.CreateTempSubdirectory("sovereign-storage-failure-").FullName;
    private TestCluster _cluster = null!;
    private UsageLedger _ledger = null!;
    private PriceBookProvider _prices = null!;
    private ControlPlaneStore _store = null!;

    public async Task InitializeAsync()
    {
        var sqlite = SqlDatabase.Sqlite(Path.Combine(_folder, "sovereign.db"));
        await sqlite.MigrateAsync([.. UsageLedger.Migrations, .. PriceBookStore.Migrations]);
        _ledger = await UsageLedger.OpenAsync(sqlite);
        _prices = new PriceBookProvider(new PriceBookStore(sqlite));

        // Tenants and keys in a PostgreSQL that is down (a port nothing listens on).
        _store = new ControlPlaneStore(SqlDatabase.PostgreSql($"Host=127.0.0.1;Port={Sovereign.Tests.LoopbackPorts.Unused()};Username=sovereign;Database=sovereign;Timeout=3"));
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
    public async Task ADatabaseDown_ReachesACallerOutsideTheSilo_AsStorageUnavailable()
    {
        // The test cluster's client is outside the silo: the answer crosses the wire as it does between members.
        var tenant = _cluster.GrainFactory.GetGrain<ITenantGrain>("tenant-db-down");
        var error = await Assert.ThrowsAsync<StorageUnavailableException>(() => tenant.UpsertAsync("T", """{"allowed_jurisdictions":["DE"]}""", "default", false));
        Assert.Contains("database", error.Message, StringComparison.Ordinal);
    }

    private sealed class SiloSetup : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            var test = s_current!;
            siloBuilder.Services.AddSingleton(test._store);
            siloBuilder.Services.AddSingleton(test._ledger);
            siloBuilder.Services.AddSingleton(test._prices);
            siloBuilder.AddSovereignGrainFilters();
        }
    }
}
