namespace Sovereign.Cluster.Grains;

/// <summary>How the tenant grain treats money that is held but never settled (bound from <c>Sovereign:Metering</c>).</summary>
public sealed class TenantMoneyOptions
{
    /// <summary>
    /// How long a budget reservation may stay unsettled before a grain timer releases it and logs a money
    /// correction (its caller crashed or lost the settle). Longer than any request may run: a request settled
    /// after this is still charged in full, as an unreserved settlement.
    /// </summary>
    public TimeSpan ReservationLifetime { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>How often the grain looks for expired reservations while it holds any: a quarter of the lifetime, between 1 s and 1 min.</summary>
    internal TimeSpan ExpiryCheckInterval =>
        TimeSpan.FromTicks(Math.Clamp(ReservationLifetime.Ticks / 4, TimeSpan.TicksPerSecond, TimeSpan.TicksPerMinute));
}
