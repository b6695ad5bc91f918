using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sovereign.Cluster;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Metering;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using Sovereign.Gateway.Routing;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;
using Sovereign.Residency.Content;
using Sovereign.Residency.Jurisdictions;
using Sovereign.Storage;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>Registers the control plane: the database, the operator key, the audit log, grains, routing.</summary>
internal static partial class ControlPlaneServices
{
    /// <summary>The operator's private key file inside the data directory.</summary>
    public const string OperatorKeyFile = "operator-key.pem";

    /// <summary>The embedded database file inside the data directory.</summary>
    public const string DatabaseFile = "sovereign.db";

    /// <summary>
    /// A serving process signs the audit head at least this often (from its first append on), so a verifier can
    /// treat entries uncovered for much longer (default bound: ten minutes) as a deleted checkpoint or rewritten tail.
    /// </summary>
    public static readonly TimeSpan AuditCheckpointMaxAge = TimeSpan.FromMinutes(1);

    public static void AddControlPlane(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;

        // Before the cluster is configured: a node joining with a token receives its cluster settings and certificate
        // here (kept in its data directory for later starts); the hosted service checks the certificate before the silo.
        var joinedNow = ClusterJoiner.Prepare(builder);
        StatedJurisdiction.Prepare(builder.Configuration);
        services.AddHostedService(sp => new ClusterJoiner(sp.GetRequiredService<Cluster.Security.ClusterTlsCredentials>(), sp.GetRequiredService<ILogger<ClusterJoiner>>(), joinedNow));
        builder.AddSovereignCluster();

        // Reserved pool capacity is held on gateways, like money: a node that dies never takes the pool's count with it.
        services.Configure<Cluster.Hosting.GatewayOnlyGrains>(grains => grains.Classes.UnionWith([typeof(Pipeline.PoolSlotsGrain), typeof(Pipeline.PoolLeaseTableGrain), typeof(Metering.BudgetLeaseHolderGrain)]));
        services.TryAddSingleton(sp => CreateCatalog(sp.GetRequiredService<IOptions<SovereignOptions>>().Value));
        services.TryAddSingleton<ServerDatabaseLock>();
        services.AddHostedService<DatabaseClaimKeeper>();
        services.TryAddSingleton(sp => OpenDatabase(
            sp.GetRequiredService<IOptions<SovereignOptions>>().Value, sp.GetRequiredService<IOptions<Cluster.Hosting.SovereignClusterOptions>>().Value, sp.GetRequiredService<ServerDatabaseLock>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("Sovereign.Gateway.ControlPlane")));
        // Whether the database records requests now: /ready, event 4160/4161 once per outage, sovereign_database_available.
        services.TryAddSingleton(sp => new DatabaseHealth(new(sp.GetRequiredService<SqlDatabase>), sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), sp.GetRequiredService<ILogger<DatabaseHealth>>()));
        services.AddHostedService(sp => sp.GetRequiredService<DatabaseHealth>());
        // The outcomes of requests that ended during an outage, written once it ends (event 4140).
        services.TryAddSingleton(sp => new DeferredOutcomes(new(sp.GetRequiredService<AuditLog>), new(sp.GetRequiredService<UsageLedger>),
            sp.GetRequiredService<DatabaseHealth>(), sp.GetRequiredService<ILogger<DeferredOutcomes>>(),
            new RefusedInDoubtJournal(sp.GetRequiredService<IOptions<SovereignOptions>>().Value.ResolvedDataDirectory)));
        services.AddHostedService(sp => sp.GetRequiredService<DeferredOutcomes>());
        services.TryAddSingleton(sp => new ControlPlaneStore(sp.GetRequiredService<SqlDatabase>()));
        services.TryAddSingleton(sp => new ResponseStore(sp.GetRequiredService<SqlDatabase>()));
        services.AddHostedService<StoredResponseExpiry>();
        services.TryAddSingleton(sp =>
        {
            var directory = sp.GetRequiredService<IOptions<SovereignOptions>>().Value.ResolvedDataDirectory;
            var key = OperatorSigningKey.LoadOrCreate(Path.Combine(directory, OperatorKeyFile));
            if (!key.History.IsPlain && sp.GetService<ILoggerFactory>() is { } loggers)
            {
                Observability.GatewayLog.OperatorKeyHistoryLoaded(loggers.CreateLogger("Sovereign.OperatorKey"), key.KeyId,
                    Path.Combine(directory, OperatorKeyHistory.FileName), key.History.Keys.Count, key.History.Keys.Count(k => k.CompromisedFrom is not null));
            }

            return key;
        });

