using System.Data.Common;
using Sovereign.Storage;

namespace Sovereign.Residency.Content;

/// <summary>
/// One stored response: the only prompt and completion content Sovereign keeps, and only where the tenant's policy
/// retains content. <paramref name="ResponseJson"/> is the response object as the client received it;
/// <paramref name="ConversationJson"/> the conversation it ends (earlier turns, its input, its output), which a later
/// request continues through <c>previous_response_id</c>.
/// </summary>
/// <param name="Id">The response id (<c>resp_...</c>).</param>
/// <param name="TenantId">The only tenant that may read or delete it.</param>
/// <param name="Jurisdiction">Where it rests: the database's jurisdiction (rows stored before it was declared name the storing gateway's).</param>
/// <param name="Gateway">The gateway's node id.</param>
/// <param name="CreatedAt">Unix milliseconds.</param>
/// <param name="ExpiresAt">Unix milliseconds: creation plus the policy's retention days; never read after it.</param>
/// <param name="ResponseJson">The response object.</param>
/// <param name="ConversationJson">The conversation, as the gateway's own turn format.</param>
public sealed record StoredResponse(
    string Id, string TenantId, string Jurisdiction, string Gateway, long CreatedAt, long ExpiresAt, string ResponseJson, string ConversationJson);

/// <summary>
/// Stored responses in the gateway's database (SQLite, or the cluster's PostgreSQL): written once, read and deleted
/// by their tenant only, gone once expired (reads filter on the expiry; <see cref="PurgeExpiredAsync"/> deletes).
/// </summary>
public sealed class ResponseStore(SqlDatabase database)
{
    /// <summary>The engine behind the store: a SQLite file is on this machine; PostgreSQL is wherever the operator runs it.</summary>
    public SqlProvider Provider => database.Provider;

    /// <summary>The schema of this store.</summary>
    public static readonly IReadOnlyList<SqlMigration> Migrations =
    [
        new("content-001-stored-responses",
        [
            """
            CREATE TABLE stored_responses (
                id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, jurisdiction TEXT NOT NULL, gateway TEXT NOT NULL,
                created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, response_json TEXT NOT NULL, conversation_json TEXT NOT NULL)
            """,
            "CREATE INDEX stored_responses_expiry ON stored_responses (expires_at)",
        ]),
    ];

    /// <summary>
    /// Stores a response (ids are random, so a repeat is a defect and fails). On SQLite with <c>secure_delete</c> too:
    /// an insert that fills a page moves cells between pages, and without it their old copies stayed in free space,
    /// where deleting the row later did not reach them (one of 40 deleted conversations was still in the file).
    /// </summary>
    public async Task InsertAsync(StoredResponse response, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(response);
        await ExecuteAsync(secure: database.Provider == SqlProvider.Sqlite, checkpoint: false,
            """
            INSERT INTO stored_responses (id, tenant_id, jurisdiction, gateway, created_at, expires_at, response_json, conversation_json)
            VALUES (@id, @tenant, @jurisdiction, @gateway, @created, @expires, @response, @conversation)
            """,
            cancellationToken,
            ("@id", response.Id), ("@tenant", response.TenantId), ("@jurisdiction", response.Jurisdiction), ("@gateway", response.Gateway),
            ("@created", response.CreatedAt), ("@expires", response.ExpiresAt), ("@response", response.ResponseJson), ("@conversation", response.ConversationJson));
    }

    /// <summary>The tenant's response with this id, unless it expired by <paramref name="now"/>; another tenant's is null, as a missing one.</summary>
    public async Task<StoredResponse?> GetAsync(string tenantId, string id, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText =
            """
            SELECT id, tenant_id, jurisdiction, gateway, created_at, expires_at, response_json, conversation_json
            FROM stored_responses WHERE id = @id AND tenant_id = @tenant AND expires_at > @now
            """;
        SqlDatabase.AddParameter(command, "@id", id);
        SqlDatabase.AddParameter(command, "@tenant", tenantId);
        SqlDatabase.AddParameter(command, "@now", now.ToUnixTimeMilliseconds());
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await reader.ReadAsync(cancellationToken)
            ? new StoredResponse(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt64(4), reader.GetInt64(5), reader.GetString(6), reader.GetString(7))
            : null;
    }

