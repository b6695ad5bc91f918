using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// A server with priced plans: 1,000 per million input tokens and 2,000 per million output tokens (EUR); the
/// "cached" plan charges prompt tokens served from the prefix cache 100 per million.
/// </summary>
public sealed class MeteringFixture : IAsyncLifetime
{
    public const string AdminToken = "metering-admin";
    public const string Model = "stories";
    public const decimal InputPerMillion = 1000m;
    public const decimal OutputPerMillion = 2000m;
    public const decimal CachedInputPerMillion = 100m;

    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-metering-").FullName;
    private int _tenants;

    public WebApplication App { get; private set; } = null!;
    public HttpClient Admin { get; private set; } = null!;
    public Uri Address { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        App = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = Model, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 8, MaxQueue = 512, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _data,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Jurisdiction"] = "DE",
                ["Sovereign:AdminToken"] = AdminToken,
                ["Sovereign:BuiltInEmbeddings"] = "false",
                ["Sovereign:Metering:CharacterEquivalentLanguages:fair:0"] = "th",
            },
        }, []);
        await App.StartAsync();
        Address = new Uri(App.Urls.First());
        Admin = new HttpClient { BaseAddress = Address };
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/standard", new { currency = "EUR", weight = 1 }, 200);
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/standard/prices", new { model = Model, input_per_million = InputPerMillion, output_per_million = OutputPerMillion }, 201);
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/fair", new { currency = "EUR", weight = 1 }, 200);
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/fair/prices", new { model = Model, input_per_million = InputPerMillion, output_per_million = OutputPerMillion }, 201);
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/cached", new { currency = "EUR", weight = 1 }, 200);
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/cached/prices",
            new { model = Model, input_per_million = InputPerMillion, cached_input_per_million = CachedInputPerMillion, output_per_million = OutputPerMillion }, 201);
    }

    /// <summary>A new tenant on the standard plan with one key; returns (tenant id, key secret).</summary>
    public async Task<(string Tenant, string Key)> NewTenantAsync(object? limits = null, string plan = "standard")
    {
        var id = "t" + Interlocked.Increment(ref _tenants);
        await SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan, policy = new { allowed_jurisdictions = new[] { "EU" } } }, 201);
        var key = await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201);
        if (limits is not null)
        {
            await SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{id}/limits", limits, 200);
        }

        return (id, key.GetProperty("secret").GetString()!);
    }

    public HttpClient TenantClient(string key)
    {
        var client = new HttpClient { BaseAddress = Address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

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

[CollectionDefinition(Name)]
public sealed class MeteringCollection : ICollectionFixture<MeteringFixture>
{
    public const string Name = "metering";
}
