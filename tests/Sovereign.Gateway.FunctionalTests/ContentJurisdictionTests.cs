using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;
using Sovereign.Residency.Content;
using Sovereign.Gateway.FunctionalTests.Storage;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// Stored responses rest in the gateway's database, which is not always where the gateway is: a cluster's gateways in
/// TH and SG share one PostgreSQL, which runs in one place. Content used to be checked against the gateway's
/// jurisdiction alone, so a TH-only tenant's conversation was kept in whatever jurisdiction the database ran in. Where
/// the database is must now be declared (<c>Sovereign:Database:Jurisdiction</c>; a SQLite file is on the gateway's
/// machine), allowed by the policy, and recorded.
/// </summary>
public sealed class ContentJurisdictionTests(PostgreSqlFixture postgres) : IClassFixture<PostgreSqlFixture>, IAsyncLifetime
{
    private const string AdminToken = "content-jurisdiction-admin";
    private readonly List<string> _directories = [];
    private readonly List<WebApplication> _apps = [];

    private static object Retaining(params string[] jurisdictions) =>
        new { allowed_jurisdictions = jurisdictions, retention = new { mode = "store", days = 7 } };

    private static StringContent Store(bool store = true) =>
        new($$"""{"model":"stories","input":"Once upon a time","max_output_tokens":16,"store":{{(store ? "true" : "false")}}}""", Encoding.UTF8, "application/json");

