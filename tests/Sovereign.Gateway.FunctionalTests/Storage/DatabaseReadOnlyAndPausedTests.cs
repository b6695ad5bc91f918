using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

using static Sovereign.Gateway.FunctionalTests.Storage.ServerProcessHttp;

namespace Sovereign.Gateway.FunctionalTests.Storage;

/// <summary>
/// PostgreSQL failing in the two ways a stop does not show (explorer30, a real cluster under load): a server that
/// answers but takes no writes (a hot standby after a failover, <c>default_transaction_read_only</c> for maintenance),
/// and one that takes connections but answers nothing (paused, a hung host). Each class has its own PostgreSQL
/// server: the tests change its settings and freeze it.
/// </summary>
public sealed class DatabaseReadOnlyAndPausedTests(PostgreSqlFixture postgres) : IClassFixture<PostgreSqlFixture>, IDisposable
{
    private const string AdminToken = "database-read-only-admin-token";
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-db-read-only-").FullName;
    private readonly ConcurrentQueue<string> _output = new();

    public void Dispose() => Directory.Delete(_data, recursive: true);

    /// <summary>
    /// Read-only PostgreSQL: every request was refused 503 audit_unavailable (right), but <c>/ready</c> said 200 ready,
    /// because its probes (<c>SELECT 1</c>, a transaction id) succeed on a read-only server, and each probe ended the
    /// outage the last refusal began (4160 and 4161 over and over); an admin write (a key, a tenant) was a 500
    /// internal_error, SQLSTATE 25006 not being a "transient" error to the driver. Now /ready is 503 naming the cause,
    /// admin writes are 503 storage_unavailable with Retry-After, and it all comes back by itself.
    /// </summary>
    [Fact]
    public async Task PostgreSqlReadOnly_ReadyIsNotReady_AdminWritesAre503NotA500_AndItRecoversWithExactMoney()
    {
        var (server, port) = await StartOnOwnDatabaseAsync(connectionOptions: "");
        try
        {
            using var http = Admin(port);
            var key = await TenantWithBudgetAsync(http, "stories");
            using var tenant = Tenant(port, key);
            using (var served = await tenant.PostAsync("/v1/chat/completions", StoriesChat()))
            {
                Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            }

            await postgres.SetServerSettingAsync("default_transaction_read_only", "on");
            using (var refused = await tenant.PostAsync("/v1/chat/completions", StoriesChat()))
            {
                await AssertUnavailableAsync(refused, "audit_unavailable", "storage_unavailable");
            }

            using (var key2 = await http.PostAsync("/admin/v1/tenants/t1/keys", Json(new { name = "k2" })))
            {
                await AssertUnavailableAsync(key2, "storage_unavailable");
            }

            using (var tenant2 = await http.PostAsync("/admin/v1/tenants", Json(new { id = "t2", plan = "standard", policy = new { allowed_jurisdictions = new[] { "DE" } } })))
            {
                await AssertUnavailableAsync(tenant2, "storage_unavailable");
            }

            // Taken out of rotation, with the cause, and it stays out while the server refuses writes.
            for (var i = 0; i < 2; i++)
            {
                using var ready = await http.GetAsync("/ready");
                var body = await ready.Content.ReadAsStringAsync();
                Assert.True(ready.StatusCode == HttpStatusCode.ServiceUnavailable, $"/ready answered {(int)ready.StatusCode} while PostgreSQL took no writes: {body}");
                Assert.Equal("database_unavailable", JsonDocument.Parse(body).RootElement.GetProperty("status").GetString());
                // The cause: the refused request's SQLSTATE 25006 ("read-only transaction"), or the probe's transaction_read_only.
                Assert.Matches("read[-_]only", JsonDocument.Parse(body).RootElement.GetProperty("error").GetString());
            }

            Assert.Equal(0, Lines("DatabaseHealth[4161]"));

            // Writable again: back by itself, no restart.
            await postgres.SetServerSettingAsync("default_transaction_read_only", null);
            var (status, text) = await ReadyUntilAsync(http, HttpStatusCode.OK);
            Assert.True(status == HttpStatusCode.OK, $"/ready answered {(int)status} after PostgreSQL took writes again: {text}");
            using (var again = await tenant.PostAsync("/v1/chat/completions", StoriesChat()))
            {
                Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            }

            await SendAsync(http, HttpMethod.Post, "/admin/v1/tenants/t1/keys", new { name = "k2" }, 201);

            // Money exact: the two served requests are billed, the refused one is not, nothing stays reserved.
            var budget = (await SendAsync(http, HttpMethod.Get, "/admin/v1/tenants/t1/limits", null, 200)).GetProperty("budgets")[0];
            var usage = (await SendAsync(http, HttpMethod.Get, "/admin/v1/usage?tenant=t1&group_by=tenant", null, 200)).GetProperty("data")[0];
            Assert.Equal(2, usage.GetProperty("completed").GetInt32());
            Assert.Equal(usage.GetProperty("cost").GetDecimal(), budget.GetProperty("settled").GetDecimal());
            Assert.Equal(0m, budget.GetProperty("reserved").GetDecimal());
            var verified = await SendAsync(http, HttpMethod.Post, "/admin/v1/audit/verify", null, 200);
            Assert.True(verified.GetProperty("valid").GetBoolean(), verified.ToString());
        }
        finally
        {
            await postgres.SetServerSettingAsync("default_transaction_read_only", null);
            await ServeProcess.StopAsync(server);
        }
    }

