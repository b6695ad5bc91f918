using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.TestingHost;
using Sovereign.Cluster.Grains;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Residency.ControlPlane;
using Sovereign.Storage;
using Sovereign.Tests;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// One in-process silo (Orleans' TestingHost) over a real SQLite database: the control-plane store, the usage ledger
/// and the price book, as the gateway hosts them. Its clock is <see cref="Clock"/>, which tests move by hand.
/// </summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    public static readonly TimeSpan ReservationLifetime = TimeSpan.FromMinutes(10);

    /// <summary>Budget leases are on here (off by default): a minute, so a test moves the clock past one by hand.</summary>
    public static readonly TimeSpan LeaseTerm = TimeSpan.FromMinutes(1);

    // The silo configurator is created by the TestingHost, not by us: it finds its fixture's state here, by the id the
    // cluster's configuration names (a test may deploy a cluster of its own beside the collection's).
    private const string FixtureIdProperty = "SovereignTestFixture";
    private static readonly ConcurrentDictionary<string, ClusterFixture> s_fixtures = new();
    private readonly string _fixtureId = Guid.NewGuid().ToString("N");

    private readonly string _folder = Directory.CreateTempSubdirectory("sovereign-cluster-tests-").FullName;
    private int _ids;

    public TestCluster Cluster { get; private set; } = null!;

    public SqlDatabase Database { get; private set; } = null!;

    public ControlPlaneStore Store { get; private set; } = null!;

    public UsageLedger Ledger { get; private set; } = null!;

    public PriceBookProvider Prices { get; private set; } = null!;

    public ShiftedClock Clock { get; } = new();

    /// <summary>
    /// How often a tenant grain's own expiry timer ticks in real time: never, by default. The tests drive its work by
    /// hand (<c>ReleaseExpiredReservationsAsync</c> after a clock move), and a tick landing between the move and the call
    /// did the work first (the call released 0 where the test expected 1). A fixture of a test's own sets it to watch the
    /// timer itself.
    /// </summary>
    public TimeSpan ExpiryCheckInterval { get; init; } = Timeout.InfiniteTimeSpan;

    /// <summary>
    /// How often a tenant grain's lease timer ticks in real time (the grain's default, 1 s, unless set): a test of its own
    /// that drives the timer's work by hand sets it infinite, so a tick cannot close a lease before the call under test.
    /// </summary>
    public TimeSpan? LeaseCheckInterval { get; init; }

    /// <summary>Every money correction the grains logged (event id, message).</summary>
    public ConcurrentQueue<(int EventId, string Message)> Corrections { get; } = new();

    /// <summary>Every node load report the registry had to clamp and logged (event 4171: event id, message).</summary>
    public ConcurrentQueue<(int EventId, string Message)> LoadClamps { get; } = new();

    /// <summary>Every budget-lease recall a tenant grain could not deliver to its gateway (event 4138: message).</summary>
    public ConcurrentQueue<string> Recalls { get; } = new();

    public IGrainFactory Grains => Cluster.GrainFactory;

    public async Task InitializeAsync()
    {
        Database = SqlDatabase.Sqlite(Path.Combine(_folder, "sovereign.db"));
        await Database.MigrateAsync([.. ControlPlaneStore.Migrations, .. UsageLedger.Migrations, .. PriceBookStore.Migrations]);
        Store = new ControlPlaneStore(Database);
        Ledger = await UsageLedger.OpenAsync(Database);
        Prices = new PriceBookProvider(new PriceBookStore(Database));
        // Prices are stored to the millisecond.
        var now = DateTimeOffset.FromUnixTimeMilliseconds(Clock.GetUtcNow().ToUnixTimeMilliseconds());
        foreach (var (plan, currency) in new[] { ("euro", "EUR"), ("euro-plus", "EUR"), ("dollar", "USD") })
        {
            await Prices.UpdateAsync(book => book.WithPlan(new Plan { Name = plan, Currency = currency }, now), now);
            await Prices.UpdateAsync(book => book.WithPrice(plan, new ModelPrice { Model = "m", EffectiveFrom = now, InputPerMillion = 1_000_000m, OutputPerMillion = 1_000_000m }, now), now);
        }

        s_fixtures[_fixtureId] = this;
        var builder = new TestClusterBuilder(1);
        builder.Properties[FixtureIdProperty] = _fixtureId;
        builder.AddSiloBuilderConfigurator<SiloSetup>();
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    /// <summary>A tenant id no other test uses.</summary>
    public string NewTenantId() => "tenant-" + Interlocked.Increment(ref _ids);

    /// <summary>Creates a tenant on <paramref name="plan"/> and returns its grain.</summary>
    public async Task<ITenantGrain> NewTenantAsync(string plan = "euro")
    {
        var grain = Grains.GetGrain<ITenantGrain>(NewTenantId());
        await grain.UpsertAsync("Test", """{"allowed_jurisdictions":["DE"]}""", plan, false);
        return grain;
    }

    /// <summary>Collects every idle activation, so the next call activates the grain afresh (as after a restart).</summary>
    public Task DeactivateIdleGrainsAsync() => Grains.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero);

    public async Task DisposeAsync()
    {
        await Cluster.StopAllSilosAsync();
        await Cluster.DisposeAsync();
        await Ledger.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_folder, recursive: true);
        s_fixtures.TryRemove(_fixtureId, out _);
    }

    private sealed class SiloSetup : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            var fixture = s_fixtures[siloBuilder.Configuration[FixtureIdProperty]!];
            siloBuilder.Services.AddSingleton(fixture.Store);
            siloBuilder.Services.AddSingleton(fixture.Ledger);
            siloBuilder.Services.AddSingleton(fixture.Prices);
            siloBuilder.Services.AddSingleton<TimeProvider>(fixture.Clock);
            siloBuilder.Services.Configure<TenantMoneyOptions>(o =>
            {
                o.ReservationLifetime = ReservationLifetime;
                o.LeaseTerm = LeaseTerm;
                o.ExpiryCheckInterval = fixture.ExpiryCheckInterval;
                if (fixture.LeaseCheckInterval is { } leaseCheck)
                {
                    o.LeaseCheckInterval = leaseCheck;
                }
            });
            siloBuilder.Services.AddLogging(logging => logging.AddProvider(new CorrectionCapture(fixture.Corrections, fixture.LoadClamps, fixture.Recalls)));
        }
    }

    /// <summary>Keeps the money corrections (event ids 8100-8199) the grains log, and the node registry's clamps (4171).</summary>
    private sealed class CorrectionCapture(ConcurrentQueue<(int, string)> sink, ConcurrentQueue<(int, string)> clamps, ConcurrentQueue<string> recalls) : ILoggerProvider, ILogger
    {
        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id is >= 8100 and < 8200)
            {
                sink.Enqueue((eventId.Id, formatter(state, exception)));
            }
            else if (eventId.Id == 4171)
            {
                clamps.Enqueue((eventId.Id, formatter(state, exception)));
            }
            else if (eventId.Id == 4138)
            {
                recalls.Enqueue(formatter(state, exception));
            }
        }

        public void Dispose()
        {
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<ClusterFixture>
{
    public const string Name = "cluster";
}
