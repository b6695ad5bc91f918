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
    /// midnights. Throws <see cref="InvalidOperationException"/> when the tenant used several currencies in the period
    /// (build one invoice per currency with the other overload).
    /// </summary>
    public Task<Invoice> BuildAsync(string tenant, DateTimeOffset periodFrom, DateTimeOffset periodTo, CancellationToken cancellationToken = default) =>
        BuildAsync(tenant, periodFrom, periodTo, currency: null, cancellationToken);

    /// <summary>The invoice of the tenant's usage in <paramref name="currency"/> only (null: the one currency used).</summary>
    public async Task<Invoice> BuildAsync(string tenant, DateTimeOffset periodFrom, DateTimeOffset periodTo, string? currency, CancellationToken cancellationToken = default)
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
        var currencies = rows.Select(r => r.Currency).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (currency is null && currencies.Count > 1)
        {
            throw new InvalidOperationException(
                $"tenant '{tenant}' has usage in several currencies ({string.Join(", ", currencies)}) in this period: build one invoice per currency.");
        }

        var chosen = currency ?? (currencies.Count == 1 ? currencies[0] : NoCurrency);
        var lines = rows
            .Where(r => string.Equals(r.Currency, chosen, StringComparison.Ordinal))
            .OrderBy(r => r.Model, StringComparer.Ordinal)
            .ThenBy(r => r.Pool ?? string.Empty, StringComparer.Ordinal)
            .ThenBy(r => r.DeviceClass ?? string.Empty, StringComparer.Ordinal)
            .Select(r => new InvoiceLine(r.Model!, r.Requests, r.PromptTokens, r.CompletionTokens, r.ComputeSeconds, r.Cost, r.Pool, r.DeviceClass, r.WaivedPromptTokens, r.WaivedCompletionTokens))
            .ToList();
        return new Invoice
        {
            Tenant = tenant,
            Currency = chosen,
            PeriodFrom = periodFrom,
            PeriodTo = periodTo,
            Lines = lines,
            Total = lines.Sum(l => l.Amount),
        };
    }
}
