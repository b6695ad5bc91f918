namespace Sovereign.Metering.Pricing;

/// <summary>
/// The price of one model in one plan from <see cref="EffectiveFrom"/> until the next price for the same model takes
/// over. Any subset of the three rates may be set, but at least one (a rate of zero is a free component, a missing
/// rate is not charged). Rates are exact decimals in the plan's currency.
/// </summary>
public sealed record ModelPrice
{
    /// <summary>The model id as clients name it in requests.</summary>
    public required string Model { get; init; }

    /// <summary>When this price takes effect (inclusive). Stored with millisecond precision.</summary>
    public required DateTimeOffset EffectiveFrom { get; init; }

    /// <summary>Price per 1,000,000 prompt (input) tokens, or null when input tokens are not charged.</summary>
    public decimal? InputPerMillion { get; init; }

    /// <summary>
    /// Price per 1,000,000 prompt tokens served from the prefix cache (their KV cells were reused, not computed), or
    /// null to charge them as <see cref="InputPerMillion"/>: books written before cached pricing keep their meaning.
    /// </summary>
    public decimal? CachedInputPerMillion { get; init; }

    /// <summary>The rate cached prompt tokens are charged at: <see cref="CachedInputPerMillion"/>, else the input rate.</summary>
    public decimal? EffectiveCachedInputPerMillion => CachedInputPerMillion ?? InputPerMillion;

    /// <summary>Price per 1,000,000 completion (output) tokens, or null when output tokens are not charged.</summary>
    public decimal? OutputPerMillion { get; init; }

    /// <summary>Price per second of GPU compute (the request's share of each batched decode step), or null.</summary>
    public decimal? PerComputeSecond { get; init; }
}
