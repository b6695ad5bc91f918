using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Clustering.Redis;

namespace Sovereign.Cluster.Hosting;

/// <summary>What a member last found when it read the cluster's membership table.</summary>
public enum MembershipTableState
{
    /// <summary>Read, or not looked at yet (and always on one machine).</summary>
    Readable,

    /// <summary>Could not be read (Redis down or slow): members keep their last view and resume when it is back.</summary>
    Unreadable,

    /// <summary>Redis answers but the table is gone (Redis restarted empty): Orleans never creates it again while members run.</summary>
    Lost,
}

/// <summary>
/// Reads the membership table (Redis) every <see cref="Interval"/> in a Redis cluster. A Redis that comes back empty
/// (no persistence, a fresh instance) has no table, and Orleans creates it only when a silo starts: every member
/// retries for ever, load reports stop and every request is answered 503 until each member restarts. This tells it
/// (event 3050, Critical; <c>/ready</c> answers 503 <c>membership_lost</c>, <c>cluster status</c> says why) and, after
/// <see cref="SovereignClusterOptions.MembershipLostExitSeconds"/>, stops the process so that its supervisor starts it
/// again (exit 75, after the server has drained its requests): the first member to start creates the table and the
/// others join it.
/// </summary>
public sealed partial class MembershipTableWatch(
    IServiceProvider services,
    IOptions<SovereignClusterOptions> options,
    IHostApplicationLifetime lifetime,
    TimeProvider time,
    ILogger<MembershipTableWatch> logger) : BackgroundService
{
    /// <summary>How often the table is read.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    private volatile string? _problem;
    private int _state;

    /// <summary>What the last read found.</summary>
    public MembershipTableState State => (MembershipTableState)Volatile.Read(ref _state);

    /// <summary>What is wrong, for <c>/ready</c> and <c>cluster status</c> (null while the table reads).</summary>
    public string? Problem => _problem;

    /// <summary>True once this watch stopped the process because the table was lost: <c>serve</c> then exits 75.</summary>
    public bool StoppedForLostTable { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.IsDistributed || services.GetService<IMembershipTable>() is not { } table)
        {
            return;
        }

        var exitAfter = TimeSpan.FromSeconds(Math.Max(0, options.Value.MembershipLostExitSeconds));
        DateTimeOffset? lostSince = null;
        try
        {
            using var timer = new PeriodicTimer(Interval, time);
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                if (await ReadAsync(table) is not MembershipTableState.Lost)
                {
                    lostSince = null;
                    continue;
                }

                var now = time.GetUtcNow();
                lostSince = lostSince is { } since ? WallClock.WaitStart(now, since) : now; // a step back restarts the wait
                if (options.Value.MembershipLostExitSeconds > 0 && now - lostSince >= exitAfter)
                {
                    LogStoppingForLostTable(logger, exitAfter.TotalSeconds);
                    StoppedForLostTable = true;
                    lifetime.StopApplication();

                    // The server drains its requests first; Orleans' own stop then waits on the table it cannot write
                    // (about a minute per lifecycle stage, measured), so past the host's shutdown timeout the process ends here.
                    var drain = services.GetService<IOptions<HostOptions>>()?.Value.ShutdownTimeout ?? TimeSpan.FromSeconds(30);
                    _ = Task.Run(async () =>
                    {
                        await Task.Delay(drain + TimeSpan.FromSeconds(5), time, CancellationToken.None);
                        await ForgetOwnActivationsAsync();
                        LogExitingNow(logger);
                        await Task.Delay(TimeSpan.FromSeconds(1), time, CancellationToken.None); // the console logger writes on its own thread
                        ExitNow(LostTableExitCode);
                    }, CancellationToken.None);
                    return;
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One read of the table; records and logs (once per change) what it found.</summary>
    internal async Task<MembershipTableState> ReadAsync(IMembershipTable table)
    {
        MembershipTableState found;
        string? problem = null;
        try
        {
            await table.ReadAllAsync();
            found = MembershipTableState.Readable;
        }
        catch (RedisClusteringException ex) when (IsLost(ex))
        {
            found = MembershipTableState.Lost;
            problem = "Redis answers but the cluster's membership table is gone (Redis restarted empty, or the key was deleted or expired); "
                + "Orleans creates it again only when a member starts: "
                + (options.Value.MembershipLostExitSeconds > 0
                    ? $"each member stops {options.Value.MembershipLostExitSeconds:0.#} s after it sees this (exit 75) for its supervisor to start it again"
                    : "restart every member, gateways first (Sovereign:Cluster:MembershipLostExitSeconds is 0)")
                + ". Keep Redis's data across its restarts (appendonly yes).";
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            found = MembershipTableState.Unreadable;
            problem = $"The cluster's membership table (Sovereign:Cluster:Redis) could not be read: {ex.GetType().Name}.";
        }

        var previous = (MembershipTableState)Interlocked.Exchange(ref _state, (int)found);
        _problem = problem;
        if (found != previous)
        {
            switch (found)
            {
                case MembershipTableState.Lost:
                    LogTableLost(logger, problem!);
                    break;
                case MembershipTableState.Unreadable:
                    LogTableUnreadable(logger, problem!);
                    break;
                default:
                    LogTableReadable(logger);
                    break;
            }
        }

        return found;
    }

    /// <summary>
    /// Removes the grain directory's entries (in Redis too) that name this silo, which registered them after Redis came
    /// back empty: the new membership table never lists this silo, so Orleans never takes it for dead, and a member
    /// started again sent those grains' calls to it for minutes (503 <c>cluster_unavailable</c>). Each entry is removed
    /// only if it still holds what was read; nothing that names another silo is touched.
    /// </summary>
    private async Task ForgetOwnActivationsAsync()
    {
        try
        {
            if (services.GetService<ILocalSiloDetails>()?.SiloAddress is not { } silo || options.Value.Redis is not { } address)
            {
                return;
            }

            await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(address);
            var database = redis.GetDatabase();
            var removed = 0;
            foreach (var endpoint in redis.GetEndPoints())
            {
                var server = redis.GetServer(endpoint);
                if (server.IsReplica)
                {
                    continue;
                }

                await foreach (var key in server.KeysAsync(database.Database, $"{options.Value.ClusterId}/directory/*"))
                {
                    if ((string?)await database.StringGetAsync(key) is { } entry && NamesSilo(entry, silo))
                    {
                        var deleted = await database.ScriptEvaluateAsync(
                            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", [key], [entry]);
                        removed += (int)deleted;
                    }
                }
            }

            LogForgotActivations(logger, removed);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException or System.Text.Json.JsonException)
        {
            LogForgetActivationsFailed(logger, ex);
        }
    }

    /// <summary>Whether a directory entry (Orleans' <c>GrainAddress</c> as JSON) places its grain on <paramref name="silo"/>.</summary>
    internal static bool NamesSilo(string entry, SiloAddress silo)
    {
        using var document = System.Text.Json.JsonDocument.Parse(entry);
        return document.RootElement.TryGetProperty("SiloAddress", out var named) && named.ValueKind == System.Text.Json.JsonValueKind.String
            && (named.GetString() == silo.ToParsableString() || named.GetString() == silo.ToString());
    }

    /// <summary>The exit status of a member stopped for a lost table (EX_TEMPFAIL: start it again).</summary>
    public const int LostTableExitCode = 75;

    /// <summary>
    /// Ends the process at once with <paramref name="code"/>: <see cref="Environment.Exit(int)"/> would wait for the host,
    /// which waits for Orleans' stop (the console lifetime blocks process exit until the host is disposed).
    /// </summary>
    internal static void ExitNow(int code, string reason = "The cluster's membership table is gone; stopping so that this member is started again.")
    {
        if (OperatingSystem.IsWindows())
        {
            Environment.FailFast(reason);
        }

        ExitProcess(code);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "_exit")]
    private static extern void ExitProcess(int status);

    /// <summary>Orleans' Redis table says its version key is missing: the hash that holds the table is gone.</summary>
    internal static bool IsLost(RedisClusteringException exception) =>
        exception.Message.Contains("version is missing", StringComparison.OrdinalIgnoreCase);

    [LoggerMessage(EventId = 3050, EventName = "MembershipTableLost", Level = LogLevel.Critical, Message = "{Problem}")]
    private static partial void LogTableLost(ILogger logger, string problem);

    [LoggerMessage(EventId = 3051, EventName = "MembershipTableLostStopping", Level = LogLevel.Critical,
        Message = "The cluster's membership table has been gone for {Seconds} s: stopping this member (exit 75) so that its supervisor starts it again and it joins a new table")]
    private static partial void LogStoppingForLostTable(ILogger logger, double seconds);

    [LoggerMessage(EventId = 3054, EventName = "MembershipTableLostExiting", Level = LogLevel.Critical,
        Message = "Orleans has not stopped within the host's shutdown timeout (it waits on the lost membership table): exiting now with status 75")]
    private static partial void LogExitingNow(ILogger logger);

    [LoggerMessage(EventId = 3055, EventName = "MembershipTableLostDirectoryCleared", Level = LogLevel.Information,
        Message = "Removed {Count} grain directory entries that placed grains on this member, so that the members started again do not wait for it")]
    private static partial void LogForgotActivations(ILogger logger, int count);

    [LoggerMessage(EventId = 3056, EventName = "MembershipTableLostDirectoryNotCleared", Level = LogLevel.Warning,
        Message = "The grain directory's entries naming this member could not be removed: members started again may answer 503 for its grains until those entries go")]
    private static partial void LogForgetActivationsFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3052, EventName = "MembershipTableUnreadable", Level = LogLevel.Warning, Message = "{Problem} Members keep their last view until it reads again")]
    private static partial void LogTableUnreadable(ILogger logger, string problem);

    [LoggerMessage(EventId = 3053, EventName = "MembershipTableReadable", Level = LogLevel.Information, Message = "The cluster's membership table reads again")]
    private static partial void LogTableReadable(ILogger logger);
}