        services.TryAddSingleton<AuditIntegrityWatch>();

        // Opened once, synchronously, by whoever resolves them first; appends are asynchronous and group-committed.
        // OpenSynchronously runs the opening off the caller's scheduler: the first resolver may be a grain activation
        // on a node, whose single-threaded Orleans scheduler would otherwise deadlock waiting for its own continuation.
        services.TryAddSingleton(sp => OpenSynchronously(() => AuditLog.OpenAsync(
            sp.GetRequiredService<SqlDatabase>(), sp.GetRequiredService<OperatorSigningKey>(),
            new AuditLogOptions
            {
                SignsCheckpoints = SignsAuditCheckpoints(sp.GetRequiredService<IOptions<Cluster.Hosting.SovereignClusterOptions>>().Value),
                CheckpointMaxAge = AuditCheckpointMaxAge,
                CommitTimeout = sp.GetRequiredService<IOptions<SovereignOptions>>().Value.Audit.CommitTimeout,
                Chain = AuditChainOf(sp.GetRequiredService<IOptions<SovereignOptions>>().Value, sp.GetRequiredService<IOptions<Cluster.Hosting.SovereignClusterOptions>>().Value),
                // Beside the operator key, outside the database: the last head this server signed.
                WitnessPath = Path.Combine(sp.GetRequiredService<IOptions<SovereignOptions>>().Value.ResolvedDataDirectory, AuditWitness.FileName),
                // Found rewritten after start: stop, as at start (exit 3), instead of answering 503 for ever.
                IntegrityLost = sp.GetRequiredService<AuditIntegrityWatch>().Report,
            },
            sp.GetRequiredService<TimeProvider>())));
        // Scheduled audit retention (Sovereign:Audit:Archive): off unless set, and only where checkpoints are signed.
        services.TryAddSingleton(sp => new AuditRetention(
            new(sp.GetRequiredService<SqlDatabase>), new(sp.GetRequiredService<OperatorSigningKey>), new(sp.GetRequiredService<AuditLog>),
            sp.GetRequiredService<IOptions<SovereignOptions>>(), sp.GetRequiredService<IOptions<Cluster.Hosting.SovereignClusterOptions>>(),
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<AuditRetention>>()));
        services.AddHostedService(sp => sp.GetRequiredService<AuditRetention>());
        services.TryAddSingleton(sp => OpenSynchronously(() => UsageLedger.OpenAsync(
            sp.GetRequiredService<SqlDatabase>(),
            new UsageLedgerOptions
            {
                RetentionDays = Math.Max(1, sp.GetRequiredService<IOptions<SovereignOptions>>().Value.Metering.RetentionDays),
                // Validated at start (SovereignOptionsValidator): a bad value stops the start naming the setting.
                AggregateFoldInterval = TimeSpan.FromMilliseconds(sp.GetRequiredService<IOptions<SovereignOptions>>().Value.Metering.AggregateFoldIntervalMs),
                AggregateFoldRecords = sp.GetRequiredService<IOptions<SovereignOptions>>().Value.Metering.AggregateFoldRecords,
                // Each node keeps its own carry of sub-millionth remainders (CostCarry), read back when it restarts.
                Writer = sp.GetRequiredService<IOptions<SovereignOptions>>().Value.NodeId,
                FoldFailed = ex => Observability.GatewayLog.AggregateFoldFailed(sp.GetRequiredService<ILogger<UsageLedger>>(), ex),
            })));
        services.AddHostedService<LedgerRetention>();
        // Before the server listens (hosted services start first): closes what a killed previous process left open.
        // In a cluster it registers this process first, then closes what dead gateway processes left open.
        services.TryAddSingleton<GatewayInstance>();
        services.AddHostedService(sp => new InterruptedRequests(
            new(sp.GetRequiredService<AuditLog>), new(sp.GetRequiredService<UsageLedger>), new(sp.GetRequiredService<ControlPlaneStore>), new(sp.GetRequiredService<PriceBookProvider>),
            sp.GetRequiredService<GatewayInstance>(), sp.GetRequiredService<IOptions<SovereignOptions>>(), sp.GetRequiredService<IOptions<Cluster.Hosting.SovereignClusterOptions>>(),
            sp, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<InterruptedRequests>>()));
        // After the registration above: each cluster process then proves it still runs, beside membership.
        services.TryAddSingleton(sp => new InstanceHeartbeat(
            new(sp.GetRequiredService<AuditLog>), sp.GetRequiredService<GatewayInstance>(), sp.GetRequiredService<IHostApplicationLifetime>(), sp.GetRequiredService<ILogger<InstanceHeartbeat>>()));
        services.AddHostedService(sp => sp.GetRequiredService<InstanceHeartbeat>());
        services.TryAddSingleton(sp => new PriceBookStore(sp.GetRequiredService<SqlDatabase>()));
        services.TryAddSingleton(sp =>
        {
            // A change saved here is published to the cluster at once; PriceBookSync brings changes made elsewhere.
            var provider = new PriceBookProvider(sp.GetRequiredService<PriceBookStore>(),
                book => Metering.PriceBookSync.PublishAsync(sp.GetRequiredService<IGrainFactory>(), book, sp.GetRequiredService<ILogger<Metering.PriceBookSync>>()));
            OpenSynchronously(async () =>
            {
                await provider.ReloadAsync();
                return provider;
            });
            return provider;
        });
        services.TryAddSingleton<LanguageTaxCache>();
        // A gateway's budget leases (Sovereign:Metering:LeaseTerm, on by default on a cluster gateway), given back at stop.
        services.TryAddSingleton<BudgetLeases>();
        services.AddHostedService(sp => sp.GetRequiredService<BudgetLeases>());
        services.TryAddSingleton<RequestMetering>();
        services.TryAddSingleton<ReservationRenewals>();
        // Counts a rate-limited key's refusals into one audit entry per interval; the last at stop.
        services.TryAddSingleton<RateLimitRefusals>();
        services.TryAddSingleton<TenantReadLimits>();
        services.AddHostedService(sp => sp.GetRequiredService<TenantReadLimits>());
        services.AddHostedService(sp => sp.GetRequiredService<RateLimitRefusals>());
        // Counts a known caller's repeated 4xx refusals into one log line per interval (event 4170).
        services.TryAddSingleton<Observability.RefusalLogSummary>();
        services.AddHostedService(sp => sp.GetRequiredService<Observability.RefusalLogSummary>());
        services.TryAddSingleton(sp => new Lazy<RequestMetering>(sp.GetRequiredService<RequestMetering>));
        services.TryAddSingleton<AdminToken>();
        services.TryAddSingleton<ClusterRelay>();
        services.TryAddSingleton<RelayLoads>();
        services.TryAddSingleton(typeof(Sovereign.Cluster.Grains.GrainReferences<>));
        services.TryAddSingleton<CallerAuthenticator>();
        services.TryAddSingleton<NodeDirectory>();
        services.TryAddSingleton<Observability.PoolMetrics>();
        // sovereign_budget_leases_open and sovereign_reservations_open (made once the server has started).
        services.TryAddSingleton<Observability.MoneyMetrics>();
        services.TryAddSingleton<PrefixAffinity>();
        services.TryAddSingleton<InferenceRouter>();
        services.TryAddSingleton<LanguageRouting>();
        services.AddHostedService<LanguageDetectorWarmup>();
        services.TryAddSingleton<UpstreamProxy>();
        services.TryAddSingleton<OpenAI.TokenizerRelay>();
        services.TryAddSingleton<OpenAI.ResponsesStorage>();
        services.AddRequestPipeline();
        // Redirects are never followed: their target may lie outside the route's jurisdiction. The factory's per-request
        // logging handlers are left out: the relay logs what operators need with stable event ids, and they cost a scope
        // and two records on every request.
        services.AddHttpClient(UpstreamProxy.ClientName, client => client.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(sp => RelayProxy.Apply(new SocketsHttpHandler
            {
                AllowAutoRedirect = false,
                // The engine address rule on every connection, whatever path stored or set the URL (EngineAddressRule).
                ConnectCallback = EngineAddressRule.Connector(() => sp.GetRequiredService<IOptions<SovereignOptions>>().Value.AllowLinkLocalEngineUrls),
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                // Under the engines' own keep-alive (llama-server's and uvicorn's, so vLLM's: 5 s): an idle connection is
                // dropped here before the engine closes it under a request sent on it.
                PooledConnectionIdleTimeout = UpstreamProxy.IdleConnectionTimeout,
            }, sp.GetRequiredService<IOptions<SovereignOptions>>().Value.RelayProxy)) // never the environment's proxy (RelayProxy)
            .SetHandlerLifetime(Timeout.InfiniteTimeSpan) // PooledConnectionLifetime renews connections (DNS changes) without dropping the pool
            .RemoveAllLoggers();
        services.AddClusterNodeHttp();
        services.AddHostedService<RelayProxy.Notice>();
    }

