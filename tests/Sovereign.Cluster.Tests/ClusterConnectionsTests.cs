using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;

namespace Sovereign.Cluster.Tests;

/// <summary>Open connections are cut by the revocation of the certificate that opened them, and only by that.</summary>
public sealed class ClusterConnectionsTests : IDisposable
{
    private static readonly ClusterIdentity NodeTh = new(ServerRole.Node, "node-th");
    private static readonly ClusterIdentity NodeSg = new(ServerRole.Node, "node-sg");
    private readonly X509Certificate2 _authority = ClusterCertificates.CreateAuthority("test", DateTimeOffset.UtcNow.AddDays(-1));

    public void Dispose() => _authority.Dispose();

    [Fact]
    public void Revocation_CutsTheConnectionsOfTheRevokedCertificate_OnlyOnce_AndNotClosedOnes()
    {
        var connections = new ClusterConnections();
        using var th = Issue(NodeTh, DateTimeOffset.UtcNow.AddHours(-2));
        using var sg = Issue(NodeSg, DateTimeOffset.UtcNow.AddHours(-2));
        var cut = new List<string>();
        var first = connections.Track(th, NodeTh, "silo", () => cut.Add("th-1"));
        using var second = connections.Track(th, NodeTh, "gateway-to-node", () => cut.Add("th-2"));
        using var other = connections.Track(sg, NodeSg, "silo", () => cut.Add("sg"));
        first.Dispose();
        Assert.Equal(2, connections.Count);

        // Nothing revoked, or another certificate: nothing cut.
        Assert.Equal(0, connections.CutRevoked(CertificateRevocations.None));
        Assert.Equal(0, connections.CutRevoked(BySerial("ABCDEF")));
        Assert.Empty(cut);

        // By serial: the open connection of that certificate (not the one already closed), once.
        Assert.Equal(1, connections.CutRevoked(BySerial(th.SerialNumber)));
        Assert.Equal(["th-2"], cut);
        Assert.Equal(0, connections.CutRevoked(BySerial(th.SerialNumber)));
        Assert.Equal(1, connections.Count);

        // By node: certificates that became valid before the revocation; one issued to the node after it stays.
        using var reissued = Issue(NodeSg, DateTimeOffset.UtcNow.AddMinutes(10));
        using var fresh = connections.Track(reissued, NodeSg, "silo", () => cut.Add("sg-new"));
        Assert.Equal(1, connections.CutRevoked(ByNode("node-sg", DateTimeOffset.UtcNow)));
        Assert.Equal(["th-2", "sg"], cut);
        Assert.Equal(1, connections.Count);
    }

    [Fact]
    public void ConnectionTrackedByItsStream_IsCutThroughIt_AndForgottenOnceTheStreamIsGone()
    {
        var connections = new ClusterConnections();
        using var th = Issue(NodeTh, DateTimeOffset.UtcNow.AddHours(-2));
        var stream = new MemoryStream();
        connections.TrackWhileAlive(th, NodeTh, "gateway-to-node", stream, static open => open.Dispose());
        Assert.True(stream.CanRead);
        Assert.Equal(1, connections.CutRevoked(BySerial(th.SerialNumber)));
        Assert.False(stream.CanRead);

        TrackUnreachable(connections, th);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Assert.Equal(0, connections.Count);
    }

    [Theory]
    [InlineData("node/node-th", ServerRole.Node, "node-th", true)]
    [InlineData("gateway/gw-th", ServerRole.Gateway, "gw-th", true)]
    [InlineData("all/gw-th", ServerRole.Gateway, "gw-th", true)]
    [InlineData("gateway/node-th", ServerRole.Node, "node-th", false)]
    [InlineData("all/node-th", ServerRole.Node, "node-th", false)]
    [InlineData("node/gw-th", ServerRole.Gateway, "gw-th", false)]
    [InlineData("node/node-sg", ServerRole.Node, "node-th", false)]
    [InlineData("node-th", ServerRole.Node, "node-th", false)]
    [InlineData(null, ServerRole.Node, "node-th", false)]
    public void SiloName_MustBeWhatTheCertificateBinds(string? name, ServerRole role, string nodeId, bool matches) =>
        Assert.Equal(matches, SiloConnectionTracking.NameMatches(name, new ClusterIdentity(role, nodeId)));

