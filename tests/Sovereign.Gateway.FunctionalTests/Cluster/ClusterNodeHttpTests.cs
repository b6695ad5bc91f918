using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
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
        using (var own = Issue(_authority, gateway))
        using (var key = own.GetECDsaPrivateKey()!)
        {
            ClusterTlsCredentials.WritePem(Path.Combine(_folder, "cluster-cert.pem"), own.ExportCertificatePem(), secret: false);
            ClusterTlsCredentials.WritePem(Path.Combine(_folder, "cluster-key.pem"), key.ExportPkcs8PrivateKeyPem(), secret: true);
            ClusterTlsCredentials.WritePem(Path.Combine(_folder, "cluster-ca.pem"), _authority.ExportCertificatePem(), secret: false);
        }

        var services = new ServiceCollection();
        services.AddSingleton(new ClusterTlsCredentials(new SovereignClusterOptions { Redis = "127.0.0.1:1", Role = ServerRole.Gateway, Secret = "s" }, _folder, "gateway-th", TimeProvider.System));
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

    private static X509Certificate2 Issue(X509Certificate2 authority, ClusterIdentity identity)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var issued = ClusterCertificates.Issue(authority, ClusterCertificates.CreateSigningRequest(identity, key), identity, DateTimeOffset.UtcNow);
        return issued.CopyWithPrivateKey(key);
    }

    private static async Task<Listener> ServeAsync(X509Certificate2 certificate)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = certificate,
            ClientCertificateMode = ClientCertificateMode.AllowCertificate,
            ClientCertificateValidation = (_, _, _) => true,
        })));
        var app = builder.Build();
        app.MapGet("/", (HttpContext context) => context.Connection.ClientCertificate?.Subject ?? "none");
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new Listener(app, new Uri(address));
    }

    private sealed record Listener(WebApplication App, Uri Url) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => App.DisposeAsync();
    }
}
