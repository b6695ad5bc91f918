using System.Collections.Concurrent;
using System.Reflection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Metering;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// The gateway's side of a budget lease (<see cref="BudgetLeases"/>): it counts the lease down before the tenant's grain
/// does, so it never admits more than the grain holds for it (requests, tokens, money), stops at the lease's term, at
/// another version of the tenant, or when the grain answers the lease closed, and gives the unspent part back only
/// once the requests it admitted have been confirmed.
/// </summary>
public sealed class BudgetLeasesTests
{
    private const string Tenant = "t-1";
    private const string Key = "key-1";
    private const string Version = "v-1";

    private static BudgetLease Lease(decimal money = 10m, int requests = 8, long tokens = 800, TimeSpan? term = null, bool budgetApplies = true) =>
        new(Guid.NewGuid(), Key, money, budgetApplies, requests, tokens, term ?? TimeSpan.FromMinutes(1), Version, "EUR", null);

    private static (BudgetLeases Leases, ConcurrentQueue<Guid> Returned) Leases()
    {
        var returned = new ConcurrentQueue<Guid>();
        var grains = DispatchProxy.Create<IGrainFactory, FakeGrains>();
        ((FakeGrains)(object)grains).Returned = returned;
        var leases = new BudgetLeases(new GrainReferences<ITenantGrain>(grains),
            Options.Create(new TenantMoneyOptions { LeaseTerm = TimeSpan.FromSeconds(10) }), NullLogger<BudgetLeases>.Instance);
        return (leases, returned);
    }

    [Fact]
    public void TryTake_AdmitsNoMoreThanTheLeaseHolds_InMoney()
    {
        var (leases, _) = Leases();
        leases.Install(Tenant, Key, Lease(money: 10m), System.Diagnostics.Stopwatch.GetTimestamp());

        var taken = Enumerable.Range(0, 20).Count(_ => leases.TryTake(Tenant, Key, Version, 3m, 10, "EUR", unpriced: false) is not null);

        // 3 + 3 + 3 of 10: the fourth would pass the lease's money, so the lease is dropped and the rest ask the grain.
        Assert.Equal(3, taken);
        Assert.Null(leases.Of(Tenant, Key));
    }

    [Fact]
    public void TryTake_AdmitsNoMoreThanTheLeaseHolds_InRequestsAndTokens()
    {
        var (leases, _) = Leases();
        leases.Install(Tenant, Key, Lease(money: 1000m, requests: 5, tokens: 10_000), System.Diagnostics.Stopwatch.GetTimestamp());
        Assert.Equal(5, Enumerable.Range(0, 10).Count(_ => leases.TryTake(Tenant, Key, Version, 1m, 10, "EUR", false) is not null));

        leases.Install(Tenant, Key, Lease(money: 1000m, requests: 100, tokens: 95), System.Diagnostics.Stopwatch.GetTimestamp());
        Assert.Equal(9, Enumerable.Range(0, 20).Count(_ => leases.TryTake(Tenant, Key, Version, 1m, 10, "EUR", false) is not null));
    }

    [Fact]
    public void TryTake_RefusesAnotherTenantVersion_ACurrencyNotTheLeases_AnUnpricedRequestUnderABudget_AndALeasePastItsTerm()
    {
        var (leases, _) = Leases();
        leases.Install(Tenant, Key, Lease(), System.Diagnostics.Stopwatch.GetTimestamp());
        Assert.Null(leases.TryTake(Tenant, Key, Version, 1m, 10, "USD", false));
        leases.Install(Tenant, Key, Lease(), System.Diagnostics.Stopwatch.GetTimestamp());
        Assert.Null(leases.TryTake(Tenant, Key, Version, 0m, 10, "XXX", unpriced: true));
        leases.Install(Tenant, Key, Lease(), System.Diagnostics.Stopwatch.GetTimestamp());
        Assert.Null(leases.TryTake(Tenant, Key, "v-2", 1m, 10, "EUR", false));

        // Asked for a minute before now with a term of a minute: past it.
        var aMinuteAgo = System.Diagnostics.Stopwatch.GetTimestamp() - System.Diagnostics.Stopwatch.Frequency * 60;
        leases.Install(Tenant, Key, Lease(), aMinuteAgo);
        Assert.Null(leases.TryTake(Tenant, Key, Version, 1m, 10, "EUR", false));
        Assert.Equal(0, leases.Count);
    }

