using CsCheck;
using Sovereign.Metering.Budgets;

namespace Sovereign.Metering.Tests.Budgets;

public sealed class BudgetAccountPropertyTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 31, 22, 0, 0, TimeSpan.Zero);
    private static readonly string?[] Keys = [null, "k1", "k2", "k3"];

    private static readonly Gen<Op> OpGen = Gen.Frequency(
        (6, Gen.Int[0, 3].Select(Gen.Int[0, 4000], (key, cents) => (Op)new ReserveOp(key, cents))),
        (3, Gen.Int[0, 1000].Select(Gen.Int[0, 100], (pick, percent) => (Op)new SettleOp(pick, percent))),
        (1, Gen.Int[0, 1000].Select(pick => (Op)new ReleaseOp(pick))),
        (1, Gen.Int[1, 180].Select(minutes => (Op)new WaitOp(minutes))));

    [Fact]
    public void Operations_AnyInterleaving_NeverOverspendAndMatchAModel()
    {
        var gen = Gen.Select(Gen.Int[100, 10_000], Gen.Int[100, 5_000], Gen.Int[100, 20_000], OpGen.Array[1, 120]);
        gen.Sample((tenantDayCents, keyDayCents, keyMonthCents, ops) =>
        {
            var limits = new[]
            {
                BudgetLimit.ForTenant(BudgetPeriod.Day, tenantDayCents / 100m),
                BudgetLimit.ForTenant(BudgetPeriod.Total, 2 * tenantDayCents / 100m),
                BudgetLimit.ForKey("k1", BudgetPeriod.Day, keyDayCents / 100m),
                BudgetLimit.ForKey("k2", BudgetPeriod.Month, keyMonthCents / 100m),
            };
            var account = new BudgetAccount("t", "EUR");
            foreach (var limit in limits)
            {
                account.SetLimit(limit, Start);
            }

            var model = new Model(limits);
            var now = Start;
            var next = 0;
            foreach (var op in ops)
            {
                switch (op)
                {
                    case ReserveOp reserve:
                        var keyId = Keys[reserve.Key];
                        var cost = reserve.Cents / 100m;
                        var expected = model.Fits(keyId, cost, now);
                        var result = account.TryReserve($"r{next++}", keyId, cost, now);
                        Assert.Equal(expected, result.Succeeded);
                        if (result.Succeeded)
                        {
                            model.Open.Add(new ModelReservation(result.Reservation.ReservationId, keyId, cost, now));
                        }

                        break;
                    case SettleOp settle when model.Open.Count > 0:
                        var toSettle = model.Open[settle.Pick % model.Open.Count];
                        var actual = decimal.Round(toSettle.Amount * settle.Percent / 100m, 2);
                        account.Settle(toSettle.Id, actual, now);
                        model.Open.Remove(toSettle);
                        model.Settled.Add((toSettle, actual));
                        break;
                    case ReleaseOp release when model.Open.Count > 0:
                        var toRelease = model.Open[release.Pick % model.Open.Count];
                        Assert.True(account.Release(toRelease.Id));
                        model.Open.Remove(toRelease);
                        break;
                    case WaitOp wait:
                        now = now.AddMinutes(wait.Minutes);
                        break;
                }

                // Every period of every limit (closed ones too) stays within its amount.
                foreach (var limit in limits)
                {
                    foreach (var spent in model.SpendByPeriod(limit))
                    {
                        Assert.True(spent <= limit.Amount, $"{limit} spent {spent}");
                    }
                }

                // And the account's view of the current periods is exactly the model's.
                foreach (var status in account.Remaining(now))
                {
                    Assert.Equal(model.SettledNow(status.Limit, now), status.Settled);
                    Assert.Equal(model.ReservedNow(status.Limit, now), status.Reserved);
                }
            }
        }, iter: 300);
    }

    [Fact]
    public void TryReserve_BudgetForExactlyNRequests_ExactlyNSucceed()
    {
        var gen = Gen.Select(Gen.Int[1, 30], Gen.Int[1, 10_000], Gen.Int[0, 20], Gen.Bool.Array[0, 200]);
        gen.Sample((n, cents, extra, settleBetween) =>
        {
            var cost = cents / 100m;
            var account = new BudgetAccount("t", "EUR");
            account.SetLimit(BudgetLimit.ForTenant(BudgetPeriod.Day, n * cost), Start);
            account.SetLimit(BudgetLimit.ForKey("k1", BudgetPeriod.Day, n * cost), Start);
            var open = new List<string>();
            var succeeded = 0;
            var attempts = n + extra + 1;
            for (var i = 0; i < attempts; i++)
            {
                var result = account.TryReserve($"r{i}", i % 2 == 0 ? "k1" : null, cost, Start);
                if (result.Succeeded)
                {
                    succeeded++;
                    open.Add(result.Reservation.ReservationId);
                }

                // Settling at the full reservation frees nothing, however the settles interleave.
                if (i < settleBetween.Length && settleBetween[i] && open.Count > 0)
                {
                    account.Settle(open[0], cost, Start);
                    open.RemoveAt(0);
                }
            }

            Assert.Equal(n, succeeded);
        }, iter: 400);
    }

    private abstract record Op;

    private sealed record ReserveOp(int Key, int Cents) : Op;

    private sealed record SettleOp(int Pick, int Percent) : Op;

    private sealed record ReleaseOp(int Pick) : Op;

    private sealed record WaitOp(int Minutes) : Op;

    private sealed record ModelReservation(string Id, string? KeyId, decimal Amount, DateTimeOffset At);

    private sealed class Model(BudgetLimit[] limits)
    {
        public List<ModelReservation> Open { get; } = [];

        public List<(ModelReservation Reservation, decimal Actual)> Settled { get; } = [];

        public bool Fits(string? keyId, decimal cost, DateTimeOffset now) => limits
            .Where(l => Applies(l, keyId))
            .All(l => cost <= l.Amount - SettledNow(l, now) - ReservedNow(l, now));

        public decimal SettledNow(BudgetLimit limit, DateTimeOffset now) => Settled
            .Where(s => Applies(limit, s.Reservation.KeyId) && SamePeriod(limit, s.Reservation.At, now))
            .Sum(s => s.Actual);

        public decimal ReservedNow(BudgetLimit limit, DateTimeOffset now) => Open
            .Where(r => Applies(limit, r.KeyId) && SamePeriod(limit, r.At, now))
            .Sum(r => r.Amount);

        public IEnumerable<decimal> SpendByPeriod(BudgetLimit limit) => Settled
            .Where(s => Applies(limit, s.Reservation.KeyId))
            .GroupBy(s => BudgetPeriods.StartOf(limit.Period, s.Reservation.At))
            .Select(g => g.Sum(s => s.Actual));

        private static bool Applies(BudgetLimit limit, string? keyId) => limit.KeyId is null || limit.KeyId == keyId;

        private static bool SamePeriod(BudgetLimit limit, DateTimeOffset at, DateTimeOffset now) =>
            BudgetPeriods.StartOf(limit.Period, at) == BudgetPeriods.StartOf(limit.Period, now);
    }
}
