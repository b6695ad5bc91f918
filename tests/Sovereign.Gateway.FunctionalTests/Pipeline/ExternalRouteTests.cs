using System.Net;
using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// External engines run through the same pipeline as the local one: the reservation bounds every choice, and a
/// weighted-fair queue sits in front of the engine's registered capacity, so a burst waits instead of failing.
/// </summary>
[Collection(ResidencyCollection.Name)]
public sealed class ExternalRouteTests(ResidencyFixture fixture)
{
    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>
    /// Registers an external node serving the SG engine's model under an id only it serves, so that requests for
    /// it can only run there (the TH gateway's own node does not have it), and returns that model id.
    /// </summary>
    private async Task<string> ExternalOnlyModelAsync(string name, int capacity)
    {
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = name, jurisdiction = "SG", base_url = fixture.Sg.Urls.First(), models = new[] { new { id = name, upstream = ResidencyFixture.Model, capacity } } }, 201);
        return name;
    }

    private static string Body(string model, string rest) => $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],{{rest}}}""";

    [Fact]
    public async Task ManyChoices_OnAnExternalEngine_NeverOverspendTheBudget()
    {
        const decimal outputPerMillion = 1_000_000m; // 1 per output token: the output reservation dominates.
        await fixture.AdminAsync(HttpMethod.Put, "/admin/v1/plans/external-priced", new { currency = "EUR", weight = 1 }, 200);
        var model = await ExternalOnlyModelAsync("sg-choices-model", capacity: 16);
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/plans/external-priced/prices", new { model, input_per_million = 0m, output_per_million = outputPerMillion }, 201);
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants",
            new { id = "sg-choices", plan = "external-priced", policy = new { allowed_jurisdictions = new[] { "ASEAN" }, allow_external_providers = true } }, 201);
        var key = (await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants/sg-choices/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        // One request may generate 4 choices × 8 tokens = 32 tokens: the budget holds one and a half of them.
        const decimal budget = 48m;
        await fixture.AdminAsync(HttpMethod.Put, "/admin/v1/tenants/sg-choices/limits", new { budgets = new[] { new { period = "day", amount = budget } } }, 200);

        using var client = fixture.TenantClient(key);
        var body = Body(model, "\"max_tokens\":8,\"n\":4,\"temperature\":1");
        var responses = await Task.WhenAll(Enumerable.Range(0, 20).Select(_ => client.PostAsync("/v1/chat/completions", Json(body))));

        Assert.Contains(responses, r => r.StatusCode == HttpStatusCode.OK);
        Assert.All(responses, r => Assert.Contains(r.StatusCode, new[] { HttpStatusCode.OK, HttpStatusCode.TooManyRequests }));
        Assert.All(responses.Where(r => r.StatusCode == HttpStatusCode.OK), r => Assert.Equal("SG", r.Headers.GetValues("x-sovereign-jurisdiction").Single()));
        var limits = await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/tenants/sg-choices/limits", null, 200);
        var state = limits.GetProperty("budgets")[0];
        Assert.True(state.GetProperty("settled").GetDecimal() <= budget, $"settled {state.GetProperty("settled").GetDecimal()} of a {budget} budget");
        Assert.Equal(0m, state.GetProperty("reserved").GetDecimal());
    }

    [Fact]
    public async Task BurstAboveTheRegisteredCapacity_WaitsInTheQueue_InsteadOfFailing()
    {
        // Registered with capacity 8: 64 clients at once must all be served there, none refused.
        var model = await ExternalOnlyModelAsync("sg-burst-model", capacity: 8);
        var key = await fixture.CreateTenantWithKeyAsync("sg-burst", new { allowed_jurisdictions = new[] { "ASEAN" }, allow_external_providers = true });
        using var client = fixture.TenantClient(key);
        var body = Body(model, "\"max_tokens\":4,\"temperature\":0");
        var responses = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ => client.PostAsync("/v1/chat/completions", Json(body))));

        foreach (var response in responses)
        {
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            Assert.Equal(model, response.Headers.GetValues("x-sovereign-node").Single());
        }
    }

    [Fact]
    public async Task NoMaxTokens_TheReservationCoversTheLimitTheGatewaySendsUpstream()
    {
        var model = await ExternalOnlyModelAsync("sg-unbounded-model", capacity: 4);
        await fixture.AdminAsync(HttpMethod.Put, "/admin/v1/plans/external-bounded", new { currency = "EUR", weight = 1 }, 200);
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/plans/external-bounded/prices", new { model, input_per_million = 0m, output_per_million = 1_000_000m }, 201);
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants",
            new { id = "sg-unbounded", plan = "external-bounded", policy = new { allowed_jurisdictions = new[] { "ASEAN" }, allow_external_providers = true } }, 201);
        var key = (await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/tenants/sg-unbounded/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        // Enough for 100 output tokens, far less than the 4,096 the server caps an unbounded request at.
        await fixture.AdminAsync(HttpMethod.Put, "/admin/v1/tenants/sg-unbounded/limits", new { budgets = new[] { new { period = "day", amount = 100m } } }, 200);
        using var client = fixture.TenantClient(key);

        using var unbounded = await client.PostAsync("/v1/chat/completions", Json(Body(model, "\"temperature\":0")));
        using var bounded = await client.PostAsync("/v1/chat/completions", Json(Body(model, "\"temperature\":0,\"max_tokens\":8")));

        Assert.Equal(HttpStatusCode.TooManyRequests, unbounded.StatusCode);
        Assert.Equal("budget_exceeded", JsonDocument.Parse(await unbounded.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.OK, bounded.StatusCode);
        Assert.InRange(JsonDocument.Parse(await bounded.Content.ReadAsStringAsync()).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 1, 8);
    }

    [Fact]
    public async Task Tools_PassThroughToTheExternalEngine_WhichRendersThemIntoItsPrompt()
    {
        // The engine behind the route is another gateway whose model has a 256-token context. The same short chat
        // fits without tools; with tools, the engine's own template writes them into the prompt, which then no longer
        // fits: the engine's refusal shows that the tools reached it as sent.
        var model = await ExternalOnlyModelAsync("sg-tools-model", capacity: 2);
        var key = await fixture.CreateTenantWithKeyAsync("sg-tools", new { allowed_jurisdictions = new[] { "ASEAN" }, allow_external_providers = true });
        using var client = fixture.TenantClient(key);
        const string Tools = """
            "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"boolean"}},"required":["a"]}}}],"tool_choice":"required"
            """;

        using var plain = await client.PostAsync("/v1/chat/completions", Json(Body(model, "\"max_tokens\":4")));
        using var withTools = await client.PostAsync("/v1/chat/completions", Json(Body(model, "\"max_tokens\":4," + Tools)));

        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        var text = await withTools.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, withTools.StatusCode);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Equal(model, withTools.Headers.GetValues("x-sovereign-node").Single());
    }
}
