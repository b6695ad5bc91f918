using System.Diagnostics.CodeAnalysis;

namespace Sovereign.Metering.Pricing;

/// <summary>The price in force for one plan and model at one time, with the version that usage records cite.</summary>
/// <param name="Plan">The plan (its currency, weight and priority).</param>
/// <param name="Price">The rates.</param>
/// <param name="Version">
/// Stable id of this price: <c>plan:model@yyyy-MM-ddTHH:mm:ss.fffZ</c> (its effective time); when a pool or device-class
/// rate replaced the compute rate, that rate's id follows after <c>;</c> (<c>plan:pool=th-h100@...</c>).
/// </param>
/// <param name="ComputeScope">The pool or device-class rate that set the compute rate (<see cref="ComputePrice.Scope"/>), or null.</param>
public sealed record EffectivePrice(Plan Plan, ModelPrice Price, string Version, string? ComputeScope = null)
{
    /// <summary>The plan's ISO 4217 currency.</summary>
    public string Currency => Plan.Currency;
}

/// <summary>
/// An immutable, validated set of plans and their price histories. A price change is a new <see cref="ModelPrice"/>
/// with a later effective time, so <see cref="PriceFor"/> for a past instant always gives the price that applied then.
/// Build a changed book with <see cref="WithPlan"/> or <see cref="WithPrice"/>, which refuse retroactive changes.
/// </summary>
public sealed class PriceBook
{
    private readonly Dictionary<string, PlanIndex> _plans;

    /// <summary>Builds a book; throws <see cref="PriceValidationException"/> when <see cref="PriceValidator.Validate"/> finds errors.</summary>
    public PriceBook(IEnumerable<Plan> plans)
    {
        ArgumentNullException.ThrowIfNull(plans);
        var list = plans.ToList();
        var errors = PriceValidator.Validate(list);
        if (errors.Count > 0)
        {
            throw new PriceValidationException(errors);
        }

        Plans = list;
        _plans = new Dictionary<string, PlanIndex>(StringComparer.OrdinalIgnoreCase);
        foreach (var plan in list)
        {
            // Versions are built once here so the per-request lookup allocates nothing.
            var models = plan.Prices
                .GroupBy(p => p.Model, StringComparer.Ordinal)
                .ToDictionary(
                    g => g.Key,
                    g => g.OrderBy(p => p.EffectiveFrom).Select(p => new EffectivePrice(plan, p, VersionOf(plan.Name, p))).ToArray(),
                    StringComparer.Ordinal);
            var compute = plan.ComputePrices
                .GroupBy(p => new ComputeKey(p.Pool is not null, p.Pool ?? p.DeviceClass ?? string.Empty, p.Model), ComputeKeyComparer.Instance)
                .ToDictionary(g => g.Key, g => g.OrderBy(p => p.EffectiveFrom).ToArray(), ComputeKeyComparer.Instance);
            _plans.Add(plan.Name, new PlanIndex(plan, models, compute));
        }
    }

    /// <summary>A book with no plans.</summary>
    public static PriceBook Empty { get; } = new([]);

    /// <summary>
    /// The stored version this book was read or saved as: one more with every saved change (0 before the first), so
    /// every process of a cluster can tell whether its book is the one in force.
    /// </summary>
    public long Version { get; init; }

    /// <summary>The plans, in the order given.</summary>
    public IReadOnlyList<Plan> Plans { get; }

    /// <summary>The plan with this name (case-insensitive), or null.</summary>
    public Plan? FindPlan(string name) => _plans.TryGetValue(name, out var index) ? index.Plan : null;

    /// <summary>The price in force for <paramref name="model"/> in <paramref name="plan"/> at <paramref name="at"/> (use the request's arrival time).</summary>
    /// <exception cref="KeyNotFoundException">Unknown plan, unpriced model, or no price in force yet at that time.</exception>
    public EffectivePrice PriceFor(string plan, string model, DateTimeOffset at) =>
        TryPriceFor(plan, model, at, out var price)
            ? price
            : throw new KeyNotFoundException($"no price for model '{model}' in plan '{plan}' at {PriceValidator.Format(at)}");

    /// <summary>Like <see cref="PriceFor"/>, returning false instead of throwing.</summary>
    public bool TryPriceFor(string plan, string model, DateTimeOffset at, [NotNullWhen(true)] out EffectivePrice? price)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(model);
        price = null;
        if (!_plans.TryGetValue(plan, out var index) || !index.Models.TryGetValue(model, out var history))
        {
            return false;
        }

        // Last price whose effective time is <= at (history is sorted ascending).
        int lo = 0, hi = history.Length - 1, found = -1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (history[mid].Price.EffectiveFrom <= at)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        if (found < 0)
        {
            return false;
        }

