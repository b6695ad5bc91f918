using System.Data.Common;
using System.Globalization;

namespace Sovereign.Storage;

/// <summary>
/// Which PostgreSQL database this is, as opposed to a copy of it. A random id is written into the database the first
/// time a server starts on it (<c>sovereign_database_identity</c>), with where it lives: PostgreSQL's system identifier
/// (one per <c>initdb</c>) and the database's oid. A dump restored into another database (or another server) carries
/// the id but lives elsewhere: it is a copy, and a server started on it while the original still served was a second,
/// independent installation of the same tenants (a budget spent twice, a key revoked at one accepted at the other).
/// A physical copy (a streaming replica promoted at failover, a point-in-time recovery) keeps both, and is the same
/// database. In a cluster the id is also recorded in the cluster's Redis, so a member on another database than the
/// cluster's is told apart (see <c>ClusterRedisMark.BindDatabaseAsync</c>).
/// </summary>
/// <param name="Id">The identity recorded in the database.</param>
/// <param name="RecordedAt">Where the database lived when the identity was recorded (<c>system/oid</c>).</param>
/// <param name="LivesAt">Where it lives now.</param>
/// <param name="Created">When the identity was recorded.</param>
public sealed record DatabaseIdentity(string Id, string RecordedAt, string LivesAt, DateTimeOffset Created)
{
    private const string CreateTable =
        "CREATE TABLE IF NOT EXISTS sovereign_database_identity (id TEXT NOT NULL PRIMARY KEY, lives_at TEXT NOT NULL, created BIGINT NOT NULL, replaces TEXT NULL)";

    /// <summary>Whether the database is a copy of the one its identity was recorded in (restored, or copied, elsewhere).</summary>
    public bool IsCopy => !string.Equals(RecordedAt, LivesAt, StringComparison.Ordinal);

    /// <summary>Reads the identity of <paramref name="database"/> (PostgreSQL), recording a new one when it has none.</summary>
    public static Task<DatabaseIdentity> ReadOrCreateAsync(SqlDatabase database, CancellationToken cancellationToken = default) =>
        UnderLockAsync(database, replace: null, cancellationToken);

    /// <summary>
    /// Records a new identity for <paramref name="database"/>, where it lives now, replacing <paramref name="replaces"/>:
    /// the operator's word that this database (a deliberate restore) is the installation's from now on. A new id, so the
    /// original and its copy are told apart from then on, and a setting left in place does not rebind again.
    /// </summary>
    public static Task<DatabaseIdentity> RebindAsync(SqlDatabase database, string replaces, CancellationToken cancellationToken = default) =>
        UnderLockAsync(database, replaces, cancellationToken);

    private static async Task<DatabaseIdentity> UnderLockAsync(SqlDatabase database, string? replace, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(database);
        if (database.Provider != SqlProvider.PostgreSql)
        {
            throw new ArgumentException("Only a PostgreSQL database records an identity.", nameof(database));
        }

        await using var connection = await database.OpenAsync(cancellationToken);
        // Starters take turns, as on the claim: two first starts record one identity.
        await SqlDatabase.ExecuteAsync(connection, null, $"SELECT pg_advisory_lock({SqlDatabase.MigrationLockKey})", cancellationToken);
        try
        {
            await SqlDatabase.ExecuteAsync(connection, null, CreateTable, cancellationToken);
            var livesAt = await LivesAtAsync(connection, cancellationToken);
            var stored = await ReadAsync(connection, livesAt, cancellationToken);
            if (stored is not null && (replace is null || stored.Id != replace))
            {
                return stored;
            }

            var identity = new DatabaseIdentity(Guid.NewGuid().ToString("N"), livesAt, livesAt, DateTimeOffset.UtcNow);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await ExecuteAsync(connection, transaction, "DELETE FROM sovereign_database_identity", cancellationToken);
            await ExecuteAsync(connection, transaction, "INSERT INTO sovereign_database_identity (id, lives_at, created, replaces) VALUES (@id, @lives_at, @created, @replaces)",
                cancellationToken, ("@id", identity.Id), ("@lives_at", livesAt), ("@created", identity.Created.ToUnixTimeMilliseconds()), ("@replaces", (object?)stored?.Id ?? DBNull.Value));
            await transaction.CommitAsync(cancellationToken);
            return identity;
        }
        finally
        {
            await SqlDatabase.ExecuteAsync(connection, null, $"SELECT pg_advisory_unlock({SqlDatabase.MigrationLockKey})", CancellationToken.None);
        }
    }

    private static async Task<DatabaseIdentity?> ReadAsync(DbConnection connection, string livesAt, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, lives_at, created FROM sovereign_database_identity ORDER BY created DESC LIMIT 1";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? new DatabaseIdentity(reader.GetString(0), reader.GetString(1), livesAt, DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2)))
            : null;
    }

    /// <summary>
    /// Where the database lives: PostgreSQL's system identifier and the database's oid (<c>system/oid</c>). A role that
    /// may not read the system identifier (some managed services) gets <c>?</c> for it, and the oid alone tells a copy.
    /// </summary>
    private static async Task<string> LivesAtAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        string system;
        try
        {
            system = Convert.ToString(await ScalarAsync(connection, "SELECT system_identifier::text FROM pg_control_system()", cancellationToken), CultureInfo.InvariantCulture) ?? "?";
        }
        catch (DbException)
        {
            system = "?";
        }

        var oid = Convert.ToString(await ScalarAsync(connection, "SELECT oid::text FROM pg_database WHERE datname = current_database()", cancellationToken), CultureInfo.InvariantCulture);
        return system + "/" + oid;
    }

    private static async Task<object?> ScalarAsync(DbConnection connection, string sql, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return await command.ExecuteScalarAsync(cancellationToken);
    }

    private static async Task ExecuteAsync(DbConnection connection, DbTransaction transaction, string sql, CancellationToken cancellationToken, params (string Name, object Value)[] parameters)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            SqlDatabase.AddParameter(command, name, value);
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }
}

/// <summary>
/// The database is a copy of the installation's (or another than its cluster's): the start stops before anything is
/// written; the message names the database and the way out.
/// </summary>
public sealed class DatabaseIdentityException(string message) : InvalidOperationException(message);
