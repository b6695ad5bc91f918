using Microsoft.Extensions.Hosting;
using Sovereign.Storage;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The database a server holds, from before its migrations until the process stops. Two servers on one SQLite file,
/// or two servers on one PostgreSQL database that are not one cluster, each kept the tenants' money, keys and prices
/// in their own grains: a key revoked at one was still accepted by the other, and each admitted spend against its own
/// view of a budget. SQLite: one server per file (a lock file the kernel releases with a killed process). PostgreSQL:
/// the members of one cluster (<see cref="SharedDatabaseClaim"/>). The CLI's own readers (audit verify, export,
/// archive) do not hold either; audit verify only asks whether a server holds it (<see cref="AnyServerHoldsAsync"/>),
/// which on SQLite takes the lock for an instant, and a start waits that out (<see cref="LockTries"/>).
/// </summary>
internal sealed class ServerDatabaseLock(TimeProvider? time = null) : IAsyncDisposable
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>The lock file is <c>&lt;database&gt;.server.lock</c>, beside the database.</summary>
    public const string LockName = "server";

    private IAsyncDisposable? _held;
    private SharedDatabaseClaim? _claim;

    /// <summary>
    /// How many times a start tries the SQLite lock before it says another server holds it (<see cref="LockRetryDelay"/>
    /// apart, so about a second in all). <see cref="AnyServerHoldsAsync"/> (<c>sovereign audit verify</c>) holds the
    /// lock for the instant of one open and close; a server holds it until its process ends, so it is still held at the
    /// last try and one server per file holds as before. A start in the probe's instant stopped as if the file were in use.
    /// </summary>
    internal const int LockTries = 10;

    /// <summary>The wait between two of a start's tries of the SQLite lock.</summary>
    internal static readonly TimeSpan LockRetryDelay = TimeSpan.FromMilliseconds(100);

    /// <summary>Takes the SQLite database for this process, or throws <see cref="DataDirectoryInUseException"/>.</summary>
    public async Task TakeSqliteAsync(SqlDatabase database, string databasePath)
    {
        IAsyncDisposable? held;
        try
        {
            held = await TryTakeSqliteAsync(database, _time);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new DatabaseUnusableException(
                $"the data directory {Path.GetDirectoryName(databasePath)} cannot be written ({Reason(ex)}): it must be writable by this user, on a file system mounted " +
                "read-write (--data-dir, Sovereign:DataDirectory). Nothing was changed.", ex);
        }

        _held = held
            ?? throw new DataDirectoryInUseException(
                $"another sovereign server is using the database {databasePath}. Two servers on one SQLite file would each keep their own budgets, " +
                "keys and prices, so a key revoked at one would still work at the other. Stop it, or give this one its own data directory (--data-dir); " +
                "several gateways share PostgreSQL (Sovereign:Database:Provider) as a cluster.");
    }

    /// <summary>
    /// The server's lock on a SQLite file, tried <see cref="LockTries"/> times <see cref="LockRetryDelay"/> apart (a
    /// probe, <see cref="AnyServerHoldsAsync"/>, holds it for an instant); null when it is still held at the last try (a
    /// server runs on the file). For a server's start and for <c>sovereign database copy</c>, which took it once and
    /// refused as if a server ran when it met a probe.
    /// </summary>
    public static async Task<IAsyncDisposable?> TryTakeSqliteAsync(SqlDatabase database, TimeProvider time, CancellationToken cancellationToken = default)
    {
        for (var tries = 1; ; tries++)
        {
            if (await database.TryLockAsync(LockName, cancellationToken) is { } held)
            {
                return held;
            }

            if (tries == LockTries)
            {
                return null;
            }

            await Task.Delay(LockRetryDelay, time, cancellationToken);
        }
    }

    /// <summary>
    /// Takes the PostgreSQL database for this process's cluster (without Redis, for this process alone), or throws
    /// <see cref="DatabaseClaimedException"/> naming the server or cluster that holds it; then checks that it is the
    /// installation's database and, in a cluster, the cluster's (<see cref="CheckIdentityAsync"/>).
    /// </summary>
    /// <param name="database">The database.</param>
    /// <param name="cluster">This server's cluster settings.</param>
    /// <param name="rebind">
    /// <c>Sovereign:Database:Rebind</c>: the identity a refusal named, given by the operator to make this database the
    /// installation's (and the cluster's) after a deliberate restore. Ignored when it names another identity.
    /// </param>
    /// <returns>The new identity when this start rebound the database, else null.</returns>
    public async Task<DatabaseIdentity?> TakePostgreSqlAsync(SqlDatabase database, Cluster.Hosting.SovereignClusterOptions cluster, string? rebind = null)
    {
        if (cluster.Role == Cluster.Hosting.ServerRole.Node)
        {
            // A node is always a cluster member (it needs Redis), and may hold a role that only appends to the audit
            // tables (Sovereign:Cluster:NodeDatabaseConnectionString): the gateways, which keep the money, claim.
            return null;
        }

        var host = System.Net.Dns.GetHostName();
        var process = Environment.ProcessId;
        if (!cluster.IsDistributed)
        {
            _held = _claim = await SharedDatabaseClaim.TakeAsync(database, $"server:{host}:{process}:{Guid.NewGuid():N}", $"a sovereign server without a cluster (host {host}, process {process})");
        }
        else
        {
            // The cluster is its Redis as much as its id: two clusters of one ClusterId on two Redis servers claimed the
            // database under one name and both ran. The mark in Redis tells them apart; members of an earlier version
            // claimed "cluster:<ClusterId>" and stay admitted (a rolling upgrade).
            var (mark, redis) = await Cluster.Hosting.ClusterRedisMark.GetOrCreateAsync(cluster);
            _held = _claim = await SharedDatabaseClaim.TakeAsync(database, $"cluster:{cluster.ClusterId}:{mark}",
                $"the cluster '{cluster.ClusterId}' on Redis {redis} (a member on host {host}, process {process})", ["cluster:" + cluster.ClusterId]);
        }

        try
        {
            return await CheckIdentityAsync(database, cluster, rebind);
        }
        catch
        {
            await _claim.DisposeAsync();
            _held = _claim = null;
            throw;
        }
    }

    /// <summary>
    /// The claim tells apart servers on one database; it cannot tell one database from its copy. A dump restored into
    /// another database (or beside the original, on another server) and started while the original still served was a
    /// second installation of the same tenants (explorer32, session 50: a key revoked after the dump answered 200 there,
    /// a budget spent twice); and a restored database could be joined by members of the old cluster, each tenant's
    /// grains keeping its money from whichever database the member that activated them used. The database records its
    /// identity and where it lives (<see cref="DatabaseIdentity"/>): a copy is refused, and in a cluster the identity is
    /// recorded in Redis by the first member, so a member on another database than the cluster's is refused too. Both
    /// refusals name the identity and <c>Sovereign__Database__Rebind</c>, the operator's way out after a deliberate
    /// restore: a new identity for this database, recorded in Redis in place of the old one (fail closed: members still
    /// on the old database are refused at their next start).
    /// </summary>
    private static async Task<DatabaseIdentity?> CheckIdentityAsync(SqlDatabase database, Cluster.Hosting.SovereignClusterOptions cluster, string? rebind)
    {
        var identity = await DatabaseIdentity.ReadOrCreateAsync(database);
        var rebinding = !string.IsNullOrWhiteSpace(rebind) && string.Equals(rebind.Trim(), identity.Id, StringComparison.Ordinal);
        if (rebinding)
        {
            identity = await DatabaseIdentity.RebindAsync(database, identity.Id);
        }
        else if (identity.IsCopy)
        {
            throw new DatabaseIdentityException(
                $"{database.Location} is a copy of another database: its identity {identity.Id} was recorded on {identity.Created:yyyy-MM-dd HH:mm:ss} UTC " +
                $"where that database lived (PostgreSQL system/database oid {identity.RecordedAt}), and this one lives elsewhere ({identity.LivesAt}): " +
                "restored from a dump, or copied. Started while the original still serves, the two would each keep the tenants' budgets, keys and prices " +
                "(a budget spent twice, a key revoked at one still accepted at the other). If this is a deliberate restore and every server on the original " +
                $"database is stopped for good, start one gateway once with Sovereign__Database__Rebind={identity.Id} (Sovereign:Database:Rebind): it records " +
                "this database as the installation's (and, in a cluster, the cluster's in Redis). Nothing was changed.");
        }

        if (cluster.IsDistributed)
        {
            var (recorded, redis) = await Cluster.Hosting.ClusterRedisMark.BindDatabaseAsync(cluster, identity.Id, replace: rebinding);
            if (!string.Equals(recorded, identity.Id, StringComparison.Ordinal))
            {
                throw new DatabaseIdentityException(
                    $"the cluster '{cluster.ClusterId}' (Redis {redis}) uses the database whose identity is {recorded}, and this member's database " +
                    $"{database.Location} is {identity.Id}: another database than the other members'. A member on another database keeps budgets, keys and " +
                    "prices apart from them (a budget spent twice, a key revoked at one still accepted at the other). Correct Sovereign:Database:ConnectionString " +
                    "to the cluster's database; or, if this database is to be the cluster's from now on (a deliberate restore, with every member on the old " +
                    $"database stopped), start one gateway once with Sovereign__Database__Rebind={identity.Id} (Sovereign:Database:Rebind). Nothing was changed.");
            }
        }

        return rebinding ? identity : null;
    }

    /// <summary>
    /// Takes a PostgreSQL claim again if its connection was lost (see <see cref="SharedDatabaseClaim.RenewAsync"/>); false
    /// when nothing was lost or there is no such claim. Throws <see cref="DatabaseClaimedException"/> when another server
    /// took the database meanwhile.
    /// </summary>
    public Task<bool> RenewAsync(CancellationToken cancellationToken) => _claim?.RenewAsync(cancellationToken) ?? Task.FromResult(false);

    public ValueTask DisposeAsync() => _held?.DisposeAsync() ?? ValueTask.CompletedTask;

    /// <summary>
    /// Whether a server holds <paramref name="database"/> now (null when that cannot be told): on SQLite its server lock
    /// (<see cref="LockName"/>) is taken; on PostgreSQL a claimant's lock in <c>sovereign_servers</c> is held
    /// (<see cref="SharedDatabaseClaim.AnyHeldAsync"/>). An open decision is then a request running (or, in a cluster,
    /// one a stopped member left, which the gateways close); with none, every open decision was interrupted and is not
    /// closed yet (a server's next start closes them). The SQLite probe takes the lock for an instant (flock has no
    /// test that takes nothing, and /proc/locks is Linux's alone): a server starting in that instant finds it taken and
    /// tries again (<see cref="LockTries"/>), and callers ask only when decisions are open.
    /// </summary>
    public static async Task<bool?> AnyServerHoldsAsync(SqlDatabase database, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(database);
        try
        {
            if (database.Provider == SqlProvider.PostgreSql)
            {
                return await SharedDatabaseClaim.AnyHeldAsync(database, cancellationToken);
            }

            await using var probe = await database.TryLockAsync(LockName, cancellationToken);
            return probe is null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Data.Common.DbException)
        {
            return null; // a read-only copy, or no right to the lock: not known
        }
    }

    private static string Reason(Exception exception) => exception.Message.TrimEnd().TrimEnd('.');
}

