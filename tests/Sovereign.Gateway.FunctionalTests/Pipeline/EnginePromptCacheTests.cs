using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sovereign.Gateway.Pipeline;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A registered engine's own prompt cache (vLLM's, llama-server's) served every tenant routed to it: its
/// <c>cached_tokens</c> told one tenant whether another had sent a text. The operator now says per engine how to keep
/// tenants apart: <c>salt</c> (vLLM's <c>cache_salt</c>, set by the gateway per tenant) or <c>off</c> (llama-server's
/// <c>cache_prompt: false</c>); <c>shared</c>, the default, sends the client's body as before.
/// </summary>
public sealed class EnginePromptCacheTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    private static int _engines;

    [Theory]
    [InlineData("salt")]
    [InlineData("off")]
    [InlineData(null)]
    public async Task TheRelayedBody_KeepsTenantsApart_AsTheEnginesRegistrationSays(string? promptCache)
    {
        var bodies = new ConcurrentQueue<JsonObject>();
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            bodies.Enqueue((JsonObject)(await JsonNode.ParseAsync(context.Request.Body))!);
            await FakeUpstreamEngine.AnswerAsync(context, """{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}""");
        });
        var model = "pc-model-" + Interlocked.Increment(ref _engines);
        var node = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes", new
        {
            id = model + "-node", jurisdiction = "TH", base_url = engine.Url, prompt_cache = promptCache,
            models = new[] { new { id = model, upstream = "upstream", capacity = 2 } },
        }, 201);
        Assert.Equal(promptCache ?? "shared", node.GetProperty("prompt_cache").GetString());

        var (tenantA, a) = await fixture.NewTenantAsync("default");
        var (_, b) = await fixture.NewTenantAsync("default");
        using var _a = a;
        using var _b = b;
        var saltA = EnginePromptCache.SaltOf(tenantA, null);
        foreach (var (client, salt) in new[] { (a, (string?)null), (b, saltA) })
        {
            var salted = salt is null ? "" : $$""","cache_salt":"{{salt}}" """;
            using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                $$"""{"model":"{{model}}","messages":[{"role":"user","content":"the same prefix"}],"max_tokens":1{{salted}}}""", Encoding.UTF8, "application/json"));
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        }

        var (fromA, fromB) = (bodies.ElementAt(0), bodies.ElementAt(1));
        switch (promptCache)
        {
            case "salt":
                Assert.Equal(saltA, fromA["cache_salt"]!.GetValue<string>());
                Assert.NotEqual(saltA, fromB["cache_salt"]!.GetValue<string>());
                Assert.Null(fromA["cache_prompt"]);
                break;
            case "off":
                Assert.All(new[] { fromA, fromB }, body => Assert.False(body["cache_prompt"]!.GetValue<bool>()));
                Assert.Null(fromA["cache_salt"]);
                break;
            default:
                // Shared: the client's body as it was (B's salt forwarded: the engine's cache is the operator's choice).
                Assert.Null(fromA["cache_salt"]);
                Assert.Null(fromA["cache_prompt"]);
                Assert.Equal(saltA, fromB["cache_salt"]!.GetValue<string>());
                break;
        }
    }

    [Fact]
    public async Task AnUnknownPromptCacheMode_Is400NamingTheField()
    {
        using var response = await fixture.Admin.PostAsync("/admin/v1/nodes", new StringContent(
            """{"id":"pc-bad","jurisdiction":"TH","base_url":"http://127.0.0.1:9","prompt_cache":"per-request","models":[{"id":"m"}]}""", Encoding.UTF8, "application/json"));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal(("prompt_cache", "invalid_value"), (error.GetProperty("param").GetString(), error.GetProperty("code").GetString()));
    }
}
