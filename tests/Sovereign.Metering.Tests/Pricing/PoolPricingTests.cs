using Sovereign.Metering.Pricing;
using Sovereign.Metering.Tests.Ledger;
using static Sovereign.Metering.Tests.Pricing.PricingTestData;

namespace Sovereign.Metering.Tests.Pricing;

/// <summary>Compute-second prices per pool and device class, beside token prices, and plan reservations.</summary>
public sealed class PoolPricingTests
{
    private static readonly Placement ThH100 = new("th-h100", "h100");

    private static ComputePrice Rate(decimal perSecond, string? pool = null, string? deviceClass = null, string? model = null, DateTimeOffset? from = null) => new()
    {
        Pool = pool,
        DeviceClass = deviceClass,
        Model = model,
        EffectiveFrom = from ?? Jan1,
        PerComputeSecond = perSecond,
    };

    private static PriceBook Book(params ComputePrice[] rates) =>
        new([Standard(Price(compute: 0.001m)) with { ComputePrices = rates }]);

    [Fact]
    public void TryPriceFor_TakesTheMostSpecificComputeRate_ModelPoolThenPoolThenModelClassThenClassThenModel()
    {
        var all = new[]
        {
            Rate(5m, pool: "th-h100", model: "llama-3-8b"),
            Rate(4m, pool: "th-h100"),
            Rate(3m, deviceClass: "h100", model: "llama-3-8b"),
            Rate(2m, deviceClass: "h100"),
        };

        // Remove the most specific rate one at a time: each time the next one in the precedence applies.
        decimal?[] expected = [5m, 4m, 3m, 2m, 0.001m];
        for (var skip = 0; skip < expected.Length; skip++)
        {
            var book = Book(all.Skip(skip).ToArray());
            Assert.True(book.TryPriceFor("standard", "llama-3-8b", ThH100, Mar1, out var price));
            Assert.Equal(expected[skip], price.Price.PerComputeSecond);

            // Token rates always come from the model's price.
            Assert.Equal(0.15m, price.Price.InputPerMillion);
            Assert.Equal(0.60m, price.Price.OutputPerMillion);
        }
    }

    [Fact]
    public void TryPriceFor_RatesForOtherPoolsClassesOrModels_DoNotApply()
    {
        var book = Book(Rate(9m, pool: "sg-cpu"), Rate(8m, deviceClass: "cpu"), Rate(7m, pool: "th-h100", model: "mistral-7b"));

        Assert.True(book.TryPriceFor("standard", "llama-3-8b", ThH100, Mar1, out var price));
        Assert.Equal(0.001m, price.Price.PerComputeSecond);
        Assert.Null(price.ComputeScope);
        Assert.Equal("standard:llama-3-8b@2025-01-01T00:00:00.000Z", price.Version);
    }

    /// <summary>
    /// A node's derived class is lower case (<c>h100</c>, <c>cpu</c>, from nvidia-smi), an operator writes <c>H100</c>:
    /// such a rate never applied, and the node's work was billed at the model's compute rate, or free (found pricing
    /// a cluster by hand: <c>plans compute-price dc --device-class CPU</c> billed a cpu node's request 0).
    /// </summary>
    [Fact]
    public void TryPriceFor_DeviceClassRate_AppliesWhateverTheCaseOfTheClass()
    {
        var book = Book(Rate(2m, deviceClass: "H100"), Rate(3m, deviceClass: "cpu", model: "llama-3-8b"));

        Assert.True(book.TryPriceFor("standard", "llama-3-8b", ThH100, Mar1, out var derived));
        Assert.Equal((2m, "device_class=H100"), (derived.Price.PerComputeSecond, derived.ComputeScope));
        Assert.True(book.TryPriceFor("standard", "llama-3-8b", new Placement("th-cpu", "CPU"), Mar1, out var signed));
        Assert.Equal(3m, signed.Price.PerComputeSecond);
    }

    [Fact]
    public void TryPriceFor_PoolRate_IsCitedInTheVersion()
    {
        var book = Book(Rate(4m, pool: "th-h100", from: Mar1));

        Assert.True(book.TryPriceFor("standard", "llama-3-8b", ThH100, Mar1, out var price));
        Assert.Equal("pool=th-h100", price.ComputeScope);
        Assert.Equal("standard:llama-3-8b@2025-01-01T00:00:00.000Z;standard:pool=th-h100@2025-03-01T00:00:00.000Z", price.Version);

        // Before the pool rate takes effect, the model's own compute rate applies.
        Assert.True(book.TryPriceFor("standard", "llama-3-8b", ThH100, Mar1.AddMilliseconds(-1), out var before));
        Assert.Equal(0.001m, before.Price.PerComputeSecond);
    }

