using Sovereign.Storage;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The database a server holds, from before its migrations until the process stops. Two servers on one SQLite file,
/// or two servers on one PostgreSQL database that are not one cluster, each kept the tenants' money, keys and prices
/// in their own grains: a key revoked at one was still accepted by the other, and each admitted spend against its own
/// view of a budget. SQLite: one server per file (a lock file the kernel releases with a killed process). PostgreSQL:
/// the members of one cluster (<see cref="SharedDatabaseClaim"/>). The CLI's own readers (audit verify, export,
/// archive) take neither.
/// </summary>
internal sealed class ServerDatabaseLock : IAsyncDisposable
{
    /// <summary>The lock file is <c>&lt;database&gt;.server.lock</c>, beside the database.</summary>
    public const string LockName = "server";

    private IAsyncDisposable? _held;

    /// <summary>Takes the SQLite database for this process, or throws <see cref="DataDirectoryInUseException"/>.</summary>
    public async Task TakeSqliteAsync(SqlDatabase database, string databasePath)
    {
        IAsyncDisposable? held;
        try
        {
            held = await database.TryLockAsync(LockName);
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
    /// Takes the PostgreSQL database for this process's cluster (without Redis, for this process alone), or throws
    /// <see cref="DatabaseClaimedException"/> naming the server or cluster that holds it.
    /// </summary>
    public async Task TakePostgreSqlAsync(SqlDatabase database, Cluster.Hosting.SovereignClusterOptions cluster)
    {
        if (cluster.Role == Cluster.Hosting.ServerRole.Node)
        {
            // A node is always a cluster member (it needs Redis), and may hold a role that only appends to the audit
            // tables (Sovereign:Cluster:NodeDatabaseConnectionString): the gateways, which keep the money, claim.
            return;
        }

        var host = System.Net.Dns.GetHostName();
        var process = Environment.ProcessId;
        var (claimant, description) = cluster.IsDistributed
            ? ("cluster:" + cluster.ClusterId, $"the cluster '{cluster.ClusterId}' (a member on host {host}, process {process})")
            : ($"server:{host}:{process}:{Guid.NewGuid():N}", $"a sovereign server without a cluster (host {host}, process {process})");
        _held = await SharedDatabaseClaim.TakeAsync(database, claimant, description);
    }

    public ValueTask DisposeAsync() => _held?.DisposeAsync() ?? ValueTask.CompletedTask;

    private static string Reason(Exception exception) => exception.Message.TrimEnd().TrimEnd('.');
}

/// <summary>Another server holds this SQLite database; the start stops (a setting to change: <c>--data-dir</c>).</summary>
public sealed class DataDirectoryInUseException(string message) : InvalidOperationException(message);

/// <summary>The database cannot be opened or written (read-only, full, damaged); the start stops without changing it.</summary>
public sealed class DatabaseUnusableException(string message, Exception inner) : IOException(message, inner);
