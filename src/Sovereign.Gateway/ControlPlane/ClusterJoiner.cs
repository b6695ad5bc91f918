using System.Net.Http.Json;
using System.Security.Cryptography;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// A node's first start with a join token: before its silo opens a connection, it presents the token to a gateway
/// (<c>POST /cluster/v1/join</c>) with a signing request for a key it generates here, and keeps what it receives in the
/// data directory: its operator-signed credential, and in a TLS cluster its certificate and the cluster CA. Its private
/// key never leaves this machine. Registered before the Orleans silo, so the silo starts with the certificate.
/// </summary>
internal sealed partial class ClusterJoiner(
    IOptions<SovereignOptions> options,
    IOptions<SovereignClusterOptions> cluster,
    ClusterTlsCredentials tls,
    IHttpClientFactory httpClients,
    TimeProvider time,
    ILogger<ClusterJoiner> logger) : IHostedService
{
    /// <summary>The join this node kept in its data directory, if it joined as <c>Sovereign:NodeId</c>.</summary>
    public static async Task<JoinResponse?> KeptAsync(SovereignOptions settings, CancellationToken cancellationToken)
    {
        var file = Path.Combine(settings.ResolvedDataDirectory, JoinResponse.FileName);
        if (!File.Exists(file))
        {
            return null;
        }

        var kept = System.Text.Json.JsonSerializer.Deserialize<JoinResponse>(await File.ReadAllTextAsync(file, cancellationToken));
        return kept is not null && kept.NodeId == settings.NodeId ? kept : null;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        if (cluster.Value is not { Role: ServerRole.Node, IsDistributed: true } || string.IsNullOrWhiteSpace(cluster.Value.JoinToken)
            || await KeptAsync(settings, cancellationToken) is not null)
        {
            RequireCertificate();
            return;
        }

        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = tls.Enabled ? ClusterCertificates.CreateSigningRequest(tls.ExpectedIdentity, key) : null;
        using var client = httpClients.CreateClient(UpstreamProxy.ClientName);
        var joinUri = new Uri(new Uri(cluster.Value.JoinUrl!.TrimEnd('/') + "/"), "cluster/v1/join");
        HttpResponseMessage response;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                response = await client.PostAsJsonAsync(joinUri, new { token = cluster.Value.JoinToken, node_id = settings.NodeId, url = cluster.Value.NodeUrl?.TrimEnd('/'), csr = request }, cancellationToken);
                break;
            }
            catch (HttpRequestException) when (attempt < 60)
            {
                // The gateway may be starting too.
                await Task.Delay(TimeSpan.FromSeconds(1), time, cancellationToken);
            }
        }

        using var answered = response;
        var body = await answered.Content.ReadAsStringAsync(cancellationToken);
        if (!answered.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"Joining the cluster through {cluster.Value.JoinUrl} failed with {(int)answered.StatusCode}: {body}");
        }

        var joined = System.Text.Json.JsonSerializer.Deserialize<JoinResponse>(body)
            ?? throw new InvalidOperationException("The gateway's join answer was empty.");
        if (tls.Enabled)
        {
            if (joined is not { Certificate: { Length: > 0 } certificate, CaCertificate: { Length: > 0 } authority })
            {
                throw new InvalidOperationException($"The gateway at {cluster.Value.JoinUrl} issued no cluster certificate; this node cannot take part in a TLS cluster without one.");
            }

            // A CA the operator placed here beforehand pins the cluster: a join answer signed by another CA is refused.
            if (File.Exists(tls.AuthorityPath) && !Trusted(authority))
            {
                throw new InvalidOperationException($"The gateway at {cluster.Value.JoinUrl} answered with a cluster CA other than {tls.AuthorityPath} (Sovereign:Cluster:TlsCa).");
            }

            ClusterTlsCredentials.WritePem(tls.KeyPath, key.ExportPkcs8PrivateKeyPem(), secret: true);
            ClusterTlsCredentials.WritePem(tls.CertificatePath, certificate, secret: false);
            if (!File.Exists(tls.AuthorityPath))
            {
                ClusterTlsCredentials.WritePem(tls.AuthorityPath, authority, secret: false);
            }
        }

        await File.WriteAllTextAsync(Path.Combine(settings.ResolvedDataDirectory, JoinResponse.FileName), body, cancellationToken);
        LogJoined(settings.NodeId, joined.Jurisdiction, joined.Pool ?? "-");
        RequireCertificate();
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>A node that had to join for its certificate starts only with a usable one.</summary>
    private void RequireCertificate()
    {
        if (!tls.Enabled)
        {
            return;
        }

        if (tls.AwaitsJoin)
        {
            throw new InvalidOperationException(
                $"Sovereign:Cluster:TlsCertificate ({tls.CertificatePath}) is missing, and this node has joined already: issue it one with `sovereign cluster cert issue`.");
        }

        if (tls.Problems().FirstOrDefault() is { } problem)
        {
            throw new InvalidOperationException(problem);
        }
    }

    /// <summary>Whether the CA the gateway named (PEM, possibly a bundle) is one this node already trusts.</summary>
    private bool Trusted(string authorityPem)
    {
        var named = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
        named.ImportFromPem(authorityPem);
        return named.Count > 0 && named.All(n => tls.Authorities.Any(t => t.RawDataMemory.Span.SequenceEqual(n.RawDataMemory.Span)));
    }

    [LoggerMessage(EventId = 3004, Level = LogLevel.Information, Message = "Node {NodeId} joined the cluster in {Jurisdiction} (pool {Pool}) with its join token")]
    private partial void LogJoined(string nodeId, string jurisdiction, string pool);
}