    /// <summary>
    /// A paused PostgreSQL (SIGSTOP: the connection is taken, nothing answers): <c>/ready</c> waited for the driver
    /// until its Command Timeout (30 s by default; 120 s here), so a load balancer's probe timed out instead of reading
    /// 503, though the guide says it answers within 3 s; and every request waited for the driver's timeouts, several
    /// times over (more than two minutes with Command Timeout=5 in a cluster), before its 503. Now /ready answers 503
    /// database_unavailable within its probe timeout while the server stays paused, a request is then refused 503
    /// audit_unavailable at once, and both are served again once it goes on, without a restart, the money exact.
    /// </summary>
    [Fact]
    public async Task PostgreSqlPaused_ReadyAnswers503_AndRequestsAre503AtOnce_WhileItIsPaused_AndServedWhenItGoesOn()
    {
        var (server, port) = await StartOnOwnDatabaseAsync(connectionOptions: ";Command Timeout=120");
        try
        {
            using var http = Admin(port);
            var key = await TenantWithBudgetAsync(http, "stories");
            using (var served = await Tenant(port, key).PostAsync("/v1/chat/completions", StoriesChat()))
            {
                Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            }

            await postgres.PauseServerAsync();
            try
            {
                // The client's bound (20 s) is well under the driver's (120 s) and well over the probe's (3 s).
                using var probe = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(20) };
                using var ready = await probe.GetAsync("/ready");
                var body = await ready.Content.ReadAsStringAsync();
                Assert.True(ready.StatusCode == HttpStatusCode.ServiceUnavailable, $"/ready answered {(int)ready.StatusCode} while PostgreSQL was paused: {body}");
                Assert.Equal("database_unavailable", JsonDocument.Parse(body).RootElement.GetProperty("status").GetString());
                Assert.Equal(1, await LoggedAsync("DatabaseHealth[4160]"));

                // Known not to answer: a request is refused at once (the same client bound), streamed or not.
                using var tenant = new HttpClient { BaseAddress = probe.BaseAddress, Timeout = TimeSpan.FromSeconds(20) };
                tenant.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
                using (var refused = await tenant.PostAsync("/v1/chat/completions", StoriesChat()))
                {
                    await AssertUnavailableAsync(refused, "audit_unavailable");
                }

                using (var refused = await tenant.PostAsync("/v1/chat/completions", Json(new { model = "stories", messages = new[] { new { role = "user", content = "Once" } }, max_tokens = 4, stream = true })))
                {
                    await AssertUnavailableAsync(refused, "audit_unavailable");
                }
            }
            finally
            {
                await postgres.ResumeServerAsync();
            }

            var (status, text) = await ReadyUntilAsync(http, HttpStatusCode.OK);
            Assert.True(status == HttpStatusCode.OK, $"/ready answered {(int)status} after PostgreSQL went on: {text}");
            using (var again = await Tenant(port, key).PostAsync("/v1/chat/completions", StoriesChat()))
            {
                Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            }

            // The refused requests were billed nothing and hold nothing; the log verifies.
            var budget = (await SendAsync(http, HttpMethod.Get, "/admin/v1/tenants/t1/limits", null, 200)).GetProperty("budgets")[0];
            var usage = (await SendAsync(http, HttpMethod.Get, "/admin/v1/usage?tenant=t1&group_by=tenant", null, 200)).GetProperty("data")[0];
            Assert.Equal(2, usage.GetProperty("completed").GetInt32());
            Assert.Equal(usage.GetProperty("cost").GetDecimal(), budget.GetProperty("settled").GetDecimal());
            Assert.Equal(0m, budget.GetProperty("reserved").GetDecimal());
            var verified = await SendAsync(http, HttpMethod.Post, "/admin/v1/audit/verify", null, 200);
            Assert.True(verified.GetProperty("valid").GetBoolean(), verified.ToString());
        }
        finally
        {
            await postgres.ResumeServerAsync();
            await ServeProcess.StopAsync(server);
        }
    }

    private static async Task AssertUnavailableAsync(HttpResponseMessage response, params string[] codes)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)response.StatusCode}: {text}");
        Assert.NotNull(response.Headers.RetryAfter);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.Contains(error.GetProperty("code").GetString(), codes);
    }

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json");

    private static HttpClient Admin(int port)
    {
        var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        return http;
    }

    private static HttpClient Tenant(int port, string key)
    {
        var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return http;
    }

    /// <summary>A server with the stories model on this test's own PostgreSQL database, its output kept for <see cref="Lines"/>.</summary>
    private async Task<(System.Diagnostics.Process Server, int Port)> StartOnOwnDatabaseAsync(string connectionOptions)
    {
        var name = "readonly_" + Guid.NewGuid().ToString("N")[..8];
        await using (var admin = new Npgsql.NpgsqlConnection(new Npgsql.NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Pooling = false }.ConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new Npgsql.NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        var connectionString = new Npgsql.NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = name, MaxPoolSize = 8 }.ConnectionString + connectionOptions;
        var server = await ServeProcess.StartAsync(["--model", $"{TestModels.Stories260K}=stories", "--threads", "1", "--ctx-size", "256", "--parallel", "2", "--data-dir", _data],
            new Dictionary<string, string>
            {
                ["Sovereign__Database__Provider"] = "PostgreSql",
                ["Sovereign__Database__ConnectionString"] = connectionString,
                ["Sovereign__AdminToken"] = AdminToken,
            },
            _output.Enqueue);
        var port = server.Port;
        return (server.Process, port);
    }

    private int Lines(string marker) => _output.Count(line => line.Contains(marker, StringComparison.Ordinal));

    // The server's log reaches this process through a pipe, after the answer it preceded: wait on the line (bounded).
    private async Task<int> LoggedAsync(string marker)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (Lines(marker) == 0 && !bound.IsCancellationRequested)
        {
            await Task.Delay(50, CancellationToken.None);
        }

        return Lines(marker);
    }

    // Waits on the condition, not a duration: /ready is asked until it answers `until` (bounded, for a broken build).
    private static async Task<(HttpStatusCode Status, string Body)> ReadyUntilAsync(HttpClient http, HttpStatusCode until)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        while (true)
        {
            using var ready = await http.GetAsync("/ready", CancellationToken.None);
            var body = await ready.Content.ReadAsStringAsync(CancellationToken.None);
            if (ready.StatusCode == until || bound.IsCancellationRequested)
            {
                return (ready.StatusCode, body);
            }

            await Task.Delay(100, CancellationToken.None);
        }
    }
}
