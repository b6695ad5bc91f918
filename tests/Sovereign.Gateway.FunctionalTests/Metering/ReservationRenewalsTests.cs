using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Gateway.Metering;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// A gateway keeps the budget reservations of its long-running requests alive (a stream slower than the reservation
/// lifetime used to lose its reservation while it still spent), one grain call per tenant, and stops once a request's
/// books close.
/// </summary>
public sealed class ReservationRenewalsTests
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromMinutes(30);

    /// <summary>A clock the test sets; its timers never fire on their own (the test calls the renewal itself).</summary>
    private sealed class SetClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) => new Idle();

        private sealed class Idle : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }

    [Fact]
    public async Task RequestsRunningAThirdOfTheLifetime_AreRenewed_PerTenant_AndEndedOnesNever()
    {
        var clock = new SetClock();
        var calls = new List<(string Tenant, string[] Ids)>();
        using var renewals = new ReservationRenewals((tenant, ids) =>
        {
            calls.Add((tenant, [.. ids.Order(StringComparer.Ordinal)]));
            return Task.FromResult(ids.Count);
        }, Lifetime, clock, NullLogger<ReservationRenewals>.Instance);

        var a1 = renewals.Hold("tenant-a", "req-a1");
        using var a2 = renewals.Hold("tenant-a", "req-a2");
        var b1 = renewals.Hold("tenant-b", "req-b1");
        clock.Now += TimeSpan.FromMinutes(5);
        using var late = renewals.Hold("tenant-a", "req-a3");

        // Before a third of the lifetime nothing is due.
        await renewals.RenewDueAsync();
        Assert.Empty(calls);

        // b1 ends; at 10 minutes a1 and a2 are due (one call for tenant a), a3 (5 minutes old) is not.
        b1.Dispose();
        clock.Now += TimeSpan.FromMinutes(5);
        await renewals.RenewDueAsync();
        Assert.Equal([("tenant-a", new[] { "req-a1", "req-a2" })], calls.Select(c => (c.Tenant, c.Ids)));

        // a1 ends; at 15 minutes only a3 is due, and 10 minutes after their renewal a2 and a3 both are.
        calls.Clear();
        a1.Dispose();
        clock.Now += TimeSpan.FromMinutes(5);
        await renewals.RenewDueAsync();
        Assert.Equal([("tenant-a", new[] { "req-a3" })], calls.Select(c => (c.Tenant, c.Ids)));
        calls.Clear();
        clock.Now += TimeSpan.FromMinutes(10);
        await renewals.RenewDueAsync();
        Assert.Equal([("tenant-a", new[] { "req-a2", "req-a3" })], calls.Select(c => (c.Tenant, c.Ids)));
        Assert.Equal(2, renewals.Count);
    }

    [Fact]
    public async Task ARenewalThatFails_IsTriedAgainAtTheNextLook()
    {
        var clock = new SetClock();
        var attempts = 0;
        using var renewals = new ReservationRenewals((_, ids) =>
            ++attempts == 1 ? throw new TimeoutException("the grain did not answer") : Task.FromResult(ids.Count),
            Lifetime, clock, NullLogger<ReservationRenewals>.Instance);
        using var held = renewals.Hold("tenant-a", "req-1");

        clock.Now += TimeSpan.FromMinutes(10);
        await renewals.RenewDueAsync();
        clock.Now += TimeSpan.FromMinutes(1);
        await renewals.RenewDueAsync();
        await renewals.RenewDueAsync();

        // Failed, retried once it was still due, then renewed: the third look finds nothing due.
        Assert.Equal(2, attempts);
    }

    /// <summary>
    /// A gateway whose clock steps back (an NTP correction) keeps renewing its running requests. Each renewal's time
    /// was in the future for as long as the clock had gone back, so nothing was due until it caught up: a step back of
    /// an hour stopped renewals for an hour, and the tenant's grain (on a member whose clock was right) released the
    /// reservation of a stream still spending after its 30 minutes.
    /// </summary>
    [Fact]
    public async Task ClockStepsBackAnHour_RunningRequestsAreStillRenewed()
    {
        var clock = new SetClock();
        var renewed = new List<string>();
        using var renewals = new ReservationRenewals((_, ids) =>
        {
            renewed.AddRange(ids);
            return Task.FromResult(ids.Count);
        }, Lifetime, clock, NullLogger<ReservationRenewals>.Instance);
        using var held = renewals.Hold("tenant-a", "req-1");

        clock.Now += TimeSpan.FromMinutes(5);
        clock.Now -= TimeSpan.FromHours(1);
        await renewals.RenewDueAsync();
        Assert.Equal(["req-1"], renewed);

        // Renewed on the clock as it reads now: due again a third of the lifetime later, not before.
        renewed.Clear();
        clock.Now += TimeSpan.FromMinutes(9);
        await renewals.RenewDueAsync();
        Assert.Empty(renewed);
        clock.Now += TimeSpan.FromMinutes(1);
        await renewals.RenewDueAsync();
        Assert.Equal(["req-1"], renewed);
    }
}
