using Sovereign.Cluster.Grains;
using Sovereign.Metering.Pricing;

namespace Sovereign.Cluster.Tests;

/// <summary>The cluster's price-book version: from the database at activation, then the newest any process published.</summary>
[Collection(ClusterCollection.Name)]
public sealed class PriceBookGrainTests(ClusterFixture fixture)
{
    [Fact]
    public async Task StartsFromTheStoredVersion_KeepsTheNewestPublished_AndReadsTheStoreAgainAfterReactivation()
    {
        var grain = fixture.Grains.GetGrain<IPriceBookGrain>(IPriceBookGrain.Key);
        var stored = await fixture.Prices.ReadStoredVersionAsync();
        Assert.True(stored > 0, "the fixture saved its plans");
        Assert.Equal(stored, await grain.GetVersionAsync());

        // A process saved a change: every other process learns it at its next check.
        var now = DateTimeOffset.FromUnixTimeMilliseconds(fixture.Clock.GetUtcNow().ToUnixTimeMilliseconds());
        var saved = await fixture.Prices.UpdateAsync(book => book.WithPlan(new Plan { Name = "grain-test", Currency = "EUR" }, now), now);
        await grain.PublishedAsync(saved.Version);
        Assert.Equal((stored + 1, stored + 1), (saved.Version, await grain.GetVersionAsync()));

        // A late publish of an older version changes nothing.
        await grain.PublishedAsync(stored);
        Assert.Equal(stored + 1, await grain.GetVersionAsync());

        // A change whose publisher died before publishing: a fresh activation starts from the database.
        var unpublished = await fixture.Prices.UpdateAsync(book => book.WithPlan(new Plan { Name = "grain-test-2", Currency = "EUR" }, now), now);
        await fixture.DeactivateIdleGrainsAsync();
        Assert.Equal(unpublished.Version, await grain.GetVersionAsync());
    }
}
