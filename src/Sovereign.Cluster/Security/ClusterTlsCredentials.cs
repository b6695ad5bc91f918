using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Cluster.Hosting;

namespace Sovereign.Cluster.Security;

/// <summary>
/// This member's TLS material in a multi-process cluster: its certificate and key, and the cluster CA it trusts
/// (PEM files, by default in the data directory). Files are read at first use, so a node that joins with a token
/// can receive them from a gateway before its silo opens its first connection.
/// </summary>
public sealed partial class ClusterTlsCredentials
{
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private X509Certificate2? _local;
    private X509Certificate2Collection? _authorities;
    private CertificateRevocations _revocations = CertificateRevocations.None;
    private ILogger _logger = NullLogger.Instance;

    public ClusterTlsCredentials(SovereignClusterOptions options, string dataDirectory, string nodeId, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        NodeId = nodeId;
        _time = time;
        CertificatePath = Resolve(dataDirectory, options.TlsCertificate);
        KeyPath = Resolve(dataDirectory, options.TlsKey);
        AuthorityPath = Resolve(dataDirectory, options.TlsCa);
        AuthorityKeyPath = Resolve(dataDirectory, options.CaKey);
    }

    public SovereignClusterOptions Options { get; }

    /// <summary>This process's node id (<c>Sovereign:NodeId</c>), which its certificate must bind.</summary>
    public string NodeId { get; }

    /// <summary>Whether cluster traffic is authenticated with TLS (a Redis cluster without the insecure opt-out).</summary>
    public bool Enabled => Options is { IsDistributed: true, InsecureTransport: false };

    public string CertificatePath { get; }

    public string KeyPath { get; }

    public string AuthorityPath { get; }

    public string AuthorityKeyPath { get; }

    /// <summary>The identity this member's certificate must bind: a gateway (or all-in-one) or a node, by its node id.</summary>
    public ClusterIdentity ExpectedIdentity => new(Options.Role == ServerRole.Node ? ServerRole.Node : ServerRole.Gateway, NodeId);

    /// <summary>Whether this is a node that will receive its certificate when it joins with its token.</summary>
    public bool AwaitsJoin => Options is { Role: ServerRole.Node } && !string.IsNullOrWhiteSpace(Options.JoinToken) && !File.Exists(CertificatePath);

    /// <summary>This member's certificate with its private key.</summary>
    public X509Certificate2 Local
    {
        get
        {
            lock (_lock)
            {
                return _local ??= X509Certificate2.CreateFromPemFile(CertificatePath, KeyPath);
            }
        }
    }

    /// <summary>
    /// The cluster CA, the only root trusted for cluster connections: every certificate in <see cref="AuthorityPath"/>,
    /// so during a CA rollover the file holds the old and the new one.
    /// </summary>
    public X509Certificate2Collection Authorities
    {
        get
        {
            lock (_lock)
            {
                if (_authorities is null)
                {
                    var loaded = new X509Certificate2Collection();
                    loaded.ImportFromPemFile(AuthorityPath);
                    if (loaded.Count == 0)
                    {
                        throw new CryptographicException($"{AuthorityPath} holds no PEM certificate.");
                    }

                    _authorities = loaded;
                }

                return _authorities;
            }
        }
    }

    /// <summary>
    /// The cluster CA with its private key (<see cref="AuthorityKeyPath"/>), to sign joining nodes' certificates: the
    /// certificate of <see cref="AuthorityPath"/> that the key belongs to (during a rollover the file holds two).
    /// </summary>
    /// <exception cref="CryptographicException">The key is unreadable or belongs to none of the CA certificates.</exception>
    public X509Certificate2 LoadIssuer()
    {
        using var key = ECDsa.Create();
        key.ImportFromPem(File.ReadAllText(AuthorityKeyPath));
        var publicKey = key.ExportSubjectPublicKeyInfo();
        var authority = Authorities.FirstOrDefault(a => a.PublicKey.ExportSubjectPublicKeyInfo().AsSpan().SequenceEqual(publicKey))
            ?? throw new CryptographicException($"{AuthorityKeyPath} is the key of none of the CA certificates in {AuthorityPath}.");
        return authority.CopyWithPrivateKey(key);
    }

    /// <summary>Where refused peers and cut connections are logged (set when the host starts).</summary>
    public ILogger Logger
    {
        get => _logger;
        set
        {
            _logger = value ?? NullLogger.Instance;
            Connections.Logger = _logger;
        }
    }

