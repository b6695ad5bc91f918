using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using OpenAI.Chat;
using Sovereign.Cli.Commands;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Models;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A node that fronts OpenAI-compatible engines (<c>Sovereign:Engines</c>), as a GPU server runs vLLM behind
/// Sovereign: engine 0 answers, engine 1 refuses every connection. No GGUF model is configured, so none is served.
/// </summary>
public sealed class FrontedEngineFixture : IAsyncLifetime
{
    public const string AdminToken = "fronted-admin-token";
    public const string NodeId = "th-gpu-1";
    public const string Model = "typhoon";
    public const string Upstream = "scb10x/typhoon-2-8b";
    public const string Gone = "gone";

    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-fronted-").FullName;
    private int _tenants;

    public const string EngineKey = "engine-key-1";

    public FakeChatEngine Engine { get; } = new() { MetricsKey = EngineKey };

    public WebApplication App { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public Uri Address { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await Engine.InitializeAsync();
        App = ServeCommand.Build(new ServeSettings
        {
            Urls = "http://127.0.0.1:0",
            DataDirectory = _data,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Jurisdiction"] = "TH",
                ["Sovereign:NodeId"] = NodeId,
                ["Sovereign:AdminToken"] = AdminToken,
                ["Sovereign:BuiltInEmbeddings"] = "false",
                ["Sovereign:Engines:0:BaseUrl"] = Engine.BaseUrl,
                ["Sovereign:Engines:0:Capacity"] = "2",
                ["Sovereign:Engines:0:ApiKey"] = EngineKey,
                ["Sovereign:Engines:0:PromptCache"] = "Salt",
                ["Sovereign:Engines:0:Models:0:Id"] = Model,
                ["Sovereign:Engines:0:Models:0:Upstream"] = Upstream,
                ["Sovereign:Engines:0:Models:0:License"] = "llama3.1",
                ["Sovereign:Engines:0:Models:0:Origin"] = "th",
                ["Sovereign:Engines:0:Models:0:Languages:0"] = "th",
                ["Sovereign:Engines:0:Models:0:Languages:1"] = "TL",
                ["Sovereign:Engines:1:BaseUrl"] = FakeUpstreamEngine.RefusingUrl(),
                ["Sovereign:Engines:1:Models:0:Id"] = Gone,
            },
        }, []);
        await App.StartAsync();
        Address = new Uri(App.Urls.First());
        Admin = Client(AdminToken);
    }

    public HttpClient Client(string? key)
    {
        var client = new HttpClient { BaseAddress = Address };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return client;
    }

    /// <summary>A tenant with <paramref name="policy"/>; returns its id and key.</summary>
    public async Task<(string Tenant, string Key)> NewTenantAsync(object policy)
    {
        var id = "fe" + Interlocked.Increment(ref _tenants);
        using (var created = await Admin.PostAsJsonAsync("/admin/v1/tenants", new { id, policy }))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        using var key = await Admin.PostAsJsonAsync($"/admin/v1/tenants/{id}/keys", new { name = "k" });
        return (id, JsonDocument.Parse(await key.Content.ReadAsStringAsync()).RootElement.GetProperty("secret").GetString()!);
    }

    public async Task DisposeAsync()
    {
        Admin.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        await Engine.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }
}

