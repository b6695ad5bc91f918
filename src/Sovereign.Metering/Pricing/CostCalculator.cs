namespace Sovereign.Metering.Pricing;

/// <summary>
/// Exact cost arithmetic. Rule: every component is computed in full <see cref="decimal"/> precision
/// (tokens * rate / 1,000,000 and seconds * rate), the components are summed, and only the sum is rounded, to
/// <see cref="ExactDecimals"/> places by <see cref="ExactCost(ModelPrice, long, long, decimal, long)"/>: what the
/// request really cost, which the ledger bills in whole millionths with a carry (<see cref="Ledger.CostCarry"/>), so a
/// tenant's requests are billed their exact sum. Rounding once at the end keeps a request's cost independent of how its
/// components are split. There is no "cost rounded to millionths alone": that rounding made every request under a
/// millionth free, and the product no longer used it.
/// </summary>
public static class CostCalculator
{
    /// <summary>Decimal places of every cost (micro-units of the currency).</summary>
    public const int Decimals = 6;

    /// <summary>
    /// Decimal places of a request's exact cost (1e-18 currency units): far below any price's effect, and what the
    /// ledger's carry of sub-millionth remainders counts in (a BIGINT of them holds a remainder many times over).
    /// </summary>
    public const int ExactDecimals = 18;

    /// <summary>
    /// The most one request may cost (9e9 units of its currency): the ledger's largest single amount. A request whose
    /// maximum cost is above it is refused before it runs, since its record could not be stored.
    /// </summary>
    public const decimal MaxRequestCost = Ledger.MicroUnits.MaxUnits;

    private const decimal Million = 1_000_000m;

    /// <summary>
    /// What a finished (or cancelled) request costs before any rounding to millionths, to <see cref="ExactDecimals"/>
    /// places (half to even); a rate that the price leaves unset is not charged, and <paramref name="cachedPromptTokens"/>
    /// of the prompt tokens (served from the prefix cache) are charged at the cached-input rate, the rest at the input
    /// rate. 11 tokens at 0.02 per million cost 0.00000022: the ledger bills it with a carry
    /// (<see cref="Ledger.CostCarry.Bill"/>), so many such requests are billed their sum.
    /// </summary>
    public static decimal ExactCost(ModelPrice price, long promptTokens, long completionTokens, decimal computeSeconds, long cachedPromptTokens = 0) =>
        Math.Round(Raw(price, promptTokens, completionTokens, computeSeconds, cachedPromptTokens), ExactDecimals, MidpointRounding.ToEven);

    private static decimal Raw(ModelPrice price, long promptTokens, long completionTokens, decimal computeSeconds, long cachedPromptTokens)
    {
        ArgumentNullException.ThrowIfNull(price);
        ArgumentOutOfRangeException.ThrowIfNegative(promptTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(completionTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(computeSeconds);
        ArgumentOutOfRangeException.ThrowIfNegative(cachedPromptTokens);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cachedPromptTokens, promptTokens);
        var raw = ((promptTokens - cachedPromptTokens) * (price.InputPerMillion ?? 0m) / Million)
            + (cachedPromptTokens * (price.EffectiveCachedInputPerMillion ?? 0m) / Million)
            + (completionTokens * (price.OutputPerMillion ?? 0m) / Million)
            + (computeSeconds * (price.PerComputeSecond ?? 0m));
        return raw;
    }

    /// <inheritdoc cref="ExactCost(ModelPrice, long, long, decimal, long)"/>
    public static decimal ExactCost(EffectivePrice price, long promptTokens, long completionTokens, decimal computeSeconds, long cachedPromptTokens = 0)
    {
        ArgumentNullException.ThrowIfNull(price);
        return ExactCost(price.Price, promptTokens, completionTokens, computeSeconds, cachedPromptTokens);
    }

    /// <summary>
    /// The most a request can cost (for budget reservation before it runs): the prompt plus <paramref name="maxTokens"/>
    /// completion tokens plus <paramref name="maxComputeSeconds"/>, every prompt token at the dearer of the input and
    /// cached-input rates (how many will be cached is known only once the request runs), rounded up to millionths:
    /// the ledger's carry bills a request at most its exact cost rounded up (<see cref="Ledger.CostCarry"/>), so
    /// <c>billed &lt;= MaxCost(...)</c> whenever the actual usage is within the bounds, and a budget is never overspent.
    /// </summary>
    /// <exception cref="ArgumentException">The price charges compute seconds and no bound was given.</exception>
    public static decimal MaxCost(ModelPrice price, long promptTokens, long maxTokens, decimal? maxComputeSeconds = null)
    {
        ArgumentNullException.ThrowIfNull(price);
        if (price.PerComputeSecond is > 0m && maxComputeSeconds is null)
        {
            throw new ArgumentException("this price charges compute seconds: pass maxComputeSeconds to bound the reservation", nameof(maxComputeSeconds));
        }

        var cached = price.EffectiveCachedInputPerMillion ?? 0m;
        var bound = cached > (price.InputPerMillion ?? 0m) ? promptTokens : 0;
        // Of the exact cost (rounding is monotonic): the carry bills at most that rounded up.
        return Math.Round(ExactCost(price, promptTokens, maxTokens, maxComputeSeconds ?? 0m, bound), Decimals, MidpointRounding.ToPositiveInfinity);
    }

    /// <inheritdoc cref="MaxCost(ModelPrice, long, long, decimal?)"/>
    public static decimal MaxCost(EffectivePrice price, long promptTokens, long maxTokens, decimal? maxComputeSeconds = null)
    {
        ArgumentNullException.ThrowIfNull(price);
        return MaxCost(price.Price, promptTokens, maxTokens, maxComputeSeconds);
    }
}
