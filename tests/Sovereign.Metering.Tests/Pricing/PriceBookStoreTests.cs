using Sovereign.Metering.Pricing;
using Sovereign.Metering.Tests.Ledger;
using static Sovereign.Metering.Tests.Pricing.PricingTestData;

namespace Sovereign.Metering.Tests.Pricing;

public sealed class PriceBookStoreTests
{
    [Fact]
    public async Task LoadAsync_NothingSaved_ReturnsEmptyBook()
    {
        using var db = new TempDatabase();
        var store = new PriceBookStore(db.Database);
        await store.MigrateAsync();

        Assert.Empty((await store.LoadAsync()).Plans);
    }

    [Fact]
    public async Task SaveAsync_ThenLoadAsync_RoundTripsPlansAndExactRates()
    {
        using var db = new TempDatabase();
        var store = new PriceBookStore(db.Database);
        await store.MigrateAsync();
        var fine = Price("tiny", input: 0.000000123456789m, output: 12345.6789m, compute: 0.0000001m);
        var book = new PriceBook([Standard(), Pro() with { Prices = [.. Pro().Prices, fine] }]);

        await store.SaveAsync(book, Jan1);
        var loaded = await store.LoadAsync();

        Assert.Equal(book.Plans.Select(p => (p.Name, p.Currency, p.Weight, p.Priority)), loaded.Plans.Select(p => (p.Name, p.Currency, p.Weight, p.Priority)));
        foreach (var plan in book.Plans)
        {
            var expected = plan.Prices.OrderBy(p => p.Model, StringComparer.Ordinal).ThenBy(p => p.EffectiveFrom);
            Assert.Equal(expected, loaded.FindPlan(plan.Name)!.Prices);
        }

        Assert.Equal(book.PriceFor("pro", "llama-3-8b", Mar1).Version, loaded.PriceFor("pro", "llama-3-8b", Mar1).Version);
    }

    [Fact]
    public async Task SaveAsync_RetroactiveChange_IsRefusedAndNothingChanges()
    {
        using var db = new TempDatabase();
        var store = new PriceBookStore(db.Database);
        await store.MigrateAsync();
        await store.SaveAsync(new PriceBook([Standard(Price())]), Jan1);

        var ex = await Assert.ThrowsAsync<PriceValidationException>(() => store.SaveAsync(new PriceBook([Standard(Price(input: 9m))]), Mar1));

        Assert.Equal("input_per_million", Assert.Single(ex.Errors).Field);
        Assert.Equal(0.15m, (await store.LoadAsync()).PriceFor("standard", "llama-3-8b", Mar1).Price.InputPerMillion);
    }

    [Fact]
    public async Task SaveAsync_FuturePriceChange_IsSavedAndAppliesFromItsTime()
    {
        using var db = new TempDatabase();
        var store = new PriceBookStore(db.Database);
        await store.MigrateAsync();
        var published = new PriceBook([Standard(Price())]);
        await store.SaveAsync(published, Jan1);

        await store.SaveAsync(published.WithPrice("standard", Price(from: Mar1, input: 0.2m), Mar1.AddDays(-3)), Mar1.AddDays(-3));

        var loaded = await store.LoadAsync();
        Assert.Equal(0.15m, loaded.PriceFor("standard", "llama-3-8b", Mar1.AddMilliseconds(-1)).Price.InputPerMillion);
        Assert.Equal(0.2m, loaded.PriceFor("standard", "llama-3-8b", Mar1).Price.InputPerMillion);
    }
}
