using System.Security.Cryptography.X509Certificates;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Cluster.Security;

/// <summary>
/// The cluster certificates the operator revoked before they expire (<c>sovereign cluster cert revoke</c>): single
/// certificates by serial number, and nodes, whose every certificate that became valid before the revocation is cut off
/// (a certificate issued to the node afterwards is trusted again; issued certificates start 5 minutes early, so issue
/// the new one at least that long after revoking). An immutable snapshot, swapped whole when the list changes.
/// </summary>
public sealed class CertificateRevocations
{
    /// <summary>Kind of a revocation of one certificate.</summary>
    public const string SerialKind = "serial";

    /// <summary>Kind of a revocation of a node's certificates.</summary>
    public const string NodeKind = "node";

    private readonly HashSet<string> _serials;
    private readonly Dictionary<string, DateTimeOffset> _nodes;

    private CertificateRevocations(HashSet<string> serials, Dictionary<string, DateTimeOffset> nodes)
    {
        _serials = serials;
        _nodes = nodes;
    }

    /// <summary>Nothing revoked.</summary>
    public static CertificateRevocations None { get; } = new([], []);

    /// <summary>How many revocations the snapshot holds.</summary>
    public int Count => _serials.Count + _nodes.Count;

    /// <summary>The snapshot of stored revocations.</summary>
    public static CertificateRevocations From(IEnumerable<CertificateRevocationRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var serials = new HashSet<string>(StringComparer.Ordinal);
        var nodes = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        foreach (var record in records)
        {
            if (record.Kind == SerialKind && NormalizeSerial(record.Value) is { } serial)
            {
                serials.Add(serial);
            }
            else if (record.Kind == NodeKind)
            {
                nodes[record.Value] = DateTimeOffset.FromUnixTimeMilliseconds(record.RevokedAt);
            }
        }

        return new CertificateRevocations(serials, nodes);
    }

    /// <summary>
    /// A serial number as certificates print it: upper-case hex, without separators or leading zeros; null when it is
    /// not hex at all.
    /// </summary>
    public static string? NormalizeSerial(string? serial)
    {
        if (string.IsNullOrWhiteSpace(serial))
        {
            return null;
        }

        var hex = new string([.. serial.Where(c => c is not (':' or ' ' or '-'))]).ToUpperInvariant().TrimStart('0');
        return hex.Length <= 128 && hex.All(Uri.IsHexDigit) ? (hex.Length == 0 ? "0" : hex) : null;
    }

    /// <summary>Why <paramref name="certificate"/>, which binds <paramref name="identity"/>, is revoked; null when it is not.</summary>
    public string? Revokes(X509Certificate2 certificate, ClusterIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return Revokes(certificate.SerialNumber, new DateTimeOffset(certificate.NotBefore.ToUniversalTime(), TimeSpan.Zero), identity);
    }

    /// <summary>Why the certificate with <paramref name="serialNumber"/>, valid from <paramref name="notBefore"/>, is revoked; null when it is not.</summary>
    public string? Revokes(string serialNumber, DateTimeOffset notBefore, ClusterIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        if (_serials.Count > 0 && NormalizeSerial(serialNumber) is { } serial && _serials.Contains(serial))
        {
            return $"it was revoked (serial {serial}).";
        }

        return _nodes.TryGetValue(identity.NodeId, out var at) && notBefore < at
            ? $"the certificates of node {identity.NodeId} were revoked at {at:yyyy-MM-ddTHH:mm:ssZ}, and this one was issued before."
            : null;
    }
}
