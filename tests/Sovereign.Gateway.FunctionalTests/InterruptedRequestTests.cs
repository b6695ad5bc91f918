using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.Data.Sqlite;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>sovereign serve</c> killed with SIGKILL in the middle of a stream: the request's decision entry had no outcome
/// forever. The next start closes it (<c>inference.interrupted</c>, and a usage record at no cost) before it
/// listens, once. The engine holds the stream after its first chunk until the test is done, so the kill always
/// lands mid-stream.
/// </summary>
public sealed class InterruptedRequestTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-sigkill-").FullName;
    private int _port;
    private HeldEngine _engine = null!;

    public async Task InitializeAsync() => _engine = await HeldEngine.StartAsync();

    public async Task DisposeAsync()
    {
        await _engine.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task KillNineMidStream_NextStartClosesTheDecisionOnce()
    {
        var requestId = await KillMidStreamAsync();

        Assert.Equal(["inference.allowed"], Strings("SELECT action FROM audit_entries WHERE details LIKE $id ORDER BY seq", requestId));

        await RunAndStopAsync();
        Assert.Equal(["inference.allowed", "inference.interrupted"], Strings("SELECT action FROM audit_entries WHERE details LIKE $id ORDER BY seq", requestId));
        var interrupted = Strings("SELECT details || '|' || coalesce(prompt_tokens, 'null') || '|' || coalesce(completion_tokens, 'null') FROM audit_entries WHERE action = 'inference.interrupted'", requestId).Single();
        Assert.Contains("\"outcome\":\"interrupted\"", interrupted, StringComparison.Ordinal);
        Assert.Contains("unknown", interrupted, StringComparison.Ordinal);
        Assert.EndsWith("|null|null", interrupted, StringComparison.Ordinal);
        Assert.Equal(["3|interrupted|0|0|0"], Strings(
            "SELECT outcome || '|' || refusal_code || '|' || cost_micros || '|' || prompt_tokens || '|' || completion_tokens FROM metering_usage WHERE request_id = $id", requestId));

        // A second start finds nothing left open and adds nothing.
        var entries = Strings("SELECT count(*) FROM audit_entries WHERE action <> 'x'", requestId).Single();
        await RunAndStopAsync();
        Assert.Single(Strings("SELECT seq FROM audit_entries WHERE action = 'inference.interrupted'", requestId));
        Assert.Equal(entries, Strings("SELECT count(*) FROM audit_entries WHERE action <> 'x'", requestId).Single());

        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _data);
        Assert.True(exit == 0, stdout + stderr);

        // The auditor is told it was closed as interrupted, not left open.
        Assert.Contains("Allowed requests: 1 (", stdout, StringComparison.Ordinal);
        Assert.Contains("; completed: 0; closed as interrupted (their process stopped first: tokens unknown, nothing billed): 1; open (", stdout, StringComparison.Ordinal);
        Assert.Contains("not closed yet): 0.", stdout, StringComparison.Ordinal);
    }

    /// <summary>
    /// A machine killed mid-request is moved to PostgreSQL as it is: the cluster's gateways close only the open
    /// decisions of cluster processes, so its request would have stayed open in the moved log for ever. The copy says
    /// so and what to do (start it once: it closes them); after that it goes on (here to a PostgreSQL nobody listens at).
    /// </summary>
    [Fact]
    public async Task DatabaseCopy_OfAMachineKilledMidRequest_IsRefused_UntilAStartClosesItsOpenRequest()
    {
        await KillMidStreamAsync();
        const string Nowhere = "postgres:Host=127.0.0.1;Port=1;Username=sovereign;Database=sovereign";

        var (exit, _, stderr) = await CliProcess.RunAsync("database", "copy", "--data-dir", _data, "--to", Nowhere);
        Assert.True(exit == 1, $"{exit} {stderr}");
        Assert.Contains("1 request(s) it allowed have no outcome", stderr, StringComparison.Ordinal);
        Assert.Contains("Start it once on this data directory and stop it", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_data, "sovereign.db.moved")));

        await RunAndStopAsync();
        (exit, _, stderr) = await CliProcess.RunAsync("database", "copy", "--data-dir", _data, "--to", Nowhere);
        Assert.True(exit == 4, $"{exit} {stderr}");
        Assert.Contains("cannot reach PostgreSQL", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// The client had the body's id (a Responses stream's <c>resp_...</c>, this gateway's wherever the work runs) when
    /// the server was killed: the <c>inference.interrupted</c> entry names it, from the decision that named it before
    /// any content left. Before, only a completed request's outcome named the id.
    /// </summary>
    [Fact]
    public async Task KillNineMidResponsesStream_TheInterruptedEntryNamesTheIdTheClientHad()
    {
        string? seen = null;
        var requestId = await KillMidStreamAsync("/v1/responses", """{"model":"held","stream":true,"input":"Hello"}""", line =>
            seen = System.Text.Json.JsonDocument.Parse(line["data: ".Length..]).RootElement.GetProperty("response").GetProperty("id").GetString());
        Assert.StartsWith("resp_", seen, StringComparison.Ordinal);

        await RunAndStopAsync();
        var interrupted = Strings("SELECT details FROM audit_entries WHERE action = 'inference.interrupted' AND details LIKE $id", requestId).Single();
        Assert.Equal(seen, System.Text.Json.JsonDocument.Parse(interrupted).RootElement.GetProperty("response_id").GetString());
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _data);
        Assert.True(exit == 0, stdout + stderr);
    }

    /// <summary>Starts serve, streams one request and kills the server (SIGKILL) after its first chunk; the request's id.</summary>
    private Task<string> KillMidStreamAsync() =>
        KillMidStreamAsync("/v1/chat/completions", """{"model":"held","stream":true,"messages":[{"role":"user","content":"Hello"}]}""", _ => { });

    /// <summary>As above, on <paramref name="path"/>; <paramref name="firstData"/> is given the first <c>data:</c> line the client read.</summary>
    private async Task<string> KillMidStreamAsync(string path, string body, Action<string> firstData)
    {
        string requestId;
        using (var server = await StartServerAsync())
        {
            try
            {
                using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_port}"), Timeout = TimeSpan.FromMinutes(2) };
                using var request = new HttpRequestMessage(HttpMethod.Post, path)
                {
                    Content = new StringContent(body, Encoding.UTF8, "application/json"),
                };
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                requestId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
                var line = await reader.ReadLineAsync();
                while (line is not null && line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    line = await reader.ReadLineAsync(); // a Responses event's name; its data follows
                }

                Assert.StartsWith("data: ", line);
                firstData(line!);

                // The first chunk reached the client: the request is mid-stream, its decision committed.
                server.Kill();
                using var exited = new CancellationTokenSource(TimeSpan.FromMinutes(1));
                await server.WaitForExitAsync(exited.Token);
            }
            finally
            {
                if (!server.HasExited)
                {
                    server.Kill(entireProcessTree: true);
                }
            }
        }

        return requestId;
    }

    /// <summary>Starts serve, waits until it is ready, and stops it with SIGTERM (which ends the log under a checkpoint).</summary>
    private async Task RunAndStopAsync()
    {
        using var server = await StartServerAsync();
        await ServeProcess.StopAsync(server);
    }

    private List<string> Strings(string sql, string requestId)
    {
        using var connection = new SqliteConnection($"Data Source={Path.Combine(_data, "sovereign.db")};Mode=ReadOnly;Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$id", sql.Contains("LIKE", StringComparison.Ordinal) ? $"%\"{requestId}\"%" : requestId);
        using var reader = command.ExecuteReader();
        var values = new List<string>();
        while (reader.Read())
        {
            values.Add(Convert.ToString(reader.GetValue(0), CultureInfo.InvariantCulture)!);
        }

        return values;
    }

    private async Task<Process> StartServerAsync()
    {
        var served = await ServeProcess.StartAsync(_data, _engine.BaseUrl, "held");
        _port = served.Port;
        return served.Process;
    }
}
