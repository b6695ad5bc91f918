using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Sovereign.Metering.Pricing;

/// <summary>One problem in a price book: which plan or price, which field (snake_case, as the admin API names it), why.</summary>
/// <param name="Target">e.g. <c>plan 'pro'</c> or <c>plan 'pro' price 'llama-3-8b' from 2025-01-01T00:00:00.000Z</c>.</param>
/// <param name="Field">e.g. <c>input_per_million</c>, <c>currency</c>, <c>weight</c>, <c>effective_from</c>.</param>
/// <param name="Message">A sentence for the operator.</param>
public sealed record PriceValidationError(string Target, string Field, string Message)
{
    /// <inheritdoc />
    public override string ToString() => $"{Target}: {Field}: {Message}";
}

/// <summary>Thrown when an invalid price book would be built or saved; <see cref="Errors"/> names every problem.</summary>
public sealed class PriceValidationException : Exception
{
    /// <summary>Creates the exception from the validator's errors.</summary>
    public PriceValidationException(IReadOnlyList<PriceValidationError> errors)
        : base("invalid price book: " + string.Join("; ", errors))
    {
        Errors = errors;
    }

    /// <summary>Every problem found (at least one).</summary>
    public IReadOnlyList<PriceValidationError> Errors { get; }
}

/// <summary>
/// Checks plans and prices before they are used or saved. <see cref="Validate"/> checks a book on its own;
/// <see cref="ValidateChange"/> also checks that a change to a published book is never retroactive.
/// </summary>
public static class PriceValidator
{
    /// <summary>Largest accepted rate: keeps every cost computation far from decimal overflow.</summary>
    public const decimal MaxRate = 1_000_000_000_000m;

    private const int MaxNameLength = 64;

    /// <summary>Checks plans on their own: names, currencies, weights, priorities and every price.</summary>
    public static IReadOnlyList<PriceValidationError> Validate(IEnumerable<Plan> plans)
    {
        ArgumentNullException.ThrowIfNull(plans);
        var errors = new List<PriceValidationError>();
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var index = 0;
        foreach (var plan in plans)
        {
            if (plan is null)
            {
                errors.Add(new($"plans[{index}]", "plan", "is null"));
                index++;
                continue;
            }

            var target = PlanTarget(plan.Name ?? $"#{index}");
            if (!IsValidName(plan.Name))
            {
                errors.Add(new(target, "name", $"is required: 1 to {MaxNameLength} characters, letters, digits, '.', '_' or '-'"));
            }
            else if (!names.Add(plan.Name))
            {
                errors.Add(new(target, "name", "duplicate plan name (names are case-insensitive)"));
            }

            if (!Iso4217.IsKnown(plan.Currency))
            {
                var hint = plan.Currency is not null && Iso4217.IsKnown(plan.Currency.ToUpperInvariant()) ? $" (write '{plan.Currency.ToUpperInvariant()}')" : string.Empty;
                errors.Add(new(target, "currency", $"unknown ISO 4217 currency '{plan.Currency}'{hint}"));
            }

            if (plan.Weight is < 1 or > Plan.MaxWeight)
            {
                errors.Add(new(target, "weight", $"must be 1 to {Plan.MaxWeight}, was {plan.Weight}"));
            }

            if (!Enum.IsDefined(plan.Priority))
            {
                errors.Add(new(target, "priority", $"unknown priority class {(int)plan.Priority}"));
            }

            if (plan.Prices is null)
            {
                errors.Add(new(target, "prices", "is required (may be empty)"));
            }
            else
            {
                ValidatePrices(plan, target, errors);
            }

            if (plan.ComputePrices is null)
            {
                errors.Add(new(target, "compute_prices", "is required (may be empty)"));
            }
            else
            {
                ValidateComputePrices(plan, target, errors);
            }

            if (plan.Reservations is null)
            {
                errors.Add(new(target, "reservations", "is required (may be empty)"));
            }
            else
            {
                ValidateReservations(plan, target, errors);
            }

            index++;
        }

        return errors;
    }

