using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// <c>POST /admin/v1/nodes</c> and <c>DELETE /admin/v1/nodes/{id}</c> as an operator fat-fingers them. Found by hand:
/// an engine registered under the server's own node id (or a cluster member's) replaced that node with an external
/// engine at the given URL (201); deleting the server's own node while it ran was a 200, after which it vanished from
/// <c>nodes list</c> and could no longer be drained until a restart; and a model listed twice was stored twice.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class NodeRegistrationTests(ConsoleFixture fixture)
{
    private const string OwnNode = "bkk-1";

    [Fact]
    public async Task AnEngine_UnderTheServersOwnNodeId_Is409_AndTheServersNodeStays()
    {
        var error = await RefusedAsync(HttpMethod.Post, "/admin/v1/nodes",
            $$"""{"id":"{{OwnNode}}","jurisdiction":"TH","base_url":"http://10.0.0.1:8000","models":[{"id":"x"}]}""", 409);

        Assert.Equal("id", error.GetProperty("param").GetString());
        Assert.Equal("node_exists", error.GetProperty("code").GetString());
        Assert.Equal("local", await KindOfAsync(OwnNode));
    }

    [Fact]
    public async Task DeletingTheServersOwnNode_WhileItRuns_Is409_AndItStaysListed()
    {
        var error = await RefusedAsync(HttpMethod.Delete, $"/admin/v1/nodes/{OwnNode}", null, 409);

        Assert.Equal("node_in_use", error.GetProperty("code").GetString());
        Assert.Contains("draining", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("local", await KindOfAsync(OwnNode));
        Assert.Equal(200, await fixture.ChatAsync(fixture.HospitalKey));
    }

    /// <summary>
    /// Another member that still reports its load is running: deleting it was a 200, after which it kept serving out of
    /// every list (it could not be drained) and registered again at its next start. The guide says drain, stop, remove.
    /// </summary>
    [Fact]
    public async Task DeletingAClusterNode_WhileItReportsItsLoad_Is409_AndOneThatStoppedReportingIsRemoved()
    {
        var nodes = fixture.App.Services.GetRequiredService<Sovereign.Gateway.Routing.NodeDirectory>();
        await nodes.Registry.UpsertAsync(new NodeView("qa-member", "TH", "Local", "http://10.0.0.9:8080", [], "Active", "", null, 0));
        await nodes.Registry.UpsertAsync(new NodeView("qa-stopped", "TH", "Local", "http://10.0.0.10:8080", [], "Active", "", null, 0));
        try
        {
            Assert.True(await nodes.Registry.ReportAsync("qa-member", [], new NodeLoad(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), [], [])));

            var error = await RefusedAsync(HttpMethod.Delete, "/admin/v1/nodes/qa-member", null, 409);
            Assert.Equal(("node_in_use", "id"), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
            Assert.Contains("drain", error.GetProperty("message").GetString(), StringComparison.Ordinal);
            Assert.Equal("local", await KindOfAsync("qa-member"));

            // No report since the registry last loaded it: stopped (or cut off), so it goes.
            await fixture.SendAsync(HttpMethod.Delete, "/admin/v1/nodes/qa-stopped", null);
            Assert.Null(await KindOfAsync("qa-stopped"));
        }
        finally
        {
            await nodes.Registry.DeleteAsync("qa-member");
            await nodes.Registry.DeleteAsync("qa-stopped");
            nodes.Invalidate();
        }
    }

    [Fact]
    public async Task AModelListedTwice_Is400NamingTheSecond_AndNothingIsRegistered()
    {
        var error = await RefusedAsync(HttpMethod.Post, "/admin/v1/nodes",
            """{"id":"qa-twice","jurisdiction":"SG","base_url":"http://10.0.0.2:8000","models":[{"id":"m"},{"id":"n"},{"id":"m","capacity":4}]}""", 400);

        Assert.Equal("models[2].id", error.GetProperty("param").GetString());
        Assert.Null(await KindOfAsync("qa-twice"));
    }

    /// <summary>
    /// A node's models meet the rules an engine's models meet in the settings, in the same words (one rule set): the
    /// API's own copy said "models[0].origin must be an ISO 3166-1 alpha-2 country code." without the value, and
    /// "listed twice" where the settings say "used by two models".
    /// </summary>
    [Fact]
    public async Task AModelThatBreaksARule_Is400InTheSettingsWords_AndNothingIsRegistered()
    {
        var origin = await RefusedAsync(HttpMethod.Post, "/admin/v1/nodes",
            """{"id":"qa-rules","jurisdiction":"SG","base_url":"http://10.0.0.5:8000","models":[{"id":"m","origin":"XX1"}]}""", 400);
        var twice = await RefusedAsync(HttpMethod.Post, "/admin/v1/nodes",
            """{"id":"qa-rules","jurisdiction":"SG","base_url":"http://10.0.0.5:8000","models":[{"id":"m"},{"id":"m"}]}""", 400);

        Assert.Equal(("models[0].origin", "models[0].origin 'XX1' is not an ISO 3166-1 alpha-2 country code."),
            (origin.GetProperty("param").GetString(), origin.GetProperty("message").GetString()));
        Assert.Equal(("models[1].id", "models[1].id 'm' is used by two models; give each model its own id."),
            (twice.GetProperty("param").GetString(), twice.GetProperty("message").GetString()));
        Assert.Null(await KindOfAsync("qa-rules"));
    }

    /// <summary>
    /// An engine's URL is where the gateway sends tenants' prompts with the engine's key, and node lists show whether
    /// it answers: one at a link-local address (169.254.169.254, fe80::) or a cloud's metadata name reached the
    /// instance's metadata service, which hands out the machine's cloud credentials. Refused unless
    /// Sovereign:AllowLinkLocalEngineUrls says otherwise; loopback and private addresses, where engines run, stay open.
    /// </summary>
    [Theory]
    [InlineData("http://169.254.169.254")]
    [InlineData("http://169.254.169.254:80/latest")]
    [InlineData("http://169.254.1.2:8000")]
    [InlineData("http://[fe80::1]:8000")]
    [InlineData("http://[::ffff:169.254.169.254]")]
    [InlineData("http://[fd00:ec2::254]")]
    [InlineData("http://100.100.100.200")]
    [InlineData("http://metadata.google.internal")]
    [InlineData("http://Metadata.Google.Internal.:8080")]
    [InlineData("http://metadata")]
    public async Task AnEngine_AtALinkLocalOrMetadataAddress_Is400NamingBaseUrl_AndNothingIsRegistered(string url)
    {
        var error = await RefusedAsync(HttpMethod.Post, "/admin/v1/nodes",
            $$"""{"id":"qa-metadata","jurisdiction":"SG","base_url":"{{url}}","models":[{"id":"m"}]}""", 400);

        Assert.Equal(("base_url", "invalid_value"), (error.GetProperty("param").GetString(), error.GetProperty("code").GetString()));
        Assert.Contains("Sovereign:AllowLinkLocalEngineUrls", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Null(await KindOfAsync("qa-metadata"));
    }

    [Theory]
    [InlineData("http://127.0.0.1:8000")]
    [InlineData("http://localhost:8000")]
    [InlineData("http://[::1]:8000")]
    [InlineData("http://192.168.10.4:8000")]
    [InlineData("http://172.16.0.9:8000")]
    [InlineData("http://[fd12:3456::9]:8000")]
    public async Task AnEngine_AtALoopbackOrPrivateAddress_IsRegistered(string url)
    {
        var registered = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            JsonDocument.Parse($$"""{"id":"qa-private","jurisdiction":"SG","base_url":"{{url}}","models":[{"id":"m"}]}""").RootElement);
        try
        {
            Assert.Equal("qa-private", registered.GetProperty("id").GetString());
        }
        finally
        {
            await fixture.SendAsync(HttpMethod.Delete, "/admin/v1/nodes/qa-private", null);
        }
    }

    [Fact]
    public async Task AnEngine_RegisteredAgainUnderItsId_IsUpdated()
    {
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            JsonDocument.Parse("""{"id":"qa-engine","jurisdiction":"SG","base_url":"http://10.0.0.3:8000","models":[{"id":"m"}]}""").RootElement);
        var again = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            JsonDocument.Parse("""{"id":"qa-engine","jurisdiction":"SG","base_url":"http://10.0.0.4:8000","models":[{"id":"m"}]}""").RootElement);

        Assert.Equal("http://10.0.0.4:8000", again.GetProperty("base_url").GetString());
        await fixture.SendAsync(HttpMethod.Delete, "/admin/v1/nodes/qa-engine", null);
        Assert.Null(await KindOfAsync("qa-engine"));
    }

    /// <summary>
    /// An engine the operator took out of rotation stays out when it is registered again (to change its models, its
    /// URL): the registration replaced it as active, and requests went to an engine set down for maintenance.
    /// </summary>
    [Fact]
    public async Task AnEngineTakenOutOfRotation_RegisteredAgain_KeepsItsState()
    {
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            JsonDocument.Parse("""{"id":"qa-down","jurisdiction":"SG","base_url":"http://10.0.0.5:8000","models":[{"id":"m"}]}""").RootElement);
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/nodes/qa-down/state", new { state = "down" });

        var again = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            JsonDocument.Parse("""{"id":"qa-down","jurisdiction":"SG","base_url":"http://10.0.0.5:8000","models":[{"id":"m"},{"id":"m2"}]}""").RootElement);

        Assert.Equal("down", again.GetProperty("state").GetString());
        var listed = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/nodes", null)).GetProperty("data").EnumerateArray().Single(n => n.GetProperty("id").GetString() == "qa-down");
        Assert.Equal("down", listed.GetProperty("state").GetString());
        Assert.Equal(2, listed.GetProperty("models").GetArrayLength());
        await fixture.SendAsync(HttpMethod.Delete, "/admin/v1/nodes/qa-down", null);
    }

    /// <summary>A single machine printed a join token no node could use: its join endpoint answers 404.</summary>
    [Fact]
    public async Task AJoinToken_OnAServerThatIsNoClusterGateway_Is409_AfterTheBodyIsChecked()
    {
        var error = await RefusedAsync(HttpMethod.Post, "/admin/v1/nodes/join-tokens", """{"jurisdiction":"TH"}""", 409);
        Assert.Equal("not_a_cluster_gateway", error.GetProperty("code").GetString());

        var bad = await RefusedAsync(HttpMethod.Post, "/admin/v1/nodes/join-tokens", """{"jurisdiction":"XX"}""", 400);
        Assert.Equal("jurisdiction", bad.GetProperty("param").GetString());

        var (exit, stdout, stderr) = await CliProcess.RunAsync("nodes", "join-token", "--jurisdiction", "TH", "--url", fixture.Url, "--admin-token", ConsoleFixture.AdminToken);
        Assert.Equal(1, exit);
        Assert.DoesNotContain("sjt_", stdout, StringComparison.Ordinal);
        Assert.Contains("not a gateway of a cluster", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// A flag out of range is the CLI's usage error naming the flag: the server's 400 named its own fields
    /// (ttl_seconds; pool and device_class), which the operator never typed. Checked before any connection.
    /// </summary>
    [Fact]
    public async Task JoinTokenTtlAndComputePriceScope_OutOfRange_AreUsageErrorsNamingTheFlags()
    {
        string[] Nowhere(params string[] args) => [.. args, "--url", "http://127.0.0.1:9", "--admin-token", "unused"];
        foreach (var ttl in new[] { "0", "604801" })
        {
            var (exit, _, stderr) = await CliProcess.RunAsync(Nowhere("nodes", "join-token", "--jurisdiction", "TH", "--ttl", ttl));
            Assert.Equal(2, exit);
            Assert.Contains("--ttl must be between 1 and 604800", stderr, StringComparison.Ordinal);
        }

        foreach (var scope in new[] { Array.Empty<string>(), ["--pool", "th-h100", "--device-class", "h100"] })
        {
            var (exit, _, stderr) = await CliProcess.RunAsync(Nowhere(["plans", "compute-price", "standard", "--per-compute-second", "0.1", .. scope]));
            Assert.Equal(2, exit);
            Assert.Contains("exactly one of --pool and --device-class", stderr, StringComparison.Ordinal);
        }
    }

    /// <summary>
    /// 'nodes drain X --wait --timeout -1' drained the node, waited 1 s and said "the server did not answer in time"
    /// (exit 4, as if unreachable), which is also what any --wait that ran out of time said.
    /// </summary>
    [Fact]
    public async Task DrainWait_WithANonPositiveTimeout_IsAUsageError_AndRunningOutOfTimeSaysTheNodeIsStillBusy()
    {
        string[] Admin(params string[] args) => [.. args, "--url", fixture.Url, "--admin-token", ConsoleFixture.AdminToken];
        var (exit, _, stderr) = await CliProcess.RunAsync(Admin("nodes", "drain", OwnNode, "--wait", "--timeout", "-1"));
        Assert.Equal(2, exit);
        Assert.Contains("--timeout must be at least 1 second.", stderr, StringComparison.Ordinal);
        Assert.Equal("active", await StateOfAsync(OwnNode));

        // An external engine reports no load: it counts as idle only 2 s after the drain, later than a 1 s --timeout.
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            JsonDocument.Parse("""{"id":"qa-drain","jurisdiction":"SG","base_url":"http://10.0.0.5:8000","models":[{"id":"m"}]}""").RootElement);
        try
        {
            (exit, _, stderr) = await CliProcess.RunAsync(Admin("nodes", "drain", "qa-drain", "--wait", "--timeout", "1"));
            Assert.Equal(1, exit);
            Assert.Contains("node qa-drain is draining but was not idle within --timeout 1 s", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("did not answer", stderr, StringComparison.Ordinal);
        }
        finally
        {
            await fixture.SendAsync(HttpMethod.Delete, "/admin/v1/nodes/qa-drain", null);
        }
    }

    /// <summary>
    /// 'nodes drain X --wait' of a cluster node that had stopped reporting (stopped, dead, cut off) waited out its
    /// whole --timeout (10 minutes by default) and then said the node was still busy: its last report never aged into
    /// "idle". It now ends at once, saying the node stopped reporting, with its own exit code (6).
    /// </summary>
    [Fact]
    public async Task DrainWait_OfANodeThatStoppedReporting_EndsAtOnce_WithExitCode6()
    {
        string[] Admin(params string[] args) => [.. args, "--url", fixture.Url, "--admin-token", ConsoleFixture.AdminToken];
        var registry = fixture.App.Services.GetRequiredService<IGrainFactory>().GetGrain<INodeRegistryGrain>(Sovereign.Gateway.Routing.NodeDirectory.RegistryKey);
        var lastReport = DateTimeOffset.UtcNow.AddMinutes(-2).ToUnixTimeMilliseconds();

        // A cluster node (kind local, reached at its URL) whose last load report, with a request running, is two minutes old.
        await registry.UpsertAsync(new NodeView("qa-gone", "TH", "Local", "http://10.0.0.9:8443", [new NodeModel("m", "m", 4)], "Active", "", null, 0,
            new NodeLoad(lastReport, [new ModelLoad("m", 1, 3, 0, 0)], [])));
        try
        {
            var (exit, stdout, stderr) = await CliProcess.RunAsync(Admin("nodes", "drain", "qa-gone", "--wait", "--timeout", "20"));

            Assert.True(exit == 6, $"{exit}: {stderr}");
            Assert.Equal("", stdout);
            Assert.Contains($"node qa-gone is draining but stopped reporting its load (last report {Sovereign.Cli.Output.CliTime.FromUnixMilliseconds(lastReport)})", stderr, StringComparison.Ordinal);
            Assert.Contains("sovereign nodes rm qa-gone", stderr, StringComparison.Ordinal);
            Assert.Equal("draining", await StateOfAsync("qa-gone"));
            var listed = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/nodes", null)).GetProperty("data").EnumerateArray().ToList();
            Assert.False(listed.Single(n => n.GetProperty("id").GetString() == "qa-gone").GetProperty("reporting").GetBoolean());
            Assert.Equal(JsonValueKind.Null, listed.Single(n => n.GetProperty("id").GetString() == OwnNode).GetProperty("reporting").ValueKind);
        }
        finally
        {
            await registry.DeleteAsync("qa-gone");
        }
    }

    private async Task<string?> StateOfAsync(string id)
    {
        var nodes = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/nodes", null);
        return nodes.GetProperty("data").EnumerateArray().Where(n => n.GetProperty("id").GetString() == id).Select(n => n.GetProperty("state").GetString()).SingleOrDefault();
    }

    private async Task<string?> KindOfAsync(string id)
    {
        var nodes = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/nodes", null);
        return nodes.GetProperty("data").EnumerateArray().Where(n => n.GetProperty("id").GetString() == id).Select(n => n.GetProperty("kind").GetString()).SingleOrDefault();
    }

    private async Task<JsonElement> RefusedAsync(HttpMethod method, string path, string? body, int status)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await fixture.Admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"{method} {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.GetProperty("error");
    }
}
