using CsCheck;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using static Sovereign.Metering.Tests.Pricing.PricingTestData;

namespace Sovereign.Metering.Tests.Pricing;

/// <summary>
/// A request's exact cost (<see cref="CostCalculator.ExactCost(ModelPrice, long, long, decimal, long)"/>) and its bill
/// in whole millionths through a tenant's carry (<see cref="CostCarry.Bill"/>), as the ledger bills it; the rounding of
/// each request alone (<c>CostCalculator.Cost</c>) is gone from the product, which no longer used it.
/// </summary>
public sealed class CostCalculatorTests
{
    /// <summary>A fresh carry, as a ledger opened on a new database holds.</summary>
    private static CostCarry Carry() => new([]);

    [Fact]
    public void Cost_TokensAndCompute_IsExact()
    {
        var price = Price(input: 0.15m, output: 0.60m, compute: 0.0004m);

        // 1234 * 0.15 / 1e6 + 567 * 0.60 / 1e6 + 2.5 * 0.0004 = 0.0001851 + 0.0003402 + 0.001 = 0.0015253, billed 0.001525
        Assert.Equal(0.0015253m, CostCalculator.ExactCost(price, 1234, 567, 2.5m));
        Assert.Equal(0.001525m, Carry().Bill("t", "EUR", CostCalculator.ExactCost(price, 1234, 567, 2.5m)));
    }

    [Fact]
    public void Cost_CachedPromptTokens_AreChargedAtTheCachedRate()
    {
        var price = Price(input: 1.00m, output: 2.00m, cached: 0.25m);

        // (1000 - 800) * 1.00 / 1e6 + 800 * 0.25 / 1e6 + 10 * 2.00 / 1e6 = 0.0002 + 0.0002 + 0.00002
        Assert.Equal(0.00042m, CostCalculator.ExactCost(price, 1000, 10, 0m, cachedPromptTokens: 800));
        Assert.Equal(CostCalculator.ExactCost(price, 1000, 10, 0m) - 0.0006m, CostCalculator.ExactCost(price, 1000, 10, 0m, 800));
    }

    [Fact]
    public void Cost_NoCachedRate_ChargesCachedTokensAsInput()
    {
        var price = Price(input: 1.00m, output: 2.00m);

        Assert.Equal(CostCalculator.ExactCost(price, 1000, 10, 0m), CostCalculator.ExactCost(price, 1000, 10, 0m, cachedPromptTokens: 999));
    }

    [Fact]
    public void Cost_MoreCachedThanPromptTokens_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CostCalculator.ExactCost(Price(), 10, 0, 0m, cachedPromptTokens: 11));
        Assert.Throws<ArgumentOutOfRangeException>(() => CostCalculator.ExactCost(Price(), 10, 0, 0m, cachedPromptTokens: -1));
    }

    [Fact]
    public void MaxCost_CachedRateAboveInput_BoundsEveryPromptTokenAtTheCachedRate()
    {
        // An operator may price cached tokens above input (unusual, but a rate is a rate): the bound must still hold.
        var price = Price(input: 1m, output: 0m, cached: 3m);

        Assert.Equal(CostCalculator.ExactCost(price, 100, 0, 0m, cachedPromptTokens: 100), CostCalculator.MaxCost(price, 100, 0));
    }

    [Fact]
    public void Cost_MissingRates_AreNotCharged()
    {
        Assert.Equal(0.6m, CostCalculator.ExactCost(Price(input: null, output: 0.60m), 1_000_000, 1_000_000, 10m));
        Assert.Equal(3m, CostCalculator.ExactCost(Price(input: null, output: null, compute: 0.3m), 1_000_000, 1_000_000, 10m));
    }

    [Fact]
    public void Cost_HalfwayValues_AreSummedBeforeAnyRounding_AndBilledTheirSum()
    {
        // Each component is 0.0000005 and would round to 0 on its own; only the sum is rounded, and it is whole.
        Assert.Equal(0.000001m, CostCalculator.ExactCost(Price(input: 0.5m, output: 0.5m), 1, 1, 0m));
        Assert.Equal(0.000001m, Carry().Bill("t", "EUR", CostCalculator.ExactCost(Price(input: 0.5m, output: 0.5m), 1, 1, 0m)));

        // Two requests of 0.0000025 are billed 0.000005 together, whichever of them carries the half.
        var carry = Carry();
        var exact = CostCalculator.ExactCost(Price(input: 2.5m, output: null), 1, 0, 0m);
        Assert.Equal(0.0000025m, exact);
        Assert.Equal(0.000005m, carry.Bill("t", "EUR", exact) + carry.Bill("t", "EUR", exact));
    }

    [Fact]
    public void MaxCost_Bounds_PricesPromptPlusMaxTokensPlusMaxSeconds()
    {
        // 50 * 0.15 / 1e6 + 12 * 0.60 / 1e6 = 0.0000147 -> 0.000015
        Assert.Equal(0.000015m, CostCalculator.MaxCost(Price(input: 0.15m, output: 0.60m), 50, 12));

        // 0.0000015 + 0.000006 + 2 * 0.001 = 0.0020075 -> 0.002008 (half to even)
        Assert.Equal(0.002008m, CostCalculator.MaxCost(Price(compute: 0.001m), 10, 10, 2m));
    }

    [Fact]
    public void MaxCost_ComputePriceWithoutBound_Throws()
    {
        Assert.Throws<ArgumentException>(() => CostCalculator.MaxCost(Price(compute: 0.001m), 10, 10));
    }

    [Fact]
    public void Cost_NegativeUsage_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CostCalculator.ExactCost(Price(), -1, 0, 0m));
        Assert.Throws<ArgumentOutOfRangeException>(() => CostCalculator.ExactCost(Price(), 0, 0, -0.1m));
    }

    [Fact]
    public void Bill_AnyUsageWithinBounds_NeverExceedsMaxCostAndHasSixDecimals()
    {
        var gen =
            from input in Gen.Decimal[0m, 100m]
            from cachedRate in Gen.OneOf(Gen.Const((decimal?)null), Gen.Decimal[0m, 100m].Select(r => (decimal?)r))
            from output in Gen.Decimal[0m, 100m]
            from perSecond in Gen.Decimal[0m, 1m]
            from prompt in Gen.Int[0, 200_000]
            from maxTokens in Gen.Int[0, 100_000]
            from used in Gen.Int[0, 100_000]
            from seconds in Gen.Decimal[0m, 1000m]
            from cachedShare in Gen.Double[0, 1]
            select (Price: Price(input: input, output: output, compute: perSecond, cached: cachedRate), prompt, maxTokens, Used: Math.Min(used, maxTokens), seconds,
                Cached: (long)(prompt * cachedShare));

        gen.Sample(t =>
        {
            var cost = Carry().Bill("t", "EUR", CostCalculator.ExactCost(t.Price, t.prompt, t.Used, t.seconds, t.Cached));
            var max = CostCalculator.MaxCost(t.Price, t.prompt, t.maxTokens, t.seconds * 2);
            Assert.InRange(cost, 0m, max);
            Assert.Equal(cost, Math.Round(cost, CostCalculator.Decimals));
        });
    }
}
