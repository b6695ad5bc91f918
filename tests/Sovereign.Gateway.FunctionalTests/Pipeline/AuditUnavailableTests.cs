using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// Fail closed on the evidence: when the audit log's storage refuses to commit, a request whose decision cannot be
/// recorded does not run (503 naming the rule, Retry-After), is billed nothing and holds no money; once the storage
/// is back, requests run again and the chain still verifies.
/// </summary>
public sealed class AuditUnavailableTests : IAsyncLifetime
{
    private const string AdminToken = "audit-down-admin";
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-audit-down-").FullName;
    private WebApplication _app = null!;

    public async Task InitializeAsync()
    {
        _app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, ContextLength = 256, Parallel = 2, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _data,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Jurisdiction"] = "DE",
                ["Sovereign:AdminToken"] = AdminToken,
                ["Sovereign:BuiltInEmbeddings"] = "false",
            },
        }, []);
        await _app.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task AuditStorageDown_RequestsAre503AuditUnavailable_BilledNothing_AndServedAgainOnceItIsBack()
    {
        using var admin = Client(AdminToken);
        await Expect(admin.PutAsJsonAsync("/admin/v1/plans/standard", new { currency = "EUR" }), 200);
        await Expect(admin.PostAsJsonAsync("/admin/v1/plans/standard/prices", new { model = "stories", input_per_million = 1000, output_per_million = 2000 }), 201);
        await Expect(admin.PostAsJsonAsync("/admin/v1/tenants", new { id = "clinic", plan = "standard", policy = new { allowed_jurisdictions = new[] { "DE" } } }), 201);
        await Expect(admin.PutAsJsonAsync("/admin/v1/tenants/clinic/limits", new { budgets = new[] { new { period = "total", amount = 10m } } }), 200);
        var key = (await Json(admin.PostAsJsonAsync("/admin/v1/tenants/clinic/keys", new { name = "k" }))).GetProperty("secret").GetString()!;
        using var client = Client(key);

        var served = await Json(client.PostAsync("/v1/chat/completions", Chat(stream: false)));
        var usage = served.GetProperty("usage");
        var firstCost = (usage.GetProperty("prompt_tokens").GetInt32() * 1000m + usage.GetProperty("completion_tokens").GetInt32() * 2000m) / 1_000_000m;

        // The storage refuses every new audit entry, as a full or failing disk would.
        await ExecuteAsync("CREATE TRIGGER audit_storage_down BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END;");
        var refusedIds = new List<string>();
        foreach (var stream in new[] { false, true })
        {
            using var refused = await client.PostAsync("/v1/chat/completions", Chat(stream));
            var text = await refused.Content.ReadAsStringAsync();
            Assert.True(refused.StatusCode == HttpStatusCode.ServiceUnavailable, text);
            Assert.StartsWith("application/json", refused.Content.Headers.ContentType?.MediaType);
            var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal("audit_unavailable", error.GetProperty("code").GetString());
            Assert.Equal("server_error", error.GetProperty("type").GetString());
            Assert.NotNull(refused.Headers.RetryAfter);
            refusedIds.Add(refused.Headers.GetValues("x-sovereign-audit-id").Single());
        }

        await ExecuteAsync("DROP TRIGGER audit_storage_down;");

        // Refused after admission: recorded with the rule, at no cost, and the reservations were released.
        var ledger = _app.Services.GetRequiredService<UsageLedger>();
        foreach (var id in refusedIds)
        {
            var record = await ledger.GetAsync(id);
            Assert.NotNull(record);
            Assert.Equal(UsageOutcome.Refused, record.Outcome);
            Assert.Equal("audit_unavailable", record.RefusalCode);
            Assert.Equal(0, record.CompletionTokens);
            Assert.Equal(0m, record.Cost);
        }

        var budget = (await Json(admin.GetAsync("/admin/v1/tenants/clinic/limits"))).GetProperty("budgets")[0];
        Assert.Equal(firstCost, budget.GetProperty("settled").GetDecimal());
        Assert.Equal(10m - firstCost, budget.GetProperty("remaining").GetDecimal());

        // The storage is back: served again, and the whole chain verifies.
        await Expect(client.PostAsync("/v1/chat/completions", Chat(stream: false)), 200);
        var verified = await Json(admin.PostAsync("/admin/v1/audit/verify", null));
        Assert.True(verified.GetProperty("valid").GetBoolean(), verified.ToString());
    }

    private static StringContent Chat(bool stream) => new(
        JsonSerializer.Serialize(new { model = "stories", messages = new[] { new { role = "user", content = "Once upon a time" } }, max_tokens = 4, temperature = 0, stream }),
        Encoding.UTF8, "application/json");

    private async Task ExecuteAsync(string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={Path.Combine(_data, "sovereign.db")};Pooling=False");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA busy_timeout=10000; " + sql;
        await command.ExecuteNonQueryAsync();
    }

    private HttpClient Client(string token)
    {
        var client = new HttpClient { BaseAddress = new Uri(_app.Urls.First()) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    private static async Task<JsonElement> Json(Task<HttpResponseMessage> call)
    {
        using var response = await call;
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static async Task Expect(Task<HttpResponseMessage> call, int status)
    {
        using var response = await call;
        Assert.True((int)response.StatusCode == status, await response.Content.ReadAsStringAsync());
    }
}
