using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Sovereign.Cluster.Grains;

namespace Sovereign.Cluster;

/// <summary>Hosts the control-plane grains in this process.</summary>
public static class ClusterHostingExtensions
{
    /// <summary>
    /// Starts an Orleans silo in-process with localhost clustering (the embedded default). Ports are chosen free
    /// unless given, so several servers can run on one machine (tests, laptops).
    /// </summary>
    public static IHostApplicationBuilder AddSovereignCluster(this IHostApplicationBuilder builder, int siloPort = 0, int gatewayPort = 0)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.UseOrleans(silo =>
        {
            silo.UseLocalhostClustering(siloPort > 0 ? siloPort : FreePort(), gatewayPort > 0 ? gatewayPort : FreePort(), serviceId: "sovereign", clusterId: "sovereign-local");
        });
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddOptions<TenantMoneyOptions>()
            .Bind(builder.Configuration.GetSection("Sovereign:Metering"))
            .Validate(o => o.ReservationLifetime > TimeSpan.Zero, "Sovereign:Metering:ReservationLifetime must be positive (e.g. 00:30:00).")
            .ValidateOnStart();
        return builder;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
