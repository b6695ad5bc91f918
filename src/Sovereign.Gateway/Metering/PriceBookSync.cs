using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Cluster.Hosting;
using Sovereign.Metering.Pricing;

namespace Sovereign.Gateway.Metering;

/// <summary>
/// Keeps this process's price book the cluster's newest. A change saved here is published to the price-book grain
/// at once (<see cref="PublishAsync"/>); every <see cref="Interval"/> this service asks the grain for the newest
/// version and reloads the book from the database only when this process is behind. A request never waits for it:
/// it reads the book in memory once, at admission, and keeps that book's price until it settles.
/// </summary>
internal sealed partial class PriceBookSync(PriceBookProvider prices, IGrainFactory grains, IOptions<SovereignClusterOptions> cluster, ILogger<PriceBookSync> logger) : BackgroundService
{
    /// <summary>How often the grain is asked: the most a change made at another gateway takes to apply here.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);


    /// <summary>Tells the cluster that this process saved <paramref name="book"/>; a failure only delays the others.</summary>
    public static async Task PublishAsync(IGrainFactory grains, PriceBook book, ILogger logger)
    {
        try
        {
            await grains.GetGrain<IPriceBookGrain>(IPriceBookGrain.Key).PublishedAsync(book.Version);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Saved already; the grain reads the stored version itself within its check interval.
            LogPublishFailed(logger, book.Version, ex.Message);
        }
    }

    /// <summary>One comparison with the grain; true when the book was reloaded.</summary>
    public async Task<bool> SyncOnceAsync(CancellationToken cancellationToken)
    {
        var grain = grains.GetGrain<IPriceBookGrain>(IPriceBookGrain.Key);
        var newest = await grain.GetVersionAsync();
        var mine = prices.Current.Version;
        if (newest < mine)
        {
            // The grain was activated afresh before it read a change this process saved.
            await grain.PublishedAsync(mine);
            return false;
        }

        if (!await prices.RefreshAsync(newest, cancellationToken))
        {
            return false;
        }

        LogReloaded(logger, mine, prices.Current.Version);
        return true;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (cluster.Value is { IsDistributed: true, Role: ServerRole.Node })
        {
            // A node prices nothing: the gateway that relayed the work reserved and settles it.
            return;
        }

        // A member may be leaving or the database restarting: try again at the next tick, and say so once.
        await PeriodicRefresh.RunAsync(Interval, SyncOnceAsync, ex => LogSyncFailed(logger, ex.Message), stoppingToken);
    }

    [LoggerMessage(EventId = 8201, Level = LogLevel.Information, Message = "Price book version {Version} loaded (it was {Previous}): a price changed at another gateway")]
    private static partial void LogReloaded(ILogger logger, long previous, long version);

    [LoggerMessage(EventId = 8202, Level = LogLevel.Warning, Message = "Could not compare this gateway's price book with the cluster's (retrying every second): {Problem}")]
    private static partial void LogSyncFailed(ILogger logger, string problem);

    [LoggerMessage(EventId = 8203, Level = LogLevel.Warning, Message = "Price book version {Version} was saved but not published to the cluster (the others learn it within 10 s): {Problem}")]
    private static partial void LogPublishFailed(ILogger logger, long version, string problem);
}