        price = history[found];
        return true;
    }

    /// <summary>
    /// The price in force for <paramref name="model"/> in <paramref name="plan"/> at <paramref name="at"/> on a node at
    /// <paramref name="placement"/>: token rates from the model's price, the compute rate from the most specific rate in
    /// force, in this order: model + pool, pool, model + device class, device class, the model price's own. A plan
    /// that prices only compute for a pool still prices the model there (its token rates unset).
    /// </summary>
    public bool TryPriceFor(string plan, string model, Placement placement, DateTimeOffset at, [NotNullWhen(true)] out EffectivePrice? price)
    {
        var priced = TryPriceFor(plan, model, at, out price);
        if (!_plans.TryGetValue(plan, out var index) || index.Compute.Count == 0)
        {
            return priced;
        }

        var rate = InForce(index, new ComputeKey(true, placement.Pool, model), at)
            ?? InForce(index, new ComputeKey(true, placement.Pool, null), at)
            ?? InForce(index, new ComputeKey(false, placement.DeviceClass, model), at)
            ?? InForce(index, new ComputeKey(false, placement.DeviceClass, null), at);
        if (rate is null)
        {
            return priced;
        }

        var version = $"{index.Plan.Name}:{rate.Scope}@{PriceValidator.Format(rate.EffectiveFrom)}";
        price = price is null
            ? new EffectivePrice(index.Plan, new ModelPrice { Model = model, EffectiveFrom = rate.EffectiveFrom, PerComputeSecond = rate.PerComputeSecond }, version, rate.Scope)
            : new EffectivePrice(index.Plan, price.Price with { PerComputeSecond = rate.PerComputeSecond }, price.Version + ";" + version, rate.Scope);
        return true;
    }

    private static ComputePrice? InForce(PlanIndex index, ComputeKey key, DateTimeOffset at)
    {
        if (!index.Compute.TryGetValue(key, out var history))
        {
            return null;
        }

        ComputePrice? found = null;
        foreach (var rate in history)
        {
            if (rate.EffectiveFrom > at)
            {
                break;
            }

            found = rate;
        }

        return found;
    }

    /// <summary>A copy with <paramref name="plan"/> added or replaced (by name), checked by <see cref="PriceValidator.ValidateChange"/> at <paramref name="now"/>.</summary>
    public PriceBook WithPlan(Plan plan, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var plans = Plans.Where(p => !string.Equals(p.Name, plan.Name, StringComparison.OrdinalIgnoreCase)).Append(plan).ToList();
        return Changed(plans, now);
    }

    /// <summary>A copy with one more compute rate for an existing plan, checked at <paramref name="now"/>.</summary>
    public PriceBook WithComputePrice(string plan, ComputePrice price, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(price);
        var existing = FindPlan(plan) ?? throw new KeyNotFoundException($"unknown plan '{plan}'");
        return WithPlan(existing with { ComputePrices = [.. existing.ComputePrices, price] }, now);
    }

    /// <summary>A copy with one more price for an existing plan (a price change from <see cref="ModelPrice.EffectiveFrom"/> on), checked at <paramref name="now"/>.</summary>
    public PriceBook WithPrice(string plan, ModelPrice price, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(price);
        var existing = FindPlan(plan) ?? throw new KeyNotFoundException($"unknown plan '{plan}'");
        return WithPlan(existing with { Prices = [.. existing.Prices, price] }, now);
    }

    internal static string VersionOf(string plan, ModelPrice price) => $"{plan}:{price.Model}@{PriceValidator.Format(price.EffectiveFrom)}";

    private PriceBook Changed(List<Plan> plans, DateTimeOffset now)
    {
        var errors = PriceValidator.ValidateChange(this, plans, now);
        return errors.Count > 0 ? throw new PriceValidationException(errors) : new PriceBook(plans);
    }

    /// <summary>A compute rate's scope: a pool (<paramref name="IsPool"/>) or a device class, and the model or null for all.</summary>
    private readonly record struct ComputeKey(bool IsPool, string Name, string? Model);

    /// <summary>
    /// Pools match as named; device classes in any case: a node's derived class is lower case (<c>h100</c>, from its
    /// GPU's name), while an operator may write <c>H100</c> in a price or a join token, and such a rate never applied
    /// (the work was billed at the model's compute rate, or nothing).
    /// </summary>
    private sealed class ComputeKeyComparer : IEqualityComparer<ComputeKey>
    {
        public static readonly ComputeKeyComparer Instance = new();

        public bool Equals(ComputeKey x, ComputeKey y) =>
            x.IsPool == y.IsPool && string.Equals(x.Model, y.Model, StringComparison.Ordinal)
            && string.Equals(x.Name, y.Name, x.IsPool ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase);

        public int GetHashCode(ComputeKey key) => HashCode.Combine(key.IsPool, key.Model is null ? 0 : StringComparer.Ordinal.GetHashCode(key.Model),
            key.IsPool ? StringComparer.Ordinal.GetHashCode(key.Name) : StringComparer.OrdinalIgnoreCase.GetHashCode(key.Name));
    }

    private sealed record PlanIndex(Plan Plan, Dictionary<string, EffectivePrice[]> Models, Dictionary<ComputeKey, ComputePrice[]> Compute);
}
