using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Orleans;
using Sovereign.Cli.Commands;
using Sovereign.Cluster.Grains;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.OpenAI;

/// <summary>
/// <c>POST /v1/responses</c> asks the tenant's grain once, in admission, as chat does
/// (<see cref="ITenantGrain.AdmitAuthorizedAsync"/>), and its stored-content checks (retention, the continued
/// response) hold for the tenant as it is, not as this gateway last saw it: confirmed before one of them refuses, made
/// again when admission finds the policy changed.
/// </summary>
public sealed class ResponsesOneCallTests : IAsyncLifetime
{
    private const string AdminToken = "one-call-admin-token";
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-onecall-").FullName;
    private readonly TenantGrainCalls _calls = new();
    private WebApplication _app = null!;
    private HttpClient _admin = null!;

    private static object Policy(string retention) => retention == "none"
        ? new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true, retention = new { mode = "none" } }
        : new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true, retention = new { mode = "store", days = 7 } };

    public async Task InitializeAsync()
    {
        _app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, ContextLength = 256, Parallel = 2, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _data,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Jurisdiction"] = "TH",
                ["Sovereign:NodeId"] = "th-onecall",
                ["Sovereign:AdminToken"] = AdminToken,
                ["Sovereign:BuiltInEmbeddings"] = "false",
            },
            Services = services => services.AddSingleton<IOutgoingGrainCallFilter>(_calls),
        }, []);
        await _app.StartAsync();
        _admin = new HttpClient { BaseAddress = new Uri(_app.Urls.First()) };
        _admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
    }

    public async Task DisposeAsync()
    {
        _admin.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task Responses_OfATenantThisGatewayHasSeen_AskTheTenantsGrainOnce_InAdmission()
    {
        using var client = await TenantAsync("onecall-plain", Policy("none"));
        using (var first = await PostAsync(client, """{"model":"stories","input":"Hello","max_output_tokens":16}"""))
        {
            await AssertStatusAsync(HttpStatusCode.OK, first);
        }

        _calls.Clear();
        using var second = await PostAsync(client, """{"model":"stories","input":"Hello again","max_output_tokens":16}""");

        await AssertStatusAsync(HttpStatusCode.OK, second);
        Assert.Equal(["AdmitAuthorizedAsync"], _calls.Named("AuthorizeKeyAsync", "AdmitAsync", "AdmitAuthorizedAsync"));
    }

    [Fact]
    public async Task Store_UnderAPolicyThatStoppedRetaining_Is400_ThoughThisGatewaySawItRetain()
    {
        using var client = await TenantAsync("onecall-stopped", Policy("store"));
        using (var seen = await PostAsync(client, """{"model":"stories","input":"Hello","max_output_tokens":16}"""))
        {
            await AssertStatusAsync(HttpStatusCode.OK, seen);
        }

        await AdminAsync(HttpMethod.Patch, "/admin/v1/tenants/onecall-stopped", new { policy = Policy("none") }, HttpStatusCode.OK);
        using var stored = await PostAsync(client, """{"model":"stories","input":"Keep this","max_output_tokens":16,"store":true}""");

        await AssertStatusAsync(HttpStatusCode.BadRequest, stored);
        Assert.Equal("content_retention_not_allowed", (await ErrorOf(stored)).GetProperty("code").GetString());
        Assert.Equal(0, await _app.Services.GetRequiredService<Sovereign.Residency.Content.ResponseStore>().DeleteTenantAsync("onecall-stopped"));
    }

    [Fact]
    public async Task Store_UnderAPolicyThatStartedRetaining_IsStored_ThoughThisGatewaySawItKeepNothing()
    {
        using var client = await TenantAsync("onecall-started", Policy("none"));
        using (var seen = await PostAsync(client, """{"model":"stories","input":"Hello","max_output_tokens":16}"""))
        {
            await AssertStatusAsync(HttpStatusCode.OK, seen);
        }

        await AdminAsync(HttpMethod.Patch, "/admin/v1/tenants/onecall-started", new { policy = Policy("store") }, HttpStatusCode.OK);
        using var stored = await PostAsync(client, """{"model":"stories","input":"Keep this","max_output_tokens":16,"store":true}""");

        await AssertStatusAsync(HttpStatusCode.OK, stored);
        var id = JsonDocument.Parse(await stored.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString();
        using var fetched = await client.GetAsync($"/v1/responses/{id}");
        await AssertStatusAsync(HttpStatusCode.OK, fetched);
    }

    [Fact]
    public async Task Continuation_UnderAPolicyThatStoppedRetaining_Is400_ThoughThisGatewaySawItRetain()
    {
        using var client = await TenantAsync("onecall-continued", Policy("store"));
        string id;
        using (var first = await PostAsync(client, """{"model":"stories","input":"Once","max_output_tokens":16,"store":true}"""))
        {
            await AssertStatusAsync(HttpStatusCode.OK, first);
            id = JsonDocument.Parse(await first.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        }

        await AdminAsync(HttpMethod.Patch, "/admin/v1/tenants/onecall-continued", new { policy = Policy("none") }, HttpStatusCode.OK);
        using var continued = await PostAsync(client, $$"""{"model":"stories","input":"upon","max_output_tokens":16,"previous_response_id":"{{id}}"}""");

        await AssertStatusAsync(HttpStatusCode.BadRequest, continued);
        Assert.Equal("content_retention_not_allowed", (await ErrorOf(continued)).GetProperty("code").GetString());
    }

    private async Task<HttpClient> TenantAsync(string id, object policy)
    {
        await AdminAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, name = id, policy }, HttpStatusCode.Created);
        var key = await AdminAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "test" }, HttpStatusCode.Created);
        var client = new HttpClient { BaseAddress = _admin.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key.GetProperty("secret").GetString());
        return client;
    }

    private async Task<JsonElement> AdminAsync(HttpMethod method, string path, object body, HttpStatusCode expected)
    {
        using var request = new HttpRequestMessage(method, path) { Content = JsonContent.Create(body) };
        using var response = await _admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{method} {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static async Task AssertStatusAsync(HttpStatusCode expected, HttpResponseMessage response) =>
        Assert.True(response.StatusCode == expected, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");

    private static Task<HttpResponseMessage> PostAsync(HttpClient client, string body) =>
        client.PostAsync("/v1/responses", new StringContent(body, Encoding.UTF8, "application/json"));

    private static async Task<JsonElement> ErrorOf(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").Clone();

    /// <summary>The tenant grain's methods this process called, in order.</summary>
    private sealed class TenantGrainCalls : IOutgoingGrainCallFilter
    {
        private readonly ConcurrentQueue<string> _methods = new();

        public async Task Invoke(IOutgoingGrainCallContext context)
        {
            if (context.InterfaceMethod?.DeclaringType == typeof(ITenantGrain))
            {
                _methods.Enqueue(context.MethodName);
            }

            await context.Invoke();
        }

        public void Clear() => _methods.Clear();

        public string[] Named(params string[] names) => [.. _methods.Where(names.Contains)];
    }
}
