using Sovereign.Metering.Budgets;

namespace Sovereign.Metering.Tests.Budgets;

/// <summary>
/// <see cref="BudgetAccount.TryCarve"/>: a gateway's budget lease is one reservation; each request admitted from it
/// becomes a reservation of its own, carved out of the lease, and no budget's totals move until it settles.
/// </summary>
public sealed class BudgetAccountCarveTests
{
    private static readonly DateTimeOffset Noon = new(2026, 3, 14, 12, 0, 0, TimeSpan.Zero);

    private static BudgetAccount Account()
    {
        var account = new BudgetAccount("tenant-1", "EUR");
        account.SetLimit(BudgetLimit.ForTenant(BudgetPeriod.Day, 100m), Noon);
        return account;
    }

    [Fact]
    public void TryCarve_MovesMoneyFromTheLease_IntoTheRequestsOwnReservation_TotalsUnchanged()
    {
        var account = Account();
        Assert.True(account.TryReserve("lease/1", "key-1", 30m, Noon).Succeeded);

        Assert.True(account.TryCarve("lease/1", "req-1", 12m, Noon.AddSeconds(1)));

        Assert.Equal(18m, account.FindReservation("lease/1")!.Amount);
        var carved = account.FindReservation("req-1")!;
        Assert.Equal((12m, "key-1", Noon.AddSeconds(1)), (carved.Amount, carved.KeyId, carved.ReservedAt));
        var status = Assert.Single(account.Remaining(Noon));
        Assert.Equal((30m, 0m, 70m), (status.Reserved, status.Settled, status.Remaining));

        // The request settles as any other; the lease given back releases only what it still holds.
        account.Settle("req-1", 5m, Noon.AddSeconds(2));
        Assert.True(account.Release("lease/1"));
        status = Assert.Single(account.Remaining(Noon));
        Assert.Equal((0m, 5m, 95m), (status.Reserved, status.Settled, status.Remaining));
    }

    [Fact]
    public void TryCarve_MoreThanTheLeaseHolds_OrFromNoLease_OrAnIdAlreadyUsed_ChangesNothing()
    {
        var account = Account();
        Assert.True(account.TryReserve("lease/1", null, 10m, Noon).Succeeded);
        Assert.True(account.TryReserve("req-taken", null, 1m, Noon).Succeeded);

        Assert.False(account.TryCarve("lease/1", "req-1", 10.000001m, Noon));
        Assert.False(account.TryCarve("lease/gone", "req-1", 1m, Noon));
        Assert.False(account.TryCarve("lease/1", "req-taken", 1m, Noon));
        account.Settle("req-done", 0m, Noon);
        Assert.False(account.TryCarve("lease/1", "req-done", 1m, Noon));

        Assert.Equal(10m, account.FindReservation("lease/1")!.Amount);
        Assert.Null(account.FindReservation("req-1"));
        Assert.Equal(11m, Assert.Single(account.Remaining(Noon)).Reserved);
    }
}
