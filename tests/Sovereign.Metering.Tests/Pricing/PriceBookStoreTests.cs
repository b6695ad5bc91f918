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
        var fine = Price("tiny", input: 0.000000123456789m, output: 12345.6789m, compute: 0.0000001m, cached: 0.00000001m);
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
    public async Task MigrateAsync_BookSavedBeforeCachedPricing_LoadsWithCachedTokensAtTheInputRate()
    {
        using var db = new TempDatabase();
        await db.Database.MigrateAsync([PriceBookStore.Migrations[0]]);
        await using (var connection = await db.Database.OpenAsync())
        {
            using var command = connection.CreateCommand();
            command.CommandText =
                "INSERT INTO metering_plans (name, position, currency, weight, priority) VALUES ('standard', 0, 'EUR', 1, 'Batch');" +
                "INSERT INTO metering_prices (plan_name, model, effective_from, input_per_million, output_per_million, per_compute_second) " +
                "VALUES ('standard', 'llama-3-8b', " + Jan1.ToUnixTimeMilliseconds() + ", '0.15', '0.6', NULL)";
            await command.ExecuteNonQueryAsync();
        }

        var store = new PriceBookStore(db.Database);
        await store.MigrateAsync();
        var price = (await store.LoadAsync()).PriceFor("standard", "llama-3-8b", Mar1).Price;

        Assert.Null(price.CachedInputPerMillion);
        Assert.Equal(0.15m, price.EffectiveCachedInputPerMillion);
        Assert.Equal(CostCalculator.ExactCost(price, 1000, 0, 0m), CostCalculator.ExactCost(price, 1000, 0, 0m, cachedPromptTokens: 1000));
    }

    [Fact]
    public async Task SaveAsync_ChangingTheCachedRateOfAPriceInForce_IsRefused()
    {
        using var db = new TempDatabase();
        var store = new PriceBookStore(db.Database);
        await store.MigrateAsync();
        await store.SaveAsync(new PriceBook([Standard(Price())]), Jan1);

        var ex = await Assert.ThrowsAsync<PriceValidationException>(() => store.SaveAsync(new PriceBook([Standard(Price(cached: 0.01m))]), Mar1));

        Assert.Equal("cached_input_per_million", Assert.Single(ex.Errors).Field);
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

    [Fact]
    public async Task UpdateAsync_ChangesTheStoredBook_NotAStaleCopy_AndEveryChangeIsTheNextVersion()
    {
        // Two gateways over one database; each loaded the book before the other's change.
        using var db = new TempDatabase();
        var store = new PriceBookStore(db.Database);
        await store.MigrateAsync();
        var here = new PriceBookProvider(store);
        var there = new PriceBookProvider(store);
        await here.ReloadAsync();
        await there.ReloadAsync();
        Assert.Equal((0L, 0L), (here.Current.Version, await store.ReadVersionAsync()));

        var first = await here.UpdateAsync(book => book.WithPlan(Standard(), Jan1), Jan1);
        var second = await there.UpdateAsync(book => book.WithPlan(Pro(), Jan1), Jan1);

        // The second change was applied to the book the first one saved: both plans are in force.
        Assert.Equal((1L, 2L), (first.Version, second.Version));
        var stored = await store.LoadAsync();
        Assert.Equal(2L, stored.Version);
        Assert.Equal(["standard", "pro"], stored.Plans.Select(p => p.Name));
        Assert.Equal(["standard", "pro"], there.Current.Plans.Select(p => p.Name));

        // "here" is behind until it learns the newest version; then it reloads once.
        Assert.Null(here.Current.FindPlan("pro"));
        Assert.False(await here.RefreshAsync(1));
        Assert.True(await here.RefreshAsync(await store.ReadVersionAsync()));
        Assert.Equal((2L, true), (here.Current.Version, here.Current.FindPlan("pro") is not null));
        Assert.False(await here.RefreshAsync(2));
    }

    [Fact]
    public async Task UpdateAsync_ARefusedChange_WritesNothing_AndKeepsTheVersion()
    {
        using var db = new TempDatabase();
        var store = new PriceBookStore(db.Database);
        await store.MigrateAsync();
        await store.SaveAsync(new PriceBook([Standard(Price())]), Jan1);

        await Assert.ThrowsAsync<PriceValidationException>(() => store.UpdateAsync(_ => new PriceBook([Standard(Price(input: 9m))]), Mar1));

        Assert.Equal(1L, await store.ReadVersionAsync());
        Assert.Equal(1L, (await store.LoadAsync()).Version);
    }

    [Fact]
    public async Task PriceBookProvider_NeverGoesBackToAnOlderVersion()
    {
        using var db = new TempDatabase();
        var store = new PriceBookStore(db.Database);
        await store.MigrateAsync();
        var provider = new PriceBookProvider(store);
        var published = new List<long>();
        var publishing = new PriceBookProvider(store, book =>
        {
            published.Add(book.Version);
            return Task.CompletedTask;
        });

        await publishing.UpdateAsync(book => book.WithPlan(Standard(), Jan1), Jan1);
        await provider.ReloadAsync();
        await publishing.UpdateAsync(book => book.WithPlan(Pro(), Jan1), Jan1);

        Assert.Equal([1L, 2L], published);
        Assert.Equal(1L, provider.Current.Version);
        Assert.True(await provider.RefreshAsync(2));
        Assert.Equal(2L, provider.Current.Version);
    }
}
