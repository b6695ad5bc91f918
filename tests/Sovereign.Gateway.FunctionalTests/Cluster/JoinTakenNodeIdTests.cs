using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// A join token names no node id. Found by hand: a second machine started with a running node's <c>--node-id</c> and a
/// fresh token joined, and its registration replaced the running node's (URL, pool, credential): <c>nodes list</c>
/// showed the running node at the newcomer's URL, so the gateways relayed that node's work elsewhere (and to nowhere
/// once the newcomer stopped). Now the join is refused (409 <c>node_in_use</c>) while a node of that id runs, and the
/// token stays usable. A real gateway and node (<c>sovereign serve</c>) over a throwaway redis-server and PostgreSQL
/// (a cluster member on SQLite is refused at start). Also the other joins a gateway refuses: a URL carrying a secret,
/// and a token withdrawn before its node started.
/// </summary>
public sealed class JoinTakenNodeIdTests(Storage.PostgreSqlFixture postgres) : IClassFixture<Storage.PostgreSqlFixture>, IDisposable
{
    private const string AdminToken = "join-taken-admin";
    private readonly string _root = Directory.CreateTempSubdirectory("sovereign-join-taken-").FullName;
    private readonly int _redisPort = Sovereign.Tests.LoopbackPorts.Unused();
    private readonly List<(Process Process, StringBuilder Output)> _started = [];

    public void Dispose()
    {
        foreach (var (process, _) in _started)
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
            }