    /// <summary>
    /// Whether this process signs audit checkpoints, and so may archive: all but a cluster's <c>--role node</c>, which
    /// appends to the shared chain and leaves signing (and retention) to the gateways.
    /// </summary>
    /// <summary>
    /// The audit chain this process appends to: its node id where member chains are on in a cluster
    /// (<c>Sovereign:Audit:MemberChains</c>; a cluster is on PostgreSQL), else the shared chain (null).
    /// </summary>
    public static string? AuditChainOf(SovereignOptions options, Cluster.Hosting.SovereignClusterOptions cluster) =>
        options.Audit.MemberChains && cluster.IsDistributed ? options.NodeId : null;

    public static bool SignsAuditCheckpoints(Cluster.Hosting.SovereignClusterOptions cluster) =>
        cluster is not { IsDistributed: true, Role: Cluster.Hosting.ServerRole.Node };

    /// <summary>
    /// Waits for an asynchronous opening on the thread pool's default scheduler, never on the caller's: a DI factory
    /// first resolved inside an Orleans grain activation would otherwise block the activation's only turn.
    /// </summary>
    private static T OpenSynchronously<T>(Func<Task<T>> open) => Task.Run(open).GetAwaiter().GetResult();

    /// <summary>The registrar must run after the models have loaded: call after the catalog is registered.</summary>
    public static void AddLocalNodeRegistration(this IServiceCollection services)
    {
        services.AddHostedService<LocalNodeRegistrar>();
        services.AddHostedService<NodeLoadReporter>();
        services.TryAddSingleton<Metering.PriceBookSync>();
        services.AddHostedService(sp => sp.GetRequiredService<Metering.PriceBookSync>());

        // Resolving the token at start writes its file, so the CLI on this machine finds it as soon as the server runs.
        services.AddHostedService(sp => new StartupAction(() =>
        {
            _ = sp.GetRequiredService<AdminToken>();
            var settings = sp.GetRequiredService<IOptions<SovereignOptions>>().Value;
            if (string.IsNullOrWhiteSpace(settings.AdminToken))
            {
                LogAdminTokenFile(sp.GetRequiredService<ILoggerFactory>().CreateLogger("Sovereign.Gateway.ControlPlane"), Path.Combine(settings.ResolvedDataDirectory, AdminToken.FileName));
            }
        }));
    }

