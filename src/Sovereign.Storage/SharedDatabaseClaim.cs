using System.Data.Common;
using System.Globalization;

namespace Sovereign.Storage;

/// <summary>
/// Which servers may share one PostgreSQL database: the members of one cluster, and nothing else. Two servers on it
/// that are not one Orleans cluster (no Redis, or another cluster id) would each keep the tenants' money, keys and
/// prices in grains of their own: a key revoked at one still accepted by the other, a budget admitted twice. Each
/// server holds a shared advisory lock named by its claimant (its cluster, or itself alone) for as long as it runs,
/// on a connection of its own, and lists the claimant in <c>sovereign_servers</c>; a starting server refuses when a
/// claimant listed there is not its own and still holds its lock. PostgreSQL drops a session's locks with its
/// connection, so a killed server never keeps the database: the next start finds its lock free and removes the row.
/// </summary>
public sealed class SharedDatabaseClaim : IAsyncDisposable
{
    private readonly SqlDatabase _database;
    private readonly string _claimant;
    private readonly string _description;
    private readonly IReadOnlyCollection<string> _alsoOurs;
    private DbConnection _connection;

    private SharedDatabaseClaim(SqlDatabase database, string claimant, string description, IReadOnlyCollection<string> alsoOurs, DbConnection connection)
    {
        _database = database;
        _claimant = claimant;
        _description = description;
        _alsoOurs = alsoOurs;
        _connection = connection;
    }

    /// <summary>
    /// Claims <paramref name="database"/> (PostgreSQL) for <paramref name="claimant"/>, described to a refused server as
    /// <paramref name="description"/>; throws <see cref="DatabaseClaimedException"/> naming the other claimant.
    /// <paramref name="alsoOurs"/> names claimants that are this one under an older name (members of the same cluster
    /// that run an earlier version), which never refuse it.
    /// </summary>
    public static async Task<SharedDatabaseClaim> TakeAsync(SqlDatabase database, string claimant, string description, IReadOnlyCollection<string>? alsoOurs = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentException.ThrowIfNullOrWhiteSpace(claimant);
        if (database.Provider != SqlProvider.PostgreSql)
        {
            throw new ArgumentException("Only a PostgreSQL database is shared by several servers.", nameof(database));
        }

        alsoOurs ??= [];
        return new SharedDatabaseClaim(database, claimant, description, alsoOurs, await ClaimAsync(database, claimant, description, alsoOurs, cancellationToken));
    }

