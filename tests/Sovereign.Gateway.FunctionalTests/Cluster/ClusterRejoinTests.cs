using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Gateway.ControlPlane;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// A node that joined once is given a new join token (its certificate was revoked, or it moves to another pool or
/// jurisdiction) and restarted with it: the kept join was used and the new token ignored, so the node started with its
/// old (revoked) certificate and credential, and the token stayed unspent. Now a token other than the kept join's joins
/// again; the same token, as a restart with the same command gives, does not. The gateway is a stand-in that records
/// the tokens it is sent.
/// </summary>
public sealed class ClusterRejoinTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-rejoin-").FullName;
    private readonly ConcurrentQueue<string> _tokens = new();
    private WebApplication _gateway = null!;
    private string _joinUrl = "";

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        _gateway = builder.Build();
        _gateway.MapPost("/cluster/v1/join", async (HttpContext context) =>
        {
            using var request = await JsonDocument.ParseAsync(context.Request.Body);
            var token = request.RootElement.GetProperty("token").GetString()!;
            _tokens.Enqueue(token);

            // Each token is for its own jurisdiction: the answer tells which join the node kept.
            var jurisdiction = token.EndsWith("-sg", StringComparison.Ordinal) ? "SG" : "TH";
            return Results.Json(new JoinResponse("node-rejoin", jurisdiction, null, "v1.unused.unused", "unused")
            {
                Cluster = new JoinedCluster("127.0.0.1:1", "rejoin", "relay-secret", InsecureTransport: true, null, null),
            });
        });
        await _gateway.StartAsync();
        _joinUrl = _gateway.Urls.First();
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public void Prepare_WithANewToken_JoinsAgain_AndWithTheKeptJoinsTokenDoesNot()
    {
        var (first, firstJurisdiction) = Prepare("sjt_first-th");
        var (restart, restartJurisdiction) = Prepare("sjt_first-th");
        var (rejoined, rejoinedJurisdiction) = Prepare("sjt_second-sg");
        var (restartAgain, _) = Prepare("sjt_second-sg");

        Assert.NotNull(first);
        Assert.Null(restart); // the kept join, no request
        Assert.Equal(("TH", "TH"), (firstJurisdiction, restartJurisdiction));
        Assert.NotNull(rejoined);
        Assert.Equal("SG", rejoinedJurisdiction);
        Assert.Null(restartAgain);
        Assert.Equal(["sjt_first-th", "sjt_second-sg"], _tokens);
        Assert.Equal("SG", JsonDocument.Parse(File.ReadAllText(Path.Combine(_data, JoinResponse.FileName))).RootElement.GetProperty("jurisdiction").GetString());
    }

    /// <summary>A node's start with <paramref name="token"/>: what it joined now (null: the kept join) and the jurisdiction it takes.</summary>
    private (JoinResponse? JoinedNow, string? Jurisdiction) Prepare(string token)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Sovereign:NodeId"] = "node-rejoin",
            ["Sovereign:DataDirectory"] = _data,
            ["Sovereign:Cluster:Role"] = "node",
            ["Sovereign:Cluster:JoinToken"] = token,
            ["Sovereign:Cluster:JoinUrl"] = _joinUrl,
            ["Sovereign:Cluster:JoinTimeoutSeconds"] = "60",
            ["Sovereign:Cluster:InsecureTransport"] = "true",
        });
        var joined = ClusterJoiner.Prepare(builder, NullLoggerFactory.Instance);
        return (joined, builder.Configuration["Sovereign:Jurisdiction"]);
    }
}
