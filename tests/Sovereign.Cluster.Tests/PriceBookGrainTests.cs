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

/// <summary>
/// The grain's timer re-reads the stored version every 10 s. During a database outage the read threw, and Orleans'
/// timer logged it with the driver's stack trace ("Caught and ignored exception thrown from timer callback", Npgsql
/// 57P01 when PostgreSQL was stopped under an open connection) on every tick of the outage, beside the gateway's one
/// line for it (4160): <c>DatabaseOutageTests</c> failed whenever a tick fell inside its outage. The read is skipped.
/// </summary>
public sealed class PriceBookGrainOutageTests
{
    [Fact]
    public async Task TheTimersRead_OnADatabaseThatCannotBeReached_IsSkipped_NotThrownToTheTimer()
    {
        var port = Sovereign.Tests.LoopbackPorts.Unused(); // nothing listens there: every connection is refused
        var unreachable = Sovereign.Storage.SqlDatabase.PostgreSql($"Host=127.0.0.1;Port={port};Username=sovereign;Database=sovereign;Timeout=3;Pooling=false");
        var grain = new PriceBookGrain(new PriceBookProvider(new PriceBookStore(unreachable)));

        await grain.ReadStoreAsync(CancellationToken.None);

        Assert.Equal(0, await grain.GetVersionAsync());
    }
}
