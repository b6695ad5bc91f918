using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Sovereign.Gateway.Hosting;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// The connection middleware that gives Kestrel's rejections a body sits outside TLS on an https endpoint (endpoint
/// defaults run before UseHttps): it must pass the TLS records through untouched, handshake and keep-alive included.
/// </summary>
public sealed class KestrelRejectionsTlsTests
{
    [Fact]
    public async Task OnATlsEndpoint_RequestsAreServedThroughTheMiddleware()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            listen.Use(KestrelRejections.Wrap);
            listen.UseHttps(certificate);
        }));
        await using var app = builder.Build();
        app.Use(KestrelRejections.MarkApplicationResponses);
        app.Run(async context =>
        {
            var text = context.Request.Path == "/echo" ? await new StreamReader(context.Request.Body).ReadToEndAsync() : new string('b', 300_000);
            await context.Response.WriteAsync(text);
        });
        await app.StartAsync();
        var address = app.Urls.First();

        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, _, _, _) => true };
        using var client = new HttpClient(handler) { BaseAddress = new Uri(address) };
        for (var i = 0; i < 3; i++)
        {
            using var echoed = await client.PostAsync("/echo", new StringContent("hello " + i));
            Assert.Equal(200, (int)echoed.StatusCode);
            Assert.Equal("hello " + i, await echoed.Content.ReadAsStringAsync());
            Assert.Equal(300_000, (await client.GetStringAsync("/big")).Length);
        }

        await app.StopAsync();
    }
}
