using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// A real <c>sovereign serve</c> process is killed with SIGKILL under load and restarted: every request that
/// completed to its client is in the ledger exactly once, and the invoice reconciles with the records.
/// </summary>
public sealed class CrashTests : IDisposable
{
    private const string AdminToken = "crash-admin-token";
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-crash-").FullName;
    private int _port;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task KillNineUnderLoad_EveryCompletedRequestIsInTheLedgerExactlyOnce()
    {
        var server = await StartServerAsync();
        string tenant = "crash-tenant", key;
        var completed = new ConcurrentBag<string>();
        try
        {
            using var admin = Client(AdminToken);
            await Expect(admin.PutAsJsonAsync("/admin/v1/plans/standard", new { currency = "EUR" }), 200);
            await Expect(admin.PostAsJsonAsync("/admin/v1/plans/standard/prices", new { model = "stories", input_per_million = 1000, output_per_million = 3000 }), 201);
            await Expect(admin.PostAsJsonAsync("/admin/v1/tenants", new { id = tenant, plan = "standard", policy = new { allowed_jurisdictions = new[] { "DE" } } }), 201);
            var created = JsonDocument.Parse(await (await admin.PostAsJsonAsync($"/admin/v1/tenants/{tenant}/keys", new { name = "load" })).Content.ReadAsStringAsync()).RootElement;
            key = created.GetProperty("secret").GetString()!;

            // Eight clients send requests until twenty have completed, then the server is killed mid-load.
            using var enough = new CancellationTokenSource();
            using var client = Client(key);
            var workers = Enumerable.Range(0, 8).Select(async _ =>
            {
                while (!enough.IsCancellationRequested)
                {
                    try
                    {
                        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                            """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}""", Encoding.UTF8, "application/json"), enough.Token);
                        var body = await response.Content.ReadAsStringAsync(enough.Token);
                        if (response.StatusCode == HttpStatusCode.OK && JsonDocument.Parse(body).RootElement.TryGetProperty("usage", out JsonElement _))
                        {
                            completed.Add(response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single());
                            if (completed.Count >= 20)
                            {
                                server.Kill(entireProcessTree: true);
                                await enough.CancelAsync();
                            }
                        }
                    }
                    catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or JsonException)
                    {
                        // In flight when the process died: not completed to its client.
                    }
                }
            }).ToArray();
            await Task.WhenAll(workers).WaitAsync(TimeSpan.FromMinutes(3));
            await server.WaitForExitAsync();
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true);
            }

            server.Dispose();
        }

        Assert.True(completed.Count >= 20);

        // Restart on the same data: recovery must not lose or double anything.
        var restarted = await StartServerAsync();
        try
        {
            var rows = new Dictionary<string, int>();
            var costMicros = 0L;
            using (var connection = new SqliteConnection($"Data Source={Path.Combine(_data, "sovereign.db")};Mode=ReadOnly"))
            {
                connection.Open();
                using var command = connection.CreateCommand();
                command.CommandText = "SELECT request_id, cost_micros, outcome FROM metering_usage WHERE tenant = $tenant";
                command.Parameters.AddWithValue("$tenant", tenant);
                using var reader = command.ExecuteReader();
                while (reader.Read())
                {
                    rows[reader.GetString(0)] = rows.GetValueOrDefault(reader.GetString(0)) + 1;
                    costMicros += reader.GetInt64(1);
                }
            }

            foreach (var id in completed)
            {
                Assert.True(rows.TryGetValue(id, out var count) && count == 1, $"completed request {id} is in the ledger {count} times");
            }

            using var admin = Client(AdminToken);
            var invoice = JsonDocument.Parse(await admin.GetStringAsync($"/admin/v1/tenants/{tenant}/invoice")).RootElement;
            Assert.Equal(costMicros / 1_000_000m, decimal.Parse(invoice.GetProperty("total").GetString()!, CultureInfo.InvariantCulture));
            Assert.Equal(rows.Count, invoice.GetProperty("lines").EnumerateArray().Sum(l => l.GetProperty("requests").GetInt64()));
        }
        finally
        {
            restarted.Kill(entireProcessTree: true);
            await restarted.WaitForExitAsync();
            restarted.Dispose();
        }
    }

    private HttpClient Client(string token)
    {
        var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_port}") };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private async Task<Process> StartServerAsync()
    {
        var served = await ServeProcess.StartAsync(["--model", TestModels.Stories260K + "=stories", "--threads", "1", "--ctx-size", "256", "--data-dir", _data],
            new Dictionary<string, string> { ["Sovereign__AdminToken"] = AdminToken });
        _port = served.Port;
        return served.Process;
    }

    private static async Task Expect(Task<HttpResponseMessage> call, int status)
    {
        using var response = await call;
        Assert.True((int)response.StatusCode == status, await response.Content.ReadAsStringAsync());
    }
}