    /// <summary>
    /// Checks a proposed book against the published one at <paramref name="now"/>: every published price already in
    /// force stays exactly as it was (history is immutable: invoices and ledger rows point at it), every new or changed
    /// price takes effect at or after <paramref name="now"/>, and a plan with prices in force keeps its currency.
    /// Scheduled (future) prices may be changed or withdrawn. Includes <see cref="Validate"/>.
    /// </summary>
    public static IReadOnlyList<PriceValidationError> ValidateChange(PriceBook published, IEnumerable<Plan> proposed, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(published);
        ArgumentNullException.ThrowIfNull(proposed);
        var proposedPlans = proposed.ToList();
        var errors = new List<PriceValidationError>(Validate(proposedPlans));
        if (errors.Count > 0)
        {
            return errors;
        }

        var proposedByName = proposedPlans.ToDictionary(p => p.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var old in published.Plans)
        {
            proposedByName.TryGetValue(old.Name, out var next);
            var inForce = old.Prices.Where(p => p.EffectiveFrom <= now).ToList();
            if (next is not null && inForce.Count > 0 && !string.Equals(old.Currency, next.Currency, StringComparison.Ordinal))
            {
                errors.Add(new(PlanTarget(old.Name), "currency", $"cannot change from {old.Currency} to {next.Currency}: the plan has prices in force"));
            }

            foreach (var price in inForce)
            {
                var kept = next?.Prices.FirstOrDefault(p => SameSlot(p, price));
                if (kept is null)
                {
                    errors.Add(new(PriceTarget(old.Name, price), "effective_from", "a published price in force cannot be removed; add a new price with a future effective_from"));
                }
                else
                {
                    AddIfChanged(errors, old.Name, price, "input_per_million", price.InputPerMillion, kept.InputPerMillion);
                    AddIfChanged(errors, old.Name, price, "cached_input_per_million", price.CachedInputPerMillion, kept.CachedInputPerMillion);
                    AddIfChanged(errors, old.Name, price, "output_per_million", price.OutputPerMillion, kept.OutputPerMillion);
                    AddIfChanged(errors, old.Name, price, "per_compute_second", price.PerComputeSecond, kept.PerComputeSecond);
                }
            }
        }

        foreach (var plan in proposedPlans)
        {
            var old = published.FindPlan(plan.Name);
            foreach (var price in plan.Prices)
            {
                // A slot already published and in force was checked above (its rates must be unchanged).
                var existing = old?.Prices.FirstOrDefault(p => SameSlot(p, price));
                if (existing is null && price.EffectiveFrom < now)
                {
                    errors.Add(new(PriceTarget(plan.Name, price), "effective_from", $"is in the past (now {Format(now)}): a price takes effect at a stated time, never retroactively"));
                }
            }

            foreach (var rate in plan.ComputePrices)
            {
                var existing = old?.ComputePrices.FirstOrDefault(p => SameSlot(p, rate));
                if (existing is null && rate.EffectiveFrom < now)
                {
                    errors.Add(new(ComputeTarget(plan.Name, rate), "effective_from", $"is in the past (now {Format(now)}): a price takes effect at a stated time, never retroactively"));
                }

                // Validate compares scopes as written, so a class stored as H100 (before classes were lower case) and a
                // new h100 from the same instant were two rates for one class. Checked for new rates only: a stored
                // pair still loads.
                if (existing is null && plan.ComputePrices.Any(p => !ReferenceEquals(p, rate) && p.EffectiveFrom == rate.EffectiveFrom && p.HasScopeOf(rate)))
                {
                    errors.Add(new(ComputeTarget(plan.Name, rate), "effective_from", "duplicate: another compute price for this scope (a device class in any case) takes effect at the same time"));
                }
            }
        }

        // Compute rates in force are history too: ledger rows cite them.
        foreach (var old in published.Plans)
        {
            proposedByName.TryGetValue(old.Name, out var next);
            foreach (var rate in old.ComputePrices.Where(p => p.EffectiveFrom <= now))
            {
                var kept = next?.ComputePrices.FirstOrDefault(p => SameSlot(p, rate));
                if (kept is null)
                {
                    errors.Add(new(ComputeTarget(old.Name, rate), "effective_from", "a published price in force cannot be removed; add a new price with a future effective_from"));
                }
                else if (kept.PerComputeSecond != rate.PerComputeSecond)
                {
                    errors.Add(new(ComputeTarget(old.Name, rate), "per_compute_second", "a published price in force cannot be changed; add a new price with a future effective_from"));
                }
            }
        }

        return errors;
    }

