using System.Collections.Concurrent;

namespace Sovereign.Metering.Ledger;

/// <summary>
/// Bills exact costs to millionths without losing what lies below a millionth. Each request's cost is rounded with
/// the remainder its tenant's earlier requests left (per tenant and currency, in this writer): billed =
/// round-half-down(remainder + exact), the new remainder = remainder + exact - billed, which stays in (-0.5, 0.5]
/// millionths. So the requests of a tenant are billed their exact sum to within half a millionth, however small each
/// is (11 tokens at 0.02 per million cost 0.00000022: rounded alone, every request under 25 tokens was free), and a
/// request is billed at most its exact cost rounded up (what <see cref="Pricing.CostCalculator.MaxCost(Pricing.ModelPrice, long, long, decimal?)"/>
/// reserves). A cost in whole millionths is billed as it is and leaves the remainder alone.
/// </summary>
/// <remarks>
/// The records stay in millionths, so everything summed from them (usage, invoices, budgets, /metrics) agrees as
/// before. The remainder is durable: each record adds its own share (<c>exact - billed</c>, in 1e-18 units) to the
/// writer's row of <c>metering_cost_carry</c> in the transaction that stores it (never for a duplicate), and the
/// ledger reads the rows back when it opens, so a restart loses nothing. Rows are per writer (the node id): two
/// gateways billing one tenant each keep their own remainder and never bill the same fraction twice.
/// </remarks>
public sealed class CostCarry
{
    /// <summary>1e-18 units per currency unit (<see cref="Pricing.CostCalculator.ExactDecimals"/>).</summary>
    internal const decimal AttoPerUnit = 1_000_000_000_000_000_000m;

    private const decimal Micro = 0.000001m;

    private readonly ConcurrentDictionary<(string Tenant, string Currency), Cell> _cells = new();

    internal CostCarry(IEnumerable<(string Tenant, string Currency, long Atto)> stored)
    {
        foreach (var (tenant, currency, atto) in stored)
        {
            _cells[(tenant, currency)] = new Cell { Remainder = atto / AttoPerUnit };
        }
    }

    /// <summary>
    /// What to bill for a request of tenant <paramref name="tenant"/> that cost <paramref name="exactCost"/> (at most
    /// <see cref="Pricing.CostCalculator.ExactDecimals"/> places) in <paramref name="currency"/>: a whole number of
    /// millionths. Record both on the usage record (<see cref="UsageRecord.Cost"/>, <see cref="UsageRecord.ExactCost"/>).
    /// </summary>
    public decimal Bill(string tenant, string currency, decimal exactCost)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(exactCost);
        if (decimal.Truncate(exactCost / Micro) * Micro == exactCost)
        {
            // Whole millionths (every price with up to six decimals per token or second does this): as it is, with
            // six decimals at most (the exact cost may carry trailing zeros to its 18th).
            return decimal.ToInt64(exactCost * MicroUnits.PerUnit) / MicroUnits.PerUnit;
        }

        var cell = _cells.GetOrAdd((tenant, currency), static _ => new Cell());
        lock (cell)
        {
            var sum = cell.Remainder + exactCost;
            // Half down: the remainder stays in (-0.5, 0.5] millionths, and billed < exact + 1 millionth.
            // Whole millionths as a long: decimal.Ceiling(-0.79) is a negative zero, which budgets refuse as negative.
            var micros = decimal.ToInt64(decimal.Ceiling((sum / Micro) - 0.5m));
            // Always the exact cost rounded down or up (the same unless a remainder read back lies outside the range),
            // so a record is never a millionth or more from what it cost, nor above what its reservation held.
            micros = Math.Clamp(micros, decimal.ToInt64(decimal.Floor(exactCost / Micro)), decimal.ToInt64(decimal.Ceiling(exactCost / Micro)));
            var billed = micros / MicroUnits.PerUnit;
            cell.Remainder = sum - billed;
            return billed;
        }
    }

    /// <summary>The remainder now held for a tenant in a currency (tests, diagnostics).</summary>
    public decimal RemainderOf(string tenant, string currency)
    {
        if (!_cells.TryGetValue((tenant, currency), out var cell))
        {
            return 0m;
        }

        lock (cell)
        {
            return cell.Remainder;
        }
    }

    /// <summary>
    /// Takes back the share (<c>exact - billed</c>) of a record that was not stored (its request id was already):
    /// the stored one's share is the one counted.
    /// </summary>
    internal void Undo(string tenant, string currency, decimal share)
    {
        if (share != 0 && _cells.TryGetValue((tenant, currency), out var cell))
        {
            lock (cell)
            {
                cell.Remainder -= share;
            }
        }
    }

    /// <summary>
    /// A record's share of its tenant's carry: <c>ExactCost - Cost</c> in 1e-18 units, 0 without an exact cost. Throws
    /// where it can be no carry's (more than a millionth away, or finer than 1e-18).
    /// </summary>
    internal static long ShareOf(UsageRecord record)
    {
        if (record.ExactCost is not { } exact)
        {
            return 0;
        }

        var share = (exact - record.Cost) * AttoPerUnit;
        if (exact < 0 || Math.Abs(exact - record.Cost) >= Micro || decimal.Truncate(share) != share)
        {
            throw new ArgumentException($"ExactCost must be within a millionth of Cost and have at most 18 decimals; was {exact} for a Cost of {record.Cost}", nameof(record));
        }

        return decimal.ToInt64(share);
    }

    private sealed class Cell
    {
        public decimal Remainder;
    }
}