    /// <summary>Deletes the tenant's response; false when there was none (another tenant's counts as none).</summary>
    public async Task<bool> DeleteAsync(string tenantId, string id, CancellationToken cancellationToken = default) =>
        await EraseAsync("DELETE FROM stored_responses WHERE id = @id AND tenant_id = @tenant", cancellationToken, ("@id", id), ("@tenant", tenantId)) > 0;

    /// <summary>Deletes every response of a tenant (its policy stopped retaining content); returns how many.</summary>
    public Task<int> DeleteTenantAsync(string tenantId, CancellationToken cancellationToken = default) =>
        EraseAsync("DELETE FROM stored_responses WHERE tenant_id = @tenant", cancellationToken, ("@tenant", tenantId));

    /// <summary>
    /// Holds the tenant's responses to a retention of <paramref name="days"/> (its policy's, now shorter): each expires
    /// that many days after it was stored, and those already past it are deleted now; returns how many. Reads already
    /// hid them, but they were kept until their first expiry, and a policy lengthened again showed them back.
    /// </summary>
    public async Task<int> ShortenTenantAsync(string tenantId, int days, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        var keep = (long)TimeSpan.FromDays(days).TotalMilliseconds;
        // Erasing too: on SQLite an updated row may move within its page, leaving its old copy in the free space.
        await EraseAsync(
            "UPDATE stored_responses SET expires_at = created_at + @keep WHERE tenant_id = @tenant AND expires_at > created_at + @keep",
            cancellationToken, ("@tenant", tenantId), ("@keep", keep));
        return await EraseAsync(
            "DELETE FROM stored_responses WHERE tenant_id = @tenant AND expires_at <= @now",
            cancellationToken, ("@tenant", tenantId), ("@now", now.ToUnixTimeMilliseconds()));
    }

    /// <summary>Deletes every response expired by <paramref name="now"/>; returns how many.</summary>
    public Task<int> PurgeExpiredAsync(DateTimeOffset now, CancellationToken cancellationToken = default) =>
        EraseAsync("DELETE FROM stored_responses WHERE expires_at <= @now", cancellationToken, ("@now", now.ToUnixTimeMilliseconds()));


    /// <summary>
    /// A delete that overwrites what it deletes: SQLite only marks a deleted row's space free, so the text stayed in
    /// the file (and the next WAL frames of its page) for anyone reading the file or a backup of it to recover.
    /// With <c>secure_delete</c> the freed bytes are zeroed, in the table's pages and its overflow pages alike, and the
    /// WAL that wrote them is checkpointed and truncated. PostgreSQL reclaims a deleted row's space when it vacuums.
    /// </summary>
    private Task<int> EraseAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        ExecuteAsync(secure: database.Provider == SqlProvider.Sqlite, checkpoint: database.Provider == SqlProvider.Sqlite, sql, cancellationToken, parameters);

    /// <param name="secure">SQLite's <c>secure_delete</c> for this statement: freed bytes are zeroed.</param>
    /// <param name="checkpoint">Whether the WAL is then copied into the file and emptied, when the statement changed rows.</param>
    private async Task<int> ExecuteAsync(bool secure, bool checkpoint, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        using var turn = await database.EnterWriteAsync(cancellationToken);
        if (secure)
        {
            await using var pragma = connection.CreateCommand();
            pragma.CommandText = "PRAGMA secure_delete=ON";
            await pragma.ExecuteNonQueryAsync(cancellationToken);
        }

        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            SqlDatabase.AddParameter(command, name, value);
        }

        try
        {
            var deleted = await command.ExecuteNonQueryAsync(cancellationToken);
            if (checkpoint && deleted > 0)
            {
                // The WAL still held the text in the frames that wrote it (until overwritten, up to 64 MiB of later
                // commits): copied into the file, whose freed bytes are zeroed, and emptied. This process's writers wait
                // their turn meanwhile, so a reader elsewhere in an old snapshot (an audit export) is waited for briefly
                // only, and leaves the WAL to the next erase (best effort; every open connection sets its own timeout).
                await using var truncate = connection.CreateCommand();
                truncate.CommandText = "PRAGMA busy_timeout=100; PRAGMA wal_checkpoint(TRUNCATE)";
                await truncate.ExecuteNonQueryAsync(CancellationToken.None);
            }

            return deleted;
        }
        finally
        {
            if (secure)
            {
                // Pooled connections keep their pragmas: give the next user SQLite's default back.
                await using var reset = connection.CreateCommand();
                reset.CommandText = "PRAGMA secure_delete=OFF";
                await reset.ExecuteNonQueryAsync(CancellationToken.None);
            }
        }
    }
}
