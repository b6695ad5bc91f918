namespace Sovereign.Metering.Ledger;

/// <summary>
/// The ledger's exact integer units: money and compute seconds are stored as BIGINT millionths (1e-6), so SQL sums
/// are exact on both engines and a decimal round-trips unchanged.
/// </summary>
internal static class MicroUnits
{
    public const decimal PerUnit = 1_000_000m;

    /// <summary>Largest single amount (currency units or seconds): BIGINT micro-units reach 9.2e12 units, so sums keep ample headroom.</summary>
    public const decimal MaxUnits = 9_000_000_000m;

    /// <summary>Exact conversion; throws when <paramref name="value"/> has more than 6 decimals.</summary>
    public static long FromExact(decimal value, string name)
    {
        if (Math.Abs(value) > MaxUnits)
        {
            throw new ArgumentException($"{name} is out of range, was {value}", name);
        }

        var scaled = value * PerUnit;
        if (decimal.Truncate(scaled) != scaled)
        {
            throw new ArgumentException($"{name} must be rounded to 6 decimals (1e-6 units), was {value}", name);
        }

        return decimal.ToInt64(scaled);
    }

    /// <summary>Rounds to the microsecond, half to even.</summary>
    public static long FromRounded(decimal value) =>
        Math.Abs(value) <= MaxUnits ? decimal.ToInt64(Math.Round(value * PerUnit, MidpointRounding.ToEven)) : throw new ArgumentOutOfRangeException(nameof(value), value, "out of range");

    public static decimal ToDecimal(long micros) => micros / PerUnit;
}

/// <summary>UTC calendar arithmetic on unix milliseconds (aggregate keys are day and month starts).</summary>
internal static class UtcCalendar
{
    public const long DayMs = 86_400_000;

    public static long DayStart(long unixMs) => unixMs - ((unixMs % DayMs) + DayMs) % DayMs;

    public static long MonthStart(long unixMs)
    {
        var time = DateTimeOffset.FromUnixTimeMilliseconds(unixMs);
        return new DateTimeOffset(time.Year, time.Month, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds();
    }

    public static bool IsMidnight(DateTimeOffset time) => time.UtcTicks % TimeSpan.TicksPerDay == 0;

    public static DateOnly ToDate(long unixMs) => DateOnly.FromDateTime(DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime);
}
