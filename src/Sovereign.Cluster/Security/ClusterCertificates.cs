using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Sovereign.Cluster.Hosting;

namespace Sovereign.Cluster.Security;

/// <summary>
/// Who a cluster certificate says its holder is: a gateway or a node, and its node id. Bound in the certificate as
/// the URI subject alternative name <c>urn:sovereign:&lt;role&gt;:&lt;node id&gt;</c>, which only the cluster CA signs.
/// </summary>
public sealed record ClusterIdentity(ServerRole Role, string NodeId)
{
    private const string UriPrefix = "urn:sovereign:";

    /// <summary>The member name membership shows (<c>gateway/gateway-th</c>).</summary>
    public override string ToString() => $"{Role.ToString().ToLowerInvariant()}/{NodeId}";

    internal string Uri => $"{UriPrefix}{Role.ToString().ToLowerInvariant()}:{NodeId}";

    internal static ClusterIdentity? FromUri(string uri)
    {
        if (!uri.StartsWith(UriPrefix, StringComparison.Ordinal) || uri[UriPrefix.Length..].Split(':') is not [var role, var nodeId]
            || !Enum.TryParse<ServerRole>(role, ignoreCase: true, out var parsed) || parsed == ServerRole.All || !IsNodeId(nodeId))
        {
            return null;
        }

        return new ClusterIdentity(parsed, nodeId);
    }

    /// <summary>1-63 lowercase letters, digits and '-', starting with a letter or digit (a DNS label, as node ids are).</summary>
    public static bool IsNodeId(string? value) =>
        value is { Length: > 0 and <= 63 } && char.IsAsciiLetterLower(value[0]) | char.IsAsciiDigit(value[0])
        && value.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-');
}

/// <summary>
/// The operator's cluster certificate authority and the certificates it signs for gateways and nodes (ECDSA P-256,
/// PEM files). Members authenticate each other with these alone: the chain must end at the cluster CA, never at the
/// machine's trust store, so a certificate from any public CA (or a self-signed one) does not let a process join.
/// </summary>
public static class ClusterCertificates
{
    /// <summary>Default life of a member certificate (rotate before it ends: <c>sovereign cluster cert issue</c>).</summary>
    public static readonly TimeSpan DefaultMemberLifetime = TimeSpan.FromDays(365);

