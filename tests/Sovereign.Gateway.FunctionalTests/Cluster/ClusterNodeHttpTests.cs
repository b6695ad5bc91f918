using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Cluster.Hosting;
using Sovereign.Cluster.Security;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// The HttpClient a gateway relays to nodes with, against real https listeners: it accepts only a node certificate of
/// the cluster CA (not one of another CA, not a gateway's), and presents the gateway's own certificate.
/// </summary>
public sealed class ClusterNodeHttpTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sovereign-node-http-").FullName;
    private readonly X509Certificate2 _authority = ClusterCertificates.CreateAuthority("test", DateTimeOffset.UtcNow);
    private readonly X509Certificate2 _foreignAuthority = ClusterCertificates.CreateAuthority("test", DateTimeOffset.UtcNow);

    public void Dispose()
    {
        _authority.Dispose();
        _foreignAuthority.Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    [Fact]
    public async Task GatewayClient_AcceptsOnlyANodeOfTheClusterCa_AndPresentsItsOwnCertificate()
    {
        var gateway = new ClusterIdentity(ServerRole.Gateway, "gateway-th");
        var services = new ServiceCollection();
        services.AddSingleton(WriteGatewayMaterial());
        services.AddClusterNodeHttp();
        await using var provider = services.BuildServiceProvider();
        var clients = provider.GetRequiredService<IHttpClientFactory>();

        // A node of the cluster: served, and it saw the gateway's certificate.
        using (var node = Issue(_authority, new ClusterIdentity(ServerRole.Node, "node-th")))
        {
            await using var server = await ServeAsync(node);
            using var client = clients.CreateClient(UpstreamProxy.ClusterNodeClientName);
            Assert.Equal("CN=gateway/gateway-th", await client.GetStringAsync(server.Url));
        }

        // The same identity from another CA, or a gateway's certificate where a node should answer: refused.
        foreach (var (authority, identity) in new[] { (_foreignAuthority, new ClusterIdentity(ServerRole.Node, "node-th")), (_authority, gateway) })
        {
            using var impostor = Issue(authority, identity);
            await using var server = await ServeAsync(impostor);
            using var client = clients.CreateClient(UpstreamProxy.ClusterNodeClientName);
            var refused = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetStringAsync(server.Url));
            Assert.Equal(HttpRequestError.SecureConnectionError, refused.HttpRequestError);
        }
    }

    [Fact]
    public async Task GatewayClient_RefusesANodeWhoseCertificateWasRevoked()
    {
        var credentials = WriteGatewayMaterial();
        var services = new ServiceCollection();
        services.AddSingleton(credentials);
        services.AddClusterNodeHttp();
        await using var provider = services.BuildServiceProvider();
        var clients = provider.GetRequiredService<IHttpClientFactory>();
        using var node = Issue(_authority, new ClusterIdentity(ServerRole.Node, "node-th"));
        await using (var server = await ServeAsync(node))
        {
            using var client = clients.CreateClient(UpstreamProxy.ClusterNodeClientName);
            Assert.Equal("CN=gateway/gateway-th", await client.GetStringAsync(server.Url));
        }

        // Revoked by its serial: the next connection to it is refused.
        credentials.Revocations = CertificateRevocations.From([new(CertificateRevocations.SerialKind, CertificateRevocations.NormalizeSerial(node.SerialNumber)!, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), null)]);
        await using (var server = await ServeAsync(node))
        {
            using var client = clients.CreateClient(UpstreamProxy.ClusterNodeClientName);
            var refused = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetStringAsync(server.Url));
            Assert.Equal(HttpRequestError.SecureConnectionError, refused.HttpRequestError);
        }
    }

    [Fact]
    public async Task GatewayClient_CutsAnOpenStreamFromANode_WhenTheNodesCertificateIsRevoked()
    {
        var credentials = WriteGatewayMaterial();
        var services = new ServiceCollection();
        services.AddSingleton(credentials);
        services.AddClusterNodeHttp();
        await using var provider = services.BuildServiceProvider();
        using var node = Issue(_authority, new ClusterIdentity(ServerRole.Node, "node-th"));
        await using var server = await ServeAsync(node, StreamOneChunkAndHold);
        using var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient(UpstreamProxy.ClusterNodeClientName);

        // A stream that the node keeps open: its first chunk arrives, then nothing more.
        using var response = await client.GetAsync(server.Url, HttpCompletionOption.ResponseHeadersRead);
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[64];
        Assert.True(await body.ReadAsync(buffer) > 0);

        // Revoked while open: the connection is cut, so the read that was waiting ends instead of lasting as long as
        // the node wants (the wait is bounded only so that a regression fails instead of hanging).
        var pending = body.ReadAsync(buffer).AsTask();
        Assert.False(pending.IsCompleted);
        credentials.Revocations = CertificateRevocations.From([new(CertificateRevocations.NodeKind, "node-th", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), "stolen")]);
        var ended = await Record.ExceptionAsync(() => pending.WaitAsync(TimeSpan.FromMinutes(1)));
        Assert.IsNotType<TimeoutException>(ended);
        Assert.Equal(0, credentials.Connections.Count);
    }

    private ClusterTlsCredentials WriteGatewayMaterial()
    {
        using (var own = Issue(_authority, new ClusterIdentity(ServerRole.Gateway, "gateway-th")))
        using (var key = own.GetECDsaPrivateKey()!)
        {
            ClusterTlsCredentials.WritePem(Path.Combine(_folder, "cluster-cert.pem"), own.ExportCertificatePem(), secret: false);
            ClusterTlsCredentials.WritePem(Path.Combine(_folder, "cluster-key.pem"), key.ExportPkcs8PrivateKeyPem(), secret: true);
            ClusterTlsCredentials.WritePem(Path.Combine(_folder, "cluster-ca.pem"), _authority.ExportCertificatePem(), secret: false);
        }

        return new ClusterTlsCredentials(new SovereignClusterOptions { Redis = "127.0.0.1:1", Role = ServerRole.Gateway, Secret = "s" }, _folder, "gateway-th", TimeProvider.System);
    }

    private static X509Certificate2 Issue(X509Certificate2 authority, ClusterIdentity identity)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var issued = ClusterCertificates.Issue(authority, ClusterCertificates.CreateSigningRequest(identity, key), identity, DateTimeOffset.UtcNow);
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>
    /// A one-connection https responder on loopback (a bare SslStream, not an in-process web host: a second host in
    /// this process would add and remove ASP.NET Core meters under the shared server's metrics exporter). By default it
    /// answers with the subject of the client certificate it was shown; <paramref name="respond"/> answers otherwise.
    /// </summary>
    private static Task<Listener> ServeAsync(X509Certificate2 certificate, Func<SslStream, Task>? respond = null)
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var serving = Task.Run(async () =>
        {
            using var connection = await listener.AcceptTcpClientAsync();
            await using var tls = new SslStream(connection.GetStream(), leaveInnerStreamOpen: false, (_, _, _, _) => true);
            try
            {
                await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = certificate, ClientCertificateRequired = true });
                using var reader = new StreamReader(tls, leaveOpen: true);
                while (!string.IsNullOrEmpty(await reader.ReadLineAsync()))
                {
                }

                await (respond ?? AnswerWithTheClientsSubject)(tls);
            }
            catch (Exception ex) when (ex is AuthenticationException or IOException)
            {
                // The client refused this server's certificate (in TLS 1.3, possibly after the server's side finished).
            }
        });
        return Task.FromResult(new Listener(listener, serving, new Uri($"https://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/")));
    }

    private static async Task AnswerWithTheClientsSubject(SslStream tls)
    {
        var body = Encoding.UTF8.GetBytes(tls.RemoteCertificate?.Subject ?? "none");
        await tls.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n"));
        await tls.WriteAsync(body);
    }

    /// <summary>One chunk of a chunked body, then the stream held open until the client goes (a read of 0 bytes or a reset).</summary>
    private static async Task StreamOneChunkAndHold(SslStream tls)
    {
        await tls.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"));
        await tls.FlushAsync();
        while (await tls.ReadAsync(new byte[16]) > 0)
        {
        }
    }

    private sealed record Listener(TcpListener Socket, Task Serving, Uri Url) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            Socket.Stop();
            try
            {
                await Serving;
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
            }
        }
    }
}
