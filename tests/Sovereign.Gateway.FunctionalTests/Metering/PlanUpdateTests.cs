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
