using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Models;
using Sovereign.Gateway.Routing;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;
using Sovereign.Tests;

namespace Sovereign.Gateway.FunctionalTests.Routing;

/// <summary>
/// A gateway whose wall clock steps back (an NTP correction, a virtual machine resumed from a snapshot) routes as
/// before. Each of these waits compared the clock with a time it had stamped, which stayed in the future until the clock
/// caught up: with a step back of an hour the gateway kept its view of the cluster for the hour, and an engine or an
/// external node it had once found down stayed down for the hour (503 no_compliant_capacity).
/// </summary>
public sealed class ClockStepTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-12-04T12:00:00Z", CultureInfo.InvariantCulture);

    [Fact]
    public async Task GatewayClockStepsBackAnHour_ReadsTheRegistryAgain()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-clock-step-").FullName;
        try
        {
            using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(folder, "operator-key.pem"));
            var clock = new ManualClock(T0);
            const string Url = "https://127.0.0.1:9";
            var credential = NodeCredentials.Issue(new NodeClaims("node-th", "TH", "Local", Url, T0.ToUnixTimeMilliseconds()), key);
            var registry = new CountingRegistry(clock, credential, Url);
            var nodes = new NodeDirectory(RegistryClockTests.GrainFactoryOf(registry), key, Options.Create(new SovereignOptions { NodeId = "gateway-th" }),
                Options.Create(new Sovereign.Cluster.Hosting.SovereignClusterOptions { NodeStaleSeconds = 5 }), clock, NullLogger<NodeDirectory>.Instance);
            Assert.Single(await nodes.GetNodesAsync());
            Assert.Equal(1, registry.Reads);

            // The operator drains the node just after the gateway's clock went back an hour.
            clock.Set(T0 - TimeSpan.FromHours(1));
            registry.State = "Draining";
            clock.Advance(TimeSpan.FromSeconds(2));

            var node = Assert.Single(await nodes.GetNodesAsync());
            Assert.Equal(2, registry.Reads);
            Assert.Equal(NodeHealth.Draining, nodes.HealthOf(node));

            // Then it keeps the view a second, and reads again as before, on the clock as it now reads.
            Assert.Single(await nodes.GetNodesAsync());
            Assert.Equal(2, registry.Reads);
            clock.Advance(TimeSpan.FromSeconds(2));
            Assert.Single(await nodes.GetNodesAsync());
            Assert.Equal(3, registry.Reads);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void AnExternalNodeMarkedUnreachable_IsTriedAgainAfterItsRetry_EvenWhenTheClockSteppedBack()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-clock-step-").FullName;
        try
        {
            using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(folder, "operator-key.pem"));
            var clock = new ManualClock(T0);
            var nodes = new NodeDirectory(null!, key, Options.Create(new SovereignOptions()), Options.Create(new Sovereign.Cluster.Hosting.SovereignClusterOptions()),
                clock, NullLogger<NodeDirectory>.Instance);
            const string Url = "https://engine.example:8443";
            var credential = NodeCredentials.Issue(new NodeClaims("openai-eu", "EU", "External", Url, 1), key);
            var external = new NodeView("openai-eu", "EU", "External", Url, [new NodeModel("m", "m", 4)], "Active", credential, null, 0, null);
            Assert.Equal(NodeHealth.Up, nodes.HealthOf(external));

            nodes.MarkUnreachable(external);
            Assert.Equal(NodeHealth.Unreachable, nodes.HealthOf(external));

            clock.Set(T0 - TimeSpan.FromHours(1));
            clock.Advance(NodeDirectory.UnreachableRetryAfter);

            Assert.Equal(NodeHealth.Up, nodes.HealthOf(external));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void AFrontedEngineMarkedDown_IsTriedAgainAfterItsRetry_EvenWhenTheClockSteppedBack()
    {
        var clock = new ManualClock(T0);
        var options = new SovereignOptions
        {
            Engines = [new EngineOptions { BaseUrl = "http://127.0.0.1:9", Models = [new EngineModelOptions { Id = "m" }] }],
        };
        var engines = new FrontedEngines(Options.Create(options), Options.Create(new Sovereign.Cluster.Hosting.SovereignClusterOptions()), clock);

        engines.MarkDown(0);
        Assert.False(engines.IsUp(0));
        clock.Advance(FrontedEngines.RetryAfter - TimeSpan.FromMilliseconds(1));
        Assert.False(engines.IsUp(0));

        clock.Set(T0 - TimeSpan.FromHours(1));
        clock.Advance(FrontedEngines.RetryAfter);

        Assert.True(engines.IsUp(0));
    }

    /// <summary>A registry whose one node reports every second on the shared clock; the test sets the node's state.</summary>
    private sealed class CountingRegistry(TimeProvider clock, string credential, string url) : INodeRegistryGrain
    {
        private int _reads;

        public int Reads => Volatile.Read(ref _reads);

        public string State { get; set; } = "Active";

        public Task<NodeRegistrySnapshot> GetAsync()
        {
            var version = Interlocked.Increment(ref _reads);
            var now = clock.GetUtcNow().ToUnixTimeMilliseconds();
            return Task.FromResult(new NodeRegistrySnapshot(version, [
                new NodeView("node-th", "TH", "Local", url, [new NodeModel("m", "m", 2)], State, credential, null, 0, new NodeLoad(now - 300, [], [])),
            ], now));
        }

        public Task<NodeView> UpsertAsync(NodeView node) => throw new NotSupportedException();

        public Task<NodeView> RegisterAsync(NodeView node) => throw new NotSupportedException();

        public Task<bool> SetStateAsync(string nodeId, string state) => throw new NotSupportedException();

        public Task<bool> DeleteAsync(string nodeId) => throw new NotSupportedException();

        public Task<bool> ReportAsync(string nodeId, IReadOnlyList<NodeModel> models, NodeLoad load) => throw new NotSupportedException();
    }
}
