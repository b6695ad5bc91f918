using Sovereign.Storage;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The one server a SQLite database admits, held from before its migrations until the process stops (the kernel
/// releases it with a killed one). Two servers on one file each kept the tenants' money, keys and prices in their own
/// grains: a key revoked at one was still accepted by the other, and each admitted spend against its own view of a
/// budget. The CLI's own readers of the file (audit verify, export, archive) do not take it. A cluster shares
/// PostgreSQL, whose members share their grains: nothing to hold there.
/// </summary>
internal sealed class SqliteServerLock : IAsyncDisposable
{
    /// <summary>The lock file is <c>&lt;database&gt;.server.lock</c>, beside the database.</summary>
    public const string LockName = "server";

    private IAsyncDisposable? _held;

    /// <summary>Takes the database for this process, or throws <see cref="DataDirectoryInUseException"/>.</summary>
    public async Task TakeAsync(SqlDatabase database, string databasePath)
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

    public ValueTask DisposeAsync() => _held?.DisposeAsync() ?? ValueTask.CompletedTask;

    private static string Reason(Exception exception) => exception.Message.TrimEnd().TrimEnd('.');
}

/// <summary>Another server holds this SQLite database; the start stops (a setting to change: <c>--data-dir</c>).</summary>
public sealed class DataDirectoryInUseException(string message) : InvalidOperationException(message);

/// <summary>The database cannot be opened or written (read-only, full, damaged); the start stops without changing it.</summary>
public sealed class DatabaseUnusableException(string message, Exception inner) : IOException(message, inner);
