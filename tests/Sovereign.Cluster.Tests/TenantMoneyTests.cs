using Sovereign.Cluster.Grains;
using Sovereign.Metering.Ledger;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// The tenant grain's money model: the plan fixes the currency, budgets are rebuilt from durable aggregates that
/// survive retention, reservations expire, and admission answers with domain decisions.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class TenantMoneyTests(ClusterFixture fixture)
{
    // Prices are 1 per token in the fixture's plans, so a cost of N is N tokens.
    private static TenantLimits Budget(string period, decimal amount, string? keyId = null) => new([new BudgetSetting(keyId, period, amount)], []);

    private static AdmissionRequest Request(string id, decimal maxCost, string currency = "EUR", string? keyId = null, long tokens = 10) =>
        new(id, keyId, tokens, maxCost, currency);

    private UsageRecord Record(string tenant, string id, decimal cost, DateTimeOffset at, string currency = "EUR", string keyId = "key-1") => new()
    {
        RequestId = id, Timestamp = at, Tenant = tenant, KeyId = keyId, Model = "m", Node = "n", Jurisdiction = "DE",
        PromptTokens = 1, CompletionTokens = 1, Cost = cost, Currency = currency, PriceVersion = "euro:m@2026-01-01T00:00:00.000Z",
    };

    [Fact]
    public async Task Budgets_ReadBeforeAnyRequest_AreInThePlansCurrency()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        Assert.True((await tenant.SetLimitsAsync(Budget("month", 100m))).Applied);

        // The operator reads first: no "USD" account is created by whoever comes first.
        var budget = Assert.Single(await tenant.GetBudgetsAsync());
        Assert.Equal("EUR", budget.Currency);
        Assert.Equal("EUR", (await tenant.GetLimitsAsync()).Currency);

        var refused = await tenant.AdmitAsync(Request("eur-1", 150m));
        Assert.Equal(AdmissionOutcome.BudgetExceeded, refused.Outcome);
        Assert.Equal("EUR", refused.Budget!.Currency);
        Assert.Equal(100m, refused.Budget.Limit);
        Assert.Equal(100m, refused.Budget.Remaining);
        Assert.Equal(150m, refused.Budget.Requested);
        Assert.Equal("month", refused.Budget.Period);
        Assert.NotNull(refused.Budget.ResetsAt);
    }

    [Fact]
    public async Task Budgets_OnAPlanNotInThePriceBook_AreRefused_RateLimitsAreNot()
    {
        var tenant = await fixture.NewTenantAsync("no-such-plan");

        Assert.Equal(TenantChangeRefusal.PlanWithoutCurrency, (await tenant.SetLimitsAsync(Budget("day", 5m))).Refusal);
        Assert.True((await tenant.SetLimitsAsync(new TenantLimits([], [new RateLimitSetting(null, 10, null)]))).Applied);
        Assert.Empty(await tenant.GetBudgetsAsync());
    }

    [Fact]
    public async Task PlanChange_ToAnotherCurrency_WhileBudgetsExist_IsRefused_SameCurrencyIsNot()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        await tenant.SetLimitsAsync(Budget("total", 50m));

        await Assert.ThrowsAsync<BudgetCurrencyConflictException>(() => tenant.UpsertAsync("Test", """{"allowed_jurisdictions":["DE"]}""", "dollar", false));
        Assert.Equal("euro", (await tenant.GetAsync())!.Plan);

        Assert.Equal("euro-plus", (await tenant.UpsertAsync("Test", """{"allowed_jurisdictions":["DE"]}""", "euro-plus", false)).Plan);

        // Without budgets the move is free; budgets set afterwards are in the new plan's currency.
        await tenant.SetLimitsAsync(TenantLimits.None);
        await tenant.UpsertAsync("Test", """{"allowed_jurisdictions":["DE"]}""", "dollar", false);
        await tenant.SetLimitsAsync(Budget("total", 50m));
        Assert.Equal("USD", Assert.Single(await tenant.GetBudgetsAsync()).Currency);
    }

    [Fact]
    public async Task Admission_Unpriced_IsRefusedWhereABudgetAppliesToTheKey_AdmittedElsewhere()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        Assert.True((await tenant.SetLimitsAsync(Budget("month", 100m, keyId: "key-a"))).Applied);

        // Key a's budget applies to key a's requests only: an unpriced one of key a cannot be counted, key b's has no budget.
        var refused = await tenant.AdmitAsync(Request("unpriced-a", 0m, keyId: "key-a") with { Unpriced = true });
        Assert.Equal(AdmissionOutcome.Unpriced, refused.Outcome);
        Assert.True((await tenant.AdmitAsync(Request("unpriced-b", 0m, keyId: "key-b") with { Unpriced = true })).Allowed);
        // A model priced at nothing is counted (at 0), not refused.
        Assert.True((await tenant.AdmitAsync(Request("free-a", 0m, keyId: "key-a"))).Allowed);

        Assert.True((await tenant.SetLimitsAsync(Budget("month", 100m))).Applied);
        Assert.Equal(AdmissionOutcome.Unpriced, (await tenant.AdmitAsync(Request("unpriced-b-2", 0m, keyId: "key-b") with { Unpriced = true })).Outcome);
    }

    [Fact]
    public async Task Admission_PricedInAnotherCurrency_IsRefused_NeverSummed()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        await tenant.SetLimitsAsync(Budget("total", 100m));

        var result = await tenant.AdmitAsync(Request("usd-1", 1m, currency: "USD"));

        Assert.Equal(AdmissionOutcome.BudgetCurrencyMismatch, result.Outcome);
        Assert.Equal("EUR", result.Budget!.Currency);
        Assert.Equal(0m, Assert.Single(await tenant.GetBudgetsAsync()).Reserved);
    }

    [Fact]
    public async Task Budgets_AreRebuiltFromAggregates_AfterRetentionAndReactivation()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        var id = tenant.GetPrimaryKeyString();
        var now = fixture.Clock.GetUtcNow();
        await tenant.SetLimitsAsync(new TenantLimits(
            [new BudgetSetting(null, "Total", 100m), new BudgetSetting(null, "Day", 100m), new BudgetSetting("key-1", "Total", 100m), new BudgetSetting("key-1", "Month", 100m)], []));
        Assert.All(await tenant.GetBudgetsAsync(), b => Assert.Equal(0m, b.Settled));

        // Spend that arrives through the ledger: 200 days ago (past retention), and now; plus spend in another currency.
        Assert.True(await fixture.Ledger.AppendAsync(Record(id, id + "-old", 7m, now.AddDays(-200))));
        Assert.True(await fixture.Ledger.AppendAsync(Record(id, id + "-new", 2.5m, now)));
        Assert.True(await fixture.Ledger.AppendAsync(Record(id, id + "-usd", 40m, now, currency: "USD")));
        Assert.True(await fixture.Ledger.PurgeAsync(now.AddDays(-90)) >= 1);
        Assert.Null(await fixture.Ledger.GetAsync(id + "-old"));

        await fixture.DeactivateIdleGrainsAsync();
        var budgets = (await tenant.GetBudgetsAsync()).ToDictionary(b => (b.KeyId, b.Period));

        Assert.Equal(9.5m, budgets[(null, "total")].Settled);
        Assert.Equal(2.5m, budgets[(null, "day")].Settled);
        Assert.Equal(9.5m, budgets[("key-1", "total")].Settled);
        Assert.Equal(2.5m, budgets[("key-1", "month")].Settled);
        Assert.Equal(90.5m, budgets[(null, "total")].Remaining);
        Assert.All(budgets.Values, b => Assert.Equal("EUR", b.Currency));
    }

    [Fact]
    public async Task ReplayedRecord_IsCountedOnce()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        var id = tenant.GetPrimaryKeyString();
        var record = Record(id, id + "-once", 3m, fixture.Clock.GetUtcNow());
        Assert.True(await fixture.Ledger.AppendAsync(record));
        Assert.False(await fixture.Ledger.AppendAsync(record));
        Assert.False(await fixture.Ledger.AppendAsync(record with { Cost = 30m }));

        await tenant.SetLimitsAsync(Budget("total", 10m));

        Assert.Equal(3m, Assert.Single(await tenant.GetBudgetsAsync()).Settled);
    }

    [Fact]
    public async Task Reservation_NeverSettled_IsReleasedAfterItsLifetime_AsAMoneyCorrection()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        await tenant.SetLimitsAsync(Budget("total", 10m));
        var requestId = tenant.GetPrimaryKeyString() + "-lost";

        // Held: "one second short of its lifetime" is measured from the admission, and on a loaded machine more than a
        // second of real time can pass between the admission and the release below.
        using var held = fixture.Clock.Hold();
        Assert.True((await tenant.AdmitAsync(Request(requestId, 6m))).Allowed);
        Assert.Equal(AdmissionOutcome.BudgetExceeded, (await tenant.AdmitAsync(Request(requestId + "-2", 6m))).Outcome);

        // The timer's work, driven by the clock: not yet expired, then expired.
        fixture.Clock.Advance(ClusterFixture.ReservationLifetime - TimeSpan.FromSeconds(1));
        Assert.Equal(0, await tenant.ReleaseExpiredReservationsAsync());
        Assert.Equal(6m, Assert.Single(await tenant.GetBudgetsAsync()).Reserved);
        fixture.Clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(1, await tenant.ReleaseExpiredReservationsAsync());

        var budget = Assert.Single(await tenant.GetBudgetsAsync());
        Assert.Equal(0m, budget.Reserved);
        Assert.Equal(10m, budget.Remaining);
        Assert.Contains(fixture.Corrections, c => c.EventId == 8101 && c.Message.Contains(requestId, StringComparison.Ordinal) && c.Message.Contains("EUR", StringComparison.Ordinal));

        // If the request did run after all, its late settle is still charged in full.
        await tenant.SettleAsync(new SettlementRequest(requestId, null, 4m, 10, 10));
        Assert.Equal(4m, Assert.Single(await tenant.GetBudgetsAsync()).Settled);
        Assert.Contains(fixture.Corrections, c => c.EventId == 8102 && c.Message.Contains(requestId, StringComparison.Ordinal));
    }

    /// <summary>
    /// The work above is the grain's own timer's: in a cluster of its own whose timer ticks every second (the collection's
    /// never ticks, so that a tick cannot do the work between a test's clock move and its call), a reservation past its
    /// lifetime is released with nobody asking, once.
    /// </summary>
    [Fact]
    public async Task Reservation_NeverSettled_IsReleasedByTheGrainsOwnTimer()
    {
        var own = new ClusterFixture { ExpiryCheckInterval = TimeSpan.FromSeconds(1) };
        await own.InitializeAsync();
        try
        {
            var tenant = await own.NewTenantAsync("euro");
            await tenant.SetLimitsAsync(Budget("total", 10m));
            var requestId = tenant.GetPrimaryKeyString() + "-timer";
            Assert.True((await tenant.AdmitAsync(Request(requestId, 6m))).Allowed);

            own.Clock.Advance(ClusterFixture.ReservationLifetime + TimeSpan.FromSeconds(1));

            // Waits on the correction the timer's release logs (the bound is for a hang, not a pace).
            bool Released() => own.Corrections.Any(c => c.EventId == 8101 && c.Message.Contains(requestId, StringComparison.Ordinal));
            using (var bound = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
            {
                while (!Released())
                {
                    await Task.Delay(50, bound.Token);
                }
            }

            var budget = Assert.Single(await tenant.GetBudgetsAsync());
            Assert.Equal((0m, 10m), (budget.Reserved, budget.Remaining));
            Assert.Equal(0, await tenant.ReleaseExpiredReservationsAsync());
            Assert.Single(own.Corrections, c => c.EventId == 8101 && c.Message.Contains(requestId, StringComparison.Ordinal));
        }
        finally
        {
            await own.DisposeAsync();
        }
    }

    /// <summary>
    /// The gateway committed the request's usage record but its settlement never arrived (the grain's member was
    /// stopping, or the call timed out: event 4114). At expiry the reservation was released, so the spend the ledger
    /// holds was missing from this activation's budget and the tenant could spend it again; it is settled at the
    /// record's cost now, and a late settlement does not count it twice.
    /// </summary>
    [Fact]
    public async Task Reservation_WhoseRecordIsInTheLedger_IsSettledAtTheRecordsCostWhenItExpires_NotReleased()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        await tenant.SetLimitsAsync(Budget("total", 10m));
        var requestId = tenant.GetPrimaryKeyString() + "-unsettled";
        Assert.True((await tenant.AdmitAsync(Request(requestId, 6m))).Allowed);
        Assert.True(await fixture.Ledger.AppendAsync(Record(tenant.GetPrimaryKeyString(), requestId, 4m, fixture.Clock.GetUtcNow())));

        fixture.Clock.Advance(ClusterFixture.ReservationLifetime + TimeSpan.FromSeconds(1));
        Assert.Equal(0, await tenant.ReleaseExpiredReservationsAsync());

        var budget = Assert.Single(await tenant.GetBudgetsAsync());
        Assert.Equal((4m, 0m, 6m), (budget.Settled, budget.Reserved, budget.Remaining));
        Assert.Contains(fixture.Corrections, c => c.EventId == 8104 && c.Message.Contains(requestId, StringComparison.Ordinal));
        Assert.DoesNotContain(fixture.Corrections, c => c.EventId == 8101 && c.Message.Contains(requestId, StringComparison.Ordinal));

        // The settlement arriving after all is the same one: not charged again.
        await tenant.SettleAsync(new SettlementRequest(requestId, "key-1", 4m, 10, 10));
        Assert.Equal(4m, Assert.Single(await tenant.GetBudgetsAsync()).Settled);
        Assert.Equal(AdmissionOutcome.BudgetExceeded, (await tenant.AdmitAsync(Request(requestId + "-2", 7m))).Outcome);
    }

    /// <summary>
    /// A request that runs longer than the reservation lifetime (a slow stream) is renewed by its gateway: its money stays
    /// held, so no other request can take it meanwhile and the budget is never overspent when it settles.
    /// </summary>
    [Fact]
    public async Task ARenewedReservation_OutlivesTheLifetime_AndKeepsTheBudgetFromBeingSpentTwice()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        await tenant.SetLimitsAsync(Budget("total", 10m));
        var requestId = tenant.GetPrimaryKeyString() + "-long";
        Assert.True((await tenant.AdmitAsync(Request(requestId, 6m))).Allowed);

        for (var i = 0; i < 4; i++)
        {
            fixture.Clock.Advance(ClusterFixture.ReservationLifetime / 2);
            Assert.Equal(1, await tenant.RenewReservationsAsync([requestId, requestId + "-unknown"]));
            Assert.Equal(0, await tenant.ReleaseExpiredReservationsAsync());
        }

        // Twice the lifetime later it still holds its 6: another request of 6 is refused.
        Assert.Equal(6m, Assert.Single(await tenant.GetBudgetsAsync()).Reserved);
        Assert.Equal(AdmissionOutcome.BudgetExceeded, (await tenant.AdmitAsync(Request(requestId + "-2", 6m))).Outcome);
        await tenant.SettleAsync(new SettlementRequest(requestId, null, 5m, 10, 10));
        var budget = Assert.Single(await tenant.GetBudgetsAsync());
        Assert.Equal((5m, 0m, 5m), (budget.Settled, budget.Reserved, budget.Remaining));
        Assert.DoesNotContain(fixture.Corrections, c => c.Message.Contains(requestId, StringComparison.Ordinal));
    }

    [Fact]
    public async Task AGrainHoldingReservations_IsNotCollected_SoItNeverForgetsThem()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        await tenant.SetLimitsAsync(Budget("total", 10m));
        var requestId = tenant.GetPrimaryKeyString() + "-held";
        Assert.True((await tenant.AdmitAsync(Request(requestId, 7m))).Allowed);

        // The expiry timer keeps the activation alive while it holds money; a collected grain would rebuild with none.
        await fixture.DeactivateIdleGrainsAsync();
        Assert.Equal(7m, Assert.Single(await tenant.GetBudgetsAsync()).Reserved);

        // Settled, it holds nothing: the next timer tick stops the timer, and the grain can be collected again. It
        // is: rebuilt from the ledger (which this test never wrote), it has forgotten the in-memory settlement.
        await tenant.SettleAsync(new SettlementRequest(requestId, null, 2m, 10, 10));
        Assert.Equal(0, await tenant.ReleaseExpiredReservationsAsync());
        await fixture.DeactivateIdleGrainsAsync();
        var budget = Assert.Single(await tenant.GetBudgetsAsync());
        Assert.Equal(0m, budget.Reserved);
        Assert.Equal(0m, budget.Settled);
    }

    [Fact]
    public async Task ABudgetSetWhileRequestsRun_CountsWhatTheyMayCost_AndIsNotOverspent()
    {
        // A request admitted while the tenant had no budget held nothing; a budget set while it ran admitted the next
        // request against all of it, and the two settled above the limit (found by explorer13 against a slow engine:
        // a 1.5 EUR budget set during a 1 EUR request admitted another, 2 EUR settled). The same after budgets are
        // cleared and set again.
        var tenant = await fixture.NewTenantAsync("euro");
        var id = tenant.GetPrimaryKeyString();
        Assert.True((await tenant.AdmitAsync(Request(id + "-a", 8m))).Allowed);

        await tenant.SetLimitsAsync(Budget("total", 12m));
        Assert.Equal(8m, Assert.Single(await tenant.GetBudgetsAsync()).Reserved);
        Assert.Equal(AdmissionOutcome.BudgetExceeded, (await tenant.AdmitAsync(Request(id + "-b", 5m))).Outcome);

        await tenant.SetLimitsAsync(new TenantLimits([], []));
        await tenant.SetLimitsAsync(Budget("total", 12m));
        Assert.Equal(8m, Assert.Single(await tenant.GetBudgetsAsync()).Reserved);
        Assert.Equal(AdmissionOutcome.BudgetExceeded, (await tenant.AdmitAsync(Request(id + "-c", 5m))).Outcome);

        await tenant.SettleAsync(new SettlementRequest(id + "-a", null, 8m, 10, 10));
        var settled = Assert.Single(await tenant.GetBudgetsAsync());
        Assert.Equal((8m, 0m), (settled.Settled, settled.Reserved));
    }

    [Fact]
    public async Task ChangingBudgets_KeepsTheReservationsOfRequestsInFlight()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        await tenant.SetLimitsAsync(Budget("total", 10m));
        Assert.True((await tenant.AdmitAsync(Request(tenant.GetPrimaryKeyString() + "-a", 8m))).Allowed);

        await tenant.SetLimitsAsync(Budget("total", 12m));

        var budget = Assert.Single(await tenant.GetBudgetsAsync());
        Assert.Equal(8m, budget.Reserved);
        Assert.Equal(AdmissionOutcome.BudgetExceeded, (await tenant.AdmitAsync(Request(tenant.GetPrimaryKeyString() + "-b", 5m))).Outcome);
    }

    [Fact]
    public async Task TokensPerMinute_RefusalSaysTokens_RequestsPerMinuteSaysRequests()
    {
        var tokens = await fixture.NewTenantAsync("euro");
        await tokens.SetLimitsAsync(new TenantLimits([], [new RateLimitSetting(null, 1000, 100)]));

        // Held: the bucket refills 100 tokens a minute, so 20 left reads 21 once 0.6 s of real time passes between
        // the two admissions (a loaded machine's grain calls can take that).
        using var held = fixture.Clock.Hold();
        Assert.True((await tokens.AdmitAsync(Request("tpm-1", 0m, tokens: 80))).Allowed);

        var limited = await tokens.AdmitAsync(Request("tpm-2", 0m, tokens: 80));
        Assert.Equal(AdmissionOutcome.RateLimitedTokens, limited.Outcome);
        Assert.False(limited.TooLarge);
        Assert.True(limited.RetryAfter > TimeSpan.Zero);
        Assert.Equal(100, limited.RateLimits!.LimitTokens);
        Assert.Equal(20, limited.RateLimits.RemainingTokens);

        var tooLarge = await tokens.AdmitAsync(Request("tpm-3", 0m, tokens: 101));
        Assert.Equal(AdmissionOutcome.RateLimitedTokens, tooLarge.Outcome);
        Assert.True(tooLarge.TooLarge);
        Assert.Null(tooLarge.RetryAfter);

        var requests = await fixture.NewTenantAsync("euro");
        await requests.SetLimitsAsync(new TenantLimits([], [new RateLimitSetting(null, 1, 1_000_000)]));
        Assert.True((await requests.AdmitAsync(Request("rpm-1", 0m))).Allowed);
        var rpm = await requests.AdmitAsync(Request("rpm-2", 0m));
        Assert.Equal(AdmissionOutcome.RateLimitedRequests, rpm.Outcome);
        Assert.Equal(0, rpm.RateLimits!.RemainingRequests);
    }

    /// <summary>
    /// A request the budget refuses gives its tokens back, and its answer's x-ratelimit-* headers say so: they were
    /// read before the refund, so a client saw 20 tokens left of 100 when all 100 were.
    /// </summary>
    [Fact]
    public async Task BudgetRefusal_ReportsTheRateLimitsAfterItsTokensWereGivenBack()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        await tenant.SetLimitsAsync(new TenantLimits([new BudgetSetting(null, "Total", 1m)], [new RateLimitSetting(null, 1000, 100)]));

        var refused = await tenant.AdmitAsync(Request(tenant.GetPrimaryKeyString() + "-dear", 5m, tokens: 80));

        Assert.Equal(AdmissionOutcome.BudgetExceeded, refused.Outcome);
        Assert.Equal(100, refused.RateLimits!.RemainingTokens);
        Assert.Equal(TimeSpan.Zero, refused.RateLimits.ResetTokens);
        Assert.True((await tenant.AdmitAsync(Request(tenant.GetPrimaryKeyString() + "-fits", 0m, tokens: 100))).Allowed);
    }

    /// <summary>
    /// Changing a tenant's limits keeps what its rate counters owe: every change (a budget, another key's limit)
    /// rebuilt them full, so a tenant at its requests-per-minute limit got a fresh minute each time the operator edited it.
    /// </summary>
    [Fact]
    public async Task ChangingLimits_KeepsWhatTheRateCountersOwe()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        var id = tenant.GetPrimaryKeyString();

        // Held: the counters refill on the clock (1 a minute, then 2: one every 30 s), so a pause of 30-60 s between
        // the first admission and the last reads gave a request back and the counts below were one off.
        using var held = fixture.Clock.Hold();
        await tenant.SetLimitsAsync(new TenantLimits([], [new RateLimitSetting(null, 1, null), new RateLimitSetting("key-1", 1, null)]));
        Assert.True((await tenant.AdmitAsync(Request(id + "-1", 0m, keyId: "key-1"))).Allowed);

        await tenant.SetLimitsAsync(new TenantLimits([new BudgetSetting(null, "Total", 100m)], [new RateLimitSetting(null, 1, null), new RateLimitSetting("key-1", 1, null)]));

        var again = await tenant.AdmitAsync(Request(id + "-2", 0m, keyId: "key-2"));
        Assert.Equal(AdmissionOutcome.RateLimitedRequests, again.Outcome);
        Assert.Equal(0, again.RateLimits!.RemainingRequests);

        // A key whose limit is removed is no longer limited; one that gains a limit starts full.
        await tenant.SetLimitsAsync(new TenantLimits([], [new RateLimitSetting(null, 2, null), new RateLimitSetting("key-2", 5, null)]));
        var byKey2 = await tenant.AdmitAsync(Request(id + "-3", 0m, keyId: "key-2"));
        Assert.True(byKey2.Allowed);
        Assert.Equal(0, byKey2.RateLimits!.RemainingRequests);
    }

    /// <summary>
    /// Two rate limits for one key, as the admin API of the previous release stored them (then answered 500): the
    /// limiter could not be built from them, so every request of the tenant failed once its grain was activated again.
    /// The first one counts, as the first tenant-wide one always did.
    /// </summary>
    [Fact]
    public async Task TwoStoredRateLimitsForOneKey_TheFirstCounts_AfterReactivation()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        var id = tenant.GetPrimaryKeyString();

        // Held: 1 a minute refills in real time, so a minute's pause between the two admissions let the second in.
        using var held = fixture.Clock.Hold();
        await tenant.SetLimitsAsync(new TenantLimits([], [new RateLimitSetting("key-1", 1, null), new RateLimitSetting("key-1", 5, null)]));
        await fixture.DeactivateIdleGrainsAsync();

        Assert.True((await tenant.AdmitAsync(Request(id + "-1", 0m, keyId: "key-1"))).Allowed);
        Assert.Equal(AdmissionOutcome.RateLimitedRequests, (await tenant.AdmitAsync(Request(id + "-2", 0m, keyId: "key-1"))).Outcome);
    }

    [Fact]
    public async Task KeyAuthorization_SaysRevoked_FromTheRevocationOn_AndAfterReactivation()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        var kept = await tenant.CreateKeyAsync("kept", null);
        var revoked = await tenant.CreateKeyAsync("revoked", null);
        Assert.False((await tenant.AuthorizeKeyAsync(revoked.Key.Id)).KeyRevoked);

        Assert.True(await tenant.RevokeKeyAsync(revoked.Key.Id));
        Assert.True((await tenant.AuthorizeKeyAsync(revoked.Key.Id)).KeyRevoked);

        // A fresh activation (as after a restart, or on another silo) reads the revocation from the store.
        await fixture.DeactivateIdleGrainsAsync();
        var afterRestart = await tenant.AuthorizeKeyAsync(revoked.Key.Id);
        Assert.True(afterRestart.KeyRevoked);
        Assert.Equal(tenant.GetPrimaryKeyString(), afterRestart.Tenant!.Id);
        Assert.False((await tenant.AuthorizeKeyAsync(kept.Key.Id)).KeyRevoked);
        Assert.Null((await fixture.Grains.GetGrain<ITenantGrain>(fixture.NewTenantId()).AuthorizeKeyAsync(kept.Key.Id)).Tenant);
    }
}
