using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary><c>sovereign cluster ca init</c> and <c>sovereign cluster cert issue</c>, as the operator runs them.</summary>
public sealed class ClusterCertificateCliTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sovereign-ca-cli-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task CaInit_ThenIssue_GivesAGatewayCertificateTheCaValidates_AndRotatingGivesANewKey()
    {
        var ca = Path.Combine(_folder, "operator");
        var (exit, stdout, stderr) = await CliProcess.RunAsync("cluster", "ca", "init", "--data-dir", ca, "--cluster-id", "prod");
        Assert.True(exit == 0, stdout + stderr);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(ca, "cluster-ca-key.pem")));
        }

        // A second init would orphan every issued certificate: refused.
        (exit, _, stderr) = await CliProcess.RunAsync("cluster", "ca", "init", "--data-dir", ca);
        Assert.Equal(1, exit);
        Assert.Contains("exists already", stderr, StringComparison.Ordinal);

        var gateway = Path.Combine(_folder, "gateway-th");
        (exit, stdout, stderr) = await CliProcess.RunAsync("cluster", "cert", "issue", "--data-dir", ca, "--role", "gateway", "--node-id", "gateway-th", "--out", gateway, "--days", "30");
        Assert.True(exit == 0, stdout + stderr);
        using var authority = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(gateway, "cluster-ca.pem")));
        using var first = X509Certificate2.CreateFromPemFile(Path.Combine(gateway, "cluster-cert.pem"), Path.Combine(gateway, "cluster-key.pem"));
        Assert.Equal(new ClusterIdentity(ServerRole.Gateway, "gateway-th"), ClusterCertificates.Validate(first, authority, DateTimeOffset.UtcNow, out _));
        Assert.Null(ClusterCertificates.Validate(first, authority, DateTimeOffset.UtcNow.AddDays(31), out _));
        Assert.False(File.Exists(Path.Combine(gateway, "cluster-ca-key.pem")));

        // Rotation: issue again; the member gets a new key and certificate from the same CA.
        (exit, stdout, stderr) = await CliProcess.RunAsync("cluster", "cert", "issue", "--data-dir", ca, "--role", "gateway", "--node-id", "gateway-th", "--out", gateway);
        Assert.True(exit == 0, stdout + stderr);
        using var second = X509Certificate2.CreateFromPemFile(Path.Combine(gateway, "cluster-cert.pem"), Path.Combine(gateway, "cluster-key.pem"));
        Assert.NotEqual(first.Thumbprint, second.Thumbprint);
        Assert.NotEqual(first.PublicKey.ExportSubjectPublicKeyInfo(), second.PublicKey.ExportSubjectPublicKeyInfo());
        Assert.NotNull(ClusterCertificates.Validate(second, authority, DateTimeOffset.UtcNow, out _));
    }

    /// <summary>
    /// Issuing node n1 with --out pointing at gateway-th's folder (or without --out, into the CA's folder, where a
    /// gateway keeps its own files) replaced the gateway's certificate and key: exit 0, and the gateway could not start
    /// again. It is a usage error now, and the gateway's files stay.
    /// </summary>
    /// <summary>
    /// The cluster id is written into the CA's subject: one with a space, a comma (which added an organisation of the
    /// caller's choosing to the subject) or nothing at all is a usage error naming the flag, and no CA is written.
    /// </summary>
    [Theory]
    [InlineData("my cluster")]
    [InlineData("prod, O=Someone Else")]
    [InlineData("")]
    public async Task CaInit_AClusterIdThatIsNotAnId_IsAUsageError_AndWritesNothing(string clusterId)
    {
        var ca = Path.Combine(_folder, "ca");

        var (exit, _, stderr) = await CliProcess.RunAsync("cluster", "ca", "init", "--data-dir", ca, "--cluster-id", clusterId);

        Assert.Equal(2, exit);
        Assert.Contains("--cluster-id must be 1 to 64 letters, digits, '.', '_' or '-'", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(ca, "cluster-ca.pem")));
        Assert.False(File.Exists(Path.Combine(ca, "cluster-ca-key.pem")));
    }

    [Fact]
    public async Task Issue_IntoAFolderHoldingAnotherMembersCertificate_IsRefused_AndItsKeyStays()
    {
        var ca = Path.Combine(_folder, "operator");
        Assert.Equal(0, (await CliProcess.RunAsync("cluster", "ca", "init", "--data-dir", ca)).ExitCode);
        var gateway = Path.Combine(_folder, "gateway-th");
        Assert.Equal(0, (await CliProcess.RunAsync("cluster", "cert", "issue", "--data-dir", ca, "--role", "gateway", "--node-id", "gateway-th", "--out", gateway)).ExitCode);
        var key = await File.ReadAllTextAsync(Path.Combine(gateway, "cluster-key.pem"));

        foreach (var (role, id) in new[] { ("node", "n1"), ("node", "gateway-th"), ("gateway", "gateway-sg") })
        {
            var (exit, stdout, stderr) = await CliProcess.RunAsync("cluster", "cert", "issue", "--data-dir", ca, "--role", role, "--node-id", id, "--out", gateway);

            Assert.True(exit == 2, $"{role}/{id}: {exit} {stdout} {stderr}");
            Assert.Contains("holds the certificate of gateway/gateway-th", stderr, StringComparison.Ordinal);
            Assert.Equal(key, await File.ReadAllTextAsync(Path.Combine(gateway, "cluster-key.pem")));
        }
    }

    [Fact]
    public async Task IssueFromASigningRequest_WritesNoKey_AndBindsTheRequestersKey()
    {
        var ca = Path.Combine(_folder, "operator");
        Assert.Equal(0, (await CliProcess.RunAsync("cluster", "ca", "init", "--data-dir", ca)).ExitCode);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var csr = Path.Combine(_folder, "node.csr");
        await File.WriteAllTextAsync(csr, ClusterCertificates.CreateSigningRequest(new ClusterIdentity(ServerRole.Node, "node-th"), key));

        var node = Path.Combine(_folder, "node-th");
        var (exit, stdout, stderr) = await CliProcess.RunAsync("cluster", "cert", "issue", "--data-dir", ca, "--role", "node", "--node-id", "node-th", "--csr", csr, "--out", node);
        Assert.True(exit == 0, stdout + stderr);
        Assert.False(File.Exists(Path.Combine(node, "cluster-key.pem")));
        using var issued = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(node, "cluster-cert.pem")));
        Assert.Equal(key.ExportSubjectPublicKeyInfo(), issued.PublicKey.ExportSubjectPublicKeyInfo());
        Assert.Equal(new ClusterIdentity(ServerRole.Node, "node-th"), ClusterCertificates.IdentityOf(issued));

        // Bad input: a precise message and exit 2, nothing written.
        (exit, _, stderr) = await CliProcess.RunAsync("cluster", "cert", "issue", "--data-dir", ca, "--role", "node", "--node-id", "Node_TH", "--out", Path.Combine(_folder, "bad"));
        Assert.Equal(2, exit);
        Assert.Contains("--node-id", stderr, StringComparison.Ordinal);
        await File.WriteAllTextAsync(csr, "not a request");
        (exit, _, stderr) = await CliProcess.RunAsync("cluster", "cert", "issue", "--data-dir", ca, "--role", "node", "--node-id", "node-th", "--csr", csr, "--out", Path.Combine(_folder, "bad"));
        Assert.Equal(2, exit);
        Assert.Contains("--csr", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_folder, "bad")));

        // Without a CA there is nothing to sign with.
        (exit, _, stderr) = await CliProcess.RunAsync("cluster", "cert", "issue", "--data-dir", Path.Combine(_folder, "nowhere"), "--role", "gateway", "--node-id", "gateway-th");
        Assert.Equal(1, exit);
        Assert.Contains("sovereign cluster ca init", stderr, StringComparison.Ordinal);
    }
}
