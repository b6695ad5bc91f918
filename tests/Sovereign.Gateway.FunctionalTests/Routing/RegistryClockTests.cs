using System.Reflection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Routing;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;
using Sovereign.Tests;

namespace Sovereign.Gateway.FunctionalTests.Routing;

/// <summary>
/// A node's load report is aged on the registry's clock, which stamps it, not on the reading gateway's. Before, a
/// gateway compared the node's own timestamp with its own clock: a node (or gateway) whose clock was a minute off read
/// as stale at every report, so the gateway answered 503 no_compliant_capacity while the node sat idle.
/// </summary>
public sealed class RegistryClockTests
{
    [Fact]
    public async Task GatewayClockAMinuteAheadOfTheRegistry_StillSeesAFreshReportAsUp_AndAStoppedOneAsStale()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-registry-clock-").FullName;
        try
        {
            using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(folder, "operator-key.pem"));
            var registryNow = DateTimeOffset.Parse("2026-12-04T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture).ToUnixTimeMilliseconds();
            const string url = "https://127.0.0.1:9";
            var credential = NodeCredentials.Issue(new NodeClaims("node-th", "TH", "Local", url, registryNow), key);
            var registry = new FixedRegistry(new NodeRegistrySnapshot(7, [
                new NodeView("node-th", "TH", "Local", url, [new NodeModel("m", "m", 2)], "Active", credential, null, 0, new NodeLoad(registryNow - 400, [], [])),
            ], registryNow));

            // The gateway's clock runs a minute ahead of the registry's.
            var gatewayClock = new ManualClock(DateTimeOffset.FromUnixTimeMilliseconds(registryNow) + TimeSpan.FromMinutes(1));
            var nodes = new NodeDirectory(GrainFactoryOf(registry), key, Options.Create(new SovereignOptions { NodeId = "gateway-th" }),
                Options.Create(new Sovereign.Cluster.Hosting.SovereignClusterOptions { NodeStaleSeconds = 5 }), gatewayClock, NullLogger<NodeDirectory>.Instance);

            var node = Assert.Single(await nodes.GetNodesAsync());
            Assert.True(nodes.IsUp(node), "a report 0.4 s old on the registry's clock must count as fresh");
            Assert.Equal(NodeHealth.Up, nodes.HealthOf(node));

            // Ten seconds later on the gateway, with no new report: stale, as it would be without any skew.
            gatewayClock.Advance(TimeSpan.FromSeconds(10));
            Assert.False(nodes.IsUp(node));
            Assert.Equal(NodeHealth.Stale, nodes.HealthOf(node));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// After an idle spell longer than NodeStaleSeconds, the first request used to get the view it found (the refresh
    /// it started still running), in which every node's last report was as old as the view: 503 no_compliant_capacity
    /// with every node idle and reporting each second. Seen on a live gateway after 5 s without requests.
    /// </summary>
    [Fact]
    public async Task FirstReadAfterAnIdleSpell_WaitsForTheRefresh_InsteadOfAViewWhoseReportsAreAllStale()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-registry-idle-").FullName;
        try
        {
            using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(folder, "operator-key.pem"));
            var clock = new ManualClock(DateTimeOffset.Parse("2026-12-04T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
            const string url = "https://127.0.0.1:9";
            var credential = NodeCredentials.Issue(new NodeClaims("node-th", "TH", "Local", url, clock.GetUtcNow().ToUnixTimeMilliseconds()), key);

            // The node reports every second: whenever the registry is read, its last report is 300 ms old.
            var registry = new ReportingRegistry(clock, credential, url);
            var nodes = new NodeDirectory(GrainFactoryOf(registry), key, Options.Create(new SovereignOptions { NodeId = "gateway-th" }),
                Options.Create(new Sovereign.Cluster.Hosting.SovereignClusterOptions { NodeStaleSeconds = 5 }), clock, NullLogger<NodeDirectory>.Instance);
            Assert.True(nodes.IsUp(Assert.Single(await nodes.GetNodesAsync())));

            clock.Advance(TimeSpan.FromSeconds(10)); // no request for ten seconds
            var node = Assert.Single(await nodes.GetNodesAsync());
            Assert.True(nodes.IsUp(node), $"the node's report read as {clock.GetUtcNow().ToUnixTimeMilliseconds() - node.Load!.ReportedAt} ms old");
            Assert.Equal(2, registry.Reads);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private sealed class ReportingRegistry(TimeProvider clock, string credential, string url) : INodeRegistryGrain
    {
        private int _reads;

        public int Reads => Volatile.Read(ref _reads);

        public async Task<NodeRegistrySnapshot> GetAsync()
        {
            var version = Interlocked.Increment(ref _reads);
            await Task.Delay(50); // a grain call is not instant: a reader that does not wait gets the view it had
            var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
            return new NodeRegistrySnapshot(version, [
                new NodeView("node-th", "TH", "Local", url, [new NodeModel("m", "m", 2)], "Active", credential, null, 0, new NodeLoad(now - 300, [], [])),
            ], now);
        }

        public Task<NodeView> UpsertAsync(NodeView node) => throw new NotSupportedException();

        public Task<NodeView> RegisterAsync(NodeView node) => throw new NotSupportedException();

        public Task<bool> SetStateAsync(string nodeId, string state) => throw new NotSupportedException();

        public Task<bool> DeleteAsync(string nodeId) => throw new NotSupportedException();

        public Task<bool> ReportAsync(string nodeId, IReadOnlyList<NodeModel> models, NodeLoad load) => throw new NotSupportedException();
    }

    internal static IGrainFactory GrainFactoryOf(INodeRegistryGrain registry)
    {
        var factory = DispatchProxy.Create<IGrainFactory, RegistryOnlyGrainFactory>();
        ((RegistryOnlyGrainFactory)(object)factory).Registry = registry;
        return factory;
    }

    private sealed class FixedRegistry(NodeRegistrySnapshot snapshot) : INodeRegistryGrain
    {
        public Task<NodeRegistrySnapshot> GetAsync() => Task.FromResult(snapshot);

        public Task<NodeView> UpsertAsync(NodeView node) => throw new NotSupportedException();

        public Task<NodeView> RegisterAsync(NodeView node) => throw new NotSupportedException();

        public Task<bool> SetStateAsync(string nodeId, string state) => throw new NotSupportedException();

        public Task<bool> DeleteAsync(string nodeId) => throw new NotSupportedException();

        public Task<bool> ReportAsync(string nodeId, IReadOnlyList<NodeModel> models, NodeLoad load) => throw new NotSupportedException();
    }

    /// <summary>An <see cref="IGrainFactory"/> that knows one grain: the node registry.</summary>
    public class RegistryOnlyGrainFactory : DispatchProxy
    {
        internal INodeRegistryGrain Registry { get; set; } = null!;

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) =>
            targetMethod is { Name: nameof(IGrainFactory.GetGrain), IsGenericMethod: true } && targetMethod.GetGenericArguments()[0] == typeof(INodeRegistryGrain)
                ? Registry
                : throw new NotSupportedException(targetMethod?.Name);
    }
}