    [Fact]
    public async Task DatabaseDeclaredInAnotherJurisdiction_StoresOnlyForPoliciesAllowingIt_RecordsIt_AndNarrowingDeletes()
    {
        // A TH gateway whose database runs in SG.
        var app = await StartAsync(new() { ["Sovereign:Database:Jurisdiction"] = "SG" });
        using var thOnly = await TenantAsync(app, "th-only", Retaining("TH"));
        using var both = await TenantAsync(app, "th-and-sg", Retaining("TH", "SG"));

        using var refused = await thOnly.PostAsync("/v1/responses", Store());
        var error = await ErrorAsync(refused);
        Assert.Equal(400, (int)refused.StatusCode);
        Assert.Equal(("content_retention_jurisdiction_not_allowed", "store"), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
        Assert.Contains("database, which is in SG", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        using var unstored = await thOnly.PostAsync("/v1/responses", Store(store: false));
        Assert.Equal(200, (int)unstored.StatusCode);

        using var stored = await both.PostAsync("/v1/responses", Store());
        Assert.True((int)stored.StatusCode == 200, await stored.Content.ReadAsStringAsync());
        var id = JsonDocument.Parse(await stored.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        var row = await app.Services.GetRequiredService<ResponseStore>().GetAsync("th-and-sg", id, DateTimeOffset.UtcNow);
        Assert.Equal("SG", row?.Jurisdiction);
        var completed = await AuditEntryAsync(app, "th-and-sg", "inference.completed", e => e.GetProperty("details").TryGetProperty("content_stored", out var s) && s.GetString() == id);
        Assert.Equal(("SG", "TH"), (completed.GetProperty("details").GetProperty("content_jurisdiction").GetString(), completed.GetProperty("jurisdiction").GetString()));
        using var read = await both.GetAsync($"/v1/responses/{id}");
        Assert.Equal(200, (int)read.StatusCode);

        // The tenant stops allowing SG: what rested there is deleted now, and nothing more is read from there.
        await AdminAsync(app, HttpMethod.Patch, "/admin/v1/tenants/th-and-sg", new { policy = Retaining("TH") }, 200);
        var update = await AuditEntryAsync(app, "th-and-sg", "policy.update", _ => true);
        Assert.Equal("1", update.GetProperty("details").GetProperty("stored_responses_deleted").GetString());
        Assert.Null(await app.Services.GetRequiredService<ResponseStore>().GetAsync("th-and-sg", id, DateTimeOffset.UtcNow));
        using var gone = await both.GetAsync($"/v1/responses/{id}");
        Assert.Equal(403, (int)gone.StatusCode);
        Assert.Equal("residency_violation", (await ErrorAsync(gone)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task SqliteByDefault_RestsWhereTheGatewayIs()
    {
        var app = await StartAsync([]);
        using var client = await TenantAsync(app, "th-keeper", Retaining("TH"));

        using var stored = await client.PostAsync("/v1/responses", Store());
        Assert.True((int)stored.StatusCode == 200, await stored.Content.ReadAsStringAsync());
        var id = JsonDocument.Parse(await stored.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;

        Assert.Equal("TH", (await app.Services.GetRequiredService<ResponseStore>().GetAsync("th-keeper", id, DateTimeOffset.UtcNow))?.Jurisdiction);
        var completed = await AuditEntryAsync(app, "th-keeper", "inference.completed", e => e.GetProperty("details").TryGetProperty("content_stored", out var s) && s.GetString() == id);
        Assert.Equal("TH", completed.GetProperty("details").GetProperty("content_jurisdiction").GetString());
    }

    [Fact]
    public async Task SharedPostgreSql_Undeclared_StoresNothing_Declared_StoresThere()
    {
        var undeclared = await StartAsync(PostgreSql(await OwnDatabaseAsync()));
        using (var client = await TenantAsync(undeclared, "pg-keeper", Retaining("TH")))
        {
            using var refused = await client.PostAsync("/v1/responses", Store());
            var error = await ErrorAsync(refused);
            Assert.Equal(400, (int)refused.StatusCode);
            Assert.Equal(("content_store_jurisdiction_undeclared", "store"), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
            Assert.Contains("Sovereign:Database:Jurisdiction", error.GetProperty("message").GetString(), StringComparison.Ordinal);

            using var continued = await client.PostAsync("/v1/responses", new StringContent(
                """{"model":"stories","input":"more","max_output_tokens":16,"previous_response_id":"resp_0123456789abcdef01234567"}""", Encoding.UTF8, "application/json"));
            Assert.Equal(("content_store_jurisdiction_undeclared", "previous_response_id"), ((await ErrorAsync(continued)).GetProperty("code").GetString(), (await ErrorAsync(continued)).GetProperty("param").GetString()));
        }

        var declared = await StartAsync(new(PostgreSql(await OwnDatabaseAsync())) { ["Sovereign:Database:Jurisdiction"] = "th" });
        using var keeper = await TenantAsync(declared, "pg-keeper", Retaining("TH"));
        using var stored = await keeper.PostAsync("/v1/responses", Store());
        Assert.True((int)stored.StatusCode == 200, await stored.Content.ReadAsStringAsync());
        var id = JsonDocument.Parse(await stored.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        Assert.Equal("TH", (await declared.Services.GetRequiredService<ResponseStore>().GetAsync("pg-keeper", id, DateTimeOffset.UtcNow))?.Jurisdiction);
    }

    [Fact]
    public async Task DatabaseJurisdictionThatIsNoCountry_StopsTheStart_NamingTheSetting()
    {
        var message = await StartFailure.WithSovereignSectionAsync("""{"Database":{"Jurisdiction":"XX1"}}""");

        Assert.Contains("Sovereign:Database:Jurisdiction 'XX1' is not an ISO 3166-1 alpha-2 country code", message, StringComparison.Ordinal);
    }

    private static Dictionary<string, string?> PostgreSql(string connectionString) => new()
    {
        ["Sovereign:Database:Provider"] = "PostgreSql",
        ["Sovereign:Database:ConnectionString"] = connectionString,
    };

    private async Task<WebApplication> StartAsync(Dictionary<string, string?> overrides)
    {
        var directory = Directory.CreateTempSubdirectory("sovereign-content-home-").FullName;
        _directories.Add(directory);
        overrides["Sovereign:Jurisdiction"] = "TH";
        overrides["Sovereign:AdminToken"] = AdminToken;
        overrides["Sovereign:BuiltInEmbeddings"] = "false";
        var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, ContextLength = 256, Threads = 1, Parallel = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = directory,
            Overrides = overrides,
        }, []);
        _apps.Add(app);
        await app.StartAsync();
        return app;
    }

    private static async Task<HttpClient> TenantAsync(WebApplication app, string id, object policy)
    {
        await AdminAsync(app, HttpMethod.Post, "/admin/v1/tenants", new { id, name = id, policy }, 201);
        var key = await AdminAsync(app, HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "test" }, 201);
        var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key.GetProperty("secret").GetString());
        return client;
    }

    private static async Task<JsonElement> AdminAsync(WebApplication app, HttpMethod method, string path, object? body, int expected)
    {
        using var admin = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expected, $"{method} {path}: expected {expected}, got {(int)response.StatusCode}: {text}");
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    private static async Task<JsonElement> AuditEntryAsync(WebApplication app, string tenant, string action, Func<JsonElement, bool> match)
    {
        var page = await AdminAsync(app, HttpMethod.Get, $"/admin/v1/audit?tenant={tenant}&order=desc&limit=100", null, 200);
        return page.GetProperty("data").EnumerateArray().First(e => e.GetProperty("action").GetString() == action && match(e));
    }

    private static async Task<JsonElement> ErrorAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").Clone();

    private async Task<string> OwnDatabaseAsync()
    {
        var name = "content_" + Guid.NewGuid().ToString("N")[..8];
        await using (var admin = new Npgsql.NpgsqlConnection(postgres.ConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new Npgsql.NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        return new Npgsql.NpgsqlConnectionStringBuilder(postgres.ConnectionString) { Database = name }.ConnectionString;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var app in _apps)
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }

        Npgsql.NpgsqlConnection.ClearAllPools();
        foreach (var directory in _directories)
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
