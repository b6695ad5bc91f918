using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sovereign.Cli.Commands;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// An engine whose stored URL the engine address rule refuses at connection: registered while the operator allowed
/// link-local engines (<c>Sovereign:AllowLinkLocalEngineUrls</c>), the server restarted without the setting. Nothing is
/// sent there; the gateway logs 4144 naming the engine's address, and the request fails over to another compliant
/// engine of the model, or, with none, fails closed with a 503 the client may retry. A server of its own (two starts
/// on one data directory).
/// </summary>
public sealed class EngineAddressRefusedRelayTests : IAsyncLifetime
{
    private const string AdminToken = "address-relay-admin";
    private const string Metadata = "169.254.169.254:9";
    private const string OtherLinkLocal = "169.254.169.253:9";
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-address-relay-").FullName;
    private readonly ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)> _logged = new();
    private WebApplication _app = null!;
    private HttpClient _admin = null!;
    private CapturingLoggerProvider? _capture;

    public async Task InitializeAsync()
    {
        // Registered while the setting allowed it: "ar-a" at the metadata address (serving both models), "ar-c" at
        // another link-local one (serving only ar-only).
        (_app, _admin) = await StartAsync(allowLinkLocal: true);
        await SendAsync(HttpMethod.Post, "/admin/v1/nodes", new { id = "ar-a", jurisdiction = "TH", base_url = "http://" + Metadata, models = new[] { Model("ar-both"), Model("ar-only") } }, 201);
        await SendAsync(HttpMethod.Post, "/admin/v1/nodes", new { id = "ar-c", jurisdiction = "TH", base_url = "http://" + OtherLinkLocal, models = new[] { Model("ar-only") } }, 201);
        await StopAsync();

        // The operator turns the setting off: the rule holds again, for the URLs stored meanwhile too.
        (_app, _admin) = await StartAsync(allowLinkLocal: false);
        _capture = new CapturingLoggerProvider(_logged);
        _app.Services.GetRequiredService<ILoggerFactory>().AddProvider(_capture);
    }

    public async Task DisposeAsync()
    {
        _capture?.Dispose();
        await StopAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task AnEngineTheRuleRefusesAtConnection_IsNotSentTheRequest_ItFailsOverToTheNextCompliantEngine_And4144NamesIt()
    {
        await using var live = await FakeUpstreamEngine.StartAsync(context => FakeUpstreamEngine.AnswerAsync(context, """{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}"""));
        await SendAsync(HttpMethod.Post, "/admin/v1/nodes", new { id = "ar-b", jurisdiction = "TH", base_url = live.Url, models = new[] { Model("ar-both") } }, 201);
        using var client = await NewTenantAsync("ar-t1");

        // "ar-a" sorts first: tried, refused at its connection, and the request runs on "ar-b".
        using var response = await client.PostAsync("/v1/chat/completions", Chat("ar-both"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal("ar-b", response.Headers.GetValues("x-sovereign-node").Single());
        Assert.Equal(1, live.Requests);
        var refused = Assert.Single(_logged, l => l.Event.Id == 4144);
        Assert.Equal(LogLevel.Error, refused.Level);
        Assert.Contains("The engine at " + Metadata + " was not connected to", refused.Message, StringComparison.Ordinal);
        Assert.Contains("Sovereign:AllowLinkLocalEngineUrls", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("Once upon a time", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnEngineTheRuleRefusesAtConnection_WithNoOtherCompliantEngine_FailsClosedWithARetryable503_And4144NamesIt()
    {
        using var client = await NewTenantAsync("ar-t2");

        // Both engines of ar-only are at refused addresses: each is tried in turn, neither is sent the request.
        using var response = await client.PostAsync("/v1/chat/completions", Chat("ar-only"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, body);
        Assert.NotNull(response.Headers.RetryAfter);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal("server_error", error.GetProperty("type").GetString());
        Assert.Equal("no_compliant_capacity", error.GetProperty("code").GetString()); // both routed around, none left
        Assert.DoesNotContain("169.254", body, StringComparison.Ordinal);
        var refusals = _logged.Where(l => l.Event.Id == 4144).Select(l => l.Message).ToList();
        Assert.Contains(refusals, m => m.Contains("The engine at " + Metadata, StringComparison.Ordinal));
        Assert.Contains(refusals, m => m.Contains("The engine at " + OtherLinkLocal, StringComparison.Ordinal));

        // Recorded as not run: billed nothing.
        var usage = await SendAsync(HttpMethod.Get, "/admin/v1/usage?tenant=ar-t2", null, 200);
        var row = Assert.Single(usage.GetProperty("data").EnumerateArray());
        Assert.Equal(0m, row.GetProperty("cost").GetDecimal());
    }

    private static object Model(string id) => new { id, upstream = "upstream", capacity = 2 };

    private static StringContent Chat(string model) =>
        new($$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}""", Encoding.UTF8, "application/json");

    private async Task<HttpClient> NewTenantAsync(string id)
    {
        var plan = id + "-plan";
        await SendAsync(HttpMethod.Put, $"/admin/v1/plans/{plan}", new { currency = "THB" }, 200);
        foreach (var model in new[] { "ar-both", "ar-only" })
        {
            await SendAsync(HttpMethod.Post, $"/admin/v1/plans/{plan}/prices", new { model, input_per_million = 1m, output_per_million = 2m }, 201);
        }

        await SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan, policy = new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true } }, 201);
        await SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{id}/limits", new { budgets = new[] { new { period = "day", amount = 1000m } } }, 200);
        var key = (await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        var client = new HttpClient { BaseAddress = _admin.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    private async Task<(WebApplication App, HttpClient Admin)> StartAsync(bool allowLinkLocal)
    {
        var app = ServeCommand.Build(new ServeSettings
        {
            Models = [],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _data,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Jurisdiction"] = "TH",
                ["Sovereign:BuiltInEmbeddings"] = "false",
                ["Sovereign:AdminToken"] = AdminToken,
                ["Sovereign:AllowLinkLocalEngineUrls"] = allowLinkLocal ? "true" : "false",
            },
        }, []);
        await app.StartAsync();
        var admin = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        return (app, admin);
    }

    private async Task StopAsync()
    {
        _admin.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private async Task<JsonElement> SendAsync(HttpMethod method, string path, object? body, int expected)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await _admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == expected, $"{method} {path}: expected {expected}, got {(int)response.StatusCode}: {text}");
        return text.Length > 0 && text[0] is '{' or '[' ? JsonDocument.Parse(text).RootElement.Clone() : default;
    }
}
