using Sovereign.Cluster.Hosting;
using Sovereign.Metering.Pricing;

namespace Sovereign.Cluster.Grains;

/// <summary>
/// Holds the newest price-book version in the cluster. It starts from the database's version and re-reads it every
/// <see cref="StoreCheckInterval"/>, so a change whose gateway died between its save and its publish still reaches
/// every gateway; a publish makes a change known at once.
/// </summary>
internal sealed class PriceBookGrain(PriceBookProvider prices) : Grain, IPriceBookGrain
{
    /// <summary>How often the grain reads the stored version itself (one small query for the whole cluster).</summary>
    public static readonly TimeSpan StoreCheckInterval = TimeSpan.FromSeconds(10);

    private long _version;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        await StorageFailures.ActivateAsync(async () => _version = await prices.ReadStoredVersionAsync(cancellationToken));
        this.RegisterGrainTimer(ReadStoreAsync, new GrainTimerCreationOptions(StoreCheckInterval, StoreCheckInterval) { Interleave = true });
    }

    public Task<long> GetVersionAsync() => Task.FromResult(_version);

    public Task PublishedAsync(long version)
    {
        _version = Math.Max(_version, version);
        return Task.CompletedTask;
    }

    /// <summary>
    /// One read of the stored version. A database that cannot be read (an outage: PostgreSQL stopped or restarting) is
    /// skipped, and the next tick reads again: thrown, the exception reached Orleans' timer, which logged it with the
    /// driver's stack trace every 10 s of an outage (the gateway logs an outage once, event 4160), so a test of the
    /// outage failed whenever the tick fell inside it.
    /// </summary>
    internal async Task ReadStoreAsync(CancellationToken cancellationToken)
    {
        try
        {
            var stored = await prices.ReadStoredVersionAsync(cancellationToken);
            _version = Math.Max(_version, stored);
        }
        catch (System.Data.Common.DbException)
        {
            // Unread this time; a change published meanwhile still reaches every gateway through PublishedAsync.
        }
    }
}
