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
/// unrounded micro-units); <see cref="AmountDue"/> is that total rounded once to the currency's minor unit.
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
    /// What the tenant pays: <see cref="Total"/> rounded once, half to even (as every cost is), to the currency's minor
    /// unit (EUR 0.01, JPY 1, KWD 0.001), never the lines rounded one by one, which add up to another amount; the exact
    /// total where ISO 4217 gives the currency no minor unit (XXX, "no currency").
    /// </summary>
    public decimal AmountDue => MinorUnits is { } units ? Math.Round(Total, units, MidpointRounding.ToEven) : Total;

    /// <summary>The decimals of the currency's minor unit, or null for a code ISO 4217 gives none (XXX).</summary>
    public int? MinorUnits => Pricing.Iso4217.IsKnown(Currency) ? Pricing.Iso4217.MinorUnits(Currency) : null;
}