    [Fact]
    public void TryPriceFor_ModelWithoutTokenPrice_IsPricedByThePoolRateAlone()
    {
        var book = Book(Rate(0.5m, pool: "th-h100"));

        Assert.True(book.TryPriceFor("standard", "unpriced-model", ThH100, Mar1, out var price));
        Assert.Null(price.Price.InputPerMillion);
        Assert.Equal(0.5m, price.Price.PerComputeSecond);
        Assert.Equal(1.25m, CostCalculator.ExactCost(price, 1000, 1000, 2.5m));
        Assert.False(book.TryPriceFor("standard", "unpriced-model", new Placement("sg-cpu", "cpu"), Mar1, out _));
    }

    [Fact]
    public void TryPriceFor_ALaterRateForTheSameScope_ReplacesTheEarlierFromItsTime()
    {
        var book = Book(Rate(1m, pool: "th-h100"), Rate(2m, pool: "th-h100", from: Mar1));

        Assert.True(book.TryPriceFor("standard", "llama-3-8b", ThH100, Mar1.AddDays(-1), out var early));
        Assert.True(book.TryPriceFor("standard", "llama-3-8b", ThH100, Mar1, out var late));
        Assert.Equal(1m, early.Price.PerComputeSecond);
        Assert.Equal(2m, late.Price.PerComputeSecond);
    }

    [Theory]
    [InlineData(null, null, "pool")]
    [InlineData("th-h100", "h100", "pool")]
    [InlineData("TH H100", null, "pool")]
    [InlineData(null, "h 100", "device_class")]
    public void Validate_ComputePriceScope_NamesTheField(string? pool, string? deviceClass, string field)
    {
        var errors = PriceValidator.Validate([Standard() with { ComputePrices = [Rate(1m, pool, deviceClass)] }]);

        Assert.Contains(errors, e => e.Field == field);
    }