    /// <summary>
    /// The certificates revoked before they expire, as last read from the database (<c>CertificateRevocationSync</c>):
    /// every peer validation checks them.
    /// </summary>
    public CertificateRevocations Revocations
    {
        get => Volatile.Read(ref _revocations);
        set
        {
            var revocations = value ?? CertificateRevocations.None;
            Volatile.Write(ref _revocations, revocations);

            // New handshakes check the list; connections a revoked certificate opened earlier are cut here.
            Connections.CutRevoked(revocations);
        }
    }

    /// <summary>The open connections peers' cluster certificates authenticated, cut when their certificate is revoked.</summary>
    public ClusterConnections Connections { get; } = new();

    /// <summary>
    /// The identity a peer's certificate proves, if the cluster CA signed it, it is valid now and it is not revoked (a
    /// refusal is logged).
    /// </summary>
    public ClusterIdentity? ValidatePeer(X509Certificate2 certificate, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var identity = ClusterCertificates.Validate(certificate, Authorities, _time.GetUtcNow(), out problem);
        if (identity is not null && Revocations.Revokes(certificate, identity) is { } revoked)
        {
            (identity, problem) = (null, revoked);
        }

        if (identity is null)
        {
            LogRefused(Logger, certificate.Subject, certificate.Thumbprint, problem ?? "");
        }

        return identity;
    }

    /// <summary>
    /// Why this member's own certificate is revoked by <see cref="Revocations"/>, naming the setting to change; null
    /// when it is not (or it does not validate, which <see cref="Problems"/> reports). Its peers would refuse it anyway;
    /// this lets it stop at start with the reason instead of failing to connect.
    /// </summary>
    public string? OwnCertificateRevoked()
    {
        var identity = ClusterCertificates.Validate(Local, Authorities, _time.GetUtcNow(), out _);
        return identity is not null && Revocations.Revokes(Local, identity) is { } why
            ? $"This member's cluster certificate ({CertificatePath}, Sovereign:Cluster:TlsCertificate) cannot be used: {why} Issue a new one with 'sovereign cluster cert issue'."
            : null;
    }

    /// <summary>
    /// What is wrong with this member's TLS material for start-up, each naming its setting and file; empty when it is
    /// usable (or TLS is off, or a node still has to join for it).
    /// </summary>
    public IEnumerable<string> Problems()
    {
        if (!Options.IsDistributed || Options.InsecureTransport || AwaitsJoin)
        {
            yield break;
        }

        const string Hint = " Cluster traffic is authenticated with certificates from the operator's cluster CA: create one with `sovereign cluster ca init`, "
            + "issue this member's with `sovereign cluster cert issue` (or join a node with a join token), or set Sovereign:Cluster:InsecureTransport=true to run without (not for production).";
        var missing = new[] { ("Sovereign:Cluster:TlsCa", AuthorityPath), ("Sovereign:Cluster:TlsCertificate", CertificatePath), ("Sovereign:Cluster:TlsKey", KeyPath) }
            .Where(f => !File.Exists(f.Item2)).ToList();
        if (missing.Count > 0)
        {
            yield return $"{string.Join(", ", missing.Select(m => $"{m.Item1} ({m.Item2})"))} not found: a cluster member needs TLS material.{Hint}";
            yield break;
        }

        string? problem;
        ClusterIdentity? identity;
        try
        {
            identity = ClusterCertificates.Validate(Local, Authorities, _time.GetUtcNow(), out problem);
        }
        catch (CryptographicException ex)
        {
            problem = $"it, its key ({KeyPath}) or the CA could not be read: {ex.Message}";
            identity = null;
        }

        if (identity is null)
        {
            yield return $"Sovereign:Cluster:TlsCertificate ({CertificatePath}) is not a usable certificate of this cluster (CA {AuthorityPath}): {problem}";
        }
        else if (identity != ExpectedIdentity)
        {
            yield return $"Sovereign:Cluster:TlsCertificate ({CertificatePath}) is issued to {identity}, but this process is {ExpectedIdentity} (Sovereign:NodeId, --role).";
        }
    }

    /// <summary>Writes PEM text to <paramref name="path"/> via a temporary file; private keys get mode 600 on Unix.</summary>
    public static void WritePem(string path, string pem, bool secret)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        var temporary = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = secret ? UnixFileMode.UserRead | UnixFileMode.UserWrite : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        }

        using (var stream = new FileStream(temporary, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(pem);
            writer.Flush();
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>A path from settings: absolute as given, relative ones inside the data directory.</summary>
    public static string Resolve(string dataDirectory, string path) => Path.GetFullPath(Path.Combine(dataDirectory, path));

    [LoggerMessage(EventId = 3010, Level = LogLevel.Warning, Message = "Refused a cluster peer's certificate {Subject} ({Thumbprint}): {Problem}")]
    private static partial void LogRefused(ILogger logger, string subject, string thumbprint, string problem);
}
