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
            // Never the environment's proxy: only the one the operator names (RelayProxy).
            .ConfigurePrimaryHttpMessageHandler(sp => RelayProxy.Apply(CreateHandler(sp.GetRequiredService<ClusterTlsCredentials>()),
                sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<Hosting.SovereignOptions>>().Value.RelayProxy))
            .SetHandlerLifetime(Timeout.InfiniteTimeSpan) // connections are renewed by PooledConnectionLifetime, without a new TLS pool every 2 minutes
            .RemoveAllLoggers();
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
    /// handshake already validated any client certificate against the cluster CA (or failed), so only its role and any
    /// revocation since are checked here, not the chain again on every request. The request is then tracked under the
    /// certificate, so a revocation while it runs cuts it.
    /// </summary>
    public static bool FromClusterGateway(HttpContext context, ClusterTlsCredentials tls)
    {
        if (context.Connection.ClientCertificate is not { } certificate || ClusterCertificates.IdentityOf(certificate) is not { Role: ServerRole.Gateway } identity
            || tls.Revocations.Revokes(certificate, identity) is not null)
        {
            return false;
        }

        context.Response.RegisterForDispose(tls.Connections.Track(certificate, identity, "node-https", context.Abort));
        return true;
    }

    private static SocketsHttpHandler CreateHandler(ClusterTlsCredentials tls)
    {
        var handler = new SocketsHttpHandler { AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        if (tls.Enabled)
        {
            handler.SslOptions = new SslClientAuthenticationOptions
            {
                RemoteCertificateValidationCallback = (sender, certificate, _, _) =>
                {
                    if (certificate is not X509Certificate2 presented || tls.ValidatePeer(presented, out _) is not { Role: ServerRole.Node } identity)
                    {
                        return false;
                    }

                    // The pool does not say when a connection ends; it is tracked while its stream lives, and a revocation
                    // of the node's certificate disposes the stream, which fails the requests on it.
                    if (sender is SslStream stream)
                    {
                        tls.Connections.TrackWhileAlive(presented, identity, "gateway-to-node", stream, static open => open.Dispose());
                    }

                    return true;
                },
                LocalCertificateSelectionCallback = (_, _, _, _, _) => tls.Local,
            };
        }

        return handler;
    }
}
