using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.Models;
using Sovereign.Inference.Engine;
using Sovereign.Residency.Audit;

using Sovereign.Tests;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// Two real servers on loopback: a gateway whose process (and local node "th-1") is in Thailand, and an
/// external OpenAI-compatible engine registered as node "sg-1" in Singapore. The TH node takes one request at a
/// time and queues none, so one held request makes it busy.
/// </summary>
public sealed class ResidencyFixture : IAsyncLifetime
{
    public const string AdminToken = "test-admin-token";
    public const string Model = "stories";

    private readonly string _thData = Directory.CreateTempSubdirectory("sovereign-th-").FullName;

    /// <summary>The TH gateway's data directory (database, operator key, admin token).</summary>
    public string ThDataDirectory => _thData;
    private readonly string _sgData = Directory.CreateTempSubdirectory("sovereign-sg-").FullName;

    public WebApplication Th { get; private set; } = null!;

    /// <summary>The TH gateway's clock: the system's until a test holds it (<see cref="ShiftedClock.Hold"/>) to read a rate counter to the unit.</summary>
    public ShiftedClock ThClock { get; } = new();
    public WebApplication Sg { get; private set; } = null!;
    public HttpClient Admin { get; private set; } = null!;
    public Uri ThAddress { get; private set; } = null!;
    public string ThOnlyKey { get; private set; } = null!;
    public string AseanKey { get; private set; } = null!;

    public ContinuousBatcher ThBatcher => Th.Services.GetRequiredService<ModelCatalog>().TryGet(Model, out var m) ? m.Batcher! : throw new InvalidOperationException();

    /// <summary>How many audit entries the SG engine has written: each request it serves adds some.</summary>
    public long SgAuditHead => Sg.Services.GetRequiredService<AuditLog>().HeadSequence;

    public async Task InitializeAsync()
    {
        Sg = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = Model, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 4, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _sgData,
            Overrides = new Dictionary<string, string?> { ["Sovereign:Jurisdiction"] = "SG", ["Sovereign:NodeId"] = "sg-engine", ["Sovereign:BuiltInEmbeddings"] = "false" },
        }, []);
        await Sg.StartAsync();

        Th = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = Model, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 1, MaxQueue = 0, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _thData,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Jurisdiction"] = "TH",
                ["Sovereign:NodeId"] = "th-1",
                ["Sovereign:AdminToken"] = AdminToken,
                ["Sovereign:BuiltInEmbeddings"] = "false",
            },
            Services = services => services.AddSingleton<TimeProvider>(ThClock),
        }, []);
        await Th.StartAsync();
        ThAddress = new Uri(Th.Urls.First());
        Admin = new HttpClient { BaseAddress = ThAddress };
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);

        await AdminAsync(HttpMethod.Post, "/admin/v1/nodes", new { id = "sg-1", jurisdiction = "SG", base_url = Sg.Urls.First(), models = new[] { new { id = Model, capacity = 8 } } }, 201);
        ThOnlyKey = await CreateTenantWithKeyAsync("th-hospital", new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true });
        AseanKey = await CreateTenantWithKeyAsync("asean-corp", new { allowed_jurisdictions = new[] { "ASEAN" }, allow_external_providers = true });
    }

    public async Task<string> CreateTenantWithKeyAsync(string id, object policy)
    {
        await AdminAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, name = id, policy }, 201);
        var key = await AdminAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "test" }, 201);
        return key.GetProperty("secret").GetString()!;
    }

    /// <summary>Calls the admin API and asserts the status.</summary>
    public async Task<JsonElement> AdminAsync(HttpMethod method, string path, object? body, int expectedStatus)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await Admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expectedStatus, $"{method} {path}: expected {expectedStatus}, got {(int)response.StatusCode}: {text}");
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>A tenant's HTTP client for /v1.</summary>
    public HttpClient TenantClient(string key)
    {
        var client = new HttpClient { BaseAddress = ThAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    public async Task DisposeAsync()
    {
        Admin.Dispose();
        await Th.StopAsync();
        await Th.DisposeAsync();
        await Sg.StopAsync();
        await Sg.DisposeAsync();
        Directory.Delete(_thData, recursive: true);
        Directory.Delete(_sgData, recursive: true);
    }
}

[CollectionDefinition(Name)]
public sealed class ResidencyCollection : ICollectionFixture<ResidencyFixture>
{
    public const string Name = "residency";
}
