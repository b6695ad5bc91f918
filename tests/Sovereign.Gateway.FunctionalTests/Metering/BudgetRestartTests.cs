using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;
using Sovereign.Metering.Ledger;
using Sovereign.Storage;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// A total budget is rebuilt from durable aggregates: after retention purged every raw usage row and the server
/// restarted, the tenant's spend is still there, so the budget still refuses what it cannot pay for.
/// </summary>
public sealed class BudgetRestartTests : IDisposable
{
    private const string AdminToken = "restart-admin-token";
    private const string Body = """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"temperature":0}""";
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-budget-restart-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task TotalBudget_SurvivesRetentionAndARestart()
    {
        string key;
        decimal spent;
        var app = await StartAsync();
        try
        {
            using var admin = Client(app, AdminToken);
            await Expect(admin.PutAsJsonAsync("/admin/v1/plans/standard", new { currency = "EUR" }), 200);
            await Expect(admin.PostAsJsonAsync("/admin/v1/plans/standard/prices", new { model = "stories", input_per_million = 1000, output_per_million = 2000 }), 201);
            await Expect(admin.PostAsJsonAsync("/admin/v1/tenants", new { id = "saver", plan = "standard", policy = new { allowed_jurisdictions = new[] { "EU" } } }), 201);
            key = (await Json(admin.PostAsJsonAsync("/admin/v1/tenants/saver/keys", new { name = "k" }))).GetProperty("secret").GetString()!;

            // Every request costs its maximum (max_tokens is always reached), so 2.5 maxima leave half of one.
            using var client = Client(app, key);
            var usage = (await Json(client.PostAsync("/v1/chat/completions", new StringContent(Body, Encoding.UTF8, "application/json")))).GetProperty("usage");
            Assert.Equal(4, usage.GetProperty("completion_tokens").GetInt32());
            var maxCost = (usage.GetProperty("prompt_tokens").GetInt32() * 1000m + 4 * 2000m) / 1_000_000m;
            await Expect(admin.PutAsJsonAsync("/admin/v1/tenants/saver/limits", new { budgets = new[] { new { period = "total", amount = 3.5m * maxCost } } }), 200);
            await Expect(client.PostAsync("/v1/chat/completions", new StringContent(Body, Encoding.UTF8, "application/json")), 200);
            await Expect(client.PostAsync("/v1/chat/completions", new StringContent(Body, Encoding.UTF8, "application/json")), 200);
            spent = 3 * maxCost;
            var budget = (await Json(admin.GetAsync("/admin/v1/tenants/saver/limits"))).GetProperty("budgets")[0];
            Assert.Equal(spent, budget.GetProperty("settled").GetDecimal());
        }
        finally
        {
            await StopAsync(app);
        }

        // Retention purges every raw row (as it would 90 days later); the aggregates stay.
        var database = SqlDatabase.Sqlite(Path.Combine(_data, "sovereign.db"));
        await using (var ledger = await UsageLedger.OpenAsync(database))
        {
            Assert.True(await ledger.PurgeAsync(DateTimeOffset.UtcNow) >= 3);
        }

        app = await StartAsync();
        try
        {
            using var admin = Client(app, AdminToken);
            var budget = (await Json(admin.GetAsync("/admin/v1/tenants/saver/limits"))).GetProperty("budgets")[0];
            Assert.Equal("EUR", budget.GetProperty("currency").GetString());
            Assert.Equal(spent, budget.GetProperty("settled").GetDecimal());
            Assert.Equal(spent / 6, budget.GetProperty("remaining").GetDecimal());

            using var client = Client(app, key);
            using var refused = await client.PostAsync("/v1/chat/completions", new StringContent(Body, Encoding.UTF8, "application/json"));
            Assert.Equal(429, (int)refused.StatusCode);
            var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal("budget_exceeded", error.GetProperty("code").GetString());
        }
        finally
        {
            await StopAsync(app);
        }
    }

    private async Task<WebApplication> StartAsync()
    {
        var app = ServeCommand.Build(new ServeSettings
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
        await app.StartAsync();
        return app;
    }

    private static async Task StopAsync(WebApplication app)
    {
        await app.StopAsync();
        await app.DisposeAsync();
        SqliteConnection.ClearAllPools();
    }

    private static HttpClient Client(WebApplication app, string token)
    {
        var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
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