    internal static string PlanTarget(string plan) => $"plan '{plan}'";

    internal static string PriceTarget(string plan, ModelPrice price) => $"plan '{plan}' price '{price.Model}' from {Format(price.EffectiveFrom)}";

    internal static string ComputeTarget(string plan, ComputePrice price) => $"plan '{plan}' compute price '{price.Scope}' from {Format(price.EffectiveFrom)}";

    /// <summary>Largest number of slots one plan may reserve in one pool.</summary>
    public const int MaxReservedSlots = 100_000;

    /// <summary>
    /// Whether <paramref name="name"/> is a valid pool or device-class name: 1 to 64 ASCII letters, digits, '.', '_' or
    /// '-' (every pool a join token accepts). Names compare case-sensitively, as credentials carry them.
    /// </summary>
    public static bool IsValidScopeName([NotNullWhen(true)] string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= MaxNameLength && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    internal static string Format(DateTimeOffset time) => time.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static void ValidatePrices(Plan plan, string planTarget, List<PriceValidationError> errors)
    {
        var slots = new HashSet<(string Model, long From)>();
        for (var i = 0; i < plan.Prices.Count; i++)
        {
            var price = plan.Prices[i];
            if (price is null)
            {
                errors.Add(new(planTarget, "prices", $"price #{i} is null"));
                continue;
            }

            var target = PriceTarget(plan.Name ?? "?", price);
            if (string.IsNullOrWhiteSpace(price.Model))
            {
                errors.Add(new(target, "model", "is required"));
            }

            if (price.InputPerMillion is null && price.OutputPerMillion is null && price.PerComputeSecond is null)
            {
                errors.Add(new(target, "rates", "set at least one of input_per_million, output_per_million, per_compute_second"));
            }

            if (price.CachedInputPerMillion is not null && price.InputPerMillion is null)
            {
                errors.Add(new(target, "cached_input_per_million", "needs input_per_million: cached prompt tokens are a discount on input tokens"));
            }

            CheckRate(errors, target, "input_per_million", price.InputPerMillion);
            CheckRate(errors, target, "cached_input_per_million", price.CachedInputPerMillion);
            CheckRate(errors, target, "output_per_million", price.OutputPerMillion);
            CheckRate(errors, target, "per_compute_second", price.PerComputeSecond);

            var fromMs = price.EffectiveFrom.ToUnixTimeMilliseconds();
            if (DateTimeOffset.FromUnixTimeMilliseconds(fromMs) != price.EffectiveFrom)
            {
                errors.Add(new(target, "effective_from", "must be a whole millisecond (that is what is stored)"));
            }

            if (price.Model is not null && !slots.Add((price.Model, fromMs)))
            {
                errors.Add(new(target, "effective_from", "duplicate: another price for this model takes effect at the same time"));
            }
        }
    }

    private static void ValidateComputePrices(Plan plan, string planTarget, List<PriceValidationError> errors)
    {
        var slots = new HashSet<(string Scope, long From)>();
        for (var i = 0; i < plan.ComputePrices.Count; i++)
        {
            var price = plan.ComputePrices[i];
            if (price is null)
            {
                errors.Add(new(planTarget, "compute_prices", $"compute price #{i} is null"));
                continue;
            }

            var target = ComputeTarget(plan.Name ?? "?", price);
            if ((price.Pool is null) == (price.DeviceClass is null))
            {
                errors.Add(new(target, "pool", "set exactly one of pool and device_class"));
            }
            else if (price.Pool is not null && !IsValidScopeName(price.Pool))
            {
                errors.Add(new(target, "pool", $"'{price.Pool}' is not a pool name: 1 to {MaxNameLength} letters, digits, '.', '_' or '-'"));
            }
            else if (price.DeviceClass is not null && !IsValidScopeName(price.DeviceClass))
            {
                errors.Add(new(target, "device_class", $"'{price.DeviceClass}' is not a device class: 1 to {MaxNameLength} letters, digits, '.', '_' or '-'"));
            }

            if (price.Model is not null && string.IsNullOrWhiteSpace(price.Model))
            {
                errors.Add(new(target, "model", "is empty: leave it out to price every model"));
            }

            CheckRate(errors, target, "per_compute_second", price.PerComputeSecond);
            var fromMs = price.EffectiveFrom.ToUnixTimeMilliseconds();
            if (DateTimeOffset.FromUnixTimeMilliseconds(fromMs) != price.EffectiveFrom)
            {
                errors.Add(new(target, "effective_from", "must be a whole millisecond (that is what is stored)"));
            }

            if (!slots.Add((price.Scope, fromMs)))
            {
                errors.Add(new(target, "effective_from", "duplicate: another compute price for this scope takes effect at the same time"));
            }
        }
    }

    private static void ValidateReservations(Plan plan, string planTarget, List<PriceValidationError> errors)
    {
        var pools = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < plan.Reservations.Count; i++)
        {
            var reservation = plan.Reservations[i];
            if (reservation is null)
            {
                errors.Add(new(planTarget, $"reservations[{i}]", "is null"));
                continue;
            }

            if (!IsValidScopeName(reservation.Pool))
            {
                errors.Add(new(planTarget, $"reservations[{i}].pool", $"'{reservation.Pool}' is not a pool name: 1 to {MaxNameLength} letters, digits, '.', '_' or '-'"));
            }
            else if (!pools.Add(reservation.Pool))
            {
                errors.Add(new(planTarget, $"reservations[{i}].pool", $"pool '{reservation.Pool}' is reserved twice"));
            }

            if (reservation.Slots is < 1 or > MaxReservedSlots)
            {
                errors.Add(new(planTarget, $"reservations[{i}].slots", $"must be 1 to {MaxReservedSlots}, was {reservation.Slots}"));
            }
        }
    }

    private static bool SameSlot(ComputePrice a, ComputePrice b) =>
        string.Equals(a.Scope, b.Scope, StringComparison.Ordinal) && a.EffectiveFrom == b.EffectiveFrom;

    private static void CheckRate(List<PriceValidationError> errors, string target, string field, decimal? rate)
    {
        if (rate < 0)
        {
            errors.Add(new(target, field, $"must not be negative, was {rate.Value.ToString(CultureInfo.InvariantCulture)}"));
        }
        else if (rate > MaxRate)
        {
            errors.Add(new(target, field, $"must be at most {MaxRate.ToString(CultureInfo.InvariantCulture)}"));
        }
    }

    private static void AddIfChanged(List<PriceValidationError> errors, string plan, ModelPrice price, string field, decimal? before, decimal? after)
    {
        if (before != after)
        {
            errors.Add(new(PriceTarget(plan, price), field, "a published price in force cannot be changed; add a new price with a future effective_from"));
        }
    }

    private static bool SameSlot(ModelPrice a, ModelPrice b) =>
        string.Equals(a.Model, b.Model, StringComparison.Ordinal) && a.EffectiveFrom == b.EffectiveFrom;

    private static bool IsValidName([NotNullWhen(true)] string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= MaxNameLength && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');
}