            process.Dispose();
        }

        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task AJoin_UnderTheIdOfARunningNode_Is409_AndTheTokenStaysUsable()
    {
        using var admin = await StartGatewayAsync();

        var first = await IssueTokenAsync(admin);
        var nodePort = Sovereign.Tests.LoopbackPorts.Unused();
        var node = StartServe(nodePort, ["--role", "node", "--node-id", "node-th-1", "--join-token", first, "--join-url", admin.BaseAddress!.ToString(),
            "--model", $"{TestModels.Stories260K}=stories", "--threads", "1", "--ctx-size", "256", "--parallel", "2"], new());
        await WaitForAsync(async () =>
        {
            using var response = await admin.GetAsync("/admin/v1/nodes");
            var body = await response.Content.ReadAsStringAsync();
            return response.IsSuccessStatusCode && JsonDocument.Parse(body).RootElement.GetProperty("data").EnumerateArray()
                .Any(n => n.GetProperty("id").GetString() == "node-th-1" && n.GetProperty("health").GetString() == "up") ? body : null;
        }, node);

        var second = await IssueTokenAsync(admin);
        using var anonymous = new HttpClient { BaseAddress = admin.BaseAddress };
        using (var taken = await anonymous.PostAsJsonAsync("/cluster/v1/join", new { token = second, node_id = "node-th-1", url = "http://127.0.0.1:9" }))
        {
            var body = await taken.Content.ReadAsStringAsync();
            Assert.True(taken.StatusCode == HttpStatusCode.Conflict, body);
            var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
            Assert.Equal(("node_in_use", "node_id"), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
            Assert.Contains($"Node 'node-th-1' is running at http://127.0.0.1:{nodePort}", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        // The running node keeps its registration, and the refused token still joins a node of its own id.
        using (var nodes = await admin.GetAsync("/admin/v1/nodes"))
        {
            var registered = JsonDocument.Parse(await nodes.Content.ReadAsStringAsync()).RootElement.GetProperty("data").EnumerateArray().Single(n => n.GetProperty("id").GetString() == "node-th-1");
            Assert.Equal($"http://127.0.0.1:{nodePort}", registered.GetProperty("base_url").GetString());
        }

        using var joined = await anonymous.PostAsJsonAsync("/cluster/v1/join", new { token = second, node_id = "node-th-2", url = "http://127.0.0.1:9" });
        Assert.True(joined.IsSuccessStatusCode, await joined.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// Found by explorer19 (session 42): a joining node's URL was held only to "absolute http(s)", so credentials, a
    /// query or a fragment in it were signed into its credential and shown in node lists and the <c>node.joined</c>
    /// audit entry, where <c>nodes add</c> refuses them; a URL ending in /v1 would have every relay sent to /v1/v1/.
    /// </summary>
    [Fact]
    public async Task AJoin_WhoseUrlCarriesASecret_AQuery_OrV1_Is400NamingUrl_AndTheTokenStaysUsable()
    {
        using var admin = await StartGatewayAsync();

        var token = await IssueTokenAsync(admin);
        using var anonymous = new HttpClient { BaseAddress = admin.BaseAddress };
        foreach (var url in new[] { "http://ops:hunter2@127.0.0.1:9", "http://127.0.0.1:9/?key=hunter2", "http://127.0.0.1:9/#hunter2", "http://127.0.0.1:9/v1" })
        {
            using var refused = await anonymous.PostAsJsonAsync("/cluster/v1/join", new { token, node_id = "node-th-url", url });
            var body = await refused.Content.ReadAsStringAsync();
            Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, url + ": " + body);
            var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
            Assert.Equal(("url", "invalid_value"), (error.GetProperty("param").GetString(), error.GetProperty("code").GetString()));
            Assert.DoesNotContain("hunter2", body, StringComparison.Ordinal);
        }

        using (var nodes = await admin.GetAsync("/admin/v1/nodes"))
        {
            Assert.DoesNotContain("node-th-url", await nodes.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using var joined = await anonymous.PostAsJsonAsync("/cluster/v1/join", new { token, node_id = "node-th-url", url = "http://127.0.0.1:9" });
        Assert.True(joined.IsSuccessStatusCode, await joined.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// A join token withdrawn (<c>sovereign nodes withdraw-join-token ID</c>) before its node started: the node's start
    /// stops (exit 2) with the gateway's refusal, it keeps no credential, and no registration exists under its id. The
    /// same token, withdrawn again, answers the first withdrawal's time.
    /// </summary>
    [Fact]
    public async Task ANodeStartedWithAWithdrawnToken_CannotJoin_ItsStartStops_AndNothingIsRegistered()
    {
        using var admin = await StartGatewayAsync();
        using var issued = await admin.PostAsJsonAsync("/admin/v1/nodes/join-tokens", new { jurisdiction = "TH" });
        var answer = JsonDocument.Parse(await issued.Content.ReadAsStringAsync()).RootElement;
        Assert.True(issued.StatusCode == HttpStatusCode.Created, answer.ToString());
        var (id, token) = (answer.GetProperty("id").GetString()!, answer.GetProperty("token").GetString()!);

        var (exit, stdout, stderr) = await CliProcess.RunAsync("nodes", "withdraw-join-token", id, "--url", admin.BaseAddress!.ToString(), "--admin-token", AdminToken);
        Assert.True(exit == 0, stdout + stderr);
        Assert.Contains(id, stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(token, stdout + stderr, StringComparison.Ordinal);

        var nodePort = Sovereign.Tests.LoopbackPorts.Unused();
        var node = StartServe(nodePort, ["--role", "node", "--node-id", "node-th-withdrawn", "--join-token", token, "--join-url", admin.BaseAddress!.ToString(),
            "--model", $"{TestModels.Stories260K}=stories", "--threads", "1", "--ctx-size", "256", "--parallel", "2"], new());
        using (var stopped = new CancellationTokenSource(TimeSpan.FromMinutes(3)))
        {
            await node.Process.WaitForExitAsync(stopped.Token);
        }

        var output = Snapshot(node.Output);
        Assert.True(node.Process.ExitCode == 2, output);
        Assert.Contains("failed with 401", output, StringComparison.Ordinal);
        Assert.Contains("invalid_join_token", output, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_root, "member-" + nodePort.ToString(CultureInfo.InvariantCulture), "node-credential.json")), output);
        using (var nodes = await admin.GetAsync("/admin/v1/nodes"))
        {
            Assert.DoesNotContain("node-th-withdrawn", await nodes.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Withdrawn once: the second withdrawal changes nothing, and the token stays refused.
        (exit, stdout, stderr) = await CliProcess.RunAsync("nodes", "withdraw-join-token", id, "--url", admin.BaseAddress!.ToString(), "--admin-token", AdminToken, "--json");
        Assert.True(exit == 0, stdout + stderr);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("withdrawn").GetBoolean(), stdout);
        using var anonymous = new HttpClient { BaseAddress = admin.BaseAddress };
        using var refused = await anonymous.PostAsJsonAsync("/cluster/v1/join", new { token, node_id = "node-th-withdrawn", url = "http://127.0.0.1:9" });
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
    }

    /// <summary>A throwaway redis-server and a TH gateway on the shared PostgreSQL; the operator's client, once ready.</summary>
    private async Task<HttpClient> StartGatewayAsync()
    {
        StartProcess("/usr/bin/redis-server", ["--port", _redisPort.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _root], new());
        var gatewayPort = Sovereign.Tests.LoopbackPorts.Unused();
        var gateway = StartServe(gatewayPort, ["--role", "gateway"], new()
        {
            ["Sovereign__Jurisdiction"] = "TH",
            ["Sovereign__NodeId"] = "gateway-th",
            ["Sovereign__Cluster__Redis"] = $"127.0.0.1:{_redisPort}",
            ["Sovereign__Cluster__ClusterId"] = "join-taken-" + Path.GetFileName(_root),
            ["Sovereign__Cluster__Secret"] = "join-taken-secret",
            ["Sovereign__Cluster__InsecureTransport"] = "true",
            ["Sovereign__Database__Provider"] = "PostgreSql",
            ["Sovereign__Database__ConnectionString"] = postgres.ConnectionString,
        });
        var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gatewayPort}") };
        admin.DefaultRequestHeaders.Authorization = new("Bearer", AdminToken);
        await WaitForAsync(async () => await ReadyAsync(admin) ? "ready" : null, gateway);
        return admin;
    }

    private static async Task<string> IssueTokenAsync(HttpClient admin)
    {
        using var response = await admin.PostAsJsonAsync("/admin/v1/nodes/join-tokens", new { jurisdiction = "TH" });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("token").GetString()!;
    }

    private static async Task<bool> ReadyAsync(HttpClient client)
    {
        try
        {
            using var response = await client.GetAsync("/ready");
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    private (Process Process, StringBuilder Output) StartServe(int port, string[] args, Dictionary<string, string> environment)
    {
        var data = Path.Combine(_root, "member-" + port.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(data);
        environment["Sovereign__AdminToken"] = AdminToken;
        environment["Sovereign__BuiltInEmbeddings"] = "false";
        environment["OMP_WAIT_POLICY"] = "PASSIVE";
        return StartProcess("dotnet", [Path.Combine(AppContext.BaseDirectory, "sovereign.dll"), "serve", .. args, "--urls", $"http://127.0.0.1:{port}", "--data-dir", data], environment);
    }

    private (Process Process, StringBuilder Output) StartProcess(string file, string[] args, Dictionary<string, string> environment)
    {
        var start = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        var output = new StringBuilder();
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _started.Add((process, output));
        return (process, output);
    }

    /// <summary>Polls <paramref name="probe"/> until it returns a value; fails with the member's output if it exits or 3 minutes pass.</summary>
    private static async Task<string> WaitForAsync(Func<Task<string?>> probe, (Process Process, StringBuilder Output) member)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        while (!timeout.IsCancellationRequested)
        {
            Assert.False(member.Process.HasExited, $"the member exited:\n{Snapshot(member.Output)}");
            if (await probe() is { } found)
            {
                return found;
            }

            await Task.Delay(250);
        }

        Assert.Fail($"timed out:\n{Snapshot(member.Output)}");
        return "";
    }

    private static string Snapshot(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }
}
