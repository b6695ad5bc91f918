using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Connections.Security;
using Sovereign.Cluster.Hosting;

namespace Sovereign.Cluster.Security;

/// <summary>
/// Connection middleware behind Orleans' TLS on every silo connection (silo to silo both ways, and Orleans clients):
/// registers the connection under the certificate its peer proved, so a revocation cuts it
/// (<see cref="ClusterConnections"/>). On a connection this silo opens to another, it also checks that the member name
/// the peer announced in membership (<c>gateway/gateway-th</c>) is what its certificate binds: a node's certificate
/// cannot present itself as a gateway, nor one node as another; such a peer is refused and declared dead.
/// </summary>
internal static partial class SiloConnectionTracking
{
    public static void Add(IServiceCollection services, ClusterTlsCredentials tls)
    {
        // PostConfigure: after Orleans' own TLS middleware, so the handshake has run and its feature is set.
        services.PostConfigure<SiloConnectionOptions>(options =>
        {
            options.ConfigureSiloInboundConnection(builder => builder.Use(next => context => TrackAsync(context, next, tls, "silo", membership: null)));
            options.ConfigureGatewayInboundConnection(builder => builder.Use(next => context => TrackAsync(context, next, tls, "orleans-client", membership: null)));
            options.ConfigureSiloOutboundConnection(builder => builder.Use(next => context =>
                TrackAsync(context, next, tls, "silo", builder.ApplicationServices.GetService<IClusterMembershipService>())));
        });
    }

    /// <summary>
    /// Whether a member announcing <paramref name="memberName"/> (<c>role/node-id</c>, as <c>AddSovereignCluster</c> names
    /// silos) may hold a certificate binding <paramref name="identity"/>: the same node id, a node as a node, a gateway
    /// (or an all-in-one member, which holds a gateway certificate) as a gateway.
    /// </summary>
    public static bool NameMatches(string? memberName, ClusterIdentity identity)
    {
        if (memberName?.Split('/') is not [var role, var nodeId] || nodeId != identity.NodeId)
        {
            return false;
        }

        return identity.Role == ServerRole.Node
            ? role == "node"
            : role is "gateway" or "all";
    }

    private static async Task TrackAsync(ConnectionContext context, ConnectionDelegate next, ClusterTlsCredentials tls, string channel, IClusterMembershipService? membership)
    {
        // Orleans' TLS already refused any certificate the cluster CA did not sign, or that is revoked.
        var certificate = context.Features.Get<ITlsConnectionFeature>()?.RemoteCertificate;
        if (certificate is null || ClusterCertificates.IdentityOf(certificate) is not { } identity)
        {
            await next(context);
            return;
        }

        if (membership is not null && context.RemoteEndPoint is IPEndPoint endpoint
            && membership.CurrentSnapshot.Members.Values.FirstOrDefault(m => endpoint.Equals(m.SiloAddress.Endpoint)) is { } member
            && !NameMatches(member.Name, identity))
        {
            LogImpostor(tls.Logger, member.Name, member.SiloAddress.ToString(), identity.ToString());
            context.Abort(new ConnectionAbortedException($"The silo announced as {member.Name} proved {identity}."));
            _ = DeclareDeadAsync(membership, member.SiloAddress, tls.Logger);
            return;
        }

        using var tracked = tls.Connections.Track(certificate, identity, channel, () => context.Abort(new ConnectionAbortedException("Its cluster certificate was revoked.")));
        await next(context);
    }

    /// <summary>Declares <paramref name="silo"/> dead in membership (its peers then drop it, and it stops); a failure is logged.</summary>
    internal static async Task DeclareDeadAsync(IClusterMembershipService membership, SiloAddress silo, ILogger logger)
    {
        try
        {
            await membership.TryKill(silo);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException and not OperationCanceledException)
        {
            LogKillFailed(logger, silo.ToString(), ex.Message);
        }
    }

    [LoggerMessage(EventId = 3014, Level = LogLevel.Error, Message = "Refused silo {SiloName} at {Silo}: its certificate binds {Identity}; declaring it dead")]
    private static partial void LogImpostor(ILogger logger, string siloName, string silo, string identity);

    [LoggerMessage(EventId = 3015, Level = LogLevel.Warning, Message = "Could not declare silo {Silo} dead: {Problem}")]
    private static partial void LogKillFailed(ILogger logger, string silo, string problem);
}