/// <summary>
/// Keeps a PostgreSQL claim while the server runs: PostgreSQL drops a session's locks when it restarts, and a server
/// started in that window (one that is not of this cluster) would find the database free. Checked every
/// <see cref="Interval"/>; if another server holds the database by then, this one stops (fail closed: two servers that
/// are not one cluster would each keep their own budgets), logging why.
/// </summary>
internal sealed partial class DatabaseClaimKeeper(ServerDatabaseLock serverLock, IHostApplicationLifetime lifetime, ILogger<DatabaseClaimKeeper> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(15);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                if (await serverLock.RenewAsync(stoppingToken))
                {
                    ClaimRenewed(logger);
                }
            }
            catch (DatabaseClaimedException ex)
            {
                ClaimLost(logger, ex.Message);
                lifetime.StopApplication();
                return;
            }
            catch (Exception ex) when (ex is System.Data.Common.DbException or TimeoutException or IOException)
            {
                // Still down: the next tick tries again (requests meanwhile get 503 storage_unavailable).
                ClaimNotRenewed(logger, ex.Message);
            }
        }
    }

    [LoggerMessage(EventId = 3040, Level = LogLevel.Warning, Message = "The connection holding this server's claim on the database was lost and the claim was taken again")]
    private static partial void ClaimRenewed(ILogger logger);

    [LoggerMessage(EventId = 3041, Level = LogLevel.Critical, Message = "This server stops: while its claim on the database was lost, another server took it. {Reason}")]
    private static partial void ClaimLost(ILogger logger, string reason);

    [LoggerMessage(EventId = 3042, Level = LogLevel.Warning, Message = "The claim on the database could not be taken again yet: {Reason}")]
    private static partial void ClaimNotRenewed(ILogger logger, string reason);
}

/// <summary>Another server holds this SQLite database; the start stops (a setting to change: <c>--data-dir</c>).</summary>
public sealed class DataDirectoryInUseException(string message) : InvalidOperationException(message);

/// <summary>The database cannot be opened or written (read-only, full, damaged); the start stops without changing it.</summary>
public sealed class DatabaseUnusableException(string message, Exception inner) : IOException(message, inner);
