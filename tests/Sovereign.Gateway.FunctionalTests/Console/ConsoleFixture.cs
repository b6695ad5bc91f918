using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.Console;

/// <summary>
/// A gateway in Thailand with the operator token known, serving stories260K from the configuration, with two
/// tenants: "th-hospital" (TH only, plan "standard" in EUR) and "sg-bank" (SG only: it can use nothing here).
/// </summary>
public sealed class ConsoleFixture : IAsyncLifetime
{
    public const string AdminToken = "console-admin-token";
    public const string Model = "stories";

    private int _tenants;

    public string DataDirectory { get; } = Directory.CreateTempSubdirectory("sovereign-console-").FullName;
    public WebApplication App { get; private set; } = null!;
    public Uri Address { get; private set; } = null!;
    public string Url => Address.ToString().TrimEnd('/');
    public HttpClient Admin { get; private set; } = null!;
    public string HospitalKey { get; private set; } = null!;
    public string BankKey { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        App = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = Model, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 4, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = DataDirectory,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Jurisdiction"] = "TH",
                ["Sovereign:NodeId"] = "bkk-1",
                ["Sovereign:AdminToken"] = AdminToken,
                ["Sovereign:BuiltInEmbeddings"] = "false",
            },
        }, []);
        await App.StartAsync();
        Address = new Uri(App.Urls.First());
        Admin = new HttpClient { BaseAddress = Address };
        Admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/standard", new { currency = "EUR", weight = 1 });
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/standard/prices", new { model = Model, input_per_million = 1000m, output_per_million = 2000m });
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/baht", new { currency = "THB", weight = 1 });
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/baht/prices", new { model = Model, input_per_million = 30000m, output_per_million = 60000m });
        HospitalKey = await TenantAsync("th-hospital", ["TH"], "standard");
        BankKey = await TenantAsync("sg-bank", ["SG"], "standard");
    }

    /// <summary>A new tenant (a fresh id each call) with one key; returns (id, key).</summary>
    public async Task<(string Id, string Key)> NewTenantAsync(string plan = "standard", string jurisdiction = "TH")
    {
        var id = "c" + Interlocked.Increment(ref _tenants);
        return (id, await TenantAsync(id, [jurisdiction], plan));
    }

    public async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await Admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{method} {path}: {(int)response.StatusCode} {text}");
        return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Sends one chat request as the tenant; returns the HTTP status.</summary>
    public async Task<int> ChatAsync(string key, int maxTokens = 4)
    {
        using var client = new HttpClient { BaseAddress = Address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await client.PostAsJsonAsync("/v1/chat/completions", new { model = Model, messages = new[] { new { role = "user", content = "Once upon a time" } }, max_tokens = maxTokens, temperature = 0 });
        return (int)response.StatusCode;
    }

    private async Task<string> TenantAsync(string id, string[] jurisdictions, string plan)
    {
        await SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan, policy = new { allowed_jurisdictions = jurisdictions } });
        var key = await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "console-test" });
        return key.GetProperty("secret").GetString()!;
    }

    public async Task DisposeAsync()
    {
        Admin.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A file still held open by a native library: the temp directory is cleaned by the OS.
        }
    }
}

[CollectionDefinition(Name)]
public sealed class ConsoleCollection : ICollectionFixture<ConsoleFixture>
{
    public const string Name = "console";
}