    /// <summary>
    /// Takes the claim again if its connection was lost (PostgreSQL restarted, or the session was ended): its lock went
    /// with it, so another server could have started meanwhile. True when it was taken again; throws
    /// <see cref="DatabaseClaimedException"/> when another claimant holds the database now.
    /// </summary>
    public async Task<bool> RenewAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            await SqlDatabase.ExecuteAsync(_connection, null, "SELECT 1", cancellationToken);
            return false;
        }
        catch (DbException)
        {
            // Lost: take it again below.
        }
        catch (InvalidOperationException)
        {
            // The driver closed the broken connection.
        }

        await _connection.DisposeAsync();

        // The pool may still hold connections the same restart broke: each fails once and is dropped.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                _connection = await ClaimAsync(_database, _claimant, _description, _alsoOurs, cancellationToken);
                return true;
            }
            catch (DbException) when (attempt < 4)
            {
            }
        }
    }

    private static async Task<DbConnection> ClaimAsync(SqlDatabase database, string claimant, string description, IReadOnlyCollection<string> alsoOurs, CancellationToken cancellationToken)
    {
        var key = SqlDatabase.LockKey("server:" + claimant);
        var connection = await database.OpenAsync(cancellationToken);
        try
        {
            // Starters take turns on the migration lock: two servers of different clusters starting at once cannot
            // both find the other's row missing.
            await SqlDatabase.ExecuteAsync(connection, null, $"SELECT pg_advisory_lock({SqlDatabase.MigrationLockKey})", cancellationToken);
            try
            {
                await SqlDatabase.ExecuteAsync(connection, null,
                    "CREATE TABLE IF NOT EXISTS sovereign_servers (claimant TEXT NOT NULL PRIMARY KEY, lock_key BIGINT NOT NULL, description TEXT NOT NULL, since BIGINT NOT NULL)",
                    cancellationToken);
                await SqlDatabase.ExecuteAsync(connection, null, $"SELECT pg_advisory_lock_shared({key.ToString(CultureInfo.InvariantCulture)})", cancellationToken);

                foreach (var (other, otherKey, otherDescription, since) in await OthersAsync(connection, claimant, cancellationToken))
                {
                    if (alsoOurs.Contains(other))
                    {
                        continue;
                    }

                    if (!await IsHeldAsync(connection, otherKey, cancellationToken))
                    {
                        // Its servers all stopped (or were killed): the row is history.
                        await ExecuteAsync(connection, "DELETE FROM sovereign_servers WHERE claimant = @claimant", cancellationToken, ("@claimant", other));
                        continue;
                    }

                    throw new DatabaseClaimedException(
                        $"{database.Location} is in use by {otherDescription} (since {DateTimeOffset.FromUnixTimeMilliseconds(since):yyyy-MM-dd HH:mm:ss} UTC). " +
                        "Servers that share a database must be one cluster (the same Sovereign:Cluster:Redis and ClusterId); otherwise each keeps its own " +
                        "budgets, keys and prices, so a key revoked at one still works at the other and a budget is spent twice. Stop the other, " +
                        "join this server to its cluster, or give it a database of its own.");
                }

                await ExecuteAsync(connection,
                    "INSERT INTO sovereign_servers (claimant, lock_key, description, since) VALUES (@claimant, @key, @description, @since) " +
                    "ON CONFLICT (claimant) DO UPDATE SET lock_key = excluded.lock_key, description = excluded.description, since = excluded.since",
                    cancellationToken, ("@claimant", claimant), ("@key", key), ("@description", description), ("@since", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
            }
            finally
            {
                await SqlDatabase.ExecuteAsync(connection, null, $"SELECT pg_advisory_unlock({SqlDatabase.MigrationLockKey})", CancellationToken.None);
            }

            return connection;
        }
        catch
        {
            // Closing the session releases its shared lock too.
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>Gives the claim up (the row stays; the next starter finds its lock free and removes it).</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            // A pooled connection keeps its session (and its locks) until it is next used: release them now.
            await SqlDatabase.ExecuteAsync(_connection, null, "SELECT pg_advisory_unlock_all()", CancellationToken.None);
        }
        catch (Exception ex) when (ex is DbException or InvalidOperationException)
        {
            // The connection is gone (or was closed by a failed renewal), and its session's locks with it.
        }
        finally
        {
            await _connection.DisposeAsync();
        }
    }

    private static async Task<List<(string Claimant, long Key, string Description, long Since)>> OthersAsync(DbConnection connection, string claimant, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT claimant, lock_key, description, since FROM sovereign_servers WHERE claimant <> @claimant ORDER BY since";
        SqlDatabase.AddParameter(command, "@claimant", claimant);
        var others = new List<(string, long, string, long)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            others.Add((reader.GetString(0), reader.GetInt64(1), reader.GetString(2), reader.GetInt64(3)));
        }

        return others;
    }

    /// <summary>
    /// Whether a server holds <paramref name="database"/> now: a claimant listed in <c>sovereign_servers</c> whose lock
    /// some session still holds (a cluster with at least one gateway running, or a server alone). The audit verifier
    /// asks it to tell an open decision of a running server from one a stopped server left. The probe holds a free
    /// claimant's lock for an instant; a server starting then waits for it (its shared lock is a blocking one).
    /// </summary>
    public static async Task<bool> AnyHeldAsync(SqlDatabase database, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        if (database.Provider != SqlProvider.PostgreSql)
        {
            throw new ArgumentException("Only a PostgreSQL database has claimants.", nameof(database));
        }

        await using var connection = await database.OpenAsync(cancellationToken);
        using (var exists = connection.CreateCommand())
        {
            exists.CommandText = "SELECT to_regclass('sovereign_servers') IS NOT NULL";
            if (await exists.ExecuteScalarAsync(cancellationToken) is not true)
            {
                return false; // no server ever claimed it
            }
        }

        foreach (var (_, key, _, _) in await OthersAsync(connection, string.Empty, cancellationToken))
        {
            if (await IsHeldAsync(connection, key, cancellationToken))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether some session holds <paramref name="key"/>: an exclusive try fails while any holder is left.</summary>
    private static async Task<bool> IsHeldAsync(DbConnection connection, long key, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT pg_try_advisory_lock(@key)";
        SqlDatabase.AddParameter(command, "@key", key);
        if (await command.ExecuteScalarAsync(cancellationToken) is not true)
        {
            return true;
        }

        await ExecuteAsync(connection, "SELECT pg_advisory_unlock(@key)", cancellationToken, ("@key", key));
        return false;
    }

    private static async Task ExecuteAsync(DbConnection connection, string sql, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            SqlDatabase.AddParameter(command, name, value);
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>Servers that are not one cluster already use this database; the start stops (a setting to change).</summary>
public sealed class DatabaseClaimedException(string message) : InvalidOperationException(message);
