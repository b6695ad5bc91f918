using Sovereign.Metering.Pricing;
using static Sovereign.Metering.Tests.Pricing.PricingTestData;

namespace Sovereign.Metering.Tests.Pricing;

public sealed class PriceBookTests
{
    [Fact]
    public void PriceFor_AroundAPriceChange_ReturnsTheVersionInForce()
    {
        var book = new PriceBook([Standard(), Pro()]);

        var before = book.PriceFor("pro", "llama-3-8b", Mar1.AddTicks(-1));
        var at = book.PriceFor("pro", "llama-3-8b", Mar1);
        var later = book.PriceFor("PRO", "llama-3-8b", Mar1.AddYears(3));

        Assert.Equal(0.10m, before.Price.InputPerMillion);
        Assert.Equal("pro:llama-3-8b@2025-01-01T00:00:00.000Z", before.Version);
        Assert.Equal(0.08m, at.Price.InputPerMillion);
        Assert.Equal("pro:llama-3-8b@2025-03-01T00:00:00.000Z", at.Version);
        Assert.Same(at, later);
        Assert.Equal(("CHF", 4, PriorityClass.Interactive), (at.Currency, at.Plan.Weight, at.Plan.Priority));
    }

    [Fact]
    public void PriceFor_BeforeFirstPriceOrUnknownNames_Throws()
    {
        var book = new PriceBook([Standard()]);

        Assert.Throws<KeyNotFoundException>(() => book.PriceFor("standard", "llama-3-8b", Jan1.AddMilliseconds(-1)));
        Assert.Throws<KeyNotFoundException>(() => book.PriceFor("standard", "unknown-model", Jan1));
        Assert.Throws<KeyNotFoundException>(() => book.PriceFor("nope", "llama-3-8b", Jan1));
        Assert.False(book.TryPriceFor("standard", "LLAMA-3-8B", Jan1, out _));
    }

    [Fact]
    public void Constructor_InvalidPlans_ThrowsWithEveryError()
    {
        var bad = Standard() with { Weight = 0, Currency = "EUX" };

        var ex = Assert.Throws<PriceValidationException>(() => new PriceBook([bad]));

        Assert.Equal(["currency", "weight"], ex.Errors.Select(e => e.Field));
    }

    [Fact]
    public void WithPrice_FutureChange_KeepsThePastAndAppliesFromItsTime()
    {
        var book = new PriceBook([Standard()]);
        var now = Mar1;

        var changed = book.WithPrice("standard", Price(from: now.AddDays(1), input: 0.2m), now);

        Assert.Equal(0.15m, changed.PriceFor("standard", "llama-3-8b", now.AddHours(23)).Price.InputPerMillion);
        Assert.Equal(0.2m, changed.PriceFor("standard", "llama-3-8b", now.AddDays(1)).Price.InputPerMillion);
        Assert.Equal(0.15m, book.PriceFor("standard", "llama-3-8b", now.AddDays(2)).Price.InputPerMillion);
    }

    [Fact]
    public void WithPrice_RetroactiveChange_Throws()
    {
        var book = new PriceBook([Standard()]);

        var ex = Assert.Throws<PriceValidationException>(() => book.WithPrice("standard", Price(from: Mar1.AddDays(-1), input: 0.2m), Mar1));

        Assert.Equal("effective_from", Assert.Single(ex.Errors).Field);
    }

    [Fact]
    public void WithPlan_NewPlanStartingNow_IsAdded()
    {
        var book = new PriceBook([Standard()]);

        var changed = book.WithPlan(Pro() with { Prices = [Price(from: Mar1)] }, Mar1);

        Assert.Equal(["standard", "pro"], changed.Plans.Select(p => p.Name));
        Assert.NotNull(changed.FindPlan("Pro"));
    }
}
