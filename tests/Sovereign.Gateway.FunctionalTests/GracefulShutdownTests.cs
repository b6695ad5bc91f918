using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>sovereign serve</c> stopped with SIGTERM (systemd, Kubernetes, docker stop) while a request is in flight: the
/// request finishes, its outcome and usage are recorded, and the log ends under a signed checkpoint. The engine is
/// held by the test, so the request is in flight for as long as the test says.
/// </summary>
public sealed class GracefulShutdownTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-sigterm-").FullName;
    private readonly TaskCompletionSource _received = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private WebApplication _engine = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        _engine = builder.Build();
        _engine.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            _received.TrySetResult();
            await _release.Task;
            await context.Response.WriteAsJsonAsync(new
            {
                id = "chatcmpl-held",
                @object = "chat.completion",
                created = 1,
                model = "held",
                choices = new[] { new { index = 0, message = new { role = "assistant", content = "done" }, finish_reason = "stop" } },
                usage = new { prompt_tokens = 5, completion_tokens = 1, total_tokens = 6 },
            });
        });
        await _engine.StartAsync();
    }

    public async Task DisposeAsync()
    {
        _release.TrySetResult();
        await _engine.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task Sigterm_InFlightRequestFinishesAndLeavesItsEvidence()
    {
        // Serve says it is draining while the request is held (it printed only the host's "Application is shutting
        // down..." and then nothing until the requests in flight had finished), and says when it has stopped.
        var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var served = await ServeProcess.StartAsync(["--engine", _engine.Urls.First(), "--engine-model", "held", "--data-dir", _data], output: line =>
        {
            if (line.StartsWith("sovereign serve: stopping: requests in flight have up to 30 s to finish", StringComparison.Ordinal))
            {
                stopping.TrySetResult();
            }
            else if (line == "sovereign serve: stopped.")
            {
                stopped.TrySetResult();
            }
        });
        var server = served.Process;
        try
        {
            using var client = new HttpClient { BaseAddress = served.BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
            var answer = client.PostAsync("/v1/chat/completions", new StringContent(
                """{"model":"held","messages":[{"role":"user","content":"Hello"}]}""", Encoding.UTF8, "application/json"));
            await _received.Task.WaitAsync(TimeSpan.FromMinutes(1));

            using (var term = Process.Start("kill", ["-TERM", server.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await term.WaitForExitAsync();
            }

            // System.CommandLine ended the process 2 s after the signal, whatever the host was still finishing.
            await Task.WhenAny(server.WaitForExitAsync(), Task.Delay(TimeSpan.FromSeconds(5)));
            Assert.False(server.HasExited, "serve exited with a request in flight");
            await stopping.Task.WaitAsync(TimeSpan.FromMinutes(1));
            Assert.False(stopped.Task.IsCompleted, "serve said it had stopped with a request in flight");
            _release.TrySetResult();

            using var response = await answer;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var requestId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
            await ServeProcess.WaitForExitAsync(server, served.Tail);
            Assert.Equal(0, server.ExitCode);
            await stopped.Task.WaitAsync(TimeSpan.FromMinutes(1));

            using var connection = new SqliteConnection($"Data Source={Path.Combine(_data, "sovereign.db")};Mode=ReadOnly;Pooling=False");
            connection.Open();
            Assert.Equal(["inference.allowed", "inference.completed"], Strings(connection, "SELECT action FROM audit_entries WHERE details LIKE $id ORDER BY seq", requestId));
            Assert.Equal(["completed"], Strings(connection, "SELECT CASE outcome WHEN 0 THEN 'completed' ELSE 'other' END FROM metering_usage WHERE request_id = $id", requestId));
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true);
            }
        }

        // The shutdown signed the head: every entry is covered.
        var (exit, stdout, stderr) = await CliProcess.RunAsync("audit", "verify", "--data-dir", _data);
        Assert.True(exit == 0, stdout + stderr);
        Assert.Contains("uncovered: 0", stdout, StringComparison.Ordinal);
    }

    private static List<string> Strings(SqliteConnection connection, string sql, string requestId)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$id", sql.Contains("LIKE", StringComparison.Ordinal) ? $"%\"{requestId}\"%" : requestId);
        using var reader = command.ExecuteReader();
        var values = new List<string>();
        while (reader.Read())
        {
            values.Add(reader.GetString(0));
        }

        return values;
    }
}
