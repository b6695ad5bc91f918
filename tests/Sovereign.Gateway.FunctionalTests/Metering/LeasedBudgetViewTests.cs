using System.Text.Json;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Console;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// A budget as the limits answers (<c>GET /admin/v1/tenants/{id}/limits</c>, the tenant's <c>GET /v1/limits</c>, the
/// answer of a limits change), <c>sovereign limits</c> and the console show it: spent, reserved, leased and remaining
/// apart, adding up to the limit. The leased money was counted inside <c>remaining</c> with no field naming it.
/// </summary>
public sealed class LeasedBudgetViewTests
{
    // As the tenant's grain reports it: 20 spent, 5 held by requests in flight, 10 held by gateways' leases (not yet
    // admitted), 65 held by nothing; its Remaining (what the tenant can still spend) counts the leased 10 in.
    private static readonly BudgetStatusView Budget = new(null, "month", 100m, 20m, 5m, 75m, "EUR", 10m);

    private static JsonElement Json(BudgetStatusView view) =>
        JsonDocument.Parse(JsonSerializer.Serialize(MeteringApi.BudgetJson(view), OpenAIJson.Options)).RootElement;

    [Fact]
    public void BudgetJson_ShowsLeasedApart_AndRemainingCountsItOnce()
    {
        var json = Json(Budget);

        Assert.Equal((20m, 5m, 10m, 65m), (json.GetProperty("settled").GetDecimal(), json.GetProperty("reserved").GetDecimal(),
            json.GetProperty("leased").GetDecimal(), json.GetProperty("remaining").GetDecimal()));
        Assert.Equal(json.GetProperty("limit").GetDecimal(),
            json.GetProperty("settled").GetDecimal() + json.GetProperty("reserved").GetDecimal() + json.GetProperty("leased").GetDecimal() + json.GetProperty("remaining").GetDecimal());
    }

    [Fact]
    public void BudgetJson_WithoutLeases_IsAsBefore_AndAnOverspentBudgetHasNothingRemaining()
    {
        var plain = Json(new BudgetStatusView("key_1", "day", 10m, 4m, 1m, 5m, "EUR"));
        Assert.Equal((0m, 5m), (plain.GetProperty("leased").GetDecimal(), plain.GetProperty("remaining").GetDecimal()));

        // Spent past the limit (a settlement above its reservation) while a lease still holds 2: the lease is still the
        // tenant's to spend (the grain reports 2 left), but nothing else remains.
        var overspent = Json(new BudgetStatusView(null, "month", 10m, 11m, 0m, 2m, "EUR", 2m));
        Assert.Equal((2m, 0m), (overspent.GetProperty("leased").GetDecimal(), overspent.GetProperty("remaining").GetDecimal()));
    }

    [Fact]
    public void Console_BudgetTable_HasALeasedColumn()
    {
        var limits = JsonDocument.Parse(JsonSerializer.Serialize(new { budgets = new[] { MeteringApi.BudgetJson(Budget) } }, OpenAIJson.Options)).RootElement;
        var page = new ConsolePage("Budgets", null);

        OperatorPages.BudgetTables(page, limits);

        var html = page.Render();
        Assert.Contains("""<th scope="col">reserved</th><th scope="col">leased</th><th scope="col">remaining</th>""", html, StringComparison.Ordinal);
        Assert.Contains("<td>20</td><td>5</td><td>10</td><td>65</td>", html, StringComparison.Ordinal);
    }
}
