using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Configuration;
using Orleans.Connections.Security;
using Sovereign.Cluster.Grains;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;

namespace Sovereign.Cluster;

/// <summary>Hosts the control-plane grains in this process.</summary>
public static class ClusterHostingExtensions
{
    /// <summary>
    /// Starts an Orleans silo in-process. With <c>Sovereign:Cluster:Redis</c> it joins the cluster whose membership
    /// lives in that Redis; otherwise it is alone with localhost clustering (the embedded default). Ports are chosen
    /// free unless given, so several servers can run on one machine (tests, laptops).
    /// </summary>
    public static IHostApplicationBuilder AddSovereignCluster(this IHostApplicationBuilder builder, int siloPort = 0, int gatewayPort = 0)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var cluster = builder.Configuration.GetSection(SovereignClusterOptions.SectionName).Get<SovereignClusterOptions>() ?? new SovereignClusterOptions();
        builder.Services.AddOptions<SovereignClusterOptions>().BindConfiguration(SovereignClusterOptions.SectionName).ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SovereignClusterOptions>, ClusterOptionsValidator>());
        var dataDirectory = builder.Configuration["Sovereign:DataDirectory"] is { Length: > 0 } data
            ? data
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".sovereign");
        var tls = new ClusterTlsCredentials(cluster, dataDirectory, builder.Configuration["Sovereign:NodeId"] is { Length: > 0 } configured ? configured : "local", TimeProvider.System);
        builder.Services.TryAddSingleton(tls);

        // Before the silo starts: refused peers are logged from its first connection on.
        builder.Services.AddHostedService(sp => new ClusterTlsLogging(tls, sp.GetRequiredService<ILoggerFactory>()));

        // Also before the silo: a revoked peer is refused from the first connection on.
        builder.Services.TryAddSingleton<CertificateRevocationSync>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<CertificateRevocationSync>());
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SovereignClusterOptions>, ClusterTlsValidator>());

        // Warns before this member's certificate expires, and exports how long it has left.
        builder.Services.TryAddSingleton(sp => new ClusterCertificateExpiry(tls, sp.GetService<TimeProvider>() ?? TimeProvider.System, sp.GetRequiredService<ILogger<ClusterCertificateExpiry>>()));
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ClusterCertificateExpiry>());
        // Before the silo: a member of another CA fails its start at once instead of being declared dead.
        builder.Services.AddHostedService(sp => new ClusterCaProbe(tls, sp, sp.GetService<TimeProvider>() ?? TimeProvider.System));
        if (cluster.IsDistributed)
        {
            // Before the silo too: a Redis that refuses this member's password is one line naming the setting (exit 2, as
            // a CA of another cluster), not Orleans' own exception and stack; a gateway said so already, a node did not.
            builder.Services.AddHostedService(_ => new ClusterRedisProbe(cluster));
        }
        siloPort = siloPort > 0 ? siloPort : cluster.SiloPort > 0 ? cluster.SiloPort : FreePort();
        gatewayPort = gatewayPort > 0 ? gatewayPort : cluster.GatewayPort > 0 ? cluster.GatewayPort : FreePort();
        builder.UseOrleans(silo =>
        {
            silo.AddSovereignGrainFilters();

            // A member declared dead stops with one line and exit 75, not Orleans' FailFast (exit 134, pages of stack).
            silo.Services.Replace(ServiceDescriptor.Singleton<IFatalErrorHandler, ClusterFatalErrorHandler>());
            if (!cluster.IsDistributed)
            {
                silo.UseLocalhostClustering(siloPort, gatewayPort, serviceId: "sovereign", clusterId: "sovereign-local");
                return;
            }

            silo.Configure<Orleans.Configuration.ClusterOptions>(o =>
            {
                o.ClusterId = cluster.ClusterId;
                o.ServiceId = "sovereign";
            });

            // Members are named by role and node id, so `sovereign cluster status` shows which process each one is.
            var nodeId = builder.Configuration["Sovereign:NodeId"] is { Length: > 0 } id ? id : Environment.MachineName;
            silo.Configure<SiloOptions>(o => o.SiloName = $"{cluster.Role.ToString().ToLowerInvariant()}/{nodeId}");
            silo.ConfigureEndpoints(IPAddress.TryParse(cluster.AdvertisedAddress, out var address) ? address : IPAddress.Loopback, siloPort, gatewayPort, listenOnAnyHostAddress: false);
            silo.UseRedisClustering(cluster.Redis!);
            if (tls.Enabled)
            {
                UseClusterTls(silo, tls);
            }

            // Where each grain lives is kept in Redis too, not in partitions spread over the silos: a GPU node killed
            // with SIGKILL holds no part of the directory, so gateways keep creating and finding tenants' grains.
            silo.UseRedisGrainDirectoryAsDefault(o => o.ConfigurationOptions = StackExchange.Redis.ConfigurationOptions.Parse(cluster.Redis!));
            if (cluster.Role == ServerRole.Node)
            {
                // Money, keys, the registry and the price book's version live on gateways only: a GPU node that dies (or is drained) never takes a
                // tenant's budget or a key's revocation down with it. Orleans places a grain only on silos hosting its class.
                silo.Services.AddOptions<GrainTypeOptions>().PostConfigure<IOptions<GatewayOnlyGrains>>((grains, gatewayOnly) =>
                    grains.Classes.ExceptWith(gatewayOnly.Value.Classes));
            }
            else if (tls.Enabled)
            {
                silo.Services.AddHostedService<SiloRoleGuard>();
            }

            // A silo that stops answering probes is declared dead within about DeathSeconds (probes every third of it).
            var death = TimeSpan.FromSeconds(Math.Clamp(cluster.DeathSeconds, 3, 600));
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = death / 3;
                o.NumMissedProbesLimit = 2;
                o.NumProbedSilos = 2;
                o.NumVotesForDeathDeclaration = 1;
                o.IAmAliveTablePublishTimeout = death;
                o.TableRefreshTimeout = TimeSpan.FromSeconds(5);
                o.MaxJoinAttemptTime = TimeSpan.FromSeconds(Math.Clamp(cluster.JoinTimeoutSeconds, 5, 3600));
            });
        });
        builder.Services.TryAddSingleton(TimeProvider.System);

        // After the silo (registered above), which creates the table it reads.
        builder.Services.TryAddSingleton<MembershipTableWatch>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<MembershipTableWatch>());
        builder.Services.Configure<GatewayOnlyGrains>(o => o.Classes.UnionWith([typeof(TenantGrain), typeof(ApiKeyGrain), typeof(NodeRegistryGrain), typeof(PriceBookGrain)]));
        var leasesByDefault = cluster.IsDistributed && cluster.Role == ServerRole.Gateway && builder.Configuration["Sovereign:Metering:LeaseTerm"] is null;
        builder.Services.AddOptions<TenantMoneyOptions>()
            .Bind(builder.Configuration.GetSection("Sovereign:Metering"))
            // A gateway of a multi-process cluster leases unless told otherwise (its relays skip the round trip to the
            // tenant's grain on another gateway); one process alone (--role all) has its grains here, and does not.
            .Configure(o => o.LeaseTerm = leasesByDefault ? TenantMoneyOptions.ClusterGatewayLeaseTerm : o.LeaseTerm)
            .Validate(o => o.ReservationLifetime > TimeSpan.Zero, "Sovereign:Metering:ReservationLifetime must be positive (e.g. 00:30:00).")
            .Validate(o => o.LeaseTerm >= TimeSpan.Zero && o.LeaseTerm <= TenantMoneyOptions.MaxLeaseTerm,
                "Sovereign:Metering:LeaseTerm must be between 00:00:00 (no budget leases) and 00:05:00.")
            .Validate(o => o.LeaseShare is > 0m and <= 0.5m, "Sovereign:Metering:LeaseShare must be above 0 and at most 0.5.")
            .Validate(o => o.LeaseMinRequests >= 1 && o.LeaseRequests >= o.LeaseMinRequests && o.LeaseRequests <= 100_000,
                "Sovereign:Metering:LeaseRequests must be at least Sovereign:Metering:LeaseMinRequests (itself at least 1) and at most 100000.")
            .Validate(o => o.LeaseReclaimTimeout > TimeSpan.Zero && o.LeaseReclaimTimeout <= TenantMoneyOptions.MaxLeaseReclaimTimeout,
                "Sovereign:Metering:LeaseReclaimTimeout must be above 00:00:00 and at most 00:00:10 (the tenant's requests wait for it).")
            .Validate(o => o.LeaseRecallTimeout > TimeSpan.Zero && o.LeaseRecallTimeout <= TenantMoneyOptions.MaxLeaseRecallTimeout,
                "Sovereign:Metering:LeaseRecallTimeout must be above 00:00:00 and at most 00:00:10 (a change of the tenant waits for it).")
            .ValidateOnStart();
        return builder;
    }

    /// <summary>
    /// Mutual TLS on every silo connection (silo to silo, and Orleans clients): each end presents its cluster
    /// certificate and accepts only one the cluster CA signed, so a process without the operator's credential cannot
    /// take part in membership, however it reaches Redis. Certificates are read at the first connection (a joining node
    /// receives its own just before).
    /// </summary>
    private static void UseClusterTls(ISiloBuilder silo, ClusterTlsCredentials tls)
    {
        silo.UseTls(options =>
        {
            options.LocalServerCertificateSelector = (_, _) => tls.Local;
            options.LocalClientCertificateSelector = (_, _, _, _, _) => tls.Local;
            options.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
            options.ClientCertificateMode = RemoteCertificateMode.AllowCertificate; // offered through the selector above
            options.SslProtocols = System.Security.Authentication.SslProtocols.Tls13;

            // The machine's trust store and host names play no part: the chain must end at the cluster CA.
            options.RemoteCertificateValidation = (certificate, _, _) => tls.ValidatePeer(certificate, out _) is not null;
        });
        SiloConnectionTracking.Add(silo.Services, tls);
    }

    private sealed class ClusterTlsLogging(ClusterTlsCredentials tls, ILoggerFactory loggers) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            tls.Logger = loggers.CreateLogger<ClusterTlsCredentials>();
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class ClusterTlsValidator(ClusterTlsCredentials tls) : IValidateOptions<SovereignClusterOptions>
    {
        public ValidateOptionsResult Validate(string? name, SovereignClusterOptions options)
        {
            var problems = tls.Problems().ToList();
            return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
        }
    }

    private sealed class ClusterOptionsValidator : IValidateOptions<SovereignClusterOptions>
    {
        public ValidateOptionsResult Validate(string? name, SovereignClusterOptions options)
        {
            var problems = options.Problems().ToList();
            return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
