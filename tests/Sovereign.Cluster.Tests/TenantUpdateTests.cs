using Sovereign.Cluster.Grains;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// A tenant's changes are merged in its single activation: the admin API read the tenant, merged the request into it
/// and wrote it whole, so of two changes at once (one operator disabling the tenant, another moving its plan) the
/// later write put back what the earlier one had changed, and both answered 200.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class TenantUpdateTests(ClusterFixture fixture)
{
    [Fact]
    public async Task ChangesAtOnce_ToDifferentFields_AllStay()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        const string Policy = """{"allowed_jurisdictions":["DE","FR"]}""";

        var updates = await Task.WhenAll(
            tenant.UpdateAsync(null, null, null, disabled: true),
            tenant.UpdateAsync("Renamed", null, null, null),
            tenant.UpdateAsync(null, Policy, null, null),
            tenant.UpdateAsync(null, null, "euro-plus", null));

        var stored = (await tenant.GetAsync())!;
        Assert.True(stored.Disabled);
        Assert.Equal("Renamed", stored.Name);
        Assert.Equal(Policy, stored.PolicyJson);
        Assert.Equal("euro-plus", stored.Plan);
        // Each answer's before is the one its change was applied to: the changes form one chain.
        Assert.Equal(3, updates.Count(u => updates.Any(other => other!.After == u!.Before)));
    }

    [Fact]
    public async Task Update_OfNoTenant_IsNull_AndCreatesNone()
    {
        var tenant = fixture.Grains.GetGrain<ITenantGrain>(fixture.NewTenantId());

        Assert.Null(await tenant.UpdateAsync(null, null, null, disabled: true));
        Assert.Null(await tenant.GetAsync());
    }

    [Fact]
    public async Task CreationsAtOnce_ExactlyOneCreates_TheOthersChangeNothing()
    {
        var tenant = fixture.Grains.GetGrain<ITenantGrain>(fixture.NewTenantId());

        var created = await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
            tenant.CreateAsync($"Name {i}", """{"allowed_jurisdictions":["DE"]}""", "euro", false)));

        var winner = Assert.Single(created, c => c is not null)!;
        Assert.Equal(winner, await tenant.GetAsync());
    }
}
