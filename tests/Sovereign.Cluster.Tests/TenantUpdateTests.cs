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

    /// <summary>
    /// Edits of what one read returned (its version), sent at once: exactly one is written, every other is refused
    /// and changes nothing, since the version is compared in the same turn as the write.
    /// </summary>
    [Fact]
    public async Task ConditionalEditsAtOnce_OfOneVersion_ExactlyOneIsWritten()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        var read = TenantVersions.Of((await tenant.GetAsync())!);

        var attempts = await Task.WhenAll(Enumerable.Range(0, 8).Select(i =>
            tenant.TryUpdateIfVersionAsync(read, null, $$"""{"allowed_jurisdictions":["DE"],"allowed_models":["m{{i}}"]}""", null, null)));

        var written = Assert.Single(attempts, a => a.Applied).Update!;
        Assert.All(attempts.Where(a => !a.Applied), a => Assert.Equal(TenantChangeRefusal.VersionChanged, a.Refusal));
        Assert.Equal(written.After, await tenant.GetAsync());
        Assert.Equal(TenantVersions.Of(written.After), TenantVersions.Of((await tenant.GetAsync())!));
        Assert.NotEqual(read, TenantVersions.Of(written.After));
    }

    /// <summary>
    /// A conditional edit of the tenant reports a stale version, a missing tenant and a plan in another currency than
    /// its budgets as a returned refusal, as a conditional edit of its limits does: it threw
    /// <see cref="TenantVersionConflictException"/> (and <see cref="BudgetCurrencyConflictException"/>).
    /// </summary>
    [Fact]
    public async Task ConditionalEdit_RefusalsAreReturned_LikeTheLimits()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        var read = TenantVersions.Of((await tenant.GetAsync())!);
        Assert.True((await tenant.TryUpdateIfVersionAsync(null, "Moved on", null, null, null)).Applied);
        Assert.True((await tenant.SetLimitsAsync(new TenantLimits([new BudgetSetting(null, "month", 10m)], []))).Applied);

        var stale = await tenant.TryUpdateIfVersionAsync(read, null, null, null, disabled: true);
        var missing = await fixture.Grains.GetGrain<ITenantGrain>(fixture.NewTenantId()).TryUpdateIfVersionAsync(null, "x", null, null, null);
        var dollars = await tenant.TryUpdateIfVersionAsync(null, null, null, "dollar", null);

        Assert.Equal(TenantChangeRefusal.VersionChanged, stale.Refusal);
        Assert.Equal(TenantChangeRefusal.TenantNotFound, missing.Refusal);
        Assert.Equal((TenantChangeRefusal.BudgetCurrencyConflict, "EUR", "USD"), (dollars.Refusal, dollars.BudgetCurrency, dollars.PlanCurrency));
        var stored = (await tenant.GetAsync())!;
        Assert.Equal(("Moved on", false, "euro"), (stored.Name, stored.Disabled, stored.Plan));
    }

    [Fact]
    public async Task ConditionalLimits_OfAStaleVersion_AreRefused_AndOfTheCurrentOneWritten()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        var read = TenantVersions.Of(await tenant.GetLimitsAsync());
        Assert.True((await tenant.SetLimitsAsync(new TenantLimits([], [new RateLimitSetting(null, 60, null)]))).Applied);

        var stale = await tenant.SetLimitsIfVersionAsync(new TenantLimits([], [new RateLimitSetting(null, null, 99)]), read);
        var current = await tenant.SetLimitsIfVersionAsync(new TenantLimits([], [new RateLimitSetting(null, 61, null)]), TenantVersions.Of(await tenant.GetLimitsAsync()));

        Assert.Equal(TenantChangeRefusal.VersionChanged, stale.Refusal);
        Assert.True(current.Applied);
        Assert.Equal(61, Assert.Single((await tenant.GetLimitsAsync()).RateLimits).RequestsPerMinute);
    }
}