    /// <summary>Purges raw usage records past their retention once a day (aggregates stay).</summary>
    private sealed class LedgerRetention(UsageLedger ledger, TimeProvider time) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            using var timer = new PeriodicTimer(TimeSpan.FromDays(1), time);
            do
            {
                await ledger.PurgeExpiredAsync(stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
    }

    /// <summary>Deletes stored responses past their policy's retention every hour (reads never return them after it anyway).</summary>
    private sealed class StoredResponseExpiry(ResponseStore store, TimeProvider time) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            using var timer = new PeriodicTimer(TimeSpan.FromHours(1), time);
            do
            {
                await store.PurgeExpiredAsync(time.GetUtcNow(), stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
    }

    private sealed class StartupAction(Action action) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            action();
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private static JurisdictionCatalog CreateCatalog(SovereignOptions options) =>
        options.JurisdictionGroups.Count == 0
            ? JurisdictionCatalog.Default
            : JurisdictionCatalog.Create(options.JurisdictionGroups.Select(g => new JurisdictionGroup { Name = g.Key, Members = g.Value }));

    private static SqlDatabase OpenDatabase(SovereignOptions options, Cluster.Hosting.SovereignClusterOptions cluster, ServerDatabaseLock serverLock, ILogger logger)
    {
        // Before anything is written or served under it. A node's jurisdiction is bound by the credential the operator
        // signed (a node that joined moves with a token for its new jurisdiction), but a node that issues its own (it
        // holds the operator key: no credential configured, no join kept) signs whatever it is told: it restarted in
        // another jurisdiction and re-signed itself there. It keeps its stated one as gateways and single servers do.
        if (cluster.Role != Cluster.Hosting.ServerRole.Node
            || (string.IsNullOrWhiteSpace(options.NodeCredential) && ClusterJoiner.Kept(options) is null))
        {
            StatedJurisdiction.Check(options.ResolvedDataDirectory, options.Jurisdiction, TimeProvider.System);
        }

        var configured = options.Database;
        if (string.Equals(configured.Provider, "PostgreSql", StringComparison.OrdinalIgnoreCase))
        {
            var shared = SqlDatabase.PostgreSql(configured.ConnectionString!);
            try
            {
                OpenSynchronously(async () =>
                {
                    // Taken before the migrations, as on SQLite: only this server's cluster may upgrade the schema.
                    if (await serverLock.TakePostgreSqlAsync(shared, cluster, configured.Rebind) is { } rebound)
                    {
                        DatabaseRebound(logger, shared.Location, rebound.Id, rebound.LivesAt);
                    }

                    await RefuseNewerAsync(shared, shared.Location, string.IsNullOrWhiteSpace(cluster.Redis) ? null : logger);
                    await Migrate(shared);
                    return shared;
                });
            }
            catch (System.Data.Common.DbException ex)
            {
                // Said as a start failure naming the setting (exit 2, so systemd's Restart= tries again). It was the
                // driver's exception, which the CLI read as "cannot reach the server ... Is `sovereign serve` running?".
                throw new InvalidOperationException(
                    $"The database could not be opened ({shared.Location}): {ex.Message}. Start it, or correct Sovereign:Database:ConnectionString "
                    + "(Sovereign__Database__ConnectionString); a cluster's members all need it, so nothing can start without it.", ex);
            }

            return shared;
        }

        var path = Path.GetFullPath(configured.ConnectionString ?? Path.Combine(options.ResolvedDataDirectory, DatabaseFile));
        if (DatabaseMoved.Read(path) is { } moved)
        {
            throw new DatabaseMovedException(moved.Explain(path,
                "Start with Sovereign__Database__Provider=PostgreSql and Sovereign__Database__ConnectionString for that database (Sovereign:Database)."));
        }

        var database = SqlDatabase.Sqlite(path);
        OpenSynchronously(async () =>
        {
            // Taken before the migrations: a second server must not upgrade the schema under one that runs.
            await serverLock.TakeSqliteAsync(database, path);
            try
            {
                if (configured.CheckAtStart)
                {
                    await CheckSqliteAsync(database, path);
                }

                await RefuseNewerAsync(database, "the database " + path, clusterLogger: null);
                await Migrate(database);
            }
            catch (Microsoft.Data.Sqlite.SqliteException ex) when (SqliteFailures.Explain(ex, "the database " + path, path) is { } reason)
            {
                // Each migration commits whole or not at all, so the failed start changed nothing.
                throw new DatabaseUnusableException(reason + ". Nothing was changed.", ex);
            }

            return database;
        });
        return database;
    }

    /// <summary>
    /// SQLite's quick check of the whole file (every page read once: about 5 ms per MB measured), before anything is
    /// written. A file damaged inside (a page of a table overwritten: a bad disk, a copy cut short, a restore from a
    /// broken backup) opened as any other: the server said "ready" and answered every request that read the damaged
    /// table 500 internal_error, for as long as it ran, and went on appending to a log it could no longer read whole.
    /// Damage in the file's header or schema already stopped the start (SQLITE_CORRUPT, SQLITE_NOTADB).
    /// </summary>
    internal static async Task CheckSqliteAsync(SqlDatabase database, string path)
    {
        var problems = new List<string>();
        await using (var connection = await database.OpenAsync())
        await using (var command = connection.CreateCommand())
        {
            // At most 5 problems: what to say, not an inventory (sovereign database backup's copy runs the full integrity check).
            command.CommandText = "PRAGMA quick_check(5)";
            try
            {
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    var line = reader.GetString(0);
                    if (!string.Equals(line, "ok", StringComparison.Ordinal))
                    {
                        // One row may hold several lines; its text is SQLite's (pages, tables, indexes), escaped all the same.
                        problems.Add(Residency.DisplayText.Shortened(line.Replace('\n', ' '), 300));
                    }
                }
            }
            catch (Microsoft.Data.Sqlite.SqliteException ex) when (ex.SqliteErrorCode == 11)
            {
                // SQLITE_CORRUPT: a page too damaged for the check to walk past (a table's root page overwritten).
                problems.Add(ex.Message.TrimEnd('.'));
            }
        }

        if (problems.Count > 0)
        {
            throw new DatabaseUnusableException(
                $"the database {path} is damaged (SQLite's quick check: {string.Join("; ", problems)}): restore it from a backup "
                + "(sovereign database restore, see the operator guide's Backup and restore), and keep the damaged file for inspection. Nothing was changed.",
                new InvalidDataException(string.Join("; ", problems)));
        }
    }

    /// <summary>Every store's schema, in the order a server applies them at start (also what <c>sovereign database copy</c> applies).</summary>
    public static IReadOnlyList<SqlMigration> Migrations =>
        [.. ControlPlaneStore.Migrations, .. AuditLog.Migrations, .. UsageLedger.Migrations, .. PriceBookStore.Migrations, .. ResponseStore.Migrations];

    private static Task Migrate(SqlDatabase database) => database.MigrateAsync(Migrations);

    /// <summary>
    /// Stops the start on a database a newer release migrated (a downgrade): this release would ignore what the newer
    /// migrations keep (a join token withdrawn there would work again here, say) and write rows the newer release then
    /// reads. It ran so before, silently. A member of a cluster (<paramref name="clusterLogger"/> given) starts with a
    /// warning instead: while a rolling upgrade walks the members forward, one still on the older release may restart
    /// after an upgraded one migrated the shared database (the operator guide's "Upgrading a release").
    /// </summary>
    internal static async Task RefuseNewerAsync(SqlDatabase database, string location, ILogger? clusterLogger)
    {
        var unknown = await database.UnknownMigrationsAsync(Migrations);
        if (unknown.Count == 0)
        {
            return;
        }

        if (clusterLogger is not null)
        {
            LogNewerMigrations(clusterLogger, location, string.Join(", ", unknown));
            return;
        }

        throw new DatabaseOfNewerReleaseException(
            $"{location} was upgraded by a newer release of sovereign: it records the migration{(unknown.Count == 1 ? "" : "s")} {string.Join(", ", unknown)}, "
            + "which this release does not know, so it would run on tables it only partly understands. Start that release (or a newer one) on it; "
            + "to go back to this release, restore the backup taken before the upgrade. Nothing was changed.");
    }

    [LoggerMessage(EventId = 4151, EventName = "NewerMigrationsInClusterDatabase", Level = LogLevel.Warning,
        Message = "{Location} records migrations of a newer release that this member does not know ({Migrations}): expected only while a rolling upgrade walks the cluster forward; upgrade this member too, and do not start older releases on it")]
    private static partial void LogNewerMigrations(ILogger logger, string location, string migrations);

    [LoggerMessage(EventId = 3007, EventName = "AdminTokenFile", Level = LogLevel.Information, Message = "Admin API (/admin/v1) token: {Path} (the sovereign CLI on this machine reads it)")]
    private static partial void LogAdminTokenFile(ILogger logger, string path);

    [LoggerMessage(EventId = 4156, EventName = "DatabaseRebound", Level = LogLevel.Warning,
        Message = "Sovereign:Database:Rebind: {Location} is the installation's database from now on, under the new identity {Identity} (PostgreSQL system/database oid {LivesAt}), recorded in the cluster's Redis too in a cluster; servers still on the database it was copied from are refused at their next start. Remove the setting")]
    private static partial void DatabaseRebound(ILogger logger, string location, string identity, string livesAt);
}
