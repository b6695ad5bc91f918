using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>Prompt tokens served from the prefix cache are recorded in the ledger and priced at the plan's cached-input rate.</summary>
[Collection(MeteringCollection.Name)]
public sealed class CachedPricingTests(MeteringFixture fixture)
{
    [Fact]
    public async Task CachedPromptTokens_AreBilledAtTheCachedRate_AndShownInUsage()
    {
        var (tenant, key) = await fixture.NewTenantAsync(plan: "cached");
        using var client = fixture.TenantClient(key);
        var body = $$"""{"model":"stories","messages":[{"role":"system","content":"You are storyteller {{Guid.NewGuid():N}}; tell happy stories."},{"role":"user","content":"A cat"}],"max_tokens":3,"temperature":0}""";
        var expected = 0m;
        var cachedTotal = 0;
        for (var i = 0; i < 2; i++)
        {
            var response = await client.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
            var usage = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("usage");
            var prompt = usage.GetProperty("prompt_tokens").GetInt32();
            var cached = usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();
            cachedTotal += cached;
            expected += Math.Round(((prompt - cached) * MeteringFixture.InputPerMillion + cached * MeteringFixture.CachedInputPerMillion
                + usage.GetProperty("completion_tokens").GetInt32() * MeteringFixture.OutputPerMillion) / 1_000_000m, 6);
            if (i == 1)
            {
                Assert.Equal(prompt - 1, cached);
            }
        }

        var invoice = JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/tenants/{tenant}/invoice")).RootElement;
        Assert.Equal(expected, decimal.Parse(invoice.GetProperty("total").GetString()!, CultureInfo.InvariantCulture));

        var rows = JsonDocument.Parse(await client.GetStringAsync("/v1/usage?group_by=model")).RootElement.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(cachedTotal, rows.Sum(r => r.GetProperty("cached_tokens").GetInt64()));
    }

    [Fact]
    public async Task Responses_AreMeteredLikeChat_WithCachedTokensAtTheCachedRate()
    {
        var (tenant, key) = await fixture.NewTenantAsync(plan: "cached");
        using var client = fixture.TenantClient(key);
        var body = $$"""{"model":"stories","instructions":"You are storyteller {{Guid.NewGuid():N}}.","input":"A dog","max_output_tokens":16,"temperature":0}""";
        var expected = 0m;
        for (var i = 0; i < 2; i++)
        {
            var response = await client.PostAsync("/v1/responses", new StringContent(body, Encoding.UTF8, "application/json"));
            Assert.Equal(200, (int)response.StatusCode);
            var usage = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("usage");
            var input = usage.GetProperty("input_tokens").GetInt32();
            var cached = usage.GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32();
            var output = usage.GetProperty("output_tokens").GetInt32();
            Assert.InRange(output, 1, 16);
            if (i == 1)
            {
                Assert.Equal(input - 1, cached);
            }

            expected += Math.Round(((input - cached) * MeteringFixture.InputPerMillion + cached * MeteringFixture.CachedInputPerMillion
                + output * MeteringFixture.OutputPerMillion) / 1_000_000m, 6);
        }

        var invoice = JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/tenants/{tenant}/invoice")).RootElement;
        Assert.Equal(expected, decimal.Parse(invoice.GetProperty("total").GetString()!, CultureInfo.InvariantCulture));
        var audit = JsonDocument.Parse(await client.GetStringAsync("/v1/audit")).RootElement.GetProperty("data").EnumerateArray().ToList();
        Assert.True(audit.Count(e => e.GetProperty("kind").GetString() != "admin") >= 2, "each response left its routing decision in the audit log");
    }

    [Fact]
    public async Task Responses_StoreTrue_TenantWithoutRetention_IsRefusedNamingThePolicy_WithRetention_IsStoredAndBilledOnce()
    {
        var (_, key) = await fixture.NewTenantAsync(plan: "cached");
        using var client = fixture.TenantClient(key);
        const string Body = """{"model":"stories","input":"A dog","max_output_tokens":16,"store":true}""";

        var refused = JsonDocument.Parse(await (await client.PostAsync("/v1/responses", new StringContent(Body, Encoding.UTF8, "application/json"))).Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("content_retention_not_allowed", refused.GetProperty("code").GetString());
        Assert.Equal("store", refused.GetProperty("param").GetString());
        Assert.Contains("retention is 'none'", refused.GetProperty("message").GetString(), StringComparison.Ordinal);

        var id = "ret" + Guid.NewGuid().ToString("N")[..8];
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan = "cached", policy = new { allowed_jurisdictions = new[] { "EU" }, retention = new { mode = "store", days = 7 } } }, 201);
        var retainingKey = (await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        using var retaining = fixture.TenantClient(retainingKey);
        var response = await retaining.PostAsync("/v1/responses", new StringContent(Body, Encoding.UTF8, "application/json"));
        var stored = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(200, (int)response.StatusCode);
        Assert.True(stored.GetProperty("store").GetBoolean());
        var fetched = JsonDocument.Parse(await retaining.GetStringAsync($"/v1/responses/{stored.GetProperty("id").GetString()}")).RootElement;
        Assert.Equal(stored.GetProperty("usage").GetRawText(), fetched.GetProperty("usage").GetRawText());

        // Reading it back is not another request: one usage record.
        var usage = JsonDocument.Parse(await retaining.GetStringAsync("/v1/usage?group_by=model")).RootElement.GetProperty("data").EnumerateArray().Single();
        Assert.Equal(1, usage.GetProperty("completed").GetInt64());
    }

    [Fact]
    public async Task PlanJson_ShowsTheCachedRate_DefaultingToTheInputRate()
    {
        var plans = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/plans", null, 200);
        var byName = (plans.ValueKind == JsonValueKind.Array ? plans : plans.GetProperty("data")).EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!);

        Assert.Equal(MeteringFixture.CachedInputPerMillion, byName["cached"].GetProperty("prices")[0].GetProperty("cached_input_per_million").GetDecimal());
        Assert.Equal(MeteringFixture.InputPerMillion, byName["standard"].GetProperty("prices")[0].GetProperty("cached_input_per_million").GetDecimal());
    }
}
