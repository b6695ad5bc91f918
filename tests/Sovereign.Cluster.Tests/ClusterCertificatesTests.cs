using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;

namespace Sovereign.Cluster.Tests;

/// <summary>The cluster CA: what it issues, and what a member accepts from a peer (the cluster CA's members only).</summary>
public sealed class ClusterCertificatesTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly ClusterIdentity NodeTh = new(ServerRole.Node, "node-th");

    [Fact]
    public void IssuedFromASigningRequest_Validates_AndBindsTheIdentityTheCaChose()
    {
        using var ca = ClusterCertificates.CreateAuthority("prod", Now);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);

        // The request asks to be a gateway; the CA decides it is node-th.
        var csr = ClusterCertificates.CreateSigningRequest(new ClusterIdentity(ServerRole.Gateway, "gateway-th"), key);
        using var issued = ClusterCertificates.Issue(ca, csr, NodeTh, Now);

        Assert.Equal(NodeTh, ClusterCertificates.Validate(issued, ca, Now.AddDays(1), out var problem));
        Assert.Null(problem);
        Assert.Equal("CN=node/node-th", issued.Subject);
        Assert.False(issued.HasPrivateKey);

        // The member's own key pairs with it; the CA never saw that key.
        using var withKey = issued.CopyWithPrivateKey(key);
        Assert.True(withKey.HasPrivateKey);
        Assert.Equal(key.ExportSubjectPublicKeyInfo(), issued.PublicKey.ExportSubjectPublicKeyInfo());
    }

    [Fact]
    public void SelfSignedCertificate_WithAValidLookingIdentity_IsRejected()
    {
        using var ca = ClusterCertificates.CreateAuthority("prod", Now);
        using var rogueCa = ClusterCertificates.CreateAuthority("prod", Now);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var rogue = ClusterCertificates.Issue(rogueCa, ClusterCertificates.CreateSigningRequest(NodeTh, key), NodeTh, Now);

        Assert.Null(ClusterCertificates.Validate(rogue, ca, Now, out var problem));
        Assert.Contains("cluster CA", problem, StringComparison.Ordinal);

        // The rogue CA itself, presented as a leaf, is no member either.
        Assert.Null(ClusterCertificates.Validate(rogueCa, ca, Now, out _));
    }

    [Fact]
    public void DuringACaRollover_BothCasMembersAreAccepted_AndAfterItOnlyTheNewOnes()
    {
        using var oldCa = ClusterCertificates.CreateAuthority("prod", Now);
        using var newCa = ClusterCertificates.CreateAuthority("prod", Now);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var fromOld = ClusterCertificates.Issue(oldCa, ClusterCertificates.CreateSigningRequest(NodeTh, key), NodeTh, Now);
        using var fromNew = ClusterCertificates.Issue(newCa, ClusterCertificates.CreateSigningRequest(NodeTh, key), NodeTh, Now);

        X509Certificate2Collection both = [oldCa, newCa];
        Assert.NotNull(ClusterCertificates.Validate(fromOld, both, Now, out _));
        Assert.NotNull(ClusterCertificates.Validate(fromNew, both, Now, out _));
        Assert.Null(ClusterCertificates.Validate(fromOld, [newCa], Now, out _));
    }

    [Fact]
    public void ExpiredOrNotYetValidCertificate_IsRejected()
    {
        using var ca = ClusterCertificates.CreateAuthority("prod", Now);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var issued = ClusterCertificates.Issue(ca, ClusterCertificates.CreateSigningRequest(NodeTh, key), NodeTh, Now, TimeSpan.FromDays(30));

        Assert.NotNull(ClusterCertificates.Validate(issued, ca, Now.AddDays(29), out _));
        Assert.Null(ClusterCertificates.Validate(issued, ca, Now.AddDays(31), out var expired));
        Assert.Contains("NotTimeValid", expired, StringComparison.Ordinal);
        Assert.Null(ClusterCertificates.Validate(issued, ca, Now.AddDays(-1), out _));
    }

    [Fact]
    public void MemberCertificate_NeverOutlivesItsCa()
    {
        using var ca = ClusterCertificates.CreateAuthority("prod", Now, TimeSpan.FromDays(10));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var issued = ClusterCertificates.Issue(ca, ClusterCertificates.CreateSigningRequest(NodeTh, key), NodeTh, Now, TimeSpan.FromDays(365));
        Assert.True(issued.NotAfter <= ca.NotAfter);
    }

    [Fact]
    public void CertificateOfTheCa_WithoutBothTlsUsagesOrAnIdentity_IsRejected()
    {
        using var ca = ClusterCertificates.CreateAuthority("prod", Now);

        using var serverOnly = SignedByCa(ca, request =>
        {
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
            request.CertificateExtensions.Add(SubjectUri("urn:sovereign:node:node-th"));
        });
        Assert.Null(ClusterCertificates.Validate(serverOnly, ca, Now, out var usage));
        Assert.Contains("key usage", usage, StringComparison.Ordinal);

        using var anonymous = SignedByCa(ca, request =>
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false)));
        Assert.Null(ClusterCertificates.Validate(anonymous, ca, Now, out var identity));
        Assert.Contains("names no Sovereign gateway or node", identity, StringComparison.Ordinal);

        using var allRole = SignedByCa(ca, request =>
        {
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false));
            request.CertificateExtensions.Add(SubjectUri("urn:sovereign:all:node-th"));
        });
        Assert.Null(ClusterCertificates.Validate(allRole, ca, Now, out _));

        // The CA's own certificate is trusted as a root, never accepted as a member.
        Assert.Null(ClusterCertificates.Validate(ca, ca, Now, out var isCa));
        Assert.NotNull(isCa);
    }

    [Fact]
    public void SigningRequestWhoseSignatureDoesNotVerify_IsRefused()
    {
        using var ca = ClusterCertificates.CreateAuthority("prod", Now);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var pem = ClusterCertificates.CreateSigningRequest(NodeTh, key);
        var der = Convert.FromBase64String(string.Concat(pem.Split('\n').Where(l => !l.StartsWith("-----", StringComparison.Ordinal))));
        der[^3] ^= 0x01; // a bit of the signature
        var tampered = PemEncoding.WriteString("CERTIFICATE REQUEST", der);
        Assert.ThrowsAny<CryptographicException>(() => ClusterCertificates.Issue(ca, tampered, NodeTh, Now));
        Assert.ThrowsAny<CryptographicException>(() => ClusterCertificates.Issue(ca, "not a request", NodeTh, Now));
    }

    [Fact]
    public void MemberMaterial_IsCheckedAtStart_WithMessagesNamingTheSetting()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-tls-").FullName;
        try
        {
            var options = new SovereignClusterOptions { Redis = "127.0.0.1:1", Role = ServerRole.Gateway, Secret = "s" };
            var credentials = new ClusterTlsCredentials(options, folder, "gateway-th", TimeProvider.System);
            var missing = Assert.Single(credentials.Problems());
            Assert.Contains("Sovereign:Cluster:TlsCa", missing, StringComparison.Ordinal);
            Assert.Contains("Sovereign:Cluster:InsecureTransport", missing, StringComparison.Ordinal);

            // The explicit opt-out, and a node that will receive its certificate when it joins, start without.
            Assert.Empty(new ClusterTlsCredentials(new SovereignClusterOptions { Redis = "r", InsecureTransport = true }, folder, "g", TimeProvider.System).Problems());
            Assert.Empty(new ClusterTlsCredentials(new SovereignClusterOptions { Redis = "r", Role = ServerRole.Node, JoinToken = "sjt_x", JoinUrl = "http://g" }, folder, "n", TimeProvider.System).Problems());

            // A node's certificate does not make a gateway.
            using var ca = ClusterCertificates.CreateAuthority("prod", DateTimeOffset.UtcNow);
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            using var issued = ClusterCertificates.Issue(ca, ClusterCertificates.CreateSigningRequest(NodeTh, key), new ClusterIdentity(ServerRole.Node, "gateway-th"), DateTimeOffset.UtcNow);
            ClusterTlsCredentials.WritePem(credentials.AuthorityPath, ca.ExportCertificatePem(), secret: false);
            ClusterTlsCredentials.WritePem(credentials.CertificatePath, issued.ExportCertificatePem(), secret: false);
            ClusterTlsCredentials.WritePem(credentials.KeyPath, key.ExportPkcs8PrivateKeyPem(), secret: true);
            var wrongRole = Assert.Single(new ClusterTlsCredentials(options, folder, "gateway-th", TimeProvider.System).Problems());
            Assert.True(wrongRole.Contains("issued to node/gateway-th, but this process is gateway/gateway-th", StringComparison.Ordinal), wrongRole);

            // As a node of that id it is usable; the key file is the owner's alone.
            Assert.Empty(new ClusterTlsCredentials(new SovereignClusterOptions { Redis = "r", Role = ServerRole.Node }, folder, "gateway-th", TimeProvider.System).Problems());
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(credentials.KeyPath));
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void RotatedCertificate_IsUsedFromItsFilesOn_WithoutARestart_OnlyWhenItIsThisMembersAndValid()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-tls-").FullName;
        try
        {
            var now = DateTimeOffset.UtcNow;
            using var ca = ClusterCertificates.CreateAuthority("prod", now.AddDays(-1));
            var credentials = new ClusterTlsCredentials(new SovereignClusterOptions { Redis = "r", Role = ServerRole.Node }, folder, "node-th", TimeProvider.System);
            ClusterTlsCredentials.WritePem(credentials.AuthorityPath, ca.ExportCertificatePem(), secret: false);
            var written = now.UtcDateTime.AddMinutes(-10);
            void Write(ClusterIdentity identity, X509Certificate2 authority)
            {
                using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
                using var issued = ClusterCertificates.Issue(authority, ClusterCertificates.CreateSigningRequest(identity, key), identity, now);
                ClusterTlsCredentials.WritePem(credentials.CertificatePath, issued.ExportCertificatePem(), secret: false);
                ClusterTlsCredentials.WritePem(credentials.KeyPath, key.ExportPkcs8PrivateKeyPem(), secret: true);

                // Each rewrite gets a later time stamp, as real rotations days apart do (file systems' resolution varies).
                written = written.AddSeconds(1);
                File.SetLastWriteTimeUtc(credentials.CertificatePath, written);
                File.SetLastWriteTimeUtc(credentials.KeyPath, written);
            }

            Write(NodeTh, ca);
            var first = credentials.Local.SerialNumber;
            Assert.Equal(first, credentials.Local.SerialNumber);

            // Re-issued for this member: used at once, with its key.
            Write(NodeTh, ca);
            var rotated = credentials.Local;
            Assert.NotEqual(first, rotated.SerialNumber);
            Assert.True(rotated.HasPrivateKey);

            // Another member's certificate, or one from another CA, is not adopted: the rotated one stays.
            Write(new ClusterIdentity(ServerRole.Node, "node-sg"), ca);
            Assert.Equal(rotated.SerialNumber, credentials.Local.SerialNumber);
            using var foreign = ClusterCertificates.CreateAuthority("other", now.AddDays(-1));
            Write(NodeTh, foreign);
            Assert.Equal(rotated.SerialNumber, credentials.Local.SerialNumber);

            // A CA rollover needs no restart either: the CA file is read again when it changes.
            using var next = ClusterCertificates.CreateAuthority("prod-2", now.AddDays(-1));
            ClusterTlsCredentials.WritePem(credentials.AuthorityPath, ca.ExportCertificatePem() + "\n" + next.ExportCertificatePem(), secret: false);
            File.SetLastWriteTimeUtc(credentials.AuthorityPath, written.AddSeconds(1));
            Assert.Equal(2, credentials.Authorities.Count);
            Write(NodeTh, next);
            Assert.NotEqual(rotated.SerialNumber, credentials.Local.SerialNumber);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void IssuerDuringARollover_IsTheCaCertificateTheKeyBelongsTo()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-tls-").FullName;
        try
        {
            using var oldCa = ClusterCertificates.CreateAuthority("prod", Now);
            using var newCa = ClusterCertificates.CreateAuthority("prod", Now);
            var credentials = new ClusterTlsCredentials(new SovereignClusterOptions { Redis = "r", Role = ServerRole.Gateway }, folder, "gateway-th", TimeProvider.System);
            ClusterTlsCredentials.WritePem(credentials.AuthorityPath, oldCa.ExportCertificatePem() + "\n" + newCa.ExportCertificatePem(), secret: false);
            using (var newKey = newCa.GetECDsaPrivateKey()!)
            {
                ClusterTlsCredentials.WritePem(credentials.AuthorityKeyPath, newKey.ExportPkcs8PrivateKeyPem(), secret: true);
            }

            Assert.Equal(2, credentials.Authorities.Count);
            using var issuer = credentials.LoadIssuer();
            Assert.Equal(newCa.Thumbprint, issuer.Thumbprint);
            Assert.True(issuer.HasPrivateKey);

            // A key that belongs to neither is refused, not used to sign certificates nobody trusts.
            using var stray = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            ClusterTlsCredentials.WritePem(credentials.AuthorityKeyPath, stray.ExportPkcs8PrivateKeyPem(), secret: true);
            Assert.ThrowsAny<CryptographicException>(() => credentials.LoadIssuer());
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// Whoever reaches the silo port presents a certificate of their own making, and its subject was logged as written
    /// (3010) and kept for the stop's message: a line break in its common name forged a log line, an ESC sequence
    /// reached the operator's terminal. Both now show it escaped (session 48, found by reading <c>ValidatePeer</c>).
    /// </summary>
    [Fact]
    public void AStrangersCertificateSubject_IsLoggedEscaped_NeverAsALineBreakOrAnEscapeSequence()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-tls-").FullName;
        try
        {
            var now = DateTimeOffset.UtcNow;
            using var ca = ClusterCertificates.CreateAuthority("prod", now.AddDays(-1));
            var credentials = new ClusterTlsCredentials(new SovereignClusterOptions { Redis = "r", Role = ServerRole.Gateway }, folder, "gateway-th", TimeProvider.System);
            ClusterTlsCredentials.WritePem(credentials.AuthorityPath, ca.ExportCertificatePem(), secret: false);
            var logged = new LinesLogger();
            credentials.Logger = logged;
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var name = new X500DistinguishedNameBuilder();
            name.AddCommonName("x\nwarn: Sovereign.Cluster[3010] all members trusted\u001b[8m");
            using var stranger = new CertificateRequest(name.Build(), key, HashAlgorithmName.SHA256).CreateSelfSigned(now.AddHours(-1), now.AddHours(1));

            Assert.Null(credentials.ValidatePeer(stranger, out _));

            var line = Assert.Single(logged.Lines);
            Assert.Contains("x\\u000Awarn: Sovereign.Cluster[3010] all members trusted\\u001B[8m", line, StringComparison.Ordinal);
            Assert.DoesNotContain(line, char.IsControl);
            Assert.DoesNotContain(credentials.LastRefusedPeer!, char.IsControl);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private sealed class LinesLogger : Microsoft.Extensions.Logging.ILogger
    {
        public List<string> Lines { get; } = [];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Lines.Add(formatter(state, exception));
    }

    [Fact]
    public void RevokedCertificates_AreRefusedAsPeers_BySerialOrByNode_AndOthersStillPass()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-tls-").FullName;
        try
        {
            var now = DateTimeOffset.UtcNow;
            using var ca = ClusterCertificates.CreateAuthority("prod", now.AddDays(-1));
            var credentials = new ClusterTlsCredentials(new SovereignClusterOptions { Redis = "r", Role = ServerRole.Gateway }, folder, "gateway-th", TimeProvider.System);
            ClusterTlsCredentials.WritePem(credentials.AuthorityPath, ca.ExportCertificatePem(), secret: false);
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            X509Certificate2 Issue(ClusterIdentity identity, DateTimeOffset at) => ClusterCertificates.Issue(ca, ClusterCertificates.CreateSigningRequest(identity, key), identity, at);
            var gateway = new ClusterIdentity(ServerRole.Gateway, "gateway-sg");
            using var first = Issue(NodeTh, now.AddHours(-2));
            using var second = Issue(NodeTh, now.AddHours(-2));
            using var other = Issue(gateway, now.AddHours(-2));
            Assert.All(new[] { first, second, other }, c => Assert.NotNull(credentials.ValidatePeer(c, out _)));

            // By serial: that one certificate only (the serial as an operator copies it, with colons and in lower case).
            var copied = string.Join(':', Convert.FromHexString(first.SerialNumber).Select(b => b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture)));
            credentials.Revocations = CertificateRevocations.From([new("serial", CertificateRevocations.NormalizeSerial(copied)!, now.ToUnixTimeMilliseconds(), null)]);
            Assert.Null(credentials.ValidatePeer(first, out var problem));
            Assert.Contains("revoked", problem, StringComparison.Ordinal);
            Assert.Equal(NodeTh, credentials.ValidatePeer(second, out _));

            // By node (an hour ago): every certificate the node had then, but not one issued to it later, nor another member's.
            credentials.Revocations = CertificateRevocations.From([new("node", "node-th", now.AddHours(-1).ToUnixTimeMilliseconds(), "stolen")]);
            Assert.Null(credentials.ValidatePeer(first, out _));
            Assert.Null(credentials.ValidatePeer(second, out problem));
            Assert.Contains("node-th", problem, StringComparison.Ordinal);
            Assert.Equal(gateway, credentials.ValidatePeer(other, out _));
            using var reissued = Issue(NodeTh, now);
            Assert.Equal(NodeTh, credentials.ValidatePeer(reissued, out _));

            // Nothing revoked: all pass again.
            credentials.Revocations = CertificateRevocations.None;
            Assert.NotNull(credentials.ValidatePeer(first, out _));

            // The member's own certificate: revoked by serial, it names the setting; others' revocations do not touch it.
            using var own = Issue(new ClusterIdentity(ServerRole.Gateway, "gateway-th"), now.AddHours(-2));
            ClusterTlsCredentials.WritePem(credentials.CertificatePath, own.ExportCertificatePem(), secret: false);
            ClusterTlsCredentials.WritePem(credentials.KeyPath, key.ExportECPrivateKeyPem(), secret: true);
            Assert.Null(credentials.OwnCertificateRevoked());
            credentials.Revocations = CertificateRevocations.From([new("serial", CertificateRevocations.NormalizeSerial(first.SerialNumber)!, now.ToUnixTimeMilliseconds(), null)]);
            Assert.Null(credentials.OwnCertificateRevoked());
            credentials.Revocations = CertificateRevocations.From([new("serial", CertificateRevocations.NormalizeSerial(own.SerialNumber)!, now.ToUnixTimeMilliseconds(), null)]);
            Assert.Contains("Sovereign:Cluster:TlsCertificate", credentials.OwnCertificateRevoked(), StringComparison.Ordinal);
            credentials.Revocations = CertificateRevocations.From([new("node", "gateway-th", now.AddHours(-1).ToUnixTimeMilliseconds(), "stolen")]);
            Assert.Contains("gateway-th", credentials.OwnCertificateRevoked(), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// A write that failed at the rename (the key's path is a folder; a full disk fails the same way) left its
    /// '&lt;path&gt;.&lt;guid&gt;.tmp' beside the target, a private key under a name nothing reads or removes. Now written
    /// through <c>AtomicFile</c>: the temporary goes on any failure, and the key is owner-only, the certificate 644.
    /// </summary>
    [Fact]
    public void WritePem_FailingAtTheRename_LeavesNoTemporaryKeyBeside()
    {
        var folder = Directory.CreateTempSubdirectory("sovereign-tls-").FullName;
        try
        {
            var keyPath = Path.Combine(folder, "member.key");
            Directory.CreateDirectory(keyPath);

            Assert.ThrowsAny<IOException>(() => ClusterTlsCredentials.WritePem(keyPath, "-----BEGIN PRIVATE KEY-----", secret: true));

            Assert.Equal([keyPath], Directory.GetFileSystemEntries(folder));
            if (!OperatingSystem.IsWindows())
            {
                var secret = Path.Combine(folder, "other.key");
                var certificate = Path.Combine(folder, "member.pem");
                ClusterTlsCredentials.WritePem(secret, "key", secret: true);
                ClusterTlsCredentials.WritePem(certificate, "certificate", secret: false);
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(secret));
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(certificate));
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData("00:ab:CD:01", "ABCD01")]
    [InlineData("0a 1b", "A1B")]
    [InlineData("000", "0")]
    [InlineData("xyz", null)]
    [InlineData("  ", null)]
    public void SerialNumbers_AreComparedAsCertificatesPrintThem(string given, string? expected) =>
        Assert.Equal(expected, CertificateRevocations.NormalizeSerial(given));

    private static X509Certificate2 SignedByCa(X509Certificate2 ca, Action<CertificateRequest> extend)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=node/node-th", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        extend(request);
        return request.Create(ca, Now.AddMinutes(-1), Now.AddDays(1), RandomNumberGenerator.GetBytes(16));
    }

    private static X509Extension SubjectUri(string uri)
    {
        var names = new SubjectAlternativeNameBuilder();
        names.AddUri(new Uri(uri));
        return names.Build();
    }
}
