namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// A tenant is put only on a plan that exists: a misspelt plan used to be accepted, and the tenant was then served
/// unpriced, for free. Left out, the plan is 'default' (which may have no prices), as before.
/// </summary>
[Collection(MeteringCollection.Name)]
public sealed class PlanReferenceTests(MeteringFixture fixture)
{
    [Fact]
    public async Task AMisspeltPlan_Is400NamingIt_OnCreateAndUpdate_AndChangesNothing()
    {
        var policy = new { allowed_jurisdictions = new[] { "EU" } };
        var refused = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "typo-plan", plan = "standrad", policy }, 400);
        Assert.Equal("plan", refused.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal("plan_not_found", refused.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("standrad", refused.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        await fixture.SendAsync(HttpMethod.Get, "/admin/v1/tenants/typo-plan", null, 404);

        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "typo-plan", plan = "standard", policy }, 201);
        await fixture.SendAsync(HttpMethod.Patch, "/admin/v1/tenants/typo-plan", new { plan = "nope" }, 400);
        Assert.Equal("standard", (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/tenants/typo-plan", null, 200)).GetProperty("plan").GetString());

        var unplanned = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "no-plan", policy }, 201);
        Assert.Equal("default", unplanned.GetProperty("plan").GetString());
    }
}
