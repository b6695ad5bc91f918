using Sovereign.Metering.Pricing;
using static Sovereign.Metering.Tests.Pricing.PricingTestData;

namespace Sovereign.Metering.Tests.Pricing;

public sealed class PriceValidatorTests
{
    [Fact]
    public void Validate_GoodPlans_NoErrors()
    {
        Assert.Empty(PriceValidator.Validate([Standard(), Pro()]));
    }

    [Theory]
    [InlineData("input_per_million")]
    [InlineData("output_per_million")]
    [InlineData("per_compute_second")]
    public void Validate_NegativeRate_NamesTheField(string field)
    {
        var price = field switch
        {
            "input_per_million" => Price(input: -0.01m),
            "output_per_million" => Price(output: -1m),
            _ => Price(compute: -0.5m),
        };

        var error = Assert.Single(PriceValidator.Validate([Standard(price)]));

        Assert.Equal(field, error.Field);
        Assert.Contains("llama-3-8b", error.Target, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_NoRateAtAll_NamesRates()
    {
        var error = Assert.Single(PriceValidator.Validate([Standard(Price(input: null, output: null, compute: null))]));

        Assert.Equal("rates", error.Field);
    }

    [Theory]
    [InlineData("EUX")]
    [InlineData("eur")]
    [InlineData("")]
    [InlineData("XAU")]
    public void Validate_UnknownCurrency_NamesCurrency(string currency)
    {
        var error = Assert.Single(PriceValidator.Validate([Standard() with { Currency = currency }]));

        Assert.Equal("currency", error.Field);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    [InlineData(1_000_001)]
    public void Validate_WeightOutOfRange_NamesWeight(int weight)
    {
        var error = Assert.Single(PriceValidator.Validate([Standard() with { Weight = weight }]));

        Assert.Equal("weight", error.Field);
    }

    [Fact]
    public void Validate_CachedRateWithoutInputRate_NamesCachedInput()
    {
        var error = Assert.Single(PriceValidator.Validate([Standard(Price(input: null, cached: 0.01m))]));

        Assert.Equal("cached_input_per_million", error.Field);
    }

    [Fact]
    public void Validate_NegativeCachedRate_NamesCachedInput()
    {
        Assert.Equal("cached_input_per_million", Assert.Single(PriceValidator.Validate([Standard(Price(cached: -1m))])).Field);
    }

    [Fact]
    public void Validate_DuplicatePlanNameInAnyCase_NamesName()
    {
        var error = Assert.Single(PriceValidator.Validate([Standard(), Standard() with { Name = "STANDARD" }]));

        Assert.Equal(("name", "plan 'STANDARD'"), (error.Field, error.Target));
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("colon:name")]
    public void Validate_BadPlanName_NamesName(string name)
    {
        Assert.Equal("name", Assert.Single(PriceValidator.Validate([Standard() with { Name = name }])).Field);
    }

    [Fact]
    public void Validate_TwoPricesForAModelAtTheSameTime_NamesEffectiveFrom()
    {
        var error = Assert.Single(PriceValidator.Validate([Standard(Price(), Price(input: 1m))]));

        Assert.Equal("effective_from", error.Field);
    }

    [Fact]
    public void Validate_UnknownPriorityAndMissingModel_AreReported()
    {
        var errors = PriceValidator.Validate([Standard(Price(model: "")) with { Priority = (PriorityClass)9 }]);

        Assert.Equal(["priority", "model"], errors.Select(e => e.Field));
    }

    [Fact]
    public void ValidateChange_NewPriceInThePast_NamesEffectiveFrom()
    {
        var published = new PriceBook([Standard()]);
        var proposed = Standard(Price(), Price("mistral-7b", input: null, output: null, compute: 0.0004m), Price(from: Mar1, input: 0.2m));

        var error = Assert.Single(PriceValidator.ValidateChange(published, [proposed], Mar1.AddSeconds(1)));

        Assert.Equal("effective_from", error.Field);
        Assert.Empty(PriceValidator.ValidateChange(published, [proposed], Mar1));
    }

    [Fact]
    public void ValidateChange_EditingAPublishedPriceInForce_NamesTheRate()
    {
        var published = new PriceBook([Standard(Price())]);

        var errors = PriceValidator.ValidateChange(published, [Standard(Price(output: 0.5m))], Mar1);

        Assert.Contains(errors, e => e.Field == "output_per_million");
    }

    [Fact]
    public void ValidateChange_RemovingPriceInForceOrChangingCurrency_IsRefused()
    {
        var published = new PriceBook([Standard(Price())]);

        var removed = PriceValidator.ValidateChange(published, [Standard(Price("other", from: Mar1))], Mar1);
        var currency = PriceValidator.ValidateChange(published, [Standard(Price()) with { Currency = "USD" }], Mar1);

        Assert.Contains(removed, e => e.Field == "effective_from" && e.Target.Contains("llama-3-8b", StringComparison.Ordinal));
        Assert.Equal("currency", Assert.Single(currency).Field);
    }

    [Fact]
    public void ValidateChange_ScheduledFuturePrice_MayBeChangedOrWithdrawn()
    {
        var published = new PriceBook([Standard(Price(), Price(from: Mar1, input: 0.2m))]);
        var now = Mar1.AddDays(-1);

        Assert.Empty(PriceValidator.ValidateChange(published, [Standard(Price(), Price(from: Mar1, input: 0.25m))], now));
        Assert.Empty(PriceValidator.ValidateChange(published, [Standard(Price())], now));
        Assert.Empty(PriceValidator.ValidateChange(published, [Standard(Price(), Price(from: Mar1, input: 0.2m)) with { Weight = 3 }], now));
    }

    [Fact]
    public void Iso4217_Table_KnowsRealCodesAndTheirMinorUnits()
    {
        Assert.True(Iso4217.IsKnown("EUR"));
        Assert.True(Iso4217.IsKnown("CHF"));
        Assert.False(Iso4217.IsKnown("ABC"));
        Assert.Equal((2, 0, 3), (Iso4217.MinorUnits("EUR"), Iso4217.MinorUnits("JPY"), Iso4217.MinorUnits("KWD")));
        Assert.All(Iso4217.Codes, c => Assert.Matches("^[A-Z]{3}$", c));
        Assert.InRange(Iso4217.Codes.Count, 150, 200);
    }
}
