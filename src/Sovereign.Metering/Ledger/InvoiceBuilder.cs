namespace Sovereign.Metering.Ledger;

/// <summary>
/// Builds invoices from the ledger's daily aggregates, so an invoice stays exact after raw records are purged.
/// Periods are therefore whole UTC days (midnight to midnight).
/// </summary>
public sealed class InvoiceBuilder
{
    /// <summary>ISO 4217's "no currency" code, for an invoice with no usage.</summary>
    public const string NoCurrency = "XXX";

    private readonly UsageLedger _ledger;

    /// <summary>Creates a builder reading <paramref name="ledger"/>.</summary>
    public InvoiceBuilder(UsageLedger ledger)
    {
        ArgumentNullException.ThrowIfNull(ledger);
        _ledger = ledger;
    }

    /// <summary>
    /// The invoice of <paramref name="tenant"/> for [<paramref name="periodFrom"/>, <paramref name="periodTo"/>), both UTC
    /// midnights. Throws <see cref="InvalidOperationException"/> when the tenant was charged in several currencies in the
    /// period (build one invoice per currency with the other overload).
    /// </summary>
    public Task<Invoice> BuildAsync(string tenant, DateTimeOffset periodFrom, DateTimeOffset periodTo, CancellationToken cancellationToken = default) =>
        BuildAsync(tenant, periodFrom, periodTo, currency: null, planCurrency: null, cancellationToken);

    /// <summary>The invoice of the tenant's usage in <paramref name="currency"/> only (null: the one currency charged).</summary>
    public Task<Invoice> BuildAsync(string tenant, DateTimeOffset periodFrom, DateTimeOffset periodTo, string? currency, CancellationToken cancellationToken = default) =>
        BuildAsync(tenant, periodFrom, periodTo, currency, planCurrency: null, cancellationToken);

    /// <summary>
    /// The invoice in <paramref name="currency"/> (null: the one currency the tenant was charged in; with nothing
    /// charged, <paramref name="planCurrency"/>, the currency of the tenant's plan when the price book holds it).
    /// </summary>
    /// <remarks>
    /// Money is counted per currency and never summed across them. Usage at no cost in a currency nothing was charged
    /// in during the period (unpriced models, recorded in XXX, or in USD before XXX was used) is free usage, not a
    /// second currency: its lines, at 0, are on the invoice built without a currency (when several were charged, on
    /// the plan's currency's), merged with that currency's own lines of the same model, pool and device class.
    /// </remarks>
    public async Task<Invoice> BuildAsync(
        string tenant, DateTimeOffset periodFrom, DateTimeOffset periodTo, string? currency, string? planCurrency, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(tenant);
        if (!UtcCalendar.IsMidnight(periodFrom) || !UtcCalendar.IsMidnight(periodTo))
        {
            throw new ArgumentException("invoice periods are whole UTC days: pass UTC midnights", nameof(periodFrom));
        }

        if (periodTo <= periodFrom)
        {
            throw new ArgumentException("periodTo must be after periodFrom", nameof(periodTo));
        }

        var rows = await _ledger.QueryUsageAsync(
            new UsageQuery { Tenant = tenant, From = periodFrom, To = periodTo, GroupBy = UsageGroupBy.Model | UsageGroupBy.Pool | UsageGroupBy.DeviceClass },
            cancellationToken);
        var charged = rows.Where(r => r.Cost != 0).Select(r => r.Currency).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (currency is null && charged.Count > 1)
        {
            throw new InvalidOperationException(
                $"tenant '{tenant}' has usage in several currencies ({string.Join(", ", charged)}) in this period: build one invoice per currency.");
        }

        var stored = rows.Select(r => r.Currency).Distinct(StringComparer.Ordinal).ToList();
        var unchargedDefault = planCurrency ?? (stored.Count == 1 ? stored[0] : NoCurrency);
        var chosen = currency ?? (charged.Count == 1 ? charged[0] : unchargedDefault);

        // The free usage goes on one invoice only: the one built without a currency, or, when the tenant was charged in
        // several, the plan's currency's (else the first charged).
        var takesFreeUsage = chosen == charged.Count switch
        {
            0 => unchargedDefault,
            1 => charged[0],
            _ => planCurrency is not null && charged.Contains(planCurrency, StringComparer.Ordinal) ? planCurrency : charged[0],
        };
        var lines = rows
            .Where(r => string.Equals(r.Currency, chosen, StringComparison.Ordinal) || (takesFreeUsage && !charged.Contains(r.Currency, StringComparer.Ordinal)))
            .GroupBy(r => (r.Model, r.Pool, r.DeviceClass))
            .OrderBy(g => g.Key.Model, StringComparer.Ordinal)
            .ThenBy(g => g.Key.Pool ?? string.Empty, StringComparer.Ordinal)
            .ThenBy(g => g.Key.DeviceClass ?? string.Empty, StringComparer.Ordinal)
            .Select(g => new InvoiceLine(g.Key.Model!, g.Sum(r => r.Requests), g.Sum(r => r.PromptTokens), g.Sum(r => r.CompletionTokens), g.Sum(r => r.ComputeSeconds),
                g.Sum(r => r.Cost), g.Key.Pool, g.Key.DeviceClass, g.Sum(r => r.WaivedPromptTokens), g.Sum(r => r.WaivedCompletionTokens)))
            .ToList();
        // What the tenant was charged in this currency before the period (the daily aggregates, never purged): the
        // amount due is the rounding of everything to the period's end less that of everything before it, so what
        // consecutive invoices leave below the minor unit is carried, never lost.
        var earlier = (await _ledger.QueryUsageAsync(new UsageQuery { Tenant = tenant, From = DateTimeOffset.MinValue, To = periodFrom }, cancellationToken))
            .Where(r => string.Equals(r.Currency, chosen, StringComparison.Ordinal)).Sum(r => r.Cost);
        return new Invoice
        {
            Tenant = tenant,
            Currency = chosen,
            PeriodFrom = periodFrom,
            PeriodTo = periodTo,
            Lines = lines,
            Total = lines.Sum(l => l.Amount),
            EarlierTotal = earlier,
        };
    }
}
