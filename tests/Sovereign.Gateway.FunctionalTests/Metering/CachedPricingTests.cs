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
    public async Task PlanJson_ShowsTheCachedRate_DefaultingToTheInputRate()
    {
        var plans = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/plans", null, 200);
        var byName = (plans.ValueKind == JsonValueKind.Array ? plans : plans.GetProperty("data")).EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!);

        Assert.Equal(MeteringFixture.CachedInputPerMillion, byName["cached"].GetProperty("prices")[0].GetProperty("cached_input_per_million").GetDecimal());
        Assert.Equal(MeteringFixture.InputPerMillion, byName["standard"].GetProperty("prices")[0].GetProperty("cached_input_per_million").GetDecimal());
    }
}
