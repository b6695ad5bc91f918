using Sovereign.Metering.Ledger;
using Sovereign.Metering.Pricing;
using static Sovereign.Metering.Tests.Ledger.LedgerTestData;

namespace Sovereign.Metering.Tests.Ledger;

/// <summary>
/// Costs below a millionth are billed in sum (<see cref="CostCarry"/>): a request's cost was rounded to millionths
/// alone, so 11 tokens at 0.02 per million (0.00000022) cost 0, and so did every request under 25 tokens (explorer23).
/// </summary>
public sealed class CostCarryTests
{
    private const decimal Tiny = 11 * 0.02m / 1_000_000m;

    private static UsageRecord Billed(UsageLedger ledger, string id, decimal exact, string tenant = "acme")
    {
        var billed = ledger.CostCarry.Bill(tenant, "EUR", exact);
        return Record(id, tenant: tenant, cost: billed) with
        {
            ExactCost = billed == exact ? null : exact,
            PriceVersion = "standard:llama-3-8b@2025-01-01T00:00:00.000Z",
        };
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ManyRequestsBelowAMillionth_AreBilledTheirSum_AndAKilledProcessRestartsFromTheStoredRemainder(bool portable)
    {
        using var db = new TempDatabase();
        var options = new UsageLedgerOptions { PortableCommands = portable };
        var billed = 0m;
        var first = await db.OpenLedgerAsync(options);
        for (var i = 0; i < 57; i++)
        {
            var record = Billed(first, $"r{i:D3}", Tiny);
            Assert.True(await first.AppendAsync(record));
            billed += record.Cost;
        }

        var held = first.CostCarry.RemainderOf("acme", "EUR");
        Assert.NotEqual(0m, held);

        // A second process on the same database under the same node id, the first never closed (killed): it reads
        // the remainder every stored record left, and goes on from it.
        await using var second = await db.OpenLedgerAsync(options);
        Assert.Equal(held, second.CostCarry.RemainderOf("acme", "EUR"));
        for (var i = 57; i < 100; i++)
        {
            var record = Billed(second, $"r{i:D3}", Tiny);
            Assert.True(await second.AppendAsync(record));
            billed += record.Cost;
        }

        // 100 x 0.00000022 = 0.000022: billed exactly (it was 0), and the spend budgets are rebuilt from says the same.
        Assert.Equal(0.000022m, billed);
        Assert.Equal(billed, await second.GetSpendAsync("acme", null, UsagePeriod.Total, Day0, "EUR"));
        Assert.Equal(0m, second.CostCarry.RemainderOf("acme", "EUR"));
        await first.DisposeAsync();
    }

    [Fact]
    public async Task ADuplicateRecord_AddsNothingToTheRemainder_InMemoryOrStored()
    {
        using var db = new TempDatabase();
        var record = default(UsageRecord);
        await using (var ledger = await db.OpenLedgerAsync())
        {
            record = Billed(ledger, "once", 0.0000004m);
            Assert.True(await ledger.AppendAsync(record));
            Assert.Equal(0.0000004m, ledger.CostCarry.RemainderOf("acme", "EUR"));

            // A retry of the same request is priced again; it is not stored, so neither is its share.
            Assert.False(await ledger.AppendAsync(Billed(ledger, "once", 0.0000004m)));
            Assert.Equal(0.0000004m, ledger.CostCarry.RemainderOf("acme", "EUR"));
        }

        await using var reopened = await db.OpenLedgerAsync();
        Assert.Equal(0.0000004m, reopened.CostCarry.RemainderOf("acme", "EUR"));
    }

    [Fact]
    public async Task EachWriterKeepsItsOwnRemainder_PerTenantAndCurrency()
    {
        using var db = new TempDatabase();
        await using var one = await db.OpenLedgerAsync(new UsageLedgerOptions { Writer = "gw-1" });
        await using var two = await db.OpenLedgerAsync(new UsageLedgerOptions { Writer = "gw-2" });
        Assert.True(await one.AppendAsync(Billed(one, "a", 0.0000003m)));
        Assert.True(await two.AppendAsync(Billed(two, "b", 0.0000002m)));
        Assert.True(await two.AppendAsync(Billed(two, "c", 0.0000001m, tenant: "other")));

        await using var again = await db.OpenLedgerAsync(new UsageLedgerOptions { Writer = "gw-2" });
        Assert.Equal(0.0000002m, again.CostCarry.RemainderOf("acme", "EUR"));
        Assert.Equal(0.0000001m, again.CostCarry.RemainderOf("other", "EUR"));
        Assert.Equal(0m, again.CostCarry.RemainderOf("acme", "USD"));
    }

    [Fact]
    public async Task Bill_IsTheExactCostRoundedDownOrUp_NeverAboveWhatTheReservationHeld()
    {
        using var db = new TempDatabase();
        await using var ledger = await db.OpenLedgerAsync();
        var random = new Random(5);
        var exactSum = 0m;
        var billedSum = 0m;
        for (var i = 0; i < 5_000; i++)
        {
            var price = new ModelPrice { Model = "m", EffectiveFrom = Day0, InputPerMillion = random.Next(0, 4) switch { 0 => 0.02m, 1 => 0.333333333m, 2 => 1.5m, _ => 0.0000001m }, OutputPerMillion = 0.07m };
            var prompt = random.Next(0, 60);
            var maxTokens = random.Next(0, 60);
            var completion = random.Next(0, maxTokens + 1);
            var exact = CostCalculator.ExactCost(price, prompt, completion, 0m);
            var billed = ledger.CostCarry.Bill("acme", "EUR", exact);

            Assert.True(billed <= CostCalculator.MaxCost(price, prompt, maxTokens), $"{billed} above the reservation for {prompt}+{maxTokens} at {price.InputPerMillion}");
            Assert.True(Math.Abs(billed - exact) < 0.000001m, $"{billed} for {exact}");
            Assert.Equal(billed, Math.Round(billed, 6));
            Assert.False(decimal.IsNegative(billed), "a negative zero, which a budget refuses");
            Assert.True(billed.Scale <= 6, $"{billed} has {billed.Scale} decimals");
            exactSum += exact;
            billedSum += billed;
            Assert.True(Math.Abs(billedSum - exactSum) <= 0.0000005m, $"after {i + 1}: billed {billedSum}, cost {exactSum}");
        }

        // A cost in whole millionths is billed as it is, and leaves the remainder alone.
        var remainder = ledger.CostCarry.RemainderOf("acme", "EUR");
        Assert.Equal("0.000325", ledger.CostCarry.Bill("acme", "EUR", 0.000325000000000000m).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(remainder, ledger.CostCarry.RemainderOf("acme", "EUR"));
    }
}