    [Fact]
    public void Validate_NegativeRateAndDuplicateScope_AreRefused()
    {
        var errors = PriceValidator.Validate([Standard() with { ComputePrices = [Rate(-1m, pool: "p"), Rate(1m, pool: "q"), Rate(2m, pool: "q")] }]);

        Assert.Contains(errors, e => e.Field == "per_compute_second" && e.Message.Contains("negative", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Field == "effective_from" && e.Message.Contains("duplicate", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("th-h100", 0, "reservations[0].slots")]
    [InlineData("th-h100", 100_001, "reservations[0].slots")]
    [InlineData("t/h", 1, "reservations[0].pool")]
    public void Validate_Reservations_NameTheField(string pool, int slots, string field)
    {
        var errors = PriceValidator.Validate([Standard() with { Reservations = [new PoolReservation(pool, slots)] }]);

        Assert.Equal(field, Assert.Single(errors).Field);
    }

    [Fact]
    public void Validate_APoolReservedTwice_IsRefused()
    {
        var errors = PriceValidator.Validate([Standard() with { Reservations = [new("p", 1), new("p", 2)] }]);

        Assert.Equal("reservations[1].pool", Assert.Single(errors).Field);
    }

    [Fact]
    public void ValidateChange_AComputeRateInForce_CannotBeChangedOrRemoved()
    {
        var published = Book(Rate(1m, pool: "th-h100"));
        var changed = published.Plans[0] with { ComputePrices = [Rate(2m, pool: "th-h100")] };
        var removed = published.Plans[0] with { ComputePrices = [] };
        var scheduled = published.Plans[0] with { ComputePrices = [Rate(1m, pool: "th-h100"), Rate(3m, pool: "th-h100", from: Mar1)] };

        Assert.Contains(PriceValidator.ValidateChange(published, [changed], Mar1.AddDays(-1)), e => e.Field == "per_compute_second");
        Assert.Contains(PriceValidator.ValidateChange(published, [removed], Mar1.AddDays(-1)), e => e.Field == "effective_from");
        Assert.Empty(PriceValidator.ValidateChange(published, [scheduled], Mar1.AddDays(-1)));
        Assert.Contains(PriceValidator.ValidateChange(published, [scheduled], Mar1.AddDays(1)), e => e.Field == "effective_from" && e.Message.Contains("past", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Store_RoundTripsComputeRatesAndReservations()
    {
        using var db = new TempDatabase();
        var store = new PriceBookStore(db.Database);
        await store.MigrateAsync();
        var plan = Standard() with
        {
            ComputePrices = [Rate(0.0000001m, pool: "th-h100"), Rate(2m, deviceClass: "h100", model: "llama-3-8b")],
            Reservations = [new PoolReservation("th-h100", 3)],
        };

        await store.SaveAsync(new PriceBook([plan]), Jan1);
        var loaded = (await store.LoadAsync()).FindPlan("standard")!;

        Assert.Equal(plan.ComputePrices.OrderBy(r => r.Pool ?? "").ThenBy(r => r.DeviceClass ?? ""), loaded.ComputePrices.OrderBy(r => r.Pool ?? "").ThenBy(r => r.DeviceClass ?? ""));
        Assert.Equal(3, loaded.ReservedSlotsIn("th-h100"));
        Assert.Equal(0, loaded.ReservedSlotsIn("sg-cpu"));
    }

    [Fact]
    public async Task Store_BookSavedBeforePools_LoadsWithNoComputeRatesOrReservations()
    {
        using var db = new TempDatabase();
        await db.Database.MigrateAsync([.. PriceBookStore.Migrations.Take(2)]);
        await using (var connection = await db.Database.OpenAsync())
        {
            using var command = connection.CreateCommand();
            command.CommandText =
                "INSERT INTO metering_plans (name, position, currency, weight, priority) VALUES ('standard', 0, 'EUR', 1, 'Batch');" +
                "INSERT INTO metering_prices (plan_name, model, effective_from, input_per_million, output_per_million, per_compute_second, cached_input_per_million) " +
                "VALUES ('standard', 'llama-3-8b', " + Jan1.ToUnixTimeMilliseconds() + ", '0.15', '0.6', NULL, NULL)";
            await command.ExecuteNonQueryAsync();
        }

        var store = new PriceBookStore(db.Database);
        await store.MigrateAsync();
        var loaded = (await store.LoadAsync()).FindPlan("standard")!;

        Assert.Empty(loaded.ComputePrices);
        Assert.Empty(loaded.Reservations);
        Assert.Equal(0.15m, loaded.Prices.Single(p => p.Model == "llama-3-8b").InputPerMillion);
    }

    /// <summary>A stored class spelt <c>H100</c> (before classes were stored in lower case) is the scope of a withdrawal of <c>h100</c>, as pricing matches them.</summary>
    [Fact]
    public void HasScopeOf_MatchesDeviceClassesInAnyCase_PoolsAndModelsAsNamed()
    {
        var stored = Rate(1m, deviceClass: "H100", model: "m");

        Assert.True(stored.HasScopeOf(Rate(0m, deviceClass: "h100", model: "m")));
        Assert.False(stored.HasScopeOf(Rate(0m, deviceClass: "h100")));
        Assert.False(stored.HasScopeOf(Rate(0m, deviceClass: "h100", model: "M")));
        Assert.False(Rate(1m, pool: "TH-H100").HasScopeOf(Rate(0m, pool: "th-h100")));
    }

    /// <summary>
    /// A class stored as <c>H100</c> (before classes were lower case) and a new <c>h100</c> from the same instant were
    /// both accepted: two rates for one class at once, the one applied chosen by the order they were added. A new rate
    /// that duplicates one in any case is refused; a pair already stored still loads.
    /// </summary>
    [Fact]
    public void WithComputePrice_DuplicatingAStoredClassInAnotherCase_IsRefused_ButAStoredPairStillLoads()
    {
        var from = Mar1.AddDays(10);
        var book = Book(Rate(1m, deviceClass: "H100", from: from));

        var refused = Assert.Throws<PriceValidationException>(() => book.WithComputePrice("standard", Rate(2m, deviceClass: "h100", from: from), Mar1));

        Assert.Contains(refused.Errors, e => e.Field == "effective_from" && e.Message.StartsWith("duplicate", StringComparison.Ordinal));
        Assert.Equal(2, Book(Rate(1m, deviceClass: "H100", from: from), Rate(2m, deviceClass: "h100", from: from)).Plans[0].ComputePrices.Count);
    }
}
