using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Cluster.Hosting;
using Sovereign.Storage;

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
    private (DateTime Certificate, DateTime Key) _localWritten;
    private X509Certificate2Collection? _authorities;
    private DateTime _authoritiesWritten;
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

    /// <summary>
    /// This member's certificate with its private key. Read again when its files change (a certificate rotated with
    /// <c>sovereign cluster cert issue</c> is used from the next connection on, without a restart), but only adopted if
    /// the cluster CA signed it for this member's identity and it is not revoked; otherwise the one in use stays.
    /// </summary>
    public X509Certificate2 Local
    {
        get
        {
            lock (_lock)
            {
                var written = (File.GetLastWriteTimeUtc(CertificatePath), File.GetLastWriteTimeUtc(KeyPath));
                if (_local is null)
                {
                    _local = X509Certificate2.CreateFromPemFile(CertificatePath, KeyPath);
                    _localWritten = written;
                }
                else if (written != _localWritten)
                {
                    TryRotateLocked(written);
                }

                return _local;
            }
        }
    }

    /// <summary>
    /// The cluster CA, the only root trusted for cluster connections: every certificate in <see cref="AuthorityPath"/>,
    /// so during a CA rollover the file holds the old and the new one. Read again when the file changes (a rollover
    /// needs no restart); a file that cannot be read or holds no certificate leaves the ones in use.
    /// </summary>
    public X509Certificate2Collection Authorities
    {
        get
        {
            lock (_lock)
            {
                var written = File.GetLastWriteTimeUtc(AuthorityPath);
                if (_authorities is not null && written == _authoritiesWritten)
                {
                    return _authorities;
                }

                var loaded = new X509Certificate2Collection();
                try
                {
                    loaded.ImportFromPemFile(AuthorityPath);
                }
                catch (Exception ex) when (_authorities is not null && ex is CryptographicException or IOException)
                {
                    // Being rewritten: the next connection reads it again.
                    return _authorities;
                }

                if (loaded.Count == 0)
                {
                    return _authorities ?? throw new CryptographicException($"{AuthorityPath} holds no PEM certificate.");
                }

                if (_authorities is not null)
                {
                    LogAuthoritiesReloaded(Logger, AuthorityPath, loaded.Count);
                }

                _authorities = loaded;
                _authoritiesWritten = written;
                return _authorities;
            }
        }
    }

    private void TryRotateLocked((DateTime Certificate, DateTime Key) written)
    {
        X509Certificate2 candidate;
        try
        {
            candidate = X509Certificate2.CreateFromPemFile(CertificatePath, KeyPath);
        }
        catch (Exception ex) when (ex is CryptographicException or IOException)
        {
            // The certificate and its key are written one after the other: the pair is read again at the next connection.
            return;
        }

        _localWritten = written;
        var identity = ClusterCertificates.Validate(candidate, Authorities, _time.GetUtcNow(), out var problem);
        if (identity is not null)
        {
            problem = identity != ExpectedIdentity ? $"it is issued to {identity}, but this process is {ExpectedIdentity}." : Revocations.Revokes(candidate, identity);
        }

        if (problem is not null)
        {
            LogRotationRefused(Logger, CertificatePath, problem);
            candidate.Dispose();
            return;
        }

        LogRotated(Logger, CertificatePath, _local!.SerialNumber, candidate.SerialNumber);
        _local = candidate;
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
            LogRefused(Logger, ShownSubject(certificate), certificate.Thumbprint, problem ?? "");
            LastRefusedPeer = $"{ShownSubject(certificate)}: {problem}";
        }

        return identity;
    }

    /// <summary>The last peer certificate this member refused, and why (a member of another CA refuses them all).</summary>
    public string? LastRefusedPeer { get; private set; }

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

    /// <summary>Writes PEM text to <paramref name="path"/> whole (<see cref="AtomicFile"/>); private keys get mode 600 on Unix, certificates 644.</summary>
    public static void WritePem(string path, string pem, bool secret)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        AtomicFile.WriteAllText(path, ExistingFile.Replace, pem, secret ? FileAccessScope.OwnerOnly : FileAccessScope.OwnerWriteEveryoneRead);
    }

    /// <summary>A path from settings: absolute as given, relative ones inside the data directory.</summary>
    public static string Resolve(string dataDirectory, string path) => Path.GetFullPath(Path.Combine(dataDirectory, path));

    /// <summary>
    /// A peer's certificate subject as a log line or a message shows it. Whoever connects to the silo port chooses it,
    /// before anything is checked: a line break in its common name forged a log line (3010), an ESC sequence reached
    /// the operator's terminal. Characters that act instead of showing are written as <c>\uXXXX</c>
    /// (<see cref="Residency.DisplayText"/>), and it is cut at 256 characters.
    /// </summary>
    public static string ShownSubject(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return Residency.DisplayText.Shortened(certificate.Subject, 256);
    }

    [LoggerMessage(EventId = 3016, Level = LogLevel.Information, Message = "Cluster certificate {Path} rotated: serial {Old} replaced by {New} for new connections")]
    private static partial void LogRotated(ILogger logger, string path, string old, string @new);

    [LoggerMessage(EventId = 3017, Level = LogLevel.Error, Message = "Cluster certificate {Path} changed but was not adopted (the one in use stays): {Problem}")]
    private static partial void LogRotationRefused(ILogger logger, string path, string problem);

    [LoggerMessage(EventId = 3018, Level = LogLevel.Information, Message = "Cluster CA file {Path} read again: {Count} certificate(s) trusted")]
    private static partial void LogAuthoritiesReloaded(ILogger logger, string path, int count);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Warning, Message = "Refused a cluster peer's certificate {Subject} ({Thumbprint}): {Problem}")]
    private static partial void LogRefused(ILogger logger, string subject, string thumbprint, string problem);
}
