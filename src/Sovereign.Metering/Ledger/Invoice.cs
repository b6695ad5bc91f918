namespace Sovereign.Metering.Ledger;

/// <summary>One model's usage in one pool on one device class, on an invoice.</summary>
/// <param name="Model">The model id.</param>
/// <param name="Requests">Requests of every outcome (refused ones cost nothing but are listed).</param>
/// <param name="InputTokens">Prompt tokens.</param>
/// <param name="OutputTokens">Completion tokens.</param>
/// <param name="ComputeSeconds">Compute seconds (exact to the microsecond).</param>
/// <param name="Amount">The sum of the records' costs (exact to 1e-6).</param>
/// <param name="Pool">The pool the work ran in (null for usage before pools, or refused before routing).</param>
/// <param name="DeviceClass">The device class it ran on (null where <paramref name="Pool"/> is).</param>
/// <param name="WaivedInputTokens">Prompt tokens counted but not billed: the language tax waived (billed = input less these).</param>
/// <param name="WaivedOutputTokens">Completion tokens counted but not billed, likewise.</param>
public sealed record InvoiceLine(string Model, long Requests, long InputTokens, long OutputTokens, decimal ComputeSeconds, decimal Amount, string? Pool = null, string? DeviceClass = null,
    long WaivedInputTokens = 0, long WaivedOutputTokens = 0)
{
    /// <summary>Prompt tokens billed.</summary>
    public long BilledInputTokens => InputTokens - WaivedInputTokens;

    /// <summary>Completion tokens billed.</summary>
    public long BilledOutputTokens => OutputTokens - WaivedOutputTokens;
}

/// <summary>
/// A tenant's bill for [<see cref="PeriodFrom"/>, <see cref="PeriodTo"/>) in one currency. <see cref="Total"/> is the
/// exact sum of <see cref="Lines"/>, which is the exact sum of the costs of the records in the period (amounts are
/// unrounded micro-units). <see cref="AmountDue"/> is in the currency's minor unit, and exactly
/// <c>Total + CarriedIn - CarriedOut</c>: what earlier periods left below the minor unit comes in, what this one leaves
/// goes on to the next, so consecutive invoices make due the tenant's exact charges, rounded once, and no amount below
/// a minor unit is ever written off (0.003 USD a month was 0.00 due every month).
/// </summary>
public sealed record Invoice
{
    /// <summary>The tenant billed.</summary>
    public required string Tenant { get; init; }

    /// <summary>ISO 4217 code; <c>XXX</c> ("no currency") for an empty invoice built without a currency.</summary>
    public required string Currency { get; init; }

    /// <summary>Period start (UTC midnight, inclusive).</summary>
    public required DateTimeOffset PeriodFrom { get; init; }

    /// <summary>Period end (UTC midnight, exclusive).</summary>
    public required DateTimeOffset PeriodTo { get; init; }

    /// <summary>One line per model, pool and device class, ordered by model id, then pool, then device class (ordinal).</summary>
    public required IReadOnlyList<InvoiceLine> Lines { get; init; }

    /// <summary>The exact sum of the lines' amounts (to 1e-6, the ledger's unit).</summary>
    public required decimal Total { get; init; }

    /// <summary>
    /// The exact sum of what the tenant was charged in <see cref="Currency"/> before <see cref="PeriodFrom"/> (0 for its
    /// first invoice): the carry in and out are reckoned from it.
    /// </summary>
    public decimal EarlierTotal { get; init; }

    /// <summary>
    /// What the tenant pays: the rounding of all its charges in this currency to the period's end less the rounding of
    /// those before it, each rounded once, half to even (as every cost is), to the currency's minor unit (EUR 0.01, JPY 1,
    /// KWD 0.001): <see cref="Total"/> rounded, moved by what earlier periods carried. Never the lines rounded one by
    /// one, which add up to another amount; the exact total where ISO 4217 gives the currency no minor unit (XXX).
    /// </summary>
    public decimal AmountDue => MinorUnits is { } ? Round(EarlierTotal + Total) - Round(EarlierTotal) : Total;

    /// <summary>
    /// The part of <see cref="EarlierTotal"/> below the minor unit that earlier invoices did not make due (negative where
    /// they rounded up): added to this invoice's total before rounding. 0 without a minor unit.
    /// </summary>
    public decimal CarriedIn => MinorUnits is { } ? EarlierTotal - Round(EarlierTotal) : 0m;

    /// <summary>
    /// What this invoice leaves below the minor unit for the next one (negative where it rounded up): exactly
    /// <c>Total + CarriedIn - AmountDue</c>. 0 without a minor unit.
    /// </summary>
    public decimal CarriedOut => MinorUnits is { } ? EarlierTotal + Total - Round(EarlierTotal + Total) : 0m;

    private decimal Round(decimal amount) => MinorUnits is { } units ? Math.Round(amount, units, MidpointRounding.ToEven) : amount;

    /// <summary>The decimals of the currency's minor unit, or null for a code ISO 4217 gives none (XXX).</summary>
    public int? MinorUnits => Pricing.Iso4217.IsKnown(Currency) ? Pricing.Iso4217.MinorUnits(Currency) : null;
}