    [Fact]
    public void ALeaseWithoutABudget_CountsRequestsAndTokens_NotMoney()
    {
        var (leases, _) = Leases();
        leases.Install(Tenant, Key, Lease(money: 0m, requests: 3, budgetApplies: false), System.Diagnostics.Stopwatch.GetTimestamp());

        Assert.Equal(3, Enumerable.Range(0, 5).Count(_ => leases.TryTake(Tenant, Key, Version, 0m, 10, "XXX", unpriced: true) is not null));
    }

    [Fact]
    public void AClosedLease_IsGivenBack_OnlyOnceItsRequestsWereConfirmed_AndALeaseTheGrainClosed_IsNotUsedAgain()
    {
        var (leases, returned) = Leases();
        var lease = Lease(money: 2m);
        leases.Install(Tenant, Key, lease, System.Diagnostics.Stopwatch.GetTimestamp());
        var first = leases.TryTake(Tenant, Key, Version, 1m, 10, "EUR", false)!;
        var second = leases.TryTake(Tenant, Key, Version, 1m, 10, "EUR", false)!;

        // Spent: dropped, but its two requests' confirmations are on their way; the return waits for both.
        Assert.Null(leases.TryTake(Tenant, Key, Version, 1m, 10, "EUR", false));
        Assert.Empty(returned);
        leases.Answered(first, lease);
        Assert.Empty(returned);
        leases.Answered(second, lease);
        Assert.Equal([lease.LeaseId], returned);

        // The grain answers a lease closed (revoked key, changed limits): not used again, nothing to give back.
        var closed = Lease();
        leases.Install(Tenant, Key, closed, System.Diagnostics.Stopwatch.GetTimestamp());
        var held = leases.TryTake(Tenant, Key, Version, 1m, 10, "EUR", false)!;
        leases.Answered(held, null);
        Assert.Null(leases.TryTake(Tenant, Key, Version, 1m, 10, "EUR", false));
        Assert.Equal([lease.LeaseId], returned);
    }

    [Fact]
    public void Recalled_ATenantsLeasesAreNotUsedAgain_NothingGivenBack_OtherTenantsKeepTheirs()
    {
        var (leases, returned) = Leases();
        leases.Install(Tenant, Key, Lease(), System.Diagnostics.Stopwatch.GetTimestamp());
        leases.Install("t-2", Key, Lease(), System.Diagnostics.Stopwatch.GetTimestamp());

        leases.Recall(Tenant);

        Assert.Null(leases.TryTake(Tenant, Key, Version, 1m, 10, "EUR", false));
        Assert.NotNull(leases.TryTake("t-2", Key, Version, 1m, 10, "EUR", false));
        Assert.Empty(returned);
    }

    [Fact]
    public void Reclaimed_ALeaseIsNotUsedAgain_AndWhatItHadNotAdmittedIsSaid_ALeaseDroppedWithConfirmationsOnTheirWayIncluded()
    {
        var (leases, returned) = Leases();
        var open = Lease(money: 10m, requests: 8, tokens: 800);
        leases.Install(Tenant, Key, open, System.Diagnostics.Stopwatch.GetTimestamp());
        var taken = leases.TryTake(Tenant, Key, Version, 3m, 10, "EUR", false)!;
        var second = leases.TryTake(Tenant, Key, Version, 3m, 10, "EUR", false)!;
        leases.Answered(taken, open);

        // Another key's lease, spent here and dropped (its return waits for the request in flight), and another tenant's.
        var spent = Lease(money: 2m) with { KeyId = "key-2" };
        leases.Install(Tenant, "key-2", spent, System.Diagnostics.Stopwatch.GetTimestamp());
        var inFlight = leases.TryTake(Tenant, "key-2", Version, 2m, 10, "EUR", false)!;
        Assert.Null(leases.TryTake(Tenant, "key-2", Version, 1m, 10, "EUR", false));
        leases.Install("t-2", Key, Lease(), System.Diagnostics.Stopwatch.GetTimestamp());

        var unused = leases.Reclaim(Tenant);

        // What each had not taken: 10 - 2 x 3, 8 - 2, 800 - 2 x 10; the spent one 0, 7 and 790.
        Assert.Equal(
            [new BudgetLeaseUnused(open.LeaseId, 4m, 6, 780), new BudgetLeaseUnused(spent.LeaseId, 0m, 7, 790)],
            unused.OrderBy(u => u.LeaseId == open.LeaseId ? 0 : 1));
        Assert.Null(leases.TryTake(Tenant, Key, Version, 1m, 10, "EUR", false));
        Assert.NotNull(leases.TryTake("t-2", Key, Version, 1m, 10, "EUR", false));

        // The grain keeps what was taken for the confirmations and closes the leases itself: nothing is given back here,
        // not even the spent lease's return that waited for its request, and a second reclaim finds nothing.
        leases.Answered(inFlight, spent);
        leases.Answered(second, open);
        Assert.Empty(returned);
        Assert.Empty(leases.Reclaim(Tenant));
    }

