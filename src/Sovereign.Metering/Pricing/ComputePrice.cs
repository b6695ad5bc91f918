namespace Sovereign.Metering.Pricing;

/// <summary>
/// A compute-second rate for where a request runs rather than which model it names: for a pool of nodes
/// (<c>th-h100</c>) or a device class (<c>h100</c>, <c>cpu</c>), optionally for one model only. It replaces the model
/// price's <see cref="ModelPrice.PerComputeSecond"/>; token rates always come from the model price.
/// Exactly one of <see cref="Pool"/> and <see cref="DeviceClass"/> is set.
/// </summary>
/// <remarks>
/// Precedence, most specific first (<see cref="PriceBook.TryPriceFor(string, string, Placement, DateTimeOffset, out EffectivePrice?)"/>):
/// model + pool, pool, model + device class, device class, then the model price's own compute rate. A pool is what an
/// operator sells (a region's rack of one hardware generation), so it is more specific than the hardware alone.
/// </remarks>
public sealed record ComputePrice
{
    /// <summary>The pool this rate applies to, or null for a device-class rate.</summary>
    public string? Pool { get; init; }

    /// <summary>The device class this rate applies to, or null for a pool rate.</summary>
    public string? DeviceClass { get; init; }

    /// <summary>Only requests for this model, or null for every model.</summary>
    public string? Model { get; init; }

    /// <summary>When this rate takes effect (inclusive), to the millisecond.</summary>
    public required DateTimeOffset EffectiveFrom { get; init; }

    /// <summary>Price per second of compute (the request's share of each batched decode step).</summary>
    public required decimal PerComputeSecond { get; init; }

    /// <summary>The scope in words, as versions and errors name it: <c>pool=th-h100</c>, <c>device_class=h100/model=m</c>.</summary>
    public string Scope => (Pool is not null ? "pool=" + Pool : "device_class=" + DeviceClass) + (Model is null ? string.Empty : "/model=" + Model);

    /// <summary>
    /// Whether this rate has <paramref name="other"/>'s scope as pricing matches scopes: pools and models as named,
    /// device classes in any case (a withdrawal of <c>H100</c> found nothing where pricing applied <c>h100</c>).
    /// </summary>
    public bool HasScopeOf(ComputePrice other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return string.Equals(Pool, other.Pool, StringComparison.Ordinal)
            && string.Equals(DeviceClass, other.DeviceClass, StringComparison.OrdinalIgnoreCase)
            && string.Equals(Model, other.Model, StringComparison.Ordinal);
    }
}

/// <summary>
/// Slots of a pool reserved for a plan's requests: while fewer than <see cref="Slots"/> of them run on a model of the
/// pool, the next one is admitted at once, whatever others are doing; above that they burst into unreserved capacity.
/// </summary>
/// <param name="Pool">The pool.</param>
/// <param name="Slots">Concurrent requests guaranteed, per model the pool serves (a slot is one sequence of one model).</param>
public sealed record PoolReservation(string Pool, int Slots);

/// <summary>Where a request runs, as far as prices care: its node's pool and device class.</summary>
/// <param name="Pool">The node's pool (from its operator-signed credential).</param>
/// <param name="DeviceClass">The node's device class (named by the operator or derived from its accelerators).</param>
public readonly record struct Placement(string Pool, string DeviceClass);
