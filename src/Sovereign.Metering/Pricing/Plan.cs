namespace Sovereign.Metering.Pricing;

/// <summary>
/// The scheduler's class for a plan's requests. Same names and values as the fair queue's own enum
/// (<c>Sovereign.Inference.Scheduling.PriorityClass</c>): map with <c>(PriorityClass)(int)plan.Priority</c>.
/// </summary>
public enum PriorityClass
{
    /// <summary>Requests a person is waiting for (the default).</summary>
    Interactive = 0,

    /// <summary>Background work, scheduled only when no interactive work waits.</summary>
    Batch = 1,
}

/// <summary>
/// A named plan: its currency, its scheduling parameters and its price history per model. A tenant is on one plan.
/// </summary>
public sealed record Plan
{
    /// <summary>Unique name (case-insensitive), letters, digits, '.', '_' and '-' only, at most 64 characters.</summary>
    public required string Name { get; init; }

    /// <summary>ISO 4217 code (upper case) every price in this plan is in.</summary>
    public required string Currency { get; init; }

    /// <summary>Largest weight (the fair queue's limit).</summary>
    public const int MaxWeight = 1_000_000;

    /// <summary>Fair-share weight (1 to <see cref="MaxWeight"/>): weight 2 gets twice the share of weight 1.</summary>
    public int Weight { get; init; } = 1;

    /// <summary>The scheduler's class for this plan's requests.</summary>
    public PriorityClass Priority { get; init; } = PriorityClass.Interactive;

    /// <summary>Every price this plan has had or will have, any order (each model's history by effective time).</summary>
    public IReadOnlyList<ModelPrice> Prices { get; init; } = [];

    /// <summary>Compute-second rates per pool or device class (each scope's history by effective time), any order.</summary>
    public IReadOnlyList<ComputePrice> ComputePrices { get; init; } = [];

    /// <summary>Slots reserved for this plan's requests, at most one entry per pool.</summary>
    public IReadOnlyList<PoolReservation> Reservations { get; init; } = [];

    /// <summary>The slots this plan reserves in <paramref name="pool"/> (0 when none).</summary>
    public int ReservedSlotsIn(string pool)
    {
        foreach (var reservation in Reservations)
        {
            if (string.Equals(reservation.Pool, pool, StringComparison.Ordinal))
            {
                return reservation.Slots;
            }
        }

        return 0;
    }
}
