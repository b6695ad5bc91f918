using System.Collections.Immutable;
using System.Net;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Cluster.Security;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Routing;
using Sovereign.Residency.Audit;
using StackExchange.Redis;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// <c>sovereign cluster status</c> while Redis (the membership table) is down: the members as this gateway last saw
/// them, the nodes and capacity it knows, and a line saying the table could not be read. It was a 500 internal_error,
/// the moment an operator most needed the status.
/// </summary>
public sealed class ClusterStatusWithoutRedisTests
{
    [Fact]
    public Task MembershipTableUnreadable_StatusShowsTheLastSeenMembers_AndSaysWhy() =>
        StatusShowsTheLastSeenMembersAsync(DispatchProxy.Create<IGrainFactory, UnreachableMembershipGrainFactory>(), "Sovereign:Cluster:Redis");

    /// <summary>
    /// Redis back, but empty (restarted without persistence: the guide says it holds nothing to back up): Orleans'
    /// table throws its own exception, not a Redis or Orleans one, and the status was a 500 again.
    /// </summary>
    [Fact]
    public Task MembershipTableGone_StatusShowsTheLastSeenMembers_AndSaysWhy() =>
        StatusShowsTheLastSeenMembersAsync(DispatchProxy.Create<IGrainFactory, MembershipTableGoneGrainFactory>(), "membership table version is missing");

