using Microsoft.Extensions.DependencyInjection;
using System.Collections.Concurrent;
using Sovereign.Cluster.Grains;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// Budget leases (<see cref="ITenantGrain.AdmitAuthorizedLeasingAsync"/>, <see cref="ITenantGrain.AdmitFromLeaseAsync"/>,
/// <see cref="ITenantGrain.ReturnLeaseAsync"/>): the tenant's grain stays the one writer of its money. A lease is a
/// reservation of a slice of the remaining budget (and of the rate limits) for one gateway; each request the gateway
/// admits from it is confirmed by the grain, which carves the request's own reservation out of the lease, so leases
/// and reservations together never exceed the budget, and what a lease did not spend returns.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class BudgetLeaseTests(ClusterFixture fixture)
{
    private const long Tokens = 10;

    private static AuthorizedAdmissionRequest Request(string id, string keyId, string version, decimal maxCost = 1m) =>
        new(new AdmissionRequest(id, keyId, Tokens, maxCost, "EUR"), null, version);

    /// <summary>What a gateway asks for (as BudgetLeases.Ask sizes it: 32 requests' worth, at least 4).</summary>
    private static BudgetLeaseAsk Ask(decimal maxCost = 1m) => new(Guid.NewGuid(), 32 * maxCost, 4 * maxCost, 32, 32 * Tokens, 4 * Tokens, "EUR");

    private async Task<(ITenantGrain Tenant, string KeyId, string Version)> TenantAsync(decimal budget = 100m, RateLimitSetting? rate = null, ClusterFixture? on = null)
    {
        var tenant = await (on ?? fixture).NewTenantAsync("euro");
        var key = await tenant.CreateKeyAsync("k", null);
        Assert.True((await tenant.SetLimitsAsync(new TenantLimits([new BudgetSetting(null, "month", budget)], rate is null ? [] : [rate]))).Applied);
        return (tenant, key.Key.Id, TenantVersions.DecisionOf((await tenant.GetAsync())!));
    }

    private static async Task<BudgetStatusView> BudgetAsync(ITenantGrain tenant) => Assert.Single(await tenant.GetBudgetsAsync());

    [Fact]
    public async Task Granted_BesideAnAdmission_AShareOfWhatIsLeft_Reserved()
    {
        var (tenant, keyId, version) = await TenantAsync();

        var leased = await tenant.AdmitAuthorizedLeasingAsync(Request("g-1", keyId, version), Ask());

        Assert.True(leased.Answer.Admission!.Allowed);
        var lease = Assert.IsType<BudgetLease>(leased.Lease);
        // A tenth of the 99 left after the request itself, below the 32 asked for.
        Assert.Equal((9.9m, true, 32, 320L, keyId, version), (lease.Money, lease.BudgetApplies, lease.Requests, lease.Tokens, lease.KeyId, lease.DecisionVersion));
        // Held for the gateway, yet the tenant's to spend: leased, not reserved, and still counted as remaining.
        var budget = await BudgetAsync(tenant);
        Assert.Equal((1m, 9.9m, 0m, 99m), (budget.Reserved, budget.Leased, budget.Settled, budget.Remaining));
    }

    [Fact]
    public async Task TwoGatewaysRacing_FromLeasesAndTheGrain_NeverOverspend_AndTheUnspentReturns()
    {
        var (tenant, keyId, version) = await TenantAsync();
        var admitted = new ConcurrentBag<string>();

        // Each gateway's first request asks for a lease beside its admission. Both are granted before the race, so
        // neither depends on which of the two the grain happens to serve first.
        async Task<BudgetLease?> FirstAsync(string name)
        {
            var first = await tenant.AdmitAuthorizedLeasingAsync(Request(name + "-0", keyId, version), Ask());
            Assert.True(first.Answer.Admission!.Allowed);
            admitted.Add(name + "-0");
            return first.Lease;
        }

        var firstA = await FirstAsync("a");
        var firstB = await FirstAsync("b");
        Assert.NotNull(firstA);
        Assert.NotNull(firstB);

        // Then 150 requests at once at each, admitted from the gateway's lease while it covers one (confirmed by
        // the grain), else by the grain directly.
        async Task<Guid?> GatewayAsync(string name, BudgetLease? lease)
        {
            var left = lease?.Money ?? 0m;
            var gate = new object();
            await Task.WhenAll(Enumerable.Range(1, 150).Select(async i =>
            {
                var id = $"{name}-{i}";
                bool fromLease;
                lock (gate)
                {
                    fromLease = lease is not null && left >= 1m;
                    if (fromLease)
                    {
                        left -= 1m;
                    }
                }

                var answer = fromLease
                    ? (await tenant.AdmitFromLeaseAsync(lease!.LeaseId, Request(id, keyId, version))).Answer
                    : await tenant.AdmitAuthorizedAsync(Request(id, keyId, version));
                Assert.Equal(AuthorizationRefusal.None, answer.Refusal);
                if (answer.Admission!.Allowed)
                {
                    admitted.Add(id);
                }
                else
                {
                    Assert.Equal(AdmissionOutcome.BudgetExceeded, answer.Admission.Outcome);
                }
            }));

            return lease?.LeaseId;
        }

        var leases = await Task.WhenAll(GatewayAsync("a", firstA), GatewayAsync("b", firstB));

        // Never more than the budget: every admitted request holds 1 of it, and the leases hold the rest they did not spend.
        var during = await BudgetAsync(tenant);
        Assert.True(admitted.Count <= 100, $"{admitted.Count} requests of 1 EUR admitted on a budget of 100");
        Assert.True(during.Reserved + during.Leased <= 100m);

        // And never fewer: a request the grain would refuse while the leases hold money they have not admitted closes
        // them and is admitted against it, so the leases' last cents do not refuse the budget's last requests.
        Assert.Equal(100, admitted.Count);

        // The leases return what they did not spend: exactly the admitted requests stay reserved.
        foreach (var lease in leases)
        {
            await tenant.ReturnLeaseAsync(lease!.Value);
        }

        var after = await BudgetAsync(tenant);
        Assert.Equal((admitted.Count, 100m - admitted.Count), ((int)after.Reserved, after.Remaining));

        // Each settles as any request; the budget is spent exactly, never past it.
        foreach (var id in admitted)
        {
            await tenant.SettleAsync(new SettlementRequest(id, keyId, 1m, Tokens, Tokens));
        }

        var settled = await BudgetAsync(tenant);
        Assert.Equal((0m, (decimal)admitted.Count), (settled.Reserved, settled.Settled));
        var rest = 100 - admitted.Count;
        for (var i = 0; i < rest; i++)
        {
            Assert.True((await tenant.AdmitAuthorizedAsync(Request("rest-" + i, keyId, version))).Admission!.Allowed);
        }

        Assert.Equal(AdmissionOutcome.BudgetExceeded, (await tenant.AdmitAuthorizedAsync(Request("past", keyId, version))).Admission!.Outcome);
    }

    [Fact]
    public async Task ALeaseReturned_GivesBackItsUnspentMoney_Requests_AndTokens()
    {
        // 100 requests and 3,200 tokens a minute: a lease takes a tenth, 10 requests and 320 tokens.
        var (tenant, keyId, version) = await TenantAsync(rate: new RateLimitSetting(null, 100, 3200));
        var lease = (await tenant.AdmitAuthorizedLeasingAsync(Request("r-0", keyId, version), Ask())).Lease!;
        Assert.Equal((10, 320L), (lease.Requests, lease.Tokens));
        for (var i = 1; i <= 3; i++)
        {
            var confirmed = await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("r-" + i, keyId, version));
            Assert.True(confirmed.Answer.Admission!.Allowed);
            Assert.Equal((10 - i, 320 - (i * Tokens), 9.9m - i), (confirmed.Lease!.Requests, confirmed.Lease.Tokens, confirmed.Lease.Money));
        }

        for (var i = 0; i <= 3; i++)
        {
            await tenant.SettleAsync(new SettlementRequest("r-" + i, keyId, 0.5m, Tokens, Tokens));
        }

        await tenant.ReturnLeaseAsync(lease.LeaseId);

        var budget = await BudgetAsync(tenant);
        Assert.Equal((0m, 2m, 98m), (budget.Reserved, budget.Settled, budget.Remaining));

        // Four requests of 10 tokens stay counted; the lease's other 7 requests and 290 tokens are back (kept, the
        // counters would read at most 88 and 2,870 until seconds of refill).
        var probe = await tenant.AdmitAsync(new AdmissionRequest("probe-" + Guid.NewGuid(), keyId, 0, 0m, "EUR"));
        Assert.True(probe.RateLimits!.RemainingRequests >= 95, $"{probe.RateLimits.RemainingRequests} requests left");
        Assert.True(probe.RateLimits.RemainingTokens >= 3160, $"{probe.RateLimits.RemainingTokens} tokens left");
    }

    [Fact]
    public async Task RevokedKey_IsRefused_OnTheNextRequestFromItsLease_AndTheLeaseCloses()
    {
        var (tenant, keyId, version) = await TenantAsync();
        var lease = (await tenant.AdmitAuthorizedLeasingAsync(Request("k-0", keyId, version), Ask())).Lease!;

        await tenant.RevokeKeyOnceAsync(keyId);

        // The revocation closed the lease at once: its money is back, only the first request holds any.
        Assert.Equal(1m, (await BudgetAsync(tenant)).Reserved);
        var answer = await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("k-1", keyId, version));
        Assert.Equal(AuthorizationRefusal.KeyRevoked, answer.Answer.Refusal);
        Assert.Null(answer.Answer.Admission);
        Assert.Null(answer.Lease);
        Assert.Equal(1m, (await BudgetAsync(tenant)).Reserved);
    }

    [Fact]
    public async Task AHolderThatCannotBeToldOfARecall_DoesNotStopTheChange_ItsNextRequestFromTheLeaseIsRefused()
    {
        var (tenant, keyId, version) = await TenantAsync();
        // A holder whose recall cannot be delivered (this silo hosts no gateway's lease table).
        var holder = fixture.Cluster.Primary!.SiloAddress;
        var lease = (await tenant.AdmitAuthorizedLeasingAsync(Request("h-0", keyId, version), Ask() with { Holder = holder })).Lease!;

        Assert.NotNull(await tenant.RevokeKeyOnceAsync(keyId));

        Assert.Equal(1m, (await BudgetAsync(tenant)).Reserved);
        Assert.Equal(AuthorizationRefusal.KeyRevoked, (await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("h-1", keyId, version))).Answer.Refusal);
        Assert.Contains(fixture.Recalls, r => r.Contains(tenant.GetPrimaryKeyString(), StringComparison.Ordinal));
    }

    [Fact]
    public async Task DisabledTenant_IsRefused_OnTheNextRequestFromItsLease()
    {
        var (tenant, keyId, version) = await TenantAsync();
        var lease = (await tenant.AdmitAuthorizedLeasingAsync(Request("d-0", keyId, version), Ask())).Lease!;

        await tenant.UpdateAsync(null, null, null, disabled: true);

        var answer = await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("d-1", keyId, version));
        Assert.Equal(AuthorizationRefusal.TenantDisabled, answer.Answer.Refusal);
        Assert.Null(answer.Lease);
        Assert.Equal(1m, (await BudgetAsync(tenant)).Reserved);
    }

    [Fact]
    public async Task LoweredBudget_ClosesTheLease_ItsNextRequestIsAdmittedUnderTheNewBudget()
    {
        var (tenant, keyId, version) = await TenantAsync();
        var lease = (await tenant.AdmitAuthorizedLeasingAsync(Request("l-0", keyId, version), Ask())).Lease!;

        Assert.True((await tenant.SetLimitsAsync(new TenantLimits([new BudgetSetting(null, "month", 1.5m)], []))).Applied);

        // The lease held 9.9 of a budget now 1.5: closed, the request is admitted by the grain, and refused.
        var answer = await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("l-1", keyId, version));
        Assert.Equal(AdmissionOutcome.BudgetExceeded, answer.Answer.Admission!.Outcome);
        Assert.Null(answer.Lease);
        Assert.Equal(1m, (await BudgetAsync(tenant)).Reserved);
    }

    [Fact]
    public async Task AKilledHoldersLease_ComesBack_AfterItsTerm_AndIsNotHonouredAfter()
    {
        var (tenant, keyId, version) = await TenantAsync();

        // Held: the lease closes one second (its grace) after its term, counted from its grant, and on a loaded
        // machine more than a second of real time can pass between the grant and the first release below.
        using var held = fixture.Clock.Hold();
        var lease = (await tenant.AdmitAuthorizedLeasingAsync(Request("x-0", keyId, version), Ask())).Lease!;
        Assert.True((await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("x-1", keyId, version))).Answer.Admission!.Allowed);
        Assert.Equal((2m, 8.9m), ((await BudgetAsync(tenant)).Reserved, (await BudgetAsync(tenant)).Leased));

        // Its holder dies (unknown to the cluster here): nothing returns the lease. Past its term (and the grain's
        // grace) the grain closes it.
        fixture.Clock.Advance(ClusterFixture.LeaseTerm);
        await tenant.ReleaseExpiredReservationsAsync();
        Assert.Equal(8.9m, (await BudgetAsync(tenant)).Leased);
        fixture.Clock.Advance(TimeSpan.FromSeconds(1));
        await tenant.ReleaseExpiredReservationsAsync();

        // The two admitted requests keep their own reservations; the lease's other 8.9 is back.
        Assert.Equal((2m, 0m), ((await BudgetAsync(tenant)).Reserved, (await BudgetAsync(tenant)).Leased));
        var late = await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("x-2", keyId, version));
        Assert.True(late.Answer.Admission!.Allowed);
        Assert.Null(late.Lease);
        Assert.Equal(3m, (await BudgetAsync(tenant)).Reserved);
    }

    [Fact]
    public async Task AHolderDeclaredDead_ItsLeaseComesBack_BeforeItsTerm()
    {
        // A cluster of its own: a silo joins and leaves it, which the collection's (its clock moved by other tests) is kept from.
        var own = new ClusterFixture();
        await own.InitializeAsync();
        try
        {
            await HolderDeclaredDeadAsync(own);
        }
        finally
        {
            await own.DisposeAsync();
        }
    }

    private async Task HolderDeclaredDeadAsync(ClusterFixture own)
    {
        var (tenant, keyId, version) = await TenantAsync(on: own);
        await tenant.GetBudgetsAsync();

        // A gateway silo beside the tenant's (activated before it joined, so it stays where it is) holds a lease.
        var gateway = await own.Cluster.StartAdditionalSiloAsync();
        var lease = (await tenant.AdmitAuthorizedLeasingAsync(Request("dh-0", keyId, version), Ask() with { Holder = gateway.SiloAddress })).Lease!;
        Assert.Equal(9.9m, (await BudgetAsync(tenant)).Leased);

        // It leaves the cluster (declared dead) with its lease unreturned; the grain's silo learns it.
        await StopAndDeclaredDeadAsync(own, gateway);

        // The grain's next look closes it, well before its term (the clock has not moved): its money is back, and a
        // confirmation that still came would be admitted afresh.
        await tenant.ReleaseExpiredReservationsAsync();
        var budget = await BudgetAsync(tenant);
        Assert.Equal((1m, 0m, 99m), (budget.Reserved, budget.Leased, budget.Remaining));
        var late = await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("dh-1", keyId, version));
        Assert.True(late.Answer.Admission!.Allowed);
        Assert.Null(late.Lease);

        // The request admitted beside the lease (its ask named the gateway) has no usage record: released once the
        // gateway has been dead for the grace (it held 1 until its lifetime before session 55). dh-1 was admitted here.
        own.Clock.Advance(TimeSpan.FromSeconds(60));
        await tenant.ReleaseExpiredReservationsAsync();
        Assert.Equal(1m, (await BudgetAsync(tenant)).Reserved);
    }

    /// <summary>Stops <paramref name="gateway"/> and waits until the primary silo's membership says it is dead.</summary>
    internal static async Task StopAndDeclaredDeadAsync(ClusterFixture own, Orleans.TestingHost.SiloHandle gateway)
    {
        var membership = ((Orleans.TestingHost.InProcessSiloHandle)own.Cluster.Primary!).SiloHost.Services.GetRequiredService<IClusterMembershipService>();
        await own.Cluster.StopSiloAsync(gateway);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(timeout.Token))
        {
            if (snapshot.GetSiloStatus(gateway.SiloAddress) == SiloStatus.Dead)
            {
                break;
            }
        }
    }

    [Fact]
    public async Task AHolderDeclaredDead_TheReservationsOfRequestsItAdmitted_SettleFromTheLedgerOrRelease_Once()
    {
        // A cluster of its own: a silo joins and leaves it, and the clock moves past a reservation lifetime.
        var own = new ClusterFixture();
        await own.InitializeAsync();
        try
        {
            await DeadHolderReservationsAsync(own);
        }
        finally
        {
            await own.DisposeAsync();
        }
    }

    internal static Sovereign.Metering.Ledger.UsageRecord Record(string tenant, string keyId, string id, decimal cost, DateTimeOffset at) => new()
    {
        RequestId = id, Timestamp = at, Tenant = tenant, KeyId = keyId, Model = "m", Node = "n", Jurisdiction = "DE",
        PromptTokens = 1, CompletionTokens = 1, Cost = cost, Currency = "EUR", PriceVersion = "euro:m@2026-01-01T00:00:00.000Z",
    };

    private async Task DeadHolderReservationsAsync(ClusterFixture own)
    {
        var (tenant, keyId, version) = await TenantAsync(on: own);
        var tenantId = tenant.GetPrimaryKeyString();
        await tenant.GetBudgetsAsync();

        // A gateway silo beside the tenant's admitted dr-0 (asking for a lease) and dr-1, dr-2 from the lease: three
        // reservations of 1, confirmed by the grain, their relays gone to a node.
        var gateway = await own.Cluster.StartAdditionalSiloAsync();
        var lease = (await tenant.AdmitAuthorizedLeasingAsync(Request("dr-0", keyId, version), Ask() with { Holder = gateway.SiloAddress })).Lease!;
        Assert.True((await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("dr-1", keyId, version))).Answer.Admission!.Allowed);
        Assert.True((await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("dr-2", keyId, version))).Answer.Admission!.Allowed);

        // And dr-3 without the lease, admitted by the grain, the admission naming its gateway.
        Assert.True((await tenant.AdmitAuthorizedAsync(Request("dr-3", keyId, version) with { Gateway = gateway.SiloAddress })).Admission!.Allowed);
        Assert.Equal((4m, 7.9m), ((await BudgetAsync(tenant)).Reserved, (await BudgetAsync(tenant)).Leased));

        // dr-1 ended: its gateway committed its usage record (with its audit entry, before the client's last byte) and
        // was killed before settling it. dr-0, dr-2 and dr-3 were still running: no record.
        Assert.True(await own.Ledger.AppendAsync(Record(tenantId, keyId, "dr-1", 0.4m, own.Clock.GetUtcNow())));
        await StopAndDeclaredDeadAsync(own, gateway);

        // The grain's next look: the lease closes and dr-1 is settled at its record's cost. dr-0, dr-2 and dr-3 have no
        // record yet and stay held for the grace (60 s; a gracefully stopping gateway is dead in membership at once and
        // still finishes its streams). On the code before, all four held their 1 until the reservation lifetime (30 min
        // by default): Reserved was 4.
        await tenant.ReleaseExpiredReservationsAsync();
        var budget = await BudgetAsync(tenant);
        Assert.Equal((3m, 0m, 0.4m, 96.6m), (budget.Reserved, budget.Leased, budget.Settled, budget.Remaining));

        // dr-2 finishes during the grace: its record commits. At the grace's end it is settled at that cost, and dr-0 and
        // dr-3, still without a record, are released.
        Assert.True(await own.Ledger.AppendAsync(Record(tenantId, keyId, "dr-2", 0.3m, own.Clock.GetUtcNow())));
        own.Clock.Advance(TimeSpan.FromSeconds(59));
        await tenant.ReleaseExpiredReservationsAsync();
        Assert.Equal(3m, (await BudgetAsync(tenant)).Reserved);
        own.Clock.Advance(TimeSpan.FromSeconds(1));
        await tenant.ReleaseExpiredReservationsAsync();
        budget = await BudgetAsync(tenant);
        Assert.Equal((0m, 0m, 0.7m, 99.3m), (budget.Reserved, budget.Leased, budget.Settled, budget.Remaining));

        // Nothing counts twice. dr-1's and dr-2's settlements still arrive (the same ids): nothing moves. dr-3's arrives,
        // its record committed after the grace: charged once (unreserved), and its record found later is not charged
        // again. dr-0's record commits with no settlement ever: charged once, a reservation lifetime after its release.
        await tenant.SettleAsync(new SettlementRequest("dr-1", keyId, 0.4m, Tokens, 2));
        await tenant.SettleAsync(new SettlementRequest("dr-2", keyId, 0.3m, Tokens, 2));
        Assert.Equal(0.7m, (await BudgetAsync(tenant)).Settled);
        Assert.True(await own.Ledger.AppendAsync(Record(tenantId, keyId, "dr-3", 0.25m, own.Clock.GetUtcNow())));
        await tenant.SettleAsync(new SettlementRequest("dr-3", keyId, 0.25m, Tokens, 2));
        Assert.Equal(0.95m, (await BudgetAsync(tenant)).Settled);
        Assert.True(await own.Ledger.AppendAsync(Record(tenantId, keyId, "dr-0", 0.2m, own.Clock.GetUtcNow())));
        await tenant.ReleaseExpiredReservationsAsync();
        Assert.Equal(0.95m, (await BudgetAsync(tenant)).Settled);

        own.Clock.Advance(ClusterFixture.ReservationLifetime + TimeSpan.FromSeconds(1));
        await tenant.ReleaseExpiredReservationsAsync();
        await tenant.ReleaseExpiredReservationsAsync();
        budget = await BudgetAsync(tenant);
        Assert.Equal((0m, 0m, 1.15m, 98.85m), (budget.Reserved, budget.Leased, budget.Settled, budget.Remaining));
        Assert.Contains(own.Corrections, c => c.EventId == 8102 && c.Message.Contains("dr-3", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AHolderThatDoesNotAnswerAReclaim_IsWaitedForOnce_TheNextReclaimClosesItsLeaseWithoutAskingIt()
    {
        var (tenant, keyId, version) = await TenantAsync(budget: 1000m);
        var tenantId = tenant.GetPrimaryKeyString();
        var silent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        TestLeaseHolderGrain.Silent[tenantId] = silent;
        try
        {
            // The gateway on this silo never answers this tenant's reclaims or recalls (cut off from the grain's side),
            // but its requests still reach the grain, and it asks for leases again.
            var holder = fixture.Cluster.Primary!.SiloAddress;
            var first = (await tenant.AdmitAuthorizedLeasingAsync(Request("u-0", keyId, version), Ask() with { Holder = holder })).Lease!;
            Assert.Equal(32m, first.Money);

            // 967 unleased: a request of 968 is refused while the lease holds 32, so its tenant's leases are reclaimed.
            // The holder is asked, does not answer within Sovereign:Metering:LeaseReclaimTimeout, and its lease closes whole.
            Assert.True((await tenant.AdmitAuthorizedAsync(Request("u-1", keyId, version, maxCost: 968m))).Admission!.Allowed);
            Assert.Equal(1, TestLeaseHolderGrain.Reclaims[tenantId]);
            Assert.Equal((0m, 969m), ((await BudgetAsync(tenant)).Leased, (await BudgetAsync(tenant)).Reserved));
            await tenant.SettleAsync(new SettlementRequest("u-1", keyId, 0m, Tokens, 0));

            // It asks again and holds a second lease; the next reclaim closes it whole at once, without asking (and
            // waiting for) the gateway that did not answer.
            var second = (await tenant.AdmitAuthorizedLeasingAsync(Request("u-2", keyId, version), Ask() with { Holder = holder })).Lease!;
            Assert.Equal(32m, second.Money);
            Assert.True((await tenant.AdmitAuthorizedAsync(Request("u-3", keyId, version, maxCost: 967m))).Admission!.Allowed);
            Assert.Equal(1, TestLeaseHolderGrain.Reclaims[tenantId]);
            Assert.Equal((0m, 969m), ((await BudgetAsync(tenant)).Leased, (await BudgetAsync(tenant)).Reserved));

            // A confirmation of the closed lease is admitted afresh (here refused: the budget has no room), as before.
            Assert.Null((await tenant.AdmitFromLeaseAsync(second.LeaseId, Request("u-4", keyId, version, maxCost: 40m))).Lease);
        }
        finally
        {
            silent.TrySetResult();
            TestLeaseHolderGrain.Silent.TryRemove(tenantId, out _);
        }
    }

    [Fact]
    public async Task ARequestRefusedWhileALeaseHoldsTheMoney_ClosesIt_AndIsAdmitted()
    {
        var (tenant, keyId, version) = await TenantAsync();
        var lease = (await tenant.AdmitAuthorizedLeasingAsync(Request("rb-0", keyId, version), Ask())).Lease!;
        Assert.Equal(9.9m, lease.Money);

        // 89 more of 1 EUR leave 0.1 beside the lease's 9.9: the 90th to 99th are admitted against the lease's money
        // (the lease closes at the first of them), the 100th is refused: exactly the budget, never less.
        for (var i = 1; i <= 99; i++)
        {
            var answer = await tenant.AdmitAuthorizedAsync(Request("rb-" + i, keyId, version));
            Assert.True(answer.Admission!.Allowed, $"request {i}: {answer.Admission.Outcome}");
        }

        Assert.Equal(AdmissionOutcome.BudgetExceeded, (await tenant.AdmitAuthorizedAsync(Request("rb-100", keyId, version))).Admission!.Outcome);
        var budget = await BudgetAsync(tenant);
        Assert.Equal((100m, 0m, 0m), (budget.Reserved, budget.Leased, budget.Remaining));
        var late = await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("rb-late", keyId, version));
        Assert.Equal(AdmissionOutcome.BudgetExceeded, late.Answer.Admission!.Outcome);
        Assert.Null(late.Lease);
    }

    [Fact]
    public async Task ARequestRateLimitedWhileALeaseHoldsRequests_ClosesIt_AndTheHeadersCountTheLeaseAsRemaining()
    {
        // 40 requests a minute: a lease takes a tenth, 4 requests.
        var (tenant, keyId, version) = await TenantAsync(rate: new RateLimitSetting(null, 40, null));
        var leased = await tenant.AdmitAuthorizedLeasingAsync(Request("rr-0", keyId, version), Ask());
        var lease = leased.Lease!;
        Assert.Equal(4, lease.Requests);

        // The lease's 4 are still the tenant's to send: the headers count them as remaining (39 of 40, less refill).
        var probe = await tenant.AdmitAsync(new AdmissionRequest("rr-probe", keyId, 0, 0m, "EUR"));
        Assert.InRange(probe.RateLimits!.RemainingRequests!.Value, 38, 40);

        // Sent past what the counters hold without the lease, the requests are admitted against the lease's 4 (it
        // closes) before any is refused: the lease is closed by the time the first refusal comes.
        var sent = 0;
        while ((await tenant.AdmitAsync(new AdmissionRequest("rr-" + ++sent, keyId, 0, 0m, "EUR"))).Allowed)
        {
            Assert.True(sent < 1000, "never refused");
        }

        var late = await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("rr-late", keyId, version));
        Assert.Null(late.Lease);
    }

    [Fact]
    public async Task ARequestOnlyCounted_RefusedWhileALeaseHoldsRequests_ClosesIt_AndIsCounted()
    {
        // POST /v1/language/detect (and the tokenizer's, the stored responses') counts a request against the limits
        // (CountRequestAsync). 40 requests a minute: a lease takes a tenth, 4 requests.
        var (tenant, keyId, version) = await TenantAsync(rate: new RateLimitSetting(null, 40, null));

        // Held: no refill, so the count below is exact to the request.
        using var held = fixture.Clock.Hold();
        var lease = (await tenant.AdmitAuthorizedLeasingAsync(Request("rc-0", keyId, version), Ask())).Lease!;
        Assert.Equal(4, lease.Requests);

        // 1 admitted and 4 leased of 40: the counters alone hold 35, the lease's 4 are the tenant's too. Counted past the
        // 35, the 36th closes the lease (it was refused, and the lease's 4 stayed unused until its term).
        var counted = 0;
        while ((await tenant.CountRequestAsync(keyId)).Allowed)
        {
            Assert.True(++counted < 1000, "never refused");
        }

        Assert.Equal(39, counted);
        var late = await tenant.AdmitFromLeaseAsync(lease.LeaseId, Request("rc-late", keyId, version));
        Assert.Null(late.Lease);
        Assert.Equal(AdmissionOutcome.RateLimitedRequests, late.Answer.Admission!.Outcome);
    }

    [Fact]
    public async Task ANearlySpentBudget_GrantsNoLease_EveryRequestAsksTheGrain()
    {
        var (tenant, keyId, version) = await TenantAsync(budget: 30m);

        // A tenth of the 29 left is 2.9, less than the 4 requests' worth of the smallest lease.
        var leased = await tenant.AdmitAuthorizedLeasingAsync(Request("n-0", keyId, version), Ask());

        Assert.True(leased.Answer.Admission!.Allowed);
        Assert.Null(leased.Lease);
        Assert.Equal(1m, (await BudgetAsync(tenant)).Reserved);
    }

    [Fact]
    public async Task ARateLimitTooSmallForALease_GrantsNone_AndTakesNothingForIt()
    {
        var (tenant, keyId, version) = await TenantAsync(rate: new RateLimitSetting(null, 30, null));

        var leased = await tenant.AdmitAuthorizedLeasingAsync(Request("s-0", keyId, version), Ask());

        Assert.Null(leased.Lease);
        Assert.Equal(29, leased.Answer.Admission!.RateLimits!.RemainingRequests);
        Assert.Equal(1m, (await BudgetAsync(tenant)).Reserved);
    }
}
