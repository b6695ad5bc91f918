using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// HTTPS between gateways and nodes with the cluster's certificates. A node listening on an https URL serves its own
/// cluster certificate and checks any client certificate against the cluster CA; a gateway relaying to a node's https
/// URL accepts only a node certificate of the cluster CA (the machine's trust store and host names play no part) and
/// presents its own. Over plain http the cluster secret alone authenticates relays.
/// </summary>
internal static class ClusterNodeHttp
{
    public static void AddClusterNodeHttp(this IServiceCollection services)
    {
        services.AddHttpClient(UpstreamProxy.ClusterNodeClientName, client => client.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(sp => CreateHandler(sp.GetRequiredService<ClusterTlsCredentials>()));
        services.AddOptions<KestrelServerOptions>().Configure<ClusterTlsCredentials>((kestrel, tls) =>
        {
            if (tls is { Enabled: true, Options.Role: ServerRole.Node })
            {
                kestrel.ConfigureHttpsDefaults(https =>
                {
                    https.ServerCertificateSelector = (_, _) => tls.Local;
                    https.ClientCertificateMode = ClientCertificateMode.AllowCertificate;
                    https.ClientCertificateValidation = (certificate, _, _) => tls.ValidatePeer(certificate, out _) is not null;
                });
            }
        });
    }

    /// <summary>
    /// Whether a relay that reached this node over https came from a gateway of the cluster, by its certificate. The TLS
    /// handshake already validated any client certificate against the cluster CA (or failed), so only its role is read
    /// here, not the chain again on every request.
    /// </summary>
    public static bool FromClusterGateway(HttpContext context) =>
        context.Connection.ClientCertificate is { } certificate && ClusterCertificates.IdentityOf(certificate) is { Role: ServerRole.Gateway };

    private static SocketsHttpHandler CreateHandler(ClusterTlsCredentials tls)
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        if (tls.Enabled)
        {
            handler.SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                    certificate is X509Certificate2 presented && tls.ValidatePeer(presented, out _) is { Role: ServerRole.Node },
                LocalCertificateSelectionCallback = (_, _, _, _, _) => tls.Local,
            };
        }

        return handler;
    }
}
