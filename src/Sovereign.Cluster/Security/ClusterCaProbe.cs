using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Runtime;

namespace Sovereign.Cluster.Security;

/// <summary>
/// Before this member's silo starts to join a TLS cluster: reads the membership table, connects once to each active
/// member's silo port (the table's addresses, so a connection whose other end is a member) and reads the certificate
/// it presents. When every member it reaches presents one that the CA this member trusts did not sign, its CA file (or
/// certificate) is another cluster's and no member will ever accept it: the start fails with one line naming
/// <c>Sovereign:Cluster:TlsCa</c> (exit 2), before Orleans tries. It used to try until the members declared it dead,
/// after about 400 lines of Orleans' TLS and connection warnings (a stack trace each) in its first second. Connections
/// a peer opens to this member prove nothing (anyone may open one), so only those it opens are read. No active member,
/// none reachable, or one of this member's CA: the silo starts as before.
/// </summary>
internal sealed class ClusterCaProbe(ClusterTlsCredentials tls, IServiceProvider services, TimeProvider time) : IHostedService
{
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(5);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!tls.Enabled)
        {
            return;
        }

        MembershipTableData data;
        try
        {
            // Idempotent: the silo initializes the table again (creating it when it is missing) as it starts.
            var table = services.GetRequiredService<IMembershipTable>();
            await table.InitializeMembershipTableAsync(tryInitTableVersion: false, cancellationToken);
            data = await table.ReadAllAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return; // no table yet (the first member), or Redis unreachable: the silo's start reports its own failures
        }

        string? refused = null;
        foreach (var (entry, _) in data.Members)
        {
            if (entry.Status != SiloStatus.Active)
            {
                continue;
            }

            var (presented, problem) = await PresentedCertificateAsync(entry.SiloAddress.Endpoint, cancellationToken);
            if (presented is null)
            {
                continue;
            }

            if (problem is null)
            {
                return;
            }

            refused ??= $"{entry.SiloName} ({entry.SiloAddress.Endpoint}) presented {presented}: {problem}";
        }

        if (refused is not null)
        {
            throw new InvalidOperationException(
                $"the cluster's members present certificates that this member's CA, {tls.AuthorityPath} (Sovereign:Cluster:TlsCa), did not sign ({refused}), " +
                "so none of them would accept this member either: give it this cluster's CA and a certificate the CA issued (sovereign cluster cert issue).");
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// The subject of the certificate the silo at <paramref name="endpoint"/> presents in a TLS handshake, and why this
    /// member's CA refuses it (null: it accepts it); no subject if the silo cannot be reached. A certificate it accepts
    /// completes the handshake with this member's own, so the member sees a connection that ends, not a failed one.
    /// </summary>
    private async Task<(string? Subject, string? Problem)> PresentedCertificateAsync(IPEndPoint endpoint, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ProbeTimeout);
        (string? Subject, string? Problem) presented = (null, null);
        try
        {
            using var client = new TcpClient(endpoint.AddressFamily);
            await client.ConnectAsync(endpoint, timeout.Token);
            await using var ssl = new SslStream(client.GetStream(), leaveInnerStreamOpen: false);
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = endpoint.Address.ToString(),
                EnabledSslProtocols = SslProtocols.Tls13,
                LocalCertificateSelectionCallback = (_, _, _, _, _) => tls.Local,
                RemoteCertificateValidationCallback = (_, certificate, _, _) =>
                {
                    if (certificate is null)
                    {
                        return false;
                    }

                    using var received = new X509Certificate2(certificate);
                    var accepted = ClusterCertificates.Validate(received, tls.Authorities, time.GetUtcNow(), out var problem) is not null;
                    presented = (ClusterTlsCredentials.ShownSubject(received), accepted ? null : problem ?? "refused");
                    return accepted;
                },
            }, timeout.Token);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            // Refused (by either end), or not reached: what was read, if anything, says which.
        }

        return presented;
    }
}
