using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Sovereign.Cli.Commands;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>A TH server with no model of its own in front of external engines registered by each test.</summary>
public sealed class ExternalEnginesFixture : IAsyncLifetime
{
    public const string AdminToken = "failover-admin";

    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-failover-").FullName;
    private int _tenants;

    public WebApplication App { get; private set; } = null!;
    public HttpClient Admin { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        App = ServeCommand.Build(new ServeSettings
        {
            Urls = "http://127.0.0.1:0",
            DataDirectory = _data,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Jurisdiction"] = "TH",
                ["Sovereign:AdminToken"] = AdminToken,
                ["Sovereign:BuiltInEmbeddings"] = "false",
            },
        }, []);
        await App.StartAsync();
        Admin = new HttpClient { BaseAddress = new Uri(App.Urls.First()) };
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
    }

    /// <summary>A TH tenant on <paramref name="plan"/> that may use external engines, with a client holding its key.</summary>
    public async Task<(string Tenant, HttpClient Client)> NewTenantAsync(string plan)
    {
        var id = "f" + Interlocked.Increment(ref _tenants);
        await SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan, policy = new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true } }, 201);
        var key = (await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        var client = new HttpClient { BaseAddress = Admin.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return (id, client);
    }

    public Task<JsonElement> RegisterEngineAsync(string id, string url, string model, string? pool = null, string jurisdiction = "TH") =>
        SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id, jurisdiction, base_url = url, pool, models = new[] { new { id = model, upstream = "upstream", capacity = 2 } } }, 201);

    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body, int expected)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await Admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expected, $"{method} {path}: expected {expected}, got {(int)response.StatusCode}: {text}");
        return text.Length > 0 && text[0] is '{' or '[' ? JsonDocument.Parse(text).RootElement.Clone() : default;
    }

    public async Task DisposeAsync()
    {
        Admin.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }
}
