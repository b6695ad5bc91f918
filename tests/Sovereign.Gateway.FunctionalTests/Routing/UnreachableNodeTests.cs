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
/// A cluster node found unreachable at a connection stays so until it reports again after the failure. The mark used to
/// lift on any report newer than the view the failure was seen in, so a killed node's last report (sent before it died,
/// read by the gateway after) showed it "up" in <c>nodes list</c> and took requests again until the report went stale
/// (ClusterTests.ThOnlyTenantUnderLoad_WhileATHNodeIsKilled_... failed so at load 12-20).
/// </summary>
public sealed class UnreachableNodeTests
{
    [Fact]
    public void AClusterNodeMarkedUnreachable_StaysSo_UntilAReportStampedAfterTheFailure()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-unreachable-").FullName;
        try
        {
            using var key = OperatorSigningKey.LoadOrCreate(Path.Combine(folder, "operator-key.pem"));
            var clock = new ManualClock(DateTimeOffset.FromUnixTimeMilliseconds(1_000_000));
            var nodes = new NodeDirectory(null!, key, Options.Create(new SovereignOptions()), Options.Create(new Sovereign.Cluster.Hosting.SovereignClusterOptions()),
                clock, NullLogger<NodeDirectory>.Instance);
            const string Url = "https://127.0.0.1:9";
            var credential = NodeCredentials.Issue(new NodeClaims("node-t0", "TH", "Local", Url, 1), key);
            NodeView Reported(long at) => new("node-t0", "TH", "Local", Url, [new NodeModel("m", "m", 1)], "Active", credential, null, 0,
                new NodeLoad(at, [], []));

            // Seen with a report of 999,000; its connection fails at 1,000,000.
            var seen = Reported(999_000);
            Assert.Equal(NodeHealth.Up, nodes.HealthOf(seen));
            nodes.MarkUnreachable(seen);
            Assert.Equal(NodeHealth.Unreachable, nodes.HealthOf(seen));

            // Its last report, sent before it died, arrives after: still unreachable.
            clock.Advance(TimeSpan.FromMilliseconds(300));
            Assert.Equal(NodeHealth.Unreachable, nodes.HealthOf(Reported(999_800)));

            // A report stamped after the failure: it is back.
            Assert.Equal(NodeHealth.Up, nodes.HealthOf(Reported(1_000_200)));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
