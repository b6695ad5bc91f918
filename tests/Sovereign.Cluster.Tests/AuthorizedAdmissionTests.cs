using Sovereign.Cluster.Grains;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// <see cref="ITenantGrain.AdmitAuthorizedAsync"/>: authorization and admission in one turn of the tenant's activation.
/// A key revoked or expired, a tenant disabled or gone, or a policy or plan changed since the gateway's decision is
/// refused with nothing taken from the rate limits and nothing reserved; otherwise it admits exactly as
/// <see cref="ITenantGrain.AdmitAsync"/> does.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class AuthorizedAdmissionTests(ClusterFixture fixture)
{
    private static AuthorizedAdmissionRequest Request(string id, string keyId, string version, decimal maxCost = 10m, long? expiresAt = null) =>
        new(new AdmissionRequest(id, keyId, 10, maxCost, "EUR"), expiresAt, version);

    /// <summary>A tenant with a month budget of 100 and one request per minute for its key.</summary>
    private async Task<(ITenantGrain Tenant, string KeyId, string Version)> TenantAsync()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        var key = await tenant.CreateKeyAsync("k", null);
        Assert.True((await tenant.SetLimitsAsync(new TenantLimits(
            [new BudgetSetting(null, "month", 100m)], [new RateLimitSetting(key.Key.Id, 1, null)]))).Applied);
        return (tenant, key.Key.Id, TenantVersions.DecisionOf((await tenant.GetAsync())!));
    }

    /// <summary>Nothing was taken: the budget holds no reservation and the key's one request a minute is still free.</summary>
    private static async Task AssertNothingTakenAsync(ITenantGrain tenant, string keyId)
    {
        Assert.Equal(0m, Assert.Single(await tenant.GetBudgetsAsync()).Reserved);
        Assert.Equal(AdmissionOutcome.Admitted, (await tenant.AdmitAsync(new AdmissionRequest("probe-" + Guid.NewGuid(), keyId, 1, 1m, "EUR"))).Outcome);
    }

    [Fact]
    public async Task CurrentKeyAndVersion_Admits_AsAdmitAsync_ReservingAndCounting()
    {
        var (tenant, keyId, version) = await TenantAsync();

        // Held: the key's one request a minute refills in real time, so a minute's pause let the second one in.
        using var held = fixture.Clock.Hold();
        var answer = await tenant.AdmitAuthorizedAsync(Request("a-1", keyId, version, 30m));

        Assert.Equal(AuthorizationRefusal.None, answer.Refusal);
        Assert.Equal(AdmissionOutcome.Admitted, answer.Admission!.Outcome);
        Assert.Equal(1, answer.Admission.RateLimits!.LimitRequests);
        Assert.Equal(0, answer.Admission.RateLimits.RemainingRequests);
        Assert.Equal(30m, Assert.Single(await tenant.GetBudgetsAsync()).Reserved);

        // The rate limit counted it: the key's second request in the minute is refused as AdmitAsync refuses it.
        var limited = await tenant.AdmitAuthorizedAsync(Request("a-2", keyId, version));
        Assert.Equal(AuthorizationRefusal.None, limited.Refusal);
        Assert.Equal(AdmissionOutcome.RateLimitedRequests, limited.Admission!.Outcome);
        Assert.Equal(keyId, limited.Admission.RefusedScopeKeyId);
        Assert.Equal(30m, Assert.Single(await tenant.GetBudgetsAsync()).Reserved);

        // Settled as any admitted request.
        await tenant.SettleAsync(new SettlementRequest("a-1", keyId, 12m, 10, 10));
        var budget = Assert.Single(await tenant.GetBudgetsAsync());
        Assert.Equal((0m, 12m), (budget.Reserved, budget.Settled));
    }

    [Fact]
    public async Task OverBudget_IsRefusedByAdmission_AsAdmitAsync_WithNothingReserved()
    {
        var (tenant, keyId, version) = await TenantAsync();

        var answer = await tenant.AdmitAuthorizedAsync(Request("b-1", keyId, version, 150m));

        Assert.Equal(AuthorizationRefusal.None, answer.Refusal);
        Assert.Equal(AdmissionOutcome.BudgetExceeded, answer.Admission!.Outcome);
        Assert.Equal(100m, answer.Admission.Budget!.Remaining);
        Assert.Equal(0m, Assert.Single(await tenant.GetBudgetsAsync()).Reserved);
    }

    [Fact]
    public async Task RevokedKey_IsRefused_WithNothingTaken()
    {
        var (tenant, keyId, version) = await TenantAsync();
        await tenant.RevokeKeyOnceAsync(keyId);

        var answer = await tenant.AdmitAuthorizedAsync(Request("r-1", keyId, version));

        Assert.Equal(AuthorizationRefusal.KeyRevoked, answer.Refusal);
        Assert.Null(answer.Admission);
        // Neither the budget nor the key's one request a minute was taken (AdmitAsync, the previous release's call, still
        // counts the key: it does not look at revocation).
        await AssertNothingTakenAsync(tenant, keyId);
    }

    [Fact]
    public async Task ExpiredKey_IsRefused_WithNothingTaken()
    {
        var (tenant, keyId, version) = await TenantAsync();
        var expired = fixture.Clock.GetUtcNow().ToUnixTimeMilliseconds() - 1;

        var answer = await tenant.AdmitAuthorizedAsync(Request("e-1", keyId, version, expiresAt: expired));

        Assert.Equal(AuthorizationRefusal.KeyExpired, answer.Refusal);
        Assert.Null(answer.Admission);
        await AssertNothingTakenAsync(tenant, keyId);

        // Not yet expired: admitted.
        var later = fixture.Clock.GetUtcNow().AddMinutes(5).ToUnixTimeMilliseconds();
        Assert.Equal(AuthorizationRefusal.None, (await tenant.AdmitAuthorizedAsync(Request("e-2", keyId, version, expiresAt: later, maxCost: 1m))).Refusal);
    }

    [Fact]
    public async Task DisabledTenant_IsRefused_WithNothingTaken_AndSaysTheTenantAsItIs()
    {
        var (tenant, keyId, version) = await TenantAsync();
        await tenant.UpdateAsync(null, null, null, disabled: true);

        var answer = await tenant.AdmitAuthorizedAsync(Request("d-1", keyId, version));

        Assert.Equal(AuthorizationRefusal.TenantDisabled, answer.Refusal);
        Assert.True(answer.Tenant!.Disabled);
        Assert.Null(answer.Admission);

        // Disabling did not change the decision's version: enabled again, the same version admits.
        await tenant.UpdateAsync(null, null, null, disabled: false);
        await AssertNothingTakenAsync(tenant, keyId);
    }

    [Fact]
    public async Task PolicyChangedSinceTheDecision_IsRefusedAsStale_WithNothingTaken_AndTheFreshTenant()
    {
        var (tenant, keyId, version) = await TenantAsync();
        await tenant.UpdateAsync(null, """{"allowed_jurisdictions":["FR"]}""", null, null);

        var stale = await tenant.AdmitAuthorizedAsync(Request("p-1", keyId, version));

        Assert.Equal(AuthorizationRefusal.DecisionStale, stale.Refusal);
        Assert.Null(stale.Admission);
        Assert.Equal("""{"allowed_jurisdictions":["FR"]}""", stale.Tenant!.PolicyJson);
        Assert.Equal(0m, Assert.Single(await tenant.GetBudgetsAsync()).Reserved);

        // Decided again on the fresh tenant, it is admitted (and its one request a minute was still free).
        var fresh = await tenant.AdmitAuthorizedAsync(Request("p-2", keyId, TenantVersions.DecisionOf(stale.Tenant)));
        Assert.Equal(AuthorizationRefusal.None, fresh.Refusal);
        Assert.Equal(AdmissionOutcome.Admitted, fresh.Admission!.Outcome);
    }

    [Fact]
    public async Task PlanChangedSinceTheDecision_IsStale_ARenameIsNot()
    {
        var (tenant, keyId, version) = await TenantAsync();
        await tenant.UpdateAsync("Renamed", null, null, null);
        Assert.Equal(AuthorizationRefusal.None, (await tenant.AdmitAuthorizedAsync(Request("n-1", keyId, version, 1m))).Refusal);

        await tenant.UpdateAsync(null, null, "euro-plus", null);
        Assert.Equal(AuthorizationRefusal.DecisionStale, (await tenant.AdmitAuthorizedAsync(Request("n-2", keyId, version, 1m))).Refusal);
    }

    [Fact]
    public async Task UnknownTenant_IsRefused()
    {
        var tenant = fixture.Grains.GetGrain<ITenantGrain>(fixture.NewTenantId());

        var answer = await tenant.AdmitAuthorizedAsync(Request("u-1", "key-x", "v"));

        Assert.Equal(AuthorizationRefusal.TenantNotFound, answer.Refusal);
        Assert.Null(answer.Tenant);
        Assert.Empty(await tenant.GetBudgetsAsync());
    }
}