    // Not inlined, so no local keeps the stream alive while the test collects it.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void TrackUnreachable(ClusterConnections connections, X509Certificate2 certificate) =>
        connections.TrackWhileAlive(certificate, NodeTh, "gateway-to-node", new MemoryStream(), static open => open.Dispose());

    private static CertificateRevocations BySerial(string serial) =>
        CertificateRevocations.From([new(CertificateRevocations.SerialKind, CertificateRevocations.NormalizeSerial(serial)!, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), null)]);

    private static CertificateRevocations ByNode(string nodeId, DateTimeOffset at) =>
        CertificateRevocations.From([new(CertificateRevocations.NodeKind, nodeId, at.ToUnixTimeMilliseconds(), "stolen")]);

    private X509Certificate2 Issue(ClusterIdentity identity, DateTimeOffset at)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return ClusterCertificates.Issue(_authority, ClusterCertificates.CreateSigningRequest(identity, key), identity, at);
    }
}

/// <summary>A silo named as a node that offers to host a gateway-only grain is expelled; genuine members are not.</summary>
public sealed class SiloRoleGuardTests
{
    private static readonly Orleans.Runtime.GrainType Tenant = Orleans.Runtime.GrainType.Create("tenant");
    private static readonly Orleans.Runtime.GrainType Chat = Orleans.Runtime.GrainType.Create("chat");

    [Fact]
    public void OnlyANodeNamedSilo_OfferingAGatewayOnlyGrain_IsAnImpostor()
    {
        var gateway = Silo(1);
        var node = Silo(2);
        var tampered = Silo(3);
        var deadTampered = Silo(4);
        var members = new Dictionary<Orleans.Runtime.SiloAddress, Orleans.Runtime.ClusterMember>
        {
            [gateway] = new(gateway, Orleans.Runtime.SiloStatus.Active, "gateway/gw-th"),
            [node] = new(node, Orleans.Runtime.SiloStatus.Active, "node/node-th"),
            [tampered] = new(tampered, Orleans.Runtime.SiloStatus.Joining, "node/node-x"),
            [deadTampered] = new(deadTampered, Orleans.Runtime.SiloStatus.Dead, "node/node-y"),
        };
        var manifest = new Orleans.Metadata.ClusterManifest(new Orleans.Metadata.MajorMinorVersion(1, 1),
            System.Collections.Immutable.ImmutableDictionary<Orleans.Runtime.SiloAddress, Orleans.Metadata.GrainManifest>.Empty
                .Add(gateway, Offers(Tenant, Chat))
                .Add(node, Offers(Chat))
                .Add(tampered, Offers(Chat, Tenant))
                .Add(deadTampered, Offers(Tenant)));

        var impostor = Assert.Single(SiloRoleGuard.Impostors(manifest, members, new HashSet<Orleans.Runtime.GrainType> { Tenant }));
        Assert.Equal((tampered, "node/node-x", Tenant), impostor);
    }

    private static Orleans.Runtime.SiloAddress Silo(int n) => Orleans.Runtime.SiloAddress.New(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 11110 + n), n);

    private static Orleans.Metadata.GrainManifest Offers(params Orleans.Runtime.GrainType[] types) => new(
        types.ToImmutableDictionary(t => t, _ => new Orleans.Metadata.GrainProperties(System.Collections.Immutable.ImmutableDictionary.Create<string, string>(StringComparer.Ordinal))),
        System.Collections.Immutable.ImmutableDictionary<Orleans.Runtime.GrainInterfaceType, Orleans.Metadata.GrainInterfaceProperties>.Empty);
}
