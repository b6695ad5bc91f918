namespace Sovereign.Metering.Budgets;

/// <summary>How long a budget's amount lasts before it starts again.</summary>
public enum BudgetPeriod
{
    /// <summary>A UTC calendar day: resets at 00:00 UTC.</summary>
    Day,

    /// <summary>A UTC calendar month: resets at 00:00 UTC on the 1st.</summary>
    Month,

    /// <summary>Never resets: a lifetime amount (e.g. prepaid credit).</summary>
    Total,
}

/// <summary>Whose spend a budget caps.</summary>
public enum BudgetScope
{
    /// <summary>Every request of the tenant, whatever key it used.</summary>
    Tenant,

    /// <summary>The requests made with one API key.</summary>
    Key,
}

/// <summary>
/// A cap on spend, in the tenant's currency. <see cref="KeyId"/> null means the tenant budget; a key id means that
/// key's budget. At most one limit exists per (key id, period).
/// </summary>
public sealed record BudgetLimit(string? KeyId, BudgetPeriod Period, decimal Amount)
{
    /// <summary>
    /// The largest budget (9e9 units of the currency), the ledger's largest single amount: beyond it, what remains of a
    /// budget is no longer exact in <see cref="decimal"/> (a budget of 7.9e28 minus 0.000048 still showed 7.9e28).
    /// </summary>
    public const decimal MaxAmount = 9_000_000_000m;

    /// <summary>Decimal places of a budget: the ledger's unit (1e-6 of the currency), as every cost.</summary>
    public const int Decimals = 6;

    /// <summary>Tenant or key.</summary>
    public BudgetScope Scope => KeyId is null ? BudgetScope.Tenant : BudgetScope.Key;

    /// <summary>A budget on all of the tenant's spend.</summary>
    public static BudgetLimit ForTenant(BudgetPeriod period, decimal amount) => new(null, period, amount);

    /// <summary>A budget on one key's spend.</summary>
    public static BudgetLimit ForKey(string keyId, BudgetPeriod period, decimal amount)
    {
        ArgumentException.ThrowIfNullOrEmpty(keyId);
        return new(keyId, period, amount);
    }
}

/// <summary>Period arithmetic, all in UTC so that every silo agrees on when a day or month ends.</summary>
public static class BudgetPeriods
{
    /// <summary>The start of the period that contains <paramref name="now"/>.</summary>
    public static DateTimeOffset StartOf(BudgetPeriod period, DateTimeOffset now)
    {
        var utc = now.UtcDateTime;
        return period switch
        {
            BudgetPeriod.Day => new DateTimeOffset(utc.Year, utc.Month, utc.Day, 0, 0, 0, TimeSpan.Zero),
            BudgetPeriod.Month => new DateTimeOffset(utc.Year, utc.Month, 1, 0, 0, 0, TimeSpan.Zero),
            BudgetPeriod.Total => DateTimeOffset.UnixEpoch,
            _ => throw new ArgumentOutOfRangeException(nameof(period), period, "Unknown budget period."),
        };
    }

    /// <summary>When the period that started at <paramref name="start"/> ends; null for <see cref="BudgetPeriod.Total"/>.</summary>
    public static DateTimeOffset? EndOf(BudgetPeriod period, DateTimeOffset start) => period switch
    {
        BudgetPeriod.Day => start.AddDays(1),
        BudgetPeriod.Month => start.AddMonths(1),
        BudgetPeriod.Total => null,
        _ => throw new ArgumentOutOfRangeException(nameof(period), period, "Unknown budget period."),
    };
}
