using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Cli.Commands;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// The engine address rule (no link-local or cloud metadata address unless <c>Sovereign:AllowLinkLocalEngineUrls</c>)
/// was checked when an engine was registered through the API only: a URL stored before the rule, set in the
/// configuration (<c>Sovereign:Engines</c>), copied in with a database, or a name whose DNS record changed since, was
/// connected to, with tenants' prompts and the engine's key. The configuration is checked at start, and the engine
/// client checks every connection, on the addresses it connects to.
/// </summary>
public sealed class EngineAddressAtConnectTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    [Theory]
    [InlineData("http://metadata.google.internal:9/v1/models", "metadata service")]
    [InlineData("http://169.254.169.254:9/v1/models", "link-local")]
    [InlineData("http://[fe80::1]:9/v1/models", "link-local")]
    public async Task TheEngineClient_RefusesToConnectToALinkLocalOrMetadataAddress_WhateverStoredTheUrl(string url, string what)
    {
        var handler = fixture.App.Services.GetRequiredService<IHttpMessageHandlerFactory>().CreateHandler(global::Sovereign.Gateway.Routing.UpstreamProxy.ClientName);
        using var client = new HttpMessageInvoker(handler, disposeHandler: false);
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        using var bound = new CancellationTokenSource(TimeSpan.FromMinutes(1)); // the old client tried to connect there (a bound for that hang, not a pace)

        var refused = await Assert.ThrowsAnyAsync<Exception>(() => client.SendAsync(request, bound.Token));

        var reason = Assert.IsType<HttpRequestException>(refused).InnerException;
        Assert.Equal("EngineAddressRefusedException", reason?.GetType().Name);
        Assert.Contains(what, reason!.Message, StringComparison.Ordinal);
        Assert.Contains("Sovereign:AllowLinkLocalEngineUrls", reason.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheEngineClient_StillConnectsToLoopbackEngines()
    {
        await using var engine = await FakeUpstreamEngine.StartAsync(context => context.Response.WriteAsync("""{"object":"list","data":[]}"""));
        var handler = fixture.App.Services.GetRequiredService<IHttpMessageHandlerFactory>().CreateHandler(global::Sovereign.Gateway.Routing.UpstreamProxy.ClientName);
        using var client = new HttpMessageInvoker(handler, disposeHandler: false);
        using var request = new HttpRequestMessage(HttpMethod.Post, engine.Url + "/v1/chat/completions") { Content = new StringContent("{}") };

        using var response = await client.SendAsync(request, CancellationToken.None);

        Assert.Equal("""{"object":"list","data":[]}""", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task AFrontedEngineInTheConfiguration_AtALinkLocalAddress_StopsTheStart_NamingTheSetting()
    {
        var data = Directory.CreateTempSubdirectory("sovereign-engine-address-").FullName;
        try
        {
            await using var app = ServeCommand.Build(new ServeSettings
            {
                Urls = "http://127.0.0.1:0",
                DataDirectory = data,
                Overrides = new Dictionary<string, string?>
                {
                    ["Sovereign:Jurisdiction"] = "TH",
                    ["Sovereign:BuiltInEmbeddings"] = "false",
                    ["Sovereign:Engines:0:BaseUrl"] = "http://169.254.169.254:8000",
                    ["Sovereign:Engines:0:Models:0:Id"] = "fronted",
                },
            }, []);

            var refused = await Assert.ThrowsAnyAsync<Exception>(() => app.StartAsync());
            Assert.Contains("Sovereign:Engines:0:BaseUrl is 169.254.169.254, a link-local address", refused.Message, StringComparison.Ordinal);
            Assert.Contains("Sovereign:AllowLinkLocalEngineUrls", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(data, recursive: true);
        }
    }
}