    [Fact]
    public void ALeaseGrantedAcrossARecall_IsNotUsed_AndIsGivenBack()
    {
        var (leases, returned) = Leases();
        var ask = leases.TryBeginAsk(Tenant, Key)!;
        var lease = Lease();

        // The grain reclaimed (or recalled) the tenant's leases while this one's grant was on its way: it may be closed.
        leases.Reclaim(Tenant);
        leases.Install(Tenant, Key, lease, System.Diagnostics.Stopwatch.GetTimestamp(), ask);
        leases.EndAsk(ask);

        Assert.Null(leases.TryTake(Tenant, Key, Version, 1m, 10, "EUR", false));
        Assert.Equal([lease.LeaseId], returned);

        // Asked for after it: used.
        var next = Lease();
        var nextAsk = leases.TryBeginAsk(Tenant, Key)!;
        leases.Install(Tenant, Key, next, System.Diagnostics.Stopwatch.GetTimestamp(), nextAsk);
        leases.EndAsk(nextAsk);
        Assert.NotNull(leases.TryTake(Tenant, Key, Version, 1m, 10, "EUR", false));
    }

    [Fact]
    public void Recalls_OfManyTenants_KeepNothingOnceTheirAsksEnd_AndStillCrossAnAskOnItsWay()
    {
        var (leases, returned) = Leases();

        // An ask of another tenant on its way is not crossed by these recalls.
        var other = leases.TryBeginAsk("t-other", Key)!;
        for (var i = 0; i < 10_000; i++)
        {
            var tenant = "t-many-" + i;
            var ask = leases.TryBeginAsk(tenant, Key)!;
            Assert.Null(leases.TryBeginAsk(tenant, Key));
            if (i % 2 == 0)
            {
                leases.Recall(tenant);
            }
            else
            {
                leases.Reclaim(tenant);
            }

            var lease = Lease();
            leases.Install(tenant, Key, lease, System.Diagnostics.Stopwatch.GetTimestamp(), ask);
            leases.EndAsk(ask);
            Assert.Null(leases.TryTake(tenant, Key, Version, 1m, 10, "EUR", false));

            // Recalled with no ask on its way: nothing to remember.
            leases.Recall(tenant);
        }

        // Every crossed lease was given back, and only the ask still on its way is kept: the recalls of 10,000 tenants
        // left nothing behind (a count per tenant ever recalled was kept before, never pruned).
        Assert.Equal(10_000, returned.Count);
        Assert.Equal(1, leases.AsksInFlight);
        var untouched = Lease();
        leases.Install("t-other", Key, untouched, System.Diagnostics.Stopwatch.GetTimestamp(), other);
        leases.EndAsk(other);
        Assert.NotNull(leases.TryTake("t-other", Key, Version, 1m, 10, "EUR", false));
        Assert.Equal(0, leases.AsksInFlight);
    }

    [Fact]
    public async Task Stopping_GivesEveryLeaseBack()
    {
        var (leases, returned) = Leases();
        var lease = Lease();
        leases.Install(Tenant, Key, lease, System.Diagnostics.Stopwatch.GetTimestamp());

        await leases.StopAsync(CancellationToken.None);

        Assert.Equal([lease.LeaseId], returned);
        Assert.Equal(0, leases.Count);
    }

    /// <summary>A grain factory whose tenant grains record the leases given back and answer nothing else.</summary>
    public class FakeGrains : DispatchProxy
    {
        internal ConcurrentQueue<Guid> Returned { get; set; } = new();

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            if (targetMethod?.Name == nameof(IGrainFactory.GetGrain) && targetMethod.ReturnType == typeof(ITenantGrain))
            {
                var grain = Create<ITenantGrain, FakeTenant>();
                ((FakeTenant)(object)grain).Returned = Returned;
                return grain;
            }

            throw new NotSupportedException(targetMethod?.Name);
        }
    }

    public class FakeTenant : DispatchProxy
    {
        internal ConcurrentQueue<Guid> Returned { get; set; } = new();

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            if (targetMethod?.Name == nameof(ITenantGrain.ReturnLeaseAsync))
            {
                Returned.Enqueue((Guid)args![0]!);
                return Task.CompletedTask;
            }

            throw new NotSupportedException(targetMethod?.Name);
        }
    }
}
