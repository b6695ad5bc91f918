using System.Collections.Immutable;
using System.Net;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
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

    private static async Task StatusShowsTheLastSeenMembersAsync(IGrainFactory grains, string why)
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-status-no-redis-").FullName;
        try
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
                Options.Create(new Sovereign.Cluster.Hosting.SovereignClusterOptions()), new Sovereign.Metering.Pricing.PriceBookProvider(null!), membership,
                new Sovereign.Gateway.Pipeline.RouteGates(Options.Create(new SovereignOptions())));

            var context = new DefaultHttpContext { RequestServices = new ServiceCollection().AddLogging().BuildServiceProvider() };
            using var body = new MemoryStream();
            context.Response.Body = body;
            await result.ExecuteAsync(context);
            Assert.Equal(200, context.Response.StatusCode);
            var status = JsonDocument.Parse(body.ToArray()).RootElement;
            Assert.Contains("Sovereign:Cluster:Redis", status.GetProperty("membership_error").GetString(), StringComparison.Ordinal);
            Assert.Contains(why, status.GetProperty("membership_error").GetString(), StringComparison.Ordinal);
            Assert.Equal(
                ["gateway/gateway-th active", "node/node-th active"],
                status.GetProperty("members").EnumerateArray().Select(m => $"{m.GetProperty("name").GetString()} {m.GetProperty("status").GetString()}"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
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
