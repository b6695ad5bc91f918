using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Storage;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// Redis restarted empty (no persistence): Orleans never creates the membership table again while its members run,
/// so every request was answered 503 until someone restarted each member, and nothing said why but Orleans' own
/// warning. Now a member notices (event 3050), answers <c>/ready</c> 503 <c>membership_lost</c>, says so in
/// <c>cluster status</c>, and stops with exit 75 for its supervisor to start it again; started again it creates the
/// table and serves. A real <c>sovereign serve --role gateway</c> over a throwaway redis-server and PostgreSQL.
/// </summary>
public sealed class MembershipLostTests(PostgreSqlFixture postgres) : IClassFixture<PostgreSqlFixture>, IDisposable
{
    private const string AdminToken = "membership-admin";
    private readonly string _root = Directory.CreateTempSubdirectory("sovereign-membership-lost-").FullName;
    private readonly int _redisPort = Sovereign.Tests.LoopbackPorts.Unused();
    private readonly int _port = Sovereign.Tests.LoopbackPorts.Unused();
    private Process? _redis;

    public void Dispose()
    {
        StopRedis();
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task RedisRestartedEmpty_MemberSaysSo_StopsWith75_AndStartedAgainServes()
    {
        StartRedis();
        var (member, output) = Start();
        try
        {
            await WaitReadyAsync(member, output);
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_port}") };
            client.DefaultRequestHeaders.Authorization = new("Bearer", AdminToken);

            // Redis restarts without its data: the table's hash is gone.
            StopRedis();
            StartRedis();

            var ready = await WaitForAsync(async () =>
            {
                using var response = await client.GetAsync("/ready");
                var body = await response.Content.ReadAsStringAsync();
                return response.StatusCode == HttpStatusCode.ServiceUnavailable && body.Contains("membership_lost", StringComparison.Ordinal) ? body : null;
            }, member, output);
            Assert.Contains("membership table is gone", JsonDocument.Parse(ready).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);

            using (var status = await client.GetAsync("/admin/v1/cluster"))
            {
                var body = await status.Content.ReadAsStringAsync();
                Assert.True(status.StatusCode == HttpStatusCode.OK, body);
                Assert.Contains("membership table (Sovereign:Cluster:Redis) is gone", JsonDocument.Parse(body).RootElement.GetProperty("membership_error").GetString(), StringComparison.Ordinal);
            }

            using (var exited = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
            {
                await member.WaitForExitAsync(exited.Token);
            }

            Assert.True(member.ExitCode == 75, $"exit {member.ExitCode}:\n{Snapshot(output)}");
            Assert.Contains("[3050]", output.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            Kill(member);
        }

        // Its supervisor starts it again: it creates the table, joins it and serves.
        var (again, againOutput) = Start();
        try
        {
            await WaitReadyAsync(again, againOutput);
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_port}") };
            client.DefaultRequestHeaders.Authorization = new("Bearer", AdminToken);
            // The grain directory (Redis too) may still name the stopped process for the registry's grain for a few
            // seconds: the status answers 503 cluster_unavailable until that entry is replaced.
            var status = JsonDocument.Parse(await WaitForAsync(async () =>
            {
                using var response = await client.GetAsync("/admin/v1/cluster");
                return response.IsSuccessStatusCode ? await response.Content.ReadAsStringAsync() : null;
            }, again, againOutput)).RootElement;
            Assert.False(status.TryGetProperty("membership_error", out var error) && error.ValueKind == JsonValueKind.String, status.ToString());
            Assert.Contains(status.GetProperty("members").EnumerateArray(),
                m => m.GetProperty("name").GetString() == "gateway/gateway-solo" && m.GetProperty("status").GetString() == "active");

            // The stopped process is in no membership table now, never declared dead: its audit_instances row stayed
            // unclosed for ever (so would the requests it left open). Its heartbeats stopped, so the new one closes it.
            var closedBy = await WaitForAsync(async () =>
            {
                await using var connection = new Npgsql.NpgsqlConnection(postgres.ConnectionString);
                await connection.OpenAsync();
                await using var first = new Npgsql.NpgsqlCommand(
                    "SELECT closer FROM audit_instances WHERE gateway = 'gateway-solo' AND closed_at_ms IS NOT NULL ORDER BY started_at_ms LIMIT 1", connection);
                return await first.ExecuteScalarAsync() as string;
            }, again, againOutput);
            Assert.Contains("@", closedBy, StringComparison.Ordinal); // the new process's silo address claimed it
            // The closing is logged after its row commits, and the output is read from the process's pipe as it comes.
            var logged = await WaitForAsync(() => Task.FromResult(Snapshot(againOutput) is var text && text.Contains("[4214]", StringComparison.Ordinal) ? text : null), again, againOutput);
            Assert.DoesNotContain("[4216]", logged, StringComparison.Ordinal);
        }
        finally
        {
            Kill(again);
        }
    }

    private (Process Process, StringBuilder Output) Start()
    {
        var data = Path.Combine(_root, "gateway");
        Directory.CreateDirectory(data);
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "sovereign.dll"), "serve", "--role", "gateway", "--urls", $"http://127.0.0.1:{_port}", "--data-dir", data })
        {
            start.ArgumentList.Add(arg);
        }

        var environment = start.Environment;
        environment["Sovereign__AdminToken"] = AdminToken;
        environment["Sovereign__BuiltInEmbeddings"] = "false";
        environment["Sovereign__Jurisdiction"] = "TH";
        environment["Sovereign__NodeId"] = "gateway-solo";
        environment["Sovereign__Database__Provider"] = "PostgreSql";
        environment["Sovereign__Database__ConnectionString"] = postgres.ConnectionString;
        environment["Sovereign__Cluster__Redis"] = $"127.0.0.1:{_redisPort}";
        environment["Sovereign__Cluster__ClusterId"] = "membership-" + Path.GetFileName(_root);
        environment["Sovereign__Cluster__Secret"] = "membership-secret";
        environment["Sovereign__Cluster__InsecureTransport"] = "true";
        environment["Sovereign__Cluster__MembershipLostExitSeconds"] = "2";
        environment["Sovereign__Cluster__InterruptedGraceSeconds"] = "1"; // an unlisted process: 15 s without a heartbeat
        var output = new StringBuilder();
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (process, output);
    }

    private async Task WaitReadyAsync(Process member, StringBuilder output) =>
        await WaitForAsync(async () =>
        {
            using var probe = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_port}") };
            try
            {
                return (await probe.GetAsync("/ready")).IsSuccessStatusCode ? "ready" : null;
            }
            catch (HttpRequestException)
            {
                return null;
            }
        }, member, output);

    /// <summary>Polls <paramref name="probe"/> until it returns a value; fails with the member's output if it exits or 2 minutes pass.</summary>
    private static string Snapshot(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    private static async Task<string> WaitForAsync(Func<Task<string?>> probe, Process member, StringBuilder output)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        while (!timeout.IsCancellationRequested)
        {
            Assert.False(member.HasExited, $"the member exited ({(member.HasExited ? member.ExitCode : 0)}):\n{Snapshot(output)}");
            if (await probe() is { } found)
            {
                return found;
            }

            await Task.Delay(200);
        }

        Assert.Fail($"timed out:\n{Snapshot(output)}");
        return "";
    }

    private static void Kill(Process process)
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }

        process.Dispose();
    }

    private void StartRedis() => _redis = Sovereign.Tests.RedisServerProcess.Start(_redisPort, _root);

    private void StopRedis()
    {
        if (_redis is { HasExited: false })
        {
            _redis.Kill(entireProcessTree: true);
            _redis.WaitForExit();
        }

        _redis?.Dispose();
        _redis = null;
    }
}
