using Microsoft.Extensions.DependencyInjection;
using Sovereign.Metering.Pricing;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// <c>PUT /admin/v1/plans/{name}</c> changes what it names and keeps the rest of the plan as stored. Found as an
/// operator: <c>plans set bat --weight 3</c> turned a batch plan interactive, and a price added while a plan was being
/// set (1 in 30 tries on a live server; at any time from another gateway whose book this one had not heard of yet) was
/// answered 201 and audited, then written over with the prices the plan had before.
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class PlanUpdateTests(MeteringFixture fixture)
{
    [Fact]
    public async Task APlanSetWithoutPriority_KeepsItsPriority()
    {
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/keeps-batch", new { currency = "EUR", priority = "batch" }, 200);

        var reweighted = await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/keeps-batch", new { weight = 3 }, 200);

        Assert.Equal("batch", reweighted.GetProperty("priority").GetString());
        Assert.Equal(3, reweighted.GetProperty("weight").GetInt32());
        var made = await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/new-interactive", new { currency = "EUR" }, 200);
        Assert.Equal("interactive", made.GetProperty("priority").GetString());
    }

    /// <summary>
    /// Plans are found whatever the case, so a PUT in another case is the same plan: it renamed it ('standard' became
    /// 'Standard' and moved to the end of the list), and a tenant put on 'GOLD-CASE' stored the plan as typed.
    /// </summary>
    [Fact]
    public async Task APlanNamedInAnotherCase_KeepsItsName_AndTenantsStoreIt()
    {
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/Gold-Case", new { currency = "EUR" }, 200);

        var updated = await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/gold-case", new { weight = 4 }, 200);

        Assert.Equal("Gold-Case", updated.GetProperty("name").GetString());
        var names = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/plans", null, 200)).GetProperty("data").EnumerateArray()
            .Select(p => p.GetProperty("name").GetString()!).Where(n => n.Equals("gold-case", StringComparison.OrdinalIgnoreCase)).ToList();
        Assert.Equal(["Gold-Case"], names);

        var policy = new { allowed_jurisdictions = new[] { "EU" } };
        var tenant = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "case-plan", plan = "GOLD-CASE", policy }, 201);
        Assert.Equal("Gold-Case", tenant.GetProperty("plan").GetString());
        var moved = await fixture.SendAsync(HttpMethod.Patch, "/admin/v1/tenants/case-plan", new { plan = "standard" }, 200);
        Assert.Equal("standard", moved.GetProperty("plan").GetString());
        var back = await fixture.SendAsync(HttpMethod.Patch, "/admin/v1/tenants/case-plan", new { plan = "gold-CASE" }, 200);
        Assert.Equal("Gold-Case", back.GetProperty("plan").GetString());
    }

    [Fact]
    public async Task APlanSet_KeepsAPriceThisGatewayHadNotSeen()
    {
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/merged-prices", new { currency = "EUR" }, 200);
        // As another gateway of the cluster adds it: in the database, not yet in this gateway's book.
        var now = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        await fixture.App.Services.GetRequiredService<PriceBookStore>().UpdateAsync(
            book => book.WithPrice("merged-prices", new ModelPrice { Model = "added-elsewhere", EffectiveFrom = now, InputPerMillion = 1m }, now), now);

        var plan = await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/merged-prices", new { weight = 2 }, 200);

        Assert.Contains(plan.GetProperty("prices").EnumerateArray(), p => p.GetProperty("model").GetString() == "added-elsewhere");
        Assert.Equal(2, plan.GetProperty("weight").GetInt32());
    }
}