public sealed class FrontedEngineTests(FrontedEngineFixture fixture) : IClassFixture<FrontedEngineFixture>
{
    private static readonly object ThOnly = new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = false };

    [Fact]
    public async Task TenantRequest_RunsOnTheEngineBehindThisNode_AsThisNode_AndIsBilledTheEnginesCount()
    {
        // A policy that allows no external provider: the engine is this node's own, in its jurisdiction.
        var (tenant, key) = await fixture.NewTenantAsync(ThOnly);
        using var client = fixture.Client(key);
        using var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{FrontedEngineFixture.Model}}","messages":[{"role":"user","content":"fronted-1"}],"max_tokens":2}"""));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        Assert.Equal(("TH", FrontedEngineFixture.NodeId),
            (response.Headers.GetValues(InferenceRouter.JurisdictionHeader).Single(), response.Headers.GetValues(InferenceRouter.NodeHeader).Single()));
        var answer = JsonDocument.Parse(text).RootElement;
        Assert.Equal((FrontedEngineFixture.Model, "Hello from"),
            (answer.GetProperty("model").GetString(), answer.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()));

        // The engine was asked by its own name for the model.
        Assert.Equal(FrontedEngineFixture.Upstream, fixture.Engine.LastWith("fronted-1")["model"]!.GetValue<string>());

        // Billed once at the engine's count; the audit entry places it on this node.
        var row = Assert.Single(JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/usage?tenant={tenant}")).RootElement.GetProperty("data").EnumerateArray());
        Assert.Equal((1, FakeChatEngine.PromptTokens, 2), (row.GetProperty("requests").GetInt32(), row.GetProperty("prompt_tokens").GetInt32(), row.GetProperty("completion_tokens").GetInt32()));
        var auditId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
        var entries = JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/audit?tenant={tenant}")).RootElement.GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == auditId).ToList();
        Assert.Equal(["inference.allowed", "inference.completed"], entries.Select(e => e.GetProperty("action").GetString()));
        Assert.All(entries, e => Assert.Equal((FrontedEngineFixture.NodeId, "TH"), (e.GetProperty("node").GetString(), e.GetProperty("jurisdiction").GetString())));
    }

    /// <summary>
    /// A relayed answer's body id is the engine's (the client receives it as the engine wrote it): the outcome entry
    /// states it as <c>response_id</c>, whole answer or stream, so the auditor finds the entry from the client's body.
    /// Before, no entry named the engine's id.
    /// </summary>
    [Fact]
    public async Task RelayedAnswer_TheEnginesBodyId_IsInTheOutcomeEntry_AndFindsIt()
    {
        var (tenant, key) = await fixture.NewTenantAsync(ThOnly);
        using var client = fixture.Client(key);
        foreach (var stream in new[] { "false", "true" })
        {
            using var response = await client.PostAsync("/v1/chat/completions",
                Json($$"""{"model":"{{FrontedEngineFixture.Model}}","messages":[{"role":"user","content":"relayed id"}],"max_tokens":2,"stream":{{stream}}}"""));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, text);
            Assert.Contains("\"id\":\"chatcmpl-fake\"", text, StringComparison.Ordinal);
            var auditId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
            var outcome = Assert.Single(JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/audit?id={auditId}")).RootElement.GetProperty("data").EnumerateArray(),
                e => e.GetProperty("action").GetString() == "inference.completed");
            Assert.Equal("chatcmpl-fake", outcome.GetProperty("details").GetProperty("response_id").GetString());
        }

        // This engine gives every answer the same id: the search names every request of the tenant that carried it.
        var found = JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/audit?id=chatcmpl-fake&tenant={tenant}")).RootElement.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(2, found.Count(e => e.GetProperty("action").GetString() == "inference.completed"));
        Assert.Equal(2, found.Count(e => e.GetProperty("action").GetString() == "inference.allowed"));
    }

    /// <summary>
    /// The engine's prompt cache is kept apart per tenant (PromptCache salt, vLLM's cache_salt): the gateway sets the salt
    /// from the tenant, replacing one the client sent, so tenant B cannot name tenant A's salt; a client's own salt
    /// narrows its tenant's. Before, every tenant's prompts shared the engine's cache (cached_tokens told B what A sent).
    /// </summary>
    [Fact]
    public async Task TheEnginesPromptCache_IsSaltedPerTenant_AndAClientCannotTakeAnothersSalt()
    {
        var (tenantA, keyA) = await fixture.NewTenantAsync(ThOnly);
        var (tenantB, keyB) = await fixture.NewTenantAsync(ThOnly);
        using var a = fixture.Client(keyA);
        using var b = fixture.Client(keyB);
        var saltA = Sovereign.Gateway.Pipeline.EnginePromptCache.SaltOf(tenantA, null);
        foreach (var (client, marker, salt) in new[] { (a, "salt-a", (string?)null), (b, "salt-b", saltA), (a, "salt-a-own", "mine") })
        {
            var body = salt is null
                ? $$"""{"model":"{{FrontedEngineFixture.Model}}","messages":[{"role":"user","content":"{{marker}}"}],"max_tokens":2}"""
                : $$"""{"model":"{{FrontedEngineFixture.Model}}","messages":[{"role":"user","content":"{{marker}}"}],"max_tokens":2,"cache_salt":"{{salt}}"}""";
            using var response = await client.PostAsync("/v1/chat/completions", Json(body));
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        }

        string SaltSent(string marker) => fixture.Engine.LastWith(marker)["cache_salt"]!.GetValue<string>();
        Assert.Equal(saltA, SaltSent("salt-a"));
        Assert.Equal(43, saltA.Length);
        Assert.Equal(Sovereign.Gateway.Pipeline.EnginePromptCache.SaltOf(tenantB, saltA), SaltSent("salt-b"));
        Assert.NotEqual(saltA, SaltSent("salt-b"));
        Assert.Equal(Sovereign.Gateway.Pipeline.EnginePromptCache.SaltOf(tenantA, "mine"), SaltSent("salt-a-own"));
        Assert.NotEqual(saltA, SaltSent("salt-a-own"));
    }

    /// <summary>
    /// reasoning_effort reaches an engine (vLLM gives it to a reasoning model's template); this process's own engine
    /// refuses it by name (<c>BadInputTests</c>), where it used to be dropped.
    /// </summary>
    [Fact]
    public async Task ReasoningEffort_IsForwardedToTheEngine()
    {
        var (_, key) = await fixture.NewTenantAsync(ThOnly);
        using var client = fixture.Client(key);
        using var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{FrontedEngineFixture.Model}}","messages":[{"role":"user","content":"fronted-effort"}],"max_tokens":2,"reasoning_effort":"low"}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("low", fixture.Engine.LastWith("fronted-effort")["reasoning_effort"]!.GetValue<string>());
    }

    [Fact]
    public async Task StreamedThroughTheOpenAISdk_CarriesTheEnginesTokens_AndUsage()
    {
        var (_, key) = await fixture.NewTenantAsync(ThOnly);
        var chat = new ChatClient(FrontedEngineFixture.Model, new ApiKeyCredential(key), new global::OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.Address, "/v1") });
        var content = new StringBuilder();
        ChatTokenUsage? usage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("fronted-stream")], new ChatCompletionOptions { MaxOutputTokenCount = 16 }))
        {
            content.Append(string.Concat(update.ContentUpdate.Select(p => p.Text)));
            usage = update.Usage ?? usage;
        }

        Assert.Equal(string.Concat(FakeChatEngine.Words), content.ToString());
        Assert.Equal((FakeChatEngine.PromptTokens, FakeChatEngine.Words.Length), (usage!.InputTokenCount, usage.OutputTokenCount));
    }

    [Fact]
    public async Task EngineThatRefusesConnections_Is503WithRetryAfter_NeverAnotherPlace_AndBilledNothing()
    {
        var (tenant, key) = await fixture.NewTenantAsync(ThOnly);
        using var client = fixture.Client(key);
        for (var i = 0; i < 2; i++)
        {
            using var response = await client.PostAsync("/v1/chat/completions",
                Json($$"""{"model":"{{FrontedEngineFixture.Gone}}","messages":[{"role":"user","content":"hi"}],"max_tokens":2}"""));
            var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal("no_compliant_capacity", error.GetProperty("code").GetString());
            Assert.NotNull(response.Headers.RetryAfter);
        }

        var usage = JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/usage?tenant={tenant}")).RootElement.GetProperty("data").EnumerateArray().ToList();
        Assert.All(usage, row => Assert.Equal((0m, 0), (row.GetProperty("cost").GetDecimal(), row.GetProperty("completion_tokens").GetInt32())));
    }

    [Fact]
    public async Task PolicyThatExcludesTheModelsLicence_IsRefusedNamingTheRule()
    {
        var (_, key) = await fixture.NewTenantAsync(new { allowed_jurisdictions = new[] { "TH" }, allowed_licenses = new[] { "apache-2.0" } });
        using var client = fixture.Client(key);
        using var response = await client.PostAsync("/v1/chat/completions",
            Json($$"""{"model":"{{FrontedEngineFixture.Model}}","messages":[{"role":"user","content":"hi"}],"max_tokens":2}"""));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("model_not_allowed", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task ModelsList_ShowsTheEnginesModels_AndNoBuiltInModel()
    {
        using var anonymous = fixture.Client(null);
        var (_, key) = await fixture.NewTenantAsync(ThOnly);
        using var client = fixture.Client(key);
        var ids = JsonDocument.Parse(await client.GetStringAsync("/v1/models")).RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal([FrontedEngineFixture.Model, FrontedEngineFixture.Gone, "auto"], ids);

        // An embeddings request names a chat model of the engine: the client's mistake, before anything is relayed.
        using var embeddings = await client.PostAsync("/v1/embeddings", Json($$"""{"model":"{{FrontedEngineFixture.Model}}","input":"hi"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, embeddings.StatusCode);
        Assert.Contains("model_not_supported", await embeddings.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public void LoadReport_ListsEachEnginesModels_WithTheirSlots_AndNoneOfAnEngineThatDoesNotAnswer()
    {
        var services = fixture.App.Services;
        var engines = services.GetRequiredService<FrontedEngines>();
        var routeQueue = services.GetRequiredService<IOptions<SovereignOptions>>().Value.Limits.RouteQueue;
        var catalog = services.GetRequiredService<ModelCatalog>();
        var gates = services.GetRequiredService<RouteGates>();

        engines.MarkUp(1);
        var listed = NodeLoadReporter.ModelsOf(catalog, routeQueue, engines);
        var typhoon = Assert.Single(listed, m => m.Id == FrontedEngineFixture.Model);
        Assert.Equal((FrontedEngineFixture.Model, 2 + routeQueue, "chat", "llama3.1", "TH"), (typhoon.Upstream, typhoon.Capacity, typhoon.Kind, typhoon.License, typhoon.Origin));
        Assert.Equal(["th", "fil"], typhoon.Languages!); // as the detector names them: a gateway's `auto` routes by these
        Assert.Contains(listed, m => m.Id == FrontedEngineFixture.Gone);

        // Engine 1 does not answer: its model is listed nowhere a gateway would route to.
        engines.MarkDown(1);
        Assert.DoesNotContain(NodeLoadReporter.ModelsOf(catalog, routeQueue, engines), m => m.Id == FrontedEngineFixture.Gone);
        var load = Assert.Single(NodeLoadReporter.LoadOf(catalog, gates, FrontedEngineFixture.NodeId, engines, [0.25, null]));
        Assert.Equal((FrontedEngineFixture.Model, 0, 2, 0, 0.25), (load.Model, load.Running, load.FreeSlots, load.QueueDepth, load.KvCacheUse));
    }

    [Fact]
    public async Task Probe_SendsTheEnginesKey_SoAKeyedLlamaServerReportsItsKvCacheUse()
    {
        // llama-server started with --api-key answers /metrics 401 without the key. Before, the probe sent none: the
        // engine counted as up but its KV-cache use was never reported (null).
        var reporter = fixture.App.Services.GetServices<Microsoft.Extensions.Hosting.IHostedService>().OfType<NodeLoadReporter>().Single();
        var kvUse = await reporter.ProbeEnginesAsync(CancellationToken.None);
        Assert.Equal([FakeChatEngine.KvCacheUse, null], kvUse);
    }

    [Fact]
    public void NodesList_ShowsAModelWhoseEngineDoesNotAnswer_AsNotLoaded()
    {
        // The admin API's row of a node whose engine 1 is down: its model is in the report's available list only.
        // Before, `sovereign nodes list` printed only "typhoon": "gone" vanished, with no sign of why it was refused.
        var node = JsonDocument.Parse("""
            {"id":"th-gpu-1","models":[{"id":"typhoon","kind":"chat"},{"id":"bge","kind":"embedding"}],
             "load":{"reported_at":1,"models":[],"accelerators":[],"available":["gone","typhoon"]}}
            """).RootElement;
        Assert.Equal("typhoon, bge (embedding), gone (not loaded)", NodesCommand.ModelsCell(node));
        Assert.Equal("typhoon", NodesCommand.ModelsCell(JsonDocument.Parse("""{"models":[{"id":"typhoon"}],"load":null}""").RootElement));
    }

    [Fact]
    public void NodesList_ShowsAChatModelsLanguages()
    {
        // The languages `auto` routes by (before, nodes list did not show them: only the admin API's JSON had them).
        var node = JsonDocument.Parse("""
            {"id":"th-gpu-1","models":[{"id":"typhoon","kind":"chat","languages":["th","fil"]},{"id":"qwen","kind":"chat","languages":[]},{"id":"bge","kind":"embedding","languages":[]}]}
            """).RootElement;
        Assert.Equal("typhoon [th fil], qwen, bge (embedding)", NodesCommand.ModelsCell(node));
    }

    [Theory]
    [InlineData("""{"BaseUrl":"http://127.0.0.1:8000/v1","Models":[{"Id":"x"}]}""", "Sovereign:Engines:0:BaseUrl")]
    [InlineData("""{"BaseUrl":"ftp://engine","Models":[{"Id":"x"}]}""", "Sovereign:Engines:0:BaseUrl")]
    [InlineData("""{"BaseUrl":"http://127.0.0.1:8000","Models":[]}""", "Sovereign:Engines:0:Models")]
    [InlineData("""{"BaseUrl":"http://127.0.0.1:8000","Models":[{"Id":"m"}]}""", "Sovereign:Engines:0:Models:0:Id 'm' is used by two models")]
    [InlineData("""{"BaseUrl":"http://127.0.0.1:8000","Capacity":0,"Models":[{"Id":"x","License":"not-a-licence","Origin":"XX1"}]}""", "Sovereign:Engines:0:Capacity")]
    [InlineData("""{"BaseUrl":"http://127.0.0.1:8000","Models":[{"Id":"x","License":"not-a-licence"}]}""", "Sovereign:Engines:0:Models:0:License")]
    [InlineData("""{"BaseUrl":"http://127.0.0.1:8000","Models":[{"Id":"x","Origin":"XX1"}]}""", "Sovereign:Engines:0:Models:0:Origin")]
    [InlineData("""{"BaseUrl":"http://127.0.0.1:8000","Models":[{"Id":"x","Languages":["zz-not"]}]}""", "Sovereign:Engines:0:Models:0:Languages:0")]
    [InlineData("""{"BaseUrl":"http://127.0.0.1:8000","PromptCache":"per-tenant","Models":[{"Id":"x"}]}""", "Sovereign:Engines:0:PromptCache (--engine-prompt-cache) must be 'shared', 'salt'")]
    public async Task Serve_BadEngineSetting_StopsTheStartNamingIt(string engine, string message) =>
        Assert.Contains(message, await StartFailure.WithSovereignSectionAsync("""{"Engines":[""" + engine + "]}"), StringComparison.Ordinal);

    [Fact]
    public async Task Serve_EngineModelFlagsWithoutAnEngine_ExitWithCode2NamingTheFlag()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync("serve", "--engine-model", "typhoon", "--urls", "http://127.0.0.1:0");
        Assert.Equal(2, exit);
        Assert.Contains("need --engine URL", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_LanguageWithoutAChatModelFlag_ExitsWithCode2NamingTheFlags()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync("serve", "--language", "th", "--embedding-model", TestModels.Stories260K + "=e", "--urls", "http://127.0.0.1:0");
        Assert.Equal(2, exit);
        Assert.Contains("--language declares the languages of the chat models given with --model or --engine-model", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_LanguageFlag_GivesTheFlagModelsTheirLanguages_AndAnUnknownCodeStopsTheStart()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync("serve", "--language", "th", "--language", "thai", "--engine", "http://127.0.0.1:9", "--engine-model", "typhoon",
            "--urls", "http://127.0.0.1:0", "--data-dir", Directory.CreateTempSubdirectory("sovereign-language-flag-").FullName);
        Assert.Equal(2, exit);
        Assert.Contains("Sovereign:Engines:0:Models:0:Languages:1 'thai' is not a language code", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_EmptyEngineEmbeddingModelName_NamesTheEmbeddingFlag()
    {
        // Before: the message named --engine-model, a flag the operator had not used.
        var (exit, _, stderr) = await CliProcess.RunAsync("serve", "--engine", "http://127.0.0.1:9", "--engine-embedding-model", "bge=", "--urls", "http://127.0.0.1:0");
        Assert.Equal(2, exit);
        Assert.Contains("--engine-embedding-model 'bge='", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(@"a\r\nX-Injected: 1", "X-Injected")]
    [InlineData("two words", "words")]
    [InlineData(@"caf\u00e9", "caf")]
    public async Task Serve_EngineKeyThatCannotBeSentAsABearerHeader_StopsTheStartNamingIt(string jsonKey, string secretPart)
    {
        // Before: the node started, and every request to the engine was a 500 internal_error (the header could not be built).
        var failure = await StartFailure.WithSovereignSectionAsync(
            """{"Engines":[{"BaseUrl":"http://127.0.0.1:8000","ApiKey":"KEY","Models":[{"Id":"x"}]}]}""".Replace("KEY", jsonKey, StringComparison.Ordinal));
        Assert.Contains("Sovereign:Engines:0:ApiKey", failure, StringComparison.Ordinal);
        Assert.DoesNotContain(secretPart, failure, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RegisteringAnEngineWithAKeyThatCannotBeSent_Is400NamingApiKey()
    {
        // Before: 201, and every request relayed to that engine was a 500 internal_error.
        using var response = await fixture.Admin.PostAsJsonAsync("/admin/v1/nodes", new
        {
            id = "bad-key-engine",
            jurisdiction = "TH",
            base_url = "http://127.0.0.1:9",
            api_key = "secret\r\nX-Injected: 1",
            models = new[] { new { id = "bad-key-model" } },
        });
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal((HttpStatusCode.BadRequest, "api_key", "invalid_value"), (response.StatusCode, error.GetProperty("param").GetString(), error.GetProperty("code").GetString()));
        Assert.DoesNotContain("secret", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}