    /// <summary>Default life of the cluster CA.</summary>
    public static readonly TimeSpan DefaultAuthorityLifetime = TimeSpan.FromDays(3650);

    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    /// <summary>A new self-signed cluster CA (with its private key) named after <paramref name="clusterId"/>.</summary>
    public static X509Certificate2 CreateAuthority(string clusterId, DateTimeOffset now, TimeSpan? lifetime = null)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN=Sovereign cluster CA {clusterId}, O=Sovereign"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: true, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        return request.CreateSelfSigned(now.AddMinutes(-5), now + (lifetime ?? DefaultAuthorityLifetime));
    }

    /// <summary>
    /// A certificate signing request for <paramref name="identity"/> over <paramref name="key"/>: the member keeps its
    /// private key and sends only this (PEM) to whoever holds the CA key.
    /// </summary>
    public static string CreateSigningRequest(ClusterIdentity identity, ECDsa key)
    {
        ArgumentNullException.ThrowIfNull(identity);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={identity}"), key, HashAlgorithmName.SHA256);
        return request.CreateSigningRequestPem();
    }

    /// <summary>
    /// Signs a member certificate for <paramref name="identity"/> over the public key of <paramref name="signingRequestPem"/>
    /// (whose self-signature must verify). The CA decides the identity, usages and life; nothing else of the request is
    /// copied, so a request cannot ask for more than a member certificate.
    /// </summary>
    /// <exception cref="CryptographicException">The request is not a valid, self-signed PKCS#10 request.</exception>
    public static X509Certificate2 Issue(X509Certificate2 authority, string signingRequestPem, ClusterIdentity identity, DateTimeOffset now, TimeSpan? lifetime = null)
    {
        ArgumentNullException.ThrowIfNull(authority);
        ArgumentNullException.ThrowIfNull(identity);
        var loaded = CertificateRequest.LoadSigningRequestPem(signingRequestPem, HashAlgorithmName.SHA256, CertificateRequestLoadOptions.Default);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={identity}"), loaded.PublicKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([ServerAuthentication, ClientAuthentication], critical: false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(authority, includeKeyIdentifier: true, includeIssuerAndSerial: false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddUri(new Uri(identity.Uri));
        request.CertificateExtensions.Add(names.Build(critical: false));

        var notAfter = now + (lifetime ?? DefaultMemberLifetime);
        if (notAfter > authority.NotAfter)
        {
            notAfter = authority.NotAfter; // a member certificate never outlives its CA
        }

        return request.Create(authority, now.AddMinutes(-5), notAfter, RandomNumberGenerator.GetBytes(16));
    }

    /// <summary>
    /// Checks that <paramref name="certificate"/> is a member certificate of the cluster whose CA is
    /// <paramref name="authority"/>: signed by it (only it is trusted, not the machine's store), valid at
    /// <paramref name="now"/>, usable for both ends of TLS, not a CA, and naming a gateway or node.
    /// </summary>
    /// <returns>The identity it binds; null with <paramref name="problem"/> saying why not.</returns>
    public static ClusterIdentity? Validate(X509Certificate2 certificate, X509Certificate2 authority, DateTimeOffset now, out string? problem) =>
        Validate(certificate, [authority], now, out problem);

    /// <summary>
    /// As <see cref="Validate(X509Certificate2, X509Certificate2, DateTimeOffset, out string?)"/>, trusting each of
    /// <paramref name="authorities"/> (the old and the new CA while the cluster rolls over to a new one).
    /// </summary>
    public static ClusterIdentity? Validate(X509Certificate2 certificate, X509Certificate2Collection authorities, DateTimeOffset now, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(authorities);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        chain.ChainPolicy.VerificationTime = now.UtcDateTime;
        chain.ChainPolicy.VerificationTimeIgnored = false;
        if (!chain.Build(certificate))
        {
            problem = "its chain does not end at the cluster CA or it is not valid now: "
                + string.Join("; ", chain.ChainStatus.Select(s => $"{s.Status}: {s.StatusInformation.Trim()}").Distinct());
            return null;
        }

        if (chain.ChainElements is not [_, { Certificate: var root }] || !authorities.Any(a => root.RawDataMemory.Span.SequenceEqual(a.RawDataMemory.Span)))
        {
            problem = "it is not signed directly by the cluster CA.";
            return null;
        }

        if (certificate.Extensions.OfType<X509BasicConstraintsExtension>().Any(b => b.CertificateAuthority))
        {
            problem = "it is a CA certificate, not a member certificate.";
            return null;
        }

        var usages = certificate.Extensions.OfType<X509EnhancedKeyUsageExtension>().SelectMany(e => e.EnhancedKeyUsages.Cast<Oid>()).Select(o => o.Value).ToHashSet();
        if (!usages.Contains(ServerAuthentication.Value) || !usages.Contains(ClientAuthentication.Value))
        {
            problem = "it is not for both TLS server and client authentication (extended key usage).";
            return null;
        }

        var identity = IdentityOf(certificate);
        problem = identity is null ? "it names no Sovereign gateway or node (subject alternative name urn:sovereign:<role>:<node id>)." : null;
        return identity;
    }

    /// <summary>The identity a certificate's subject alternative names bind, unverified; null when none.</summary>
    public static ClusterIdentity? IdentityOf(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        foreach (var extension in certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>())
        {
            foreach (var uri in UrisOf(extension))
            {
                if (ClusterIdentity.FromUri(uri) is { } identity)
                {
                    return identity;
                }
            }
        }

        return null;
    }

    // GeneralName ::= CHOICE { ..., uniformResourceIdentifier [6] IA5String, ... }: the BCL enumerates DNS names and
    // IP addresses only, so the URI entries are read from the DER here.
    private static List<string> UrisOf(X509Extension extension)
    {
        var uris = new List<string>();
        try
        {
            var reader = new AsnReader(extension.RawData, AsnEncodingRules.DER).ReadSequence();
            var uriTag = new Asn1Tag(TagClass.ContextSpecific, 6);
            while (reader.HasData)
            {
                var tag = reader.PeekTag();
                if (tag == uriTag)
                {
                    uris.Add(reader.ReadCharacterString(UniversalTagNumber.IA5String, uriTag));
                }
                else
                {
                    reader.ReadEncodedValue();
                }
            }
        }
        catch (AsnContentException)
        {
            return [];
        }

        return uris;
    }
}
