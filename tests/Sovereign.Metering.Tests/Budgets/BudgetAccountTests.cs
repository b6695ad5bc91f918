using System.Text.Json;
using Sovereign.Metering.Budgets;

namespace Sovereign.Metering.Tests.Budgets;

public sealed class BudgetAccountTests
{
    private static readonly DateTimeOffset Noon = new(2026, 3, 14, 12, 0, 0, TimeSpan.Zero);

    private static BudgetAccount Account(params BudgetLimit[] limits)
    {
        var account = new BudgetAccount("tenant-1", "EUR");
        foreach (var limit in limits)
        {
            account.SetLimit(limit, Noon);
        }

        return account;
    }

    [Fact]
    public void TryReserve_WithinTenantBudget_ReservesAndCountsAsOutstanding()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));

        var result = account.TryReserve("r1", null, 4m, Noon);

        Assert.True(result.Succeeded);
        Assert.Equal(4m, result.Reservation.Amount);
        var status = Assert.Single(account.Remaining(Noon));
        Assert.Equal(4m, status.Reserved);
        Assert.Equal(0m, status.Settled);
        Assert.Equal(6m, status.Remaining);
    }

    [Fact]
    public void TryReserve_MoreThanAvailable_RefusesWithBudgetAndRemaining()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Month, 10m));
        Assert.True(account.TryReserve("r1", null, 7m, Noon).Succeeded);

        var result = account.TryReserve("r2", null, 4m, Noon);

        Assert.False(result.Succeeded);
        Assert.Equal("budget_exceeded", result.Refusal.Code);
        Assert.Equal(BudgetScope.Tenant, result.Refusal.Scope);
        Assert.Equal(BudgetPeriod.Month, result.Refusal.Period);
        Assert.Equal(3m, result.Refusal.Remaining);
        Assert.Equal(10m, result.Refusal.Limit);
        Assert.Equal(4m, result.Refusal.Requested);
        Assert.Equal(new DateTimeOffset(2026, 4, 1, 0, 0, 0, TimeSpan.Zero), result.Refusal.ResetsAt);
        Assert.Equal(1, account.OutstandingCount);
    }

    [Fact]
    public void TryReserve_RefusedOnlyForWhatIsInFlight_IsNotFinal_RefusedForWhatIsSpent_IsFinal()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Month, 10m));
        Assert.True(account.TryReserve("r1", null, 7m, Noon).Succeeded);

        // 3 left while r1 holds 7: r1 may settle for less and give the room back, so a retry may pass.
        Assert.False(account.TryReserve("r2", null, 4m, Noon).Refusal!.Final);

        account.Settle("r1", 7m, Noon);

        // 7 spent: nothing in flight can give room back before the month ends.
        var spent = account.TryReserve("r3", null, 4m, Noon);
        Assert.True(spent.Refusal!.Final);
        Assert.Equal(3m, spent.Refusal.Remaining);
    }

    [Fact]
    public void TryReserve_KeyBudgetShort_RefusesAndTakesNothingFromTenant()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 100m), BudgetLimit.ForKey("k1", BudgetPeriod.Day, 5m));

        var result = account.TryReserve("r1", "k1", 6m, Noon);

        Assert.False(result.Succeeded);
        Assert.Equal(BudgetScope.Key, result.Refusal.Scope);
        Assert.Equal("k1", result.Refusal.KeyId);
        Assert.Equal(5m, result.Refusal.Remaining);
        Assert.All(account.Remaining(Noon), s => Assert.Equal(0m, s.Reserved));
    }

    [Fact]
    public void TryReserve_TenantShortButKeyHasRoom_RefusesOnTenant()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 5m), BudgetLimit.ForKey("k1", BudgetPeriod.Day, 50m));
        Assert.True(account.TryReserve("r1", "k2", 4m, Noon).Succeeded);

        var result = account.TryReserve("r2", "k1", 2m, Noon);

        Assert.False(result.Succeeded);
        Assert.Equal(BudgetScope.Tenant, result.Refusal.Scope);
        Assert.Equal(1m, result.Refusal.Remaining);
    }

    [Fact]
    public void TryReserve_SeveralBudgetsShort_ReportsTheOneWithLeastLeft()
    {
        var account = Account(
            BudgetLimit.ForTenant(BudgetPeriod.Day, 10m),
            BudgetLimit.ForTenant(BudgetPeriod.Total, 3m),
            BudgetLimit.ForKey("k1", BudgetPeriod.Month, 5m));

        var result = account.TryReserve("r1", "k1", 20m, Noon);

        Assert.False(result.Succeeded);
        Assert.Equal(BudgetPeriod.Total, result.Refusal.Period);
        Assert.Equal(3m, result.Refusal.Remaining);
        Assert.Null(result.Refusal.ResetsAt);
    }

    [Fact]
    public void TryReserve_KeyWithoutOwnBudget_OnlyTenantBudgetsApply()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m), BudgetLimit.ForKey("k1", BudgetPeriod.Day, 1m));

        Assert.True(account.TryReserve("r1", "k2", 9m, Noon).Succeeded);
    }

    [Fact]
    public void TryReserve_SameIdRepeated_ReturnsTheSameReservation()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        var first = account.TryReserve("r1", null, 6m, Noon);

        var again = account.TryReserve("r1", null, 6m, Noon.AddSeconds(1));

        Assert.Same(first.Reservation, again.Reservation);
        Assert.Equal(6m, Assert.Single(account.Remaining(Noon)).Reserved);
        Assert.Throws<InvalidOperationException>(() => account.TryReserve("r1", null, 7m, Noon));
    }

    [Fact]
    public void TryReserve_IdAlreadySettled_Throws()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        account.TryReserve("r1", null, 1m, Noon);
        account.Settle("r1", 1m, Noon);

        Assert.Throws<InvalidOperationException>(() => account.TryReserve("r1", null, 1m, Noon));
    }

    [Fact]
    public void TryReserve_NoLimits_AlwaysSucceeds()
    {
        var account = new BudgetAccount("tenant-1", "EUR");

        Assert.True(account.TryReserve("r1", "k1", 1_000_000m, Noon).Succeeded);
    }

    [Fact]
    public void Settle_ActualBelowReserved_ReleasesTheDifference()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m), BudgetLimit.ForKey("k1", BudgetPeriod.Day, 8m));
        account.TryReserve("r1", "k1", 8m, Noon);

        var settlement = account.Settle("r1", 2.5m, Noon.AddSeconds(3));

        Assert.False(settlement.Overrun);
        Assert.False(settlement.Unreserved);
        Assert.False(settlement.ClosedPeriod);
        Assert.Equal(8m, settlement.Reserved);
        Assert.Equal(2.5m, settlement.Actual);
        var statuses = account.Remaining(Noon);
        Assert.All(statuses, s => Assert.Equal(0m, s.Reserved));
        Assert.All(statuses, s => Assert.Equal(2.5m, s.Settled));
        Assert.Equal([7.5m, 5.5m], statuses.Select(s => s.Remaining));
        Assert.Equal(0, account.OutstandingCount);
    }

    [Fact]
    public void NegativeZero_IsZero_ForReserveHoldSettleAndSeed()
    {
        // Arithmetic such as decimal.Ceiling(-0.79m) yields a zero with a minus sign: no debt, so every entry point takes it.
        var negativeZero = decimal.Ceiling(-0.79m);
        Assert.True(decimal.IsNegative(negativeZero));
        var account = Account();
        account.SetLimit(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m), Noon, spentThisPeriod: negativeZero);

        Assert.True(account.TryReserve("r1", null, negativeZero, Noon).Succeeded);
        var settled = account.Settle("r1", negativeZero, Noon);
        account.Hold("r2", null, negativeZero, Noon, Noon);
        var unreserved = account.Settle("r3", negativeZero, Noon);

        Assert.False(decimal.IsNegative(settled.Actual));
        Assert.False(decimal.IsNegative(unreserved.Actual));
        var status = Assert.Single(account.Remaining(Noon));
        Assert.Equal(0m, status.Settled);
        Assert.False(decimal.IsNegative(status.Settled));
        Assert.Equal(10m, status.Remaining);
        Assert.Throws<ArgumentOutOfRangeException>(() => account.Settle("r4", -0.000001m, Noon));
    }

    [Fact]
    public void Settle_Twice_ReturnsTheFirstResultAndChargesOnce()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        account.TryReserve("r1", null, 5m, Noon);
        var first = account.Settle("r1", 3m, Noon);

        var second = account.Settle("r1", 4m, Noon.AddMinutes(1));

        Assert.Same(first, second);
        Assert.Equal(3m, Assert.Single(account.Remaining(Noon)).Settled);
    }

    [Fact]
    public void Settle_ActualAboveReserved_RecordsInFullAndFlagsOverrun()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        account.TryReserve("r1", null, 9m, Noon);

        var settlement = account.Settle("r1", 12m, Noon);

        Assert.True(settlement.Overrun);
        Assert.Equal(3m, settlement.OverrunAmount);
        var status = Assert.Single(account.Remaining(Noon));
        Assert.Equal(12m, status.Settled);
        Assert.Equal(0m, status.Remaining);
        Assert.False(account.TryReserve("r2", null, 0m, Noon).Succeeded);
    }

    [Fact]
    public void Settle_UnknownId_ChargesCurrentPeriodAndFlagsUnreserved()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m), BudgetLimit.ForKey("k1", BudgetPeriod.Day, 10m));

        var settlement = account.Settle("ghost", 2m, Noon, keyIdIfUnreserved: "k1");

        Assert.True(settlement.Unreserved);
        Assert.True(settlement.Overrun);
        Assert.All(account.Remaining(Noon), s => Assert.Equal(2m, s.Settled));
    }

    [Fact]
    public void Release_Outstanding_FreesItAndSecondReleaseIsNoOp()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        account.TryReserve("r1", null, 10m, Noon);

        Assert.True(account.Release("r1"));
        Assert.False(account.Release("r1"));
        Assert.True(account.TryReserve("r2", null, 10m, Noon).Succeeded);
    }

    [Fact]
    public void Release_AfterSettle_ChangesNothing()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        account.TryReserve("r1", null, 5m, Noon);
        account.Settle("r1", 5m, Noon);

        Assert.False(account.Release("r1"));
        Assert.Equal(5m, Assert.Single(account.Remaining(Noon)).Settled);
    }

    [Fact]
    public void TryReserve_AfterMidnightUtc_DailyBudgetStartsAgain()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        account.TryReserve("r1", null, 10m, Noon);
        account.Settle("r1", 10m, Noon);
        var lastMoment = new DateTimeOffset(2026, 3, 14, 23, 59, 59, TimeSpan.Zero);
        Assert.False(account.TryReserve("r2", null, 1m, lastMoment).Succeeded);

        var result = account.TryReserve("r3", null, 10m, lastMoment.AddSeconds(1));

        Assert.True(result.Succeeded);
        var status = Assert.Single(account.Remaining(lastMoment.AddSeconds(1)));
        Assert.Equal(new DateTimeOffset(2026, 3, 15, 0, 0, 0, TimeSpan.Zero), status.PeriodStart);
        Assert.Equal(new DateTimeOffset(2026, 3, 16, 0, 0, 0, TimeSpan.Zero), status.ResetsAt);
    }

    [Fact]
    public void TryReserve_MidnightInAnotherOffset_UsesUtcDays()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        account.TryReserve("r1", null, 10m, Noon);
        account.Settle("r1", 10m, Noon);

        // 00:30 on the 15th in UTC+2 is still the 14th in UTC.
        var localMidnight = new DateTimeOffset(2026, 3, 15, 0, 30, 0, TimeSpan.FromHours(2));

        Assert.False(account.TryReserve("r2", null, 1m, localMidnight).Succeeded);
    }

    [Fact]
    public void Settle_ReservationFromPreviousDay_ChargesTheClosedDayNotToday()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m), BudgetLimit.ForTenant(BudgetPeriod.Month, 100m));
        var lateEvening = new DateTimeOffset(2026, 3, 14, 23, 59, 0, TimeSpan.Zero);
        account.TryReserve("r1", null, 8m, lateEvening);
        var nextDay = lateEvening.AddMinutes(2);

        var settlement = account.Settle("r1", 6m, nextDay);

        Assert.True(settlement.ClosedPeriod);
        var statuses = account.Remaining(nextDay);
        var day = statuses.Single(s => s.Limit.Period == BudgetPeriod.Day);
        var month = statuses.Single(s => s.Limit.Period == BudgetPeriod.Month);
        Assert.Equal(0m, day.Settled);
        Assert.Equal(10m, day.Remaining);
        Assert.Equal(6m, month.Settled);
        Assert.Equal(0m, month.Reserved);
    }

    [Fact]
    public void TryReserve_NewDay_YesterdaysOpenReservationDoesNotBlockToday()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        account.TryReserve("r1", null, 10m, new DateTimeOffset(2026, 3, 14, 23, 0, 0, TimeSpan.Zero));

        var result = account.TryReserve("r2", null, 10m, new DateTimeOffset(2026, 3, 15, 0, 0, 0, TimeSpan.Zero));

        Assert.True(result.Succeeded);
        Assert.True(account.Release("r1"));
        Assert.Equal(10m, Assert.Single(account.Remaining(new DateTimeOffset(2026, 3, 15, 1, 0, 0, TimeSpan.Zero))).Reserved);
    }

    [Fact]
    public void TryReserve_NewCalendarMonth_MonthlyBudgetStartsAgain()
    {
        var account = new BudgetAccount("tenant-1", "EUR");
        var endOfFebruary = new DateTimeOffset(2026, 2, 28, 23, 0, 0, TimeSpan.Zero);
        account.SetLimit(BudgetLimit.ForTenant(BudgetPeriod.Month, 10m), endOfFebruary);
        account.TryReserve("r1", null, 10m, endOfFebruary);
        account.Settle("r1", 10m, endOfFebruary);

        Assert.False(account.TryReserve("r2", null, 1m, endOfFebruary.AddMinutes(59)).Succeeded);
        Assert.True(account.TryReserve("r3", null, 10m, endOfFebruary.AddHours(1)).Succeeded);
    }

    [Fact]
    public void TryReserve_TotalBudget_NeverResets()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Total, 10m));
        account.TryReserve("r1", null, 10m, Noon);
        account.Settle("r1", 10m, Noon);

        Assert.False(account.TryReserve("r2", null, 0.01m, Noon.AddYears(3)).Succeeded);
    }

    /// <summary>
    /// A clock that goes back into a day the account never saw (its budget was set, and its spend so far read from the
    /// ledger, on the later day) stays on the later day: the earlier day's spend is in the ledger, not here, so it is
    /// never started again from nothing. (A day it saw is returned to with its spend: see
    /// <see cref="ClockJumpsADayAheadAndBack_EachDayKeepsItsOwnSpend"/>.)
    /// </summary>
    [Fact]
    public void TryReserve_ClockGoesBackIntoADayItNeverSaw_DoesNotRollBack()
    {
        var tomorrow = Noon.AddDays(1);
        var account = new BudgetAccount("tenant-1", "EUR");
        account.SetLimit(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m), tomorrow);
        account.TryReserve("r1", null, 10m, tomorrow);

        var result = account.TryReserve("r2", null, 1m, tomorrow.AddDays(-1));

        Assert.False(result.Succeeded);
    }

    /// <summary>
    /// A clock that jumps a day ahead for a while (a bad NTP answer, a VM resumed on a host whose clock is wrong) and
    /// comes back: each day keeps its own spend, as the ledger, which dates each record by the same clock, does. The
    /// account used to reset the day at the jump (the day's 6 of 10 forgotten: 10 more allowed, 16 spent that day), and
    /// after it, kept counting today's spend as tomorrow's (which then started with it).
    /// </summary>
    [Fact]
    public void ClockJumpsADayAheadAndBack_EachDayKeepsItsOwnSpend()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        account.TryReserve("r1", null, 6m, Noon);
        account.Settle("r1", 6m, Noon);

        var ahead = Noon.AddDays(1);
        Assert.True(account.TryReserve("r2", null, 1m, ahead).Succeeded);
        account.Settle("r2", 1m, ahead);

        var back = Noon.AddMinutes(5);
        var refused = account.TryReserve("r3", null, 6m, back);
        Assert.False(refused.Succeeded, "the day had 4 left of its 10");
        Assert.Equal(4m, refused.Refusal!.Remaining);
        Assert.True(account.TryReserve("r4", null, 4m, back).Succeeded);
        account.Settle("r4", 4m, back);
        Assert.Equal(10m, Assert.Single(account.Remaining(back)).Settled);

        // The next day, when it really comes, has what was spent in it during the jump, and nothing of today's.
        var tomorrow = Noon.Date.AddDays(1);
        var status = Assert.Single(account.Remaining(new DateTimeOffset(tomorrow, TimeSpan.Zero)));
        Assert.Equal(1m, status.Settled);
        Assert.Equal(9m, status.Remaining);
    }

    /// <summary>
    /// The same for a month: a clock a month ahead for a while on the 30th, then right again. The month's budget was
    /// reset at the jump (twice its amount spendable in the month), and the next month started with the rest of this
    /// one's spend.
    /// </summary>
    [Fact]
    public void ClockJumpsAMonthAheadAndBack_TheMonthKeepsItsSpend_AndTheNextStartsWithItsOwn()
    {
        var account = new BudgetAccount("tenant-1", "EUR");
        var thirtieth = new DateTimeOffset(2026, 11, 30, 9, 0, 0, TimeSpan.Zero);
        account.SetLimit(BudgetLimit.ForTenant(BudgetPeriod.Month, 100m), thirtieth);
        account.TryReserve("r1", null, 90m, thirtieth);
        account.Settle("r1", 90m, thirtieth);

        account.TryReserve("r2", null, 5m, thirtieth.AddMonths(1));
        account.Settle("r2", 5m, thirtieth.AddMonths(1));

        var back = thirtieth.AddMinutes(1);
        Assert.False(account.TryReserve("r3", null, 50m, back).Succeeded);
        Assert.True(account.TryReserve("r4", null, 10m, back).Succeeded);
        account.Settle("r4", 10m, back);

        var december = Assert.Single(account.Remaining(new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero)));
        Assert.Equal(5m, december.Settled);
    }

    [Fact]
    public void SetLimit_ExistingLimit_ChangesAmountAndKeepsSpend()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        account.TryReserve("r1", null, 4m, Noon);
        account.Settle("r1", 4m, Noon);

        account.SetLimit(BudgetLimit.ForTenant(BudgetPeriod.Day, 5m), Noon);

        var status = Assert.Single(account.Remaining(Noon));
        Assert.Equal(4m, status.Settled);
        Assert.Equal(1m, status.Remaining);
    }

    [Fact]
    public void SetLimit_NewLimitMidPeriod_CountsSeededSpendAndOpenReservations()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 100m));
        account.TryReserve("r1", "k1", 3m, Noon);
        account.TryReserve("r2", "k2", 50m, Noon);

        account.SetLimit(BudgetLimit.ForKey("k1", BudgetPeriod.Day, 10m), Noon, spentThisPeriod: 4m);

        var key = account.Remaining(Noon).Single(s => s.Limit.KeyId == "k1");
        Assert.Equal(4m, key.Settled);
        Assert.Equal(3m, key.Reserved);
        Assert.False(account.TryReserve("r3", "k1", 4m, Noon).Succeeded);
        account.Settle("r1", 1m, Noon);
        Assert.Equal(5m, account.Remaining(Noon).Single(s => s.Limit.KeyId == "k1").Settled);
    }

    [Fact]
    public void RemoveLimit_OutstandingReservation_SettlesWithoutError()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m), BudgetLimit.ForKey("k1", BudgetPeriod.Day, 5m));
        account.TryReserve("r1", "k1", 5m, Noon);

        Assert.True(account.RemoveLimit("k1", BudgetPeriod.Day));
        var settlement = account.Settle("r1", 5m, Noon);

        Assert.False(settlement.ClosedPeriod);
        Assert.Equal(5m, Assert.Single(account.Remaining(Noon)).Settled);
    }

    [Fact]
    public void ReleaseExpired_OldReservations_AreReleasedAndLateSettleIsUnreserved()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        account.TryReserve("old", null, 6m, Noon);
        account.TryReserve("new", null, 4m, Noon.AddMinutes(9));

        var expired = account.ReleaseExpired(Noon.AddMinutes(10), TimeSpan.FromMinutes(10));

        Assert.Equal("old", Assert.Single(expired).ReservationId);
        Assert.Equal(4m, Assert.Single(account.Remaining(Noon)).Reserved);
        Assert.True(account.Settle("old", 1m, Noon.AddMinutes(11)).Unreserved);
    }

    /// <summary>A request still running (a long stream) keeps its reservation while its caller renews it.</summary>
    [Fact]
    public void ARenewedReservation_ExpiresALifetimeAfterItsLastRenewal_NotAfterItWasMade()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m));
        account.TryReserve("long", null, 6m, Noon);
        account.TryReserve("lost", null, 2m, Noon);

        Assert.Equal(1, account.Renew(["long", "unknown"], Noon.AddMinutes(8)));
        var expired = account.ReleaseExpired(Noon.AddMinutes(10), TimeSpan.FromMinutes(10));

        Assert.Equal("lost", Assert.Single(expired).ReservationId);
        Assert.Equal(6m, Assert.Single(account.Remaining(Noon)).Reserved);
        Assert.Empty(account.ReleaseExpired(Noon.AddMinutes(17), TimeSpan.FromMinutes(10)));
        Assert.Equal("long", Assert.Single(account.ReleaseExpired(Noon.AddMinutes(18), TimeSpan.FromMinutes(10))).ReservationId);
    }

    [Fact]
    public void Settle_AfterRetention_IdIsForgotten()
    {
        var account = new BudgetAccount("tenant-1", "EUR", TimeSpan.FromHours(1));
        account.TryReserve("r1", null, 1m, Noon);
        account.Settle("r1", 1m, Noon);

        Assert.False(account.Settle("r1", 1m, Noon.AddMinutes(59)).Unreserved);
        Assert.True(account.Settle("r1", 1m, Noon.AddHours(1)).Unreserved);
    }

    [Fact]
    public void Snapshot_RoundTripThroughJson_RestoresTheSameBehaviour()
    {
        var account = Account(BudgetLimit.ForTenant(BudgetPeriod.Day, 10m), BudgetLimit.ForKey("k1", BudgetPeriod.Month, 6m));
        account.TryReserve("r1", "k1", 4m, Noon);
        account.TryReserve("r2", null, 3m, Noon);
        account.Settle("r2", 2m, Noon);

        var json = JsonSerializer.Serialize(account.Snapshot());
        var restored = BudgetAccount.Restore(JsonSerializer.Deserialize<BudgetState>(json)!);

        Assert.Equal("tenant-1", restored.TenantId);
        Assert.Equal("EUR", restored.Currency);
        Assert.Equal(
            account.Remaining(Noon).Select(s => (s.Limit, s.Settled, s.Reserved)),
            restored.Remaining(Noon).Select(s => (s.Limit, s.Settled, s.Reserved)));
        Assert.Equal(2m, restored.Settle("r2", 9m, Noon).Actual);
        Assert.False(restored.TryReserve("r3", "k1", 2.5m, Noon).Succeeded);
        Assert.Equal(1.5m, restored.Settle("r1", 1.5m, Noon).Actual);
        Assert.Equal(6.5m, restored.Remaining(Noon).Single(s => s.Limit.KeyId is null).Remaining);
    }
}