    /// <summary>
    /// A member's cluster certificate ran out with nothing said before: the status now states when this gateway's own
    /// expires (and that it is within the warning window), and the member row carries it too.
    /// </summary>
    [Fact]
    public async Task WithClusterTls_StatusShowsWhenTheGatewaysCertificateExpires()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-status-cert-").FullName;
        try
        {
            var now = DateTimeOffset.UtcNow;
            var cluster = new Sovereign.Cluster.Hosting.SovereignClusterOptions { Redis = "127.0.0.1:1", Secret = "s", Role = Sovereign.Cluster.Hosting.ServerRole.Gateway };
            var tls = new ClusterTlsCredentials(cluster, folder, "gateway-th", TimeProvider.System);
            using var ca = ClusterCertificates.CreateAuthority("prod", now);
            using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
            var identity = new ClusterIdentity(Sovereign.Cluster.Hosting.ServerRole.Gateway, "gateway-th");
            using var issued = ClusterCertificates.Issue(ca, ClusterCertificates.CreateSigningRequest(identity, key), identity, now, TimeSpan.FromDays(9));
            ClusterTlsCredentials.WritePem(tls.KeyPath, key.ExportPkcs8PrivateKeyPem(), secret: true);
            ClusterTlsCredentials.WritePem(tls.CertificatePath, issued.ExportCertificatePem(), secret: false);
            ClusterTlsCredentials.WritePem(tls.AuthorityPath, ca.ExportCertificatePem(), secret: false);

            var status = await StatusAsync(DispatchProxy.Create<IGrainFactory, UnreachableMembershipGrainFactory>(), folder, cluster, tls);

            var certificate = status.GetProperty("certificate");
            var notAfter = new DateTimeOffset(issued.NotAfter.ToUniversalTime(), TimeSpan.Zero).ToUnixTimeMilliseconds();
            Assert.Equal(("gateway/gateway-th", issued.SerialNumber, notAfter), (certificate.GetProperty("member").GetString(), certificate.GetProperty("serial").GetString(), certificate.GetProperty("expires_at").GetInt64()));
            Assert.InRange(certificate.GetProperty("expires_in_seconds").GetInt64(), (9 * 86400) - 600, 9 * 86400);
            Assert.True(certificate.GetProperty("expiring").GetBoolean());
            // Its CA (ten years) is stated beside it, and not expiring.
            Assert.Equal(new DateTimeOffset(ca.NotAfter.ToUniversalTime(), TimeSpan.Zero).ToUnixTimeMilliseconds(), certificate.GetProperty("ca_expires_at").GetInt64());
            Assert.Equal(ca.SerialNumber, certificate.GetProperty("ca_serial").GetString());
            Assert.False(certificate.GetProperty("ca_expiring").GetBoolean());
            var member = status.GetProperty("members").EnumerateArray().Single(m => m.GetProperty("name").GetString() == "gateway/gateway-th");
            Assert.Equal(notAfter, member.GetProperty("certificate_expires_at").GetInt64());
            var node = status.GetProperty("members").EnumerateArray().Single(m => m.GetProperty("name").GetString() == "node/node-th");
            Assert.Equal(JsonValueKind.Null, node.GetProperty("certificate_expires_at").ValueKind);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task StatusShowsTheLastSeenMembersAsync(IGrainFactory grains, string why)
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-status-no-redis-").FullName;
        try
        {
            var cluster = new Sovereign.Cluster.Hosting.SovereignClusterOptions();
            var status = await StatusAsync(grains, folder, cluster, new ClusterTlsCredentials(cluster, folder, "gateway-th", TimeProvider.System));
            Assert.Contains("Sovereign:Cluster:Redis", status.GetProperty("membership_error").GetString(), StringComparison.Ordinal);
            Assert.Contains(why, status.GetProperty("membership_error").GetString(), StringComparison.Ordinal);
            Assert.Equal(
                ["gateway/gateway-th active", "node/node-th active"],
                status.GetProperty("members").EnumerateArray().Select(m => $"{m.GetProperty("name").GetString()} {m.GetProperty("status").GetString()}"));
            Assert.Equal(JsonValueKind.Null, status.GetProperty("certificate").ValueKind);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>The status a gateway answers with <paramref name="grains"/> and these members as last seen.</summary>
    private static async Task<JsonElement> StatusAsync(IGrainFactory grains, string folder, Sovereign.Cluster.Hosting.SovereignClusterOptions cluster, ClusterTlsCredentials tls)
    {
        using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(folder, "operator-key.pem"));
        var nodes = new NodeDirectory(grains, key, Options.Create(new SovereignOptions { NodeId = "gateway-th" }),
            Options.Create(new Sovereign.Cluster.Hosting.SovereignClusterOptions()), TimeProvider.System, NullLogger<NodeDirectory>.Instance);
        var gateway = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 11111), 1);
        var node = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, 11112), 1);
        var membership = DispatchProxy.Create<IClusterMembershipService, LastSeenMembership>();
        ((LastSeenMembership)(object)membership).Snapshot = new ClusterMembershipSnapshot(
            ImmutableDictionary<SiloAddress, ClusterMember>.Empty
                .Add(gateway, new ClusterMember(gateway, SiloStatus.Active, "gateway/gateway-th"))
                .Add(node, new ClusterMember(node, SiloStatus.Active, "node/node-th")),
            new MembershipVersion(3));

        var result = await ClusterStatusApi.GetAsync(grains, nodes, Options.Create(new SovereignOptions { NodeId = "gateway-th" }),
            Options.Create(cluster), new Sovereign.Metering.Pricing.PriceBookProvider(null!), membership,
            new Sovereign.Gateway.Pipeline.RouteGates(Options.Create(new SovereignOptions())),
            tls, new ClusterCertificateExpiry(tls, TimeProvider.System, NullLogger<ClusterCertificateExpiry>.Instance), TimeProvider.System);

        var context = new DefaultHttpContext { RequestServices = new ServiceCollection().AddLogging().BuildServiceProvider() };
        using var body = new MemoryStream();
        context.Response.Body = body;
        await result.ExecuteAsync(context);
        Assert.Equal(200, context.Response.StatusCode);
        return JsonDocument.Parse(body.ToArray()).RootElement.Clone();
    }

    /// <summary>A grain factory whose management grain cannot read the membership table, and whose registry is empty.</summary>
    public class UnreachableMembershipGrainFactory : DispatchProxy
    {
        protected virtual IManagementGrain Management() => DispatchProxy.Create<IManagementGrain, RedisDown>();

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            var type = targetMethod!.IsGenericMethod ? targetMethod.GetGenericArguments()[0] : null;
            if (type == typeof(IManagementGrain))
            {
                return Management();
            }

            if (type == typeof(INodeRegistryGrain))
            {
                return DispatchProxy.Create<INodeRegistryGrain, EmptyRegistry>();
            }

            throw new NotSupportedException(targetMethod.Name);
        }
    }

    /// <summary>What Orleans' Redis membership table throws while Redis is down.</summary>
    public class RedisDown : DispatchProxy
    {
        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) =>
            targetMethod!.Name == nameof(IManagementGrain.GetDetailedHosts)
                ? Task.FromException<MembershipEntry[]>(new RedisConnectionException(ConnectionFailureType.SocketClosed, "SocketClosed on 127.0.0.1:6379"))
                : throw new NotSupportedException(targetMethod.Name);
    }

    /// <summary>A grain factory whose management grain finds Redis up but the membership table gone.</summary>
    public class MembershipTableGoneGrainFactory : UnreachableMembershipGrainFactory
    {
        protected override IManagementGrain Management() => DispatchProxy.Create<IManagementGrain, MembershipTableGone>();
    }

    /// <summary>What Orleans' Redis membership table throws when Redis came back empty.</summary>
    public class MembershipTableGone : DispatchProxy
    {
        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) =>
            targetMethod!.Name == nameof(IManagementGrain.GetDetailedHosts)
                ? Task.FromException<MembershipEntry[]>(new Orleans.Clustering.Redis.RedisClusteringException("The Redis membership table version is missing. The table may have expired or been deleted."))
                : throw new NotSupportedException(targetMethod.Name);
    }

    public class EmptyRegistry : DispatchProxy
    {
        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) =>
            targetMethod!.Name == nameof(INodeRegistryGrain.GetAsync)
                ? Task.FromResult(new NodeRegistrySnapshot(1, [], DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()))
                : throw new NotSupportedException(targetMethod.Name);
    }

    public class LastSeenMembership : DispatchProxy
    {
        internal ClusterMembershipSnapshot Snapshot { get; set; } = null!;

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) =>
            targetMethod!.Name == "get_" + nameof(IClusterMembershipService.CurrentSnapshot) ? Snapshot : throw new NotSupportedException(targetMethod.Name);
    }
}
