using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// Requests that cost less than a millionth each are billed what they cost in sum: a request's cost was rounded to
/// millionths on its own, so every request under 25 tokens at 0.02 per million tokens (OpenAI's small embedding
/// price) was free (explorer23).
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class TinyCostTests(MeteringFixture fixture)
{
    // 43 tokens a chat here (its template): under half a millionth each, as 11 embedding tokens at 0.02 were.
    private const decimal PerMillion = 0.01m;
    private const string Body = """{"model":"stories","messages":[{"role":"user","content":"Hi"}],"max_tokens":1,"temperature":0}""";

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static decimal Money(JsonElement element) => element.ValueKind == JsonValueKind.String
        ? decimal.Parse(element.GetString()!, CultureInfo.InvariantCulture)
        : element.GetDecimal();

    [Fact]
    public async Task ManyRequestsOfLessThanAMillionthEach_AreBilledTheirExactSum_AndEveryFigureAgrees()
    {
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/tiny", new { currency = "EUR", weight = 1 }, 200);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/tiny/prices", new { model = MeteringFixture.Model, input_per_million = PerMillion, output_per_million = PerMillion }, 201);
        var (tenant, key) = await fixture.NewTenantAsync(new { budgets = new[] { new { period = "day", amount = 1m } } }, plan: "tiny");
        using var client = fixture.TenantClient(key);

        const int n = 40;
        var exact = 0m;
        var ids = new List<string>();
        for (var i = 0; i < n; i++)
        {
            using var response = await client.PostAsync("/v1/chat/completions", Json(Body));
            Assert.Equal(200, (int)response.StatusCode);
            var usage = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("usage");
            var tokens = usage.GetProperty("total_tokens").GetInt32();
            Assert.True(tokens < 50, $"each request costs less than half a millionth: {tokens} tokens");
            exact += tokens * PerMillion / 1_000_000m;
            ids.Add(response.Headers.GetValues("x-request-id").Single());
        }

        // Billed to the millionth: the sum of what each cost, never more than half a millionth away, never 0.
        var records = 0m;
        foreach (var id in ids)
        {
            records += Money(JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/usage/{id}")).RootElement.GetProperty("cost"));
        }

        Assert.True(Math.Abs(records - exact) <= 0.0000005m, $"records sum to {records}, the requests cost {exact}");

        // And every figure is that sum: usage (operator's and tenant's), the invoice, the budget's settled spend.
        var usageTotal = JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/usage?tenant={tenant}&group_by=tenant")).RootElement
            .GetProperty("data").EnumerateArray().Single().GetProperty("cost");
        Assert.Equal(records, Money(usageTotal));
        var own = JsonDocument.Parse(await client.GetStringAsync("/v1/usage?group_by=tenant")).RootElement.GetProperty("data").EnumerateArray().Single();
        Assert.Equal(records, Money(own.GetProperty("cost")));
        var invoice = JsonDocument.Parse(await fixture.Admin.GetStringAsync($"/admin/v1/tenants/{tenant}/invoice")).RootElement;
        Assert.Equal(records, Money(invoice.GetProperty("total")));
        var budget = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null, 200)).GetProperty("budgets")[0];
        Assert.Equal(records, budget.GetProperty("settled").GetDecimal());
        Assert.Equal(0m, budget.GetProperty("reserved").GetDecimal());
    }
}
