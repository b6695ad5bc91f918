using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.Routing;

/// <summary>
/// A model the operator registered (configured, imported, or the built-in embedding model) but that is not loaded now
/// is 503 <c>no_compliant_capacity</c> with Retry-After on every endpoint, which SDKs retry: it was 404
/// <c>model_not_found</c>, which they do not (for about a second after each unload with a jurisdiction set, for good
/// without one). A model nobody registered stays 404.
/// </summary>
public sealed class NotLoadedModelTests : IDisposable
{
    private const string AdminToken = "not-loaded-admin-token";
    private const string Model = "stories";

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-not-loaded-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private async Task<(WebApplication App, HttpClient Admin)> StartAsync(string? jurisdiction)
    {
        var overrides = new Dictionary<string, string?> { ["Sovereign:AdminToken"] = AdminToken, ["Sovereign:NodeId"] = "here-1" };
        if (jurisdiction is not null)
        {
            overrides["Sovereign:Jurisdiction"] = jurisdiction;
        }

        var app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = Model, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 2, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _directory,
            Overrides = overrides,
        }, []);
        await app.StartAsync();
        var admin = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        return (app, admin);
    }

    private static readonly (string Path, string Body)[] Generation =
    [
        ("/v1/chat/completions", $$"""{"model":"{{Model}}","messages":[{"role":"user","content":"hi"}],"max_tokens":2}"""),
        ("/v1/chat/completions", $$"""{"model":"{{Model}}","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"stream":true}"""),
        ("/v1/completions", $$"""{"model":"{{Model}}","prompt":"hi","max_tokens":2}"""),
        ("/v1/responses", $$"""{"model":"{{Model}}","input":"hi","max_output_tokens":16,"store":false}"""),
    ];

    private static async Task AssertNotLoadedAsync(HttpClient client, string path, string body)
    {
        using var response = await client.PostAsync(path, new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 503, $"{path} {body}: {(int)response.StatusCode} {text}");
        Assert.Equal("no_compliant_capacity", JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.True(response.Headers.RetryAfter?.Delta is { } after && after > TimeSpan.Zero, $"{path}: no Retry-After");
    }

    private static async Task AssertStatusAsync(HttpClient client, string path, string body, int status, string code)
    {
        using var response = await client.PostAsync(path, new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"{path} {body}: {(int)response.StatusCode} {text}");
        Assert.Equal(code, JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Anonymous_AnUnloadedModel_Is503WithRetryAfter_OnEveryEndpoint_AnUnknownOneStays404()
    {
        var (app, admin) = await StartAsync(jurisdiction: null);
        await using var _ = app;
        using var __ = admin;
        using var client = new HttpClient { BaseAddress = admin.BaseAddress };

        Assert.Equal(200, (int)(await admin.PostAsync($"/admin/v1/models/{Model}/unload", null)).StatusCode);
        Assert.Equal(200, (int)(await admin.PostAsync("/admin/v1/models/all-MiniLM-L6-v2/unload", null)).StatusCode);
        foreach (var (path, body) in Generation)
        {
            await AssertNotLoadedAsync(client, path, body);
        }

        await AssertNotLoadedAsync(client, "/v1/embeddings", """{"model":"all-MiniLM-L6-v2","input":"a cat"}""");

        // Registered as the other kind: the client's mistake, as for a loaded model.
        await AssertStatusAsync(client, "/v1/embeddings", $$"""{"model":"{{Model}}","input":"a cat"}""", 400, "model_not_supported");
        await AssertStatusAsync(client, "/v1/chat/completions", """{"model":"all-MiniLM-L6-v2","messages":[{"role":"user","content":"hi"}]}""", 400, "model_not_supported");

        // Nobody registered these.
        await AssertStatusAsync(client, "/v1/chat/completions", """{"model":"nobody-registered","messages":[{"role":"user","content":"hi"}]}""", 404, "model_not_found");
        await AssertStatusAsync(client, "/v1/embeddings", """{"model":"nobody-registered","input":"a cat"}""", 404, "model_not_found");

        // Loaded again, it serves.
        using var loaded = await admin.PostAsync($"/admin/v1/models/{Model}/load", null);
        Assert.True((int)loaded.StatusCode == 200, await loaded.Content.ReadAsStringAsync());
        using var served = await client.PostAsync(Generation[0].Path, new StringContent(Generation[0].Body, System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(200, (int)served.StatusCode);
    }

    [Fact]
    public async Task Tenant_AnUnloadedModel_Is503WithRetryAfter_AtOnceAfterTheUnload_AndAudited_AnUnknownOneStays404()
    {
        var (app, admin) = await StartAsync(jurisdiction: "TH");
        await using var _ = app;
        using var __ = admin;
        using (var created = await admin.PostAsJsonAsync("/admin/v1/tenants", new { id = "th-clinic", name = "th-clinic", policy = new { allowed_jurisdictions = new[] { "TH" } } }))
        {
            Assert.True((int)created.StatusCode == 201, await created.Content.ReadAsStringAsync());
        }

        using var keyAnswer = await admin.PostAsJsonAsync("/admin/v1/tenants/th-clinic/keys", new { name = "test" });
        var key = JsonDocument.Parse(await keyAnswer.Content.ReadAsStringAsync()).RootElement.GetProperty("secret").GetString()!;
        using var client = new HttpClient { BaseAddress = admin.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using (var served = await client.PostAsync(Generation[0].Path, new StringContent(Generation[0].Body, System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.Equal(200, (int)served.StatusCode);
        }

        var captured = new System.Collections.Concurrent.ConcurrentQueue<(string Category, Microsoft.Extensions.Logging.LogLevel Level, Microsoft.Extensions.Logging.EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        app.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().AddProvider(capture);

        // The node reports its load at once when a model unloads: the report that lists both as not loaded.
        var reporter = app.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<Sovereign.Gateway.ControlPlane.NodeLoadReporter>().Single();
        var listed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        reporter.Reported += load =>
        {
            if (load.Available is { } available && available.Contains(Model) && available.Contains("all-MiniLM-L6-v2"))
            {
                listed.TrySetResult();
            }
        };

        // The first request after the unload: this node's row in the registry may not say so yet.
        Assert.Equal(200, (int)(await admin.PostAsync($"/admin/v1/models/{Model}/unload", null)).StatusCode);
        Assert.Equal(200, (int)(await admin.PostAsync("/admin/v1/models/all-MiniLM-L6-v2/unload", null)).StatusCode);
        foreach (var (path, body) in Generation)
        {
            await AssertNotLoadedAsync(client, path, body);
        }

        await AssertNotLoadedAsync(client, "/v1/embeddings", """{"model":"all-MiniLM-L6-v2","input":"a cat"}""");
        await AssertStatusAsync(client, "/v1/chat/completions", """{"model":"nobody-registered","messages":[{"role":"user","content":"hi"}]}""", 404, "model_not_found");

        // Logged as the operator's unload, not as overload: a refusal (4001), the key's first at Information and the
        // others counted into one line (4170), never a 4002 "no capacity" at Warning per request.
        app.Services.GetRequiredService<Sovereign.Gateway.Observability.RefusalLogSummary>().Flush();
        capture.Stop();
        Assert.DoesNotContain(captured, l => l.Event.Id == 4002);
        Assert.Single(captured, l => l.Event.Id == 4001 && l.Level == Microsoft.Extensions.Logging.LogLevel.Information && l.Message.Contains(" 503 ", StringComparison.Ordinal));
        Assert.Contains(captured, l => l.Event.Id == 4170 && l.Message.Contains($"refused {Generation.Length} more requests with 503 no_compliant_capacity", StringComparison.Ordinal));

        // This node's row in the registry lists them as not loaded, so a gateway of a cluster answers 503 for them too:
        // only the registry's models were listed, so a configured model or the built-in embedding model was a 404 there.
        // (The bound only turns a hang into a failure.)
        await listed.Task.WaitAsync(TimeSpan.FromMinutes(2));
        var node = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/nodes")).RootElement.GetProperty("data").EnumerateArray()
            .Single(n => n.GetProperty("id").GetString() == "here-1");
        string[] available = [.. node.GetProperty("load").GetProperty("available").EnumerateArray().Select(m => m.GetString()!)];
        Assert.Contains(Model, available);
        Assert.Contains("all-MiniLM-L6-v2", available);

        // Each refusal is evidence, as a refusal for want of capacity is: an inference.refused entry under its code.
        var audit = JsonDocument.Parse(await admin.GetStringAsync("/admin/v1/audit?order=desc&limit=200")).RootElement.GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("action").GetString() == "inference.refused").ToList();
        Assert.True(audit.Count >= Generation.Length + 1, $"{audit.Count} refusals audited");
    }
}
