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
/// unrounded micro-units; round to the currency's minor unit only for display).
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

    /// <summary>The amount due.</summary>
    public required decimal Total { get; init; }
}
