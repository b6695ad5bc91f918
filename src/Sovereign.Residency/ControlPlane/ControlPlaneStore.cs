using System.Data.Common;
using System.Globalization;
using Sovereign.Residency.Policies;
using Sovereign.Storage;

namespace Sovereign.Residency.ControlPlane;

/// <summary>
/// Durable rows for tenants, keys and nodes. Grains own the live state and write through here; nothing else writes
/// these tables. SQL is portable (SQLite and PostgreSQL).
/// </summary>
public sealed class ControlPlaneStore(SqlDatabase database)
{
    /// <summary>The schema of this store.</summary>
    public static readonly IReadOnlyList<SqlMigration> Migrations =
    [
        new("controlplane-001-tables",
        [
            """
            CREATE TABLE tenants (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, policy_json TEXT NOT NULL, plan TEXT NOT NULL,
                disabled INTEGER NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)
            """,
            """
            CREATE TABLE api_keys (
                id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id), prefix TEXT NOT NULL,
                secret_hash TEXT NOT NULL UNIQUE, name TEXT NOT NULL, policy_json TEXT NULL,
                created_at BIGINT NOT NULL, revoked_at BIGINT NULL)
            """,
            "CREATE INDEX api_keys_tenant ON api_keys (tenant_id)",
            """
            CREATE TABLE nodes (
                id TEXT PRIMARY KEY, jurisdiction TEXT NOT NULL, kind TEXT NOT NULL, base_url TEXT NULL,
                models_json TEXT NOT NULL, state TEXT NOT NULL, credential TEXT NOT NULL, upstream_key TEXT NULL,
                created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)
            """,
        ]),
        new("controlplane-002-tenant-limits", ["ALTER TABLE tenants ADD COLUMN limits_json TEXT NULL"]),
        new("controlplane-003-node-join-tokens",
        [
            """
            CREATE TABLE node_join_tokens (
                id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, jurisdiction TEXT NOT NULL, pool TEXT NULL,
                created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT NULL, used_by TEXT NULL)
            """,
        ]),
        new("controlplane-004-certificate-revocations",
        [
            """
            CREATE TABLE cluster_certificate_revocations (
                kind TEXT NOT NULL, value TEXT NOT NULL, revoked_at BIGINT NOT NULL, reason TEXT NULL, PRIMARY KEY (kind, value))
            """,
        ]),
        new("controlplane-005-join-token-device-class", ["ALTER TABLE node_join_tokens ADD COLUMN device_class TEXT NULL"]),
        new("controlplane-006-node-prompt-cache", ["ALTER TABLE nodes ADD COLUMN prompt_cache TEXT NULL"]),
        new("controlplane-007-key-expiry", ["ALTER TABLE api_keys ADD COLUMN expires_at BIGINT NULL"]),
        new("controlplane-008-join-token-withdrawal", ["ALTER TABLE node_join_tokens ADD COLUMN withdrawn_at BIGINT NULL"]),
        new("controlplane-009-operator-keys",
        [
            """
            CREATE TABLE operator_keys (
                id TEXT PRIMARY KEY, name TEXT NOT NULL, prefix TEXT NULL, secret_hash TEXT NOT NULL UNIQUE,
                created_at BIGINT NOT NULL, created_by TEXT NOT NULL, expires_at BIGINT NULL,
                revoked_at BIGINT NULL, revoked_by TEXT NULL)
            """,
        ]),
    ];

    /// <summary>The database behind the store.</summary>
    public SqlDatabase Database => database;

    /// <summary>Inserts or replaces a tenant.</summary>
    public Task UpsertTenantAsync(TenantRecord tenant, CancellationToken cancellationToken = default) => ExecuteAsync(
        """
        INSERT INTO tenants (id, name, policy_json, plan, disabled, created_at, updated_at, limits_json)
        VALUES (@id, @name, @policy, @plan, @disabled, @created, @updated, @limits)
        ON CONFLICT (id) DO UPDATE SET name = excluded.name, policy_json = excluded.policy_json, plan = excluded.plan,
            disabled = excluded.disabled, updated_at = excluded.updated_at, limits_json = excluded.limits_json
        """,
        cancellationToken,
        ("@id", tenant.Id), ("@name", tenant.Name), ("@policy", tenant.PolicyJson), ("@plan", tenant.Plan),
        ("@disabled", tenant.Disabled ? 1 : 0), ("@created", tenant.CreatedAt), ("@updated", tenant.UpdatedAt), ("@limits", tenant.LimitsJson));

    /// <summary>Reads one tenant.</summary>
    public async Task<TenantRecord?> GetTenantAsync(string id, CancellationToken cancellationToken = default) =>
        (await QueryAsync("SELECT id, name, policy_json, plan, disabled, created_at, updated_at, limits_json FROM tenants WHERE id = @id", ReadTenant, cancellationToken, ("@id", id))).FirstOrDefault();

    /// <summary>Whether any tenant exists (one indexed row read, not a listing).</summary>
    public async Task<bool> AnyTenantAsync(CancellationToken cancellationToken = default) =>
        (await QueryAsync("SELECT id FROM tenants LIMIT 1", r => r.GetString(0), cancellationToken)).Count > 0;

    /// <summary>All tenants, by id. Every row in memory: for the admin list, which pages, see <see cref="ListTenantsPageAsync"/>.</summary>
    public Task<List<TenantRecord>> ListTenantsAsync(CancellationToken cancellationToken = default) =>
        QueryAsync("SELECT id, name, policy_json, plan, disabled, created_at, updated_at, limits_json FROM tenants ORDER BY id", ReadTenant, cancellationToken);

    /// <summary>
    /// At most <paramref name="limit"/> tenants by id, those after <paramref name="afterId"/> (null: from the first): one
    /// page of a listing that walks every tenant exactly once however many there are, read through the primary key.
    /// </summary>
    public Task<List<TenantRecord>> ListTenantsPageAsync(string? afterId, int limit, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        var limitText = limit.ToString(CultureInfo.InvariantCulture);
        return afterId is null
            ? QueryAsync("SELECT id, name, policy_json, plan, disabled, created_at, updated_at, limits_json FROM tenants ORDER BY id LIMIT " + limitText, ReadTenant, cancellationToken)
            : QueryAsync("SELECT id, name, policy_json, plan, disabled, created_at, updated_at, limits_json FROM tenants WHERE id > @after ORDER BY id LIMIT " + limitText, ReadTenant, cancellationToken, ("@after", afterId));
    }

    /// <summary>How many tenants exist (one count, no rows read into memory).</summary>
    public async Task<long> CountTenantsAsync(CancellationToken cancellationToken = default) =>
        (await QueryAsync("SELECT COUNT(*) FROM tenants", r => Convert.ToInt64(r.GetValue(0), CultureInfo.InvariantCulture), cancellationToken))[0];

    /// <summary>Stores a new key.</summary>
    public Task InsertKeyAsync(ApiKeyRecord key, CancellationToken cancellationToken = default) => ExecuteAsync(
        """
        INSERT INTO api_keys (id, tenant_id, prefix, secret_hash, name, policy_json, created_at, revoked_at, expires_at)
        VALUES (@id, @tenant, @prefix, @hash, @name, @policy, @created, @revoked, @expires)
        """,
        cancellationToken,
        ("@id", key.Id), ("@tenant", key.TenantId), ("@prefix", key.Prefix), ("@hash", key.SecretHash), ("@name", key.Name),
        ("@policy", key.PolicyJson), ("@created", key.CreatedAt), ("@revoked", key.RevokedAt), ("@expires", key.ExpiresAt));

    /// <summary>Marks a key revoked (idempotent: the first revocation time stays).</summary>
    public Task RevokeKeyAsync(string keyId, long at, CancellationToken cancellationToken = default) => ExecuteAsync(
        "UPDATE api_keys SET revoked_at = @at WHERE id = @id AND revoked_at IS NULL", cancellationToken, ("@id", keyId), ("@at", at));

    /// <summary>Finds a key by the hash of its secret.</summary>
    public async Task<ApiKeyRecord?> FindKeyByHashAsync(string secretHash, CancellationToken cancellationToken = default) =>
        (await QueryAsync(KeySelect + " WHERE secret_hash = @hash", ReadKey, cancellationToken, ("@hash", secretHash))).FirstOrDefault();

    /// <summary>Finds a key by id.</summary>
    public async Task<ApiKeyRecord?> GetKeyAsync(string keyId, CancellationToken cancellationToken = default) =>
        (await QueryAsync(KeySelect + " WHERE id = @id", ReadKey, cancellationToken, ("@id", keyId))).FirstOrDefault();

    /// <summary>A tenant's keys, newest first.</summary>
    public Task<List<ApiKeyRecord>> ListKeysAsync(string tenantId, CancellationToken cancellationToken = default) =>
        QueryAsync(KeySelect + " WHERE tenant_id = @tenant ORDER BY created_at DESC, id", ReadKey, cancellationToken, ("@tenant", tenantId));

    /// <summary>Inserts or replaces a node.</summary>
    public Task UpsertNodeAsync(NodeRecord node, CancellationToken cancellationToken = default) => ExecuteAsync(
        """
        INSERT INTO nodes (id, jurisdiction, kind, base_url, models_json, state, credential, upstream_key, created_at, updated_at, prompt_cache)
        VALUES (@id, @jurisdiction, @kind, @url, @models, @state, @credential, @key, @created, @updated, @promptCache)
        ON CONFLICT (id) DO UPDATE SET jurisdiction = excluded.jurisdiction, kind = excluded.kind, base_url = excluded.base_url,
            models_json = excluded.models_json, state = excluded.state, credential = excluded.credential,
            upstream_key = excluded.upstream_key, updated_at = excluded.updated_at, prompt_cache = excluded.prompt_cache
        """,
        cancellationToken,
        ("@id", node.Id), ("@jurisdiction", node.Jurisdiction), ("@kind", node.Kind.ToString()), ("@url", node.BaseUrl),
        ("@models", node.ModelsJson), ("@state", node.State.ToString()), ("@credential", node.Credential), ("@key", node.UpstreamKey),
        ("@created", node.CreatedAt), ("@updated", node.UpdatedAt), ("@promptCache", node.PromptCache));

    /// <summary>Deletes a node.</summary>
    public Task DeleteNodeAsync(string id, CancellationToken cancellationToken = default) =>
        ExecuteAsync("DELETE FROM nodes WHERE id = @id", cancellationToken, ("@id", id));

    /// <summary>All nodes, by id.</summary>
    public Task<List<NodeRecord>> ListNodesAsync(CancellationToken cancellationToken = default) => QueryAsync(
        "SELECT id, jurisdiction, kind, base_url, models_json, state, credential, upstream_key, created_at, updated_at, prompt_cache FROM nodes ORDER BY id",
        r => new NodeRecord(r.GetString(0), r.GetString(1), Enum.Parse<NodeKind>(r.GetString(2)), r.IsDBNull(3) ? null : r.GetString(3), r.GetString(4),
            Enum.Parse<NodeState>(r.GetString(5)), r.GetString(6), r.IsDBNull(7) ? null : r.GetString(7), r.GetInt64(8), r.GetInt64(9), r.IsDBNull(10) ? null : r.GetString(10)),
        cancellationToken);

    /// <summary>Stores a new join token (only its hash).</summary>
    public Task InsertJoinTokenAsync(JoinTokenRecord token, CancellationToken cancellationToken = default) => ExecuteAsync(
        """
        INSERT INTO node_join_tokens (id, token_hash, jurisdiction, pool, created_at, expires_at, device_class)
        VALUES (@id, @hash, @jurisdiction, @pool, @created, @expires, @device)
        """,
        cancellationToken,
        ("@id", token.Id), ("@hash", token.TokenHash), ("@jurisdiction", token.Jurisdiction), ("@pool", token.Pool),
        ("@created", token.CreatedAt), ("@expires", token.ExpiresAt), ("@device", token.DeviceClass));

    /// <summary>
    /// The join token with this hash if it exists, is unused and has not expired; null otherwise. A read: it takes no
    /// write lock, so a join with a guessed token is refused without touching the writers' turn (see
    /// <see cref="ConsumeJoinTokenAsync"/>, which still decides).
    /// </summary>
    public async Task<JoinTokenRecord?> FindUsableJoinTokenAsync(string tokenHash, long now, CancellationToken cancellationToken = default) =>
        (await QueryAsync(
            "SELECT id, token_hash, jurisdiction, pool, created_at, expires_at, device_class FROM node_join_tokens WHERE token_hash = @hash AND used_at IS NULL AND withdrawn_at IS NULL AND expires_at > @now",
            ReadJoinToken, cancellationToken, ("@hash", tokenHash), ("@now", now))).FirstOrDefault();

    /// <summary>
    /// Uses a join token once: atomically marks it used by <paramref name="nodeId"/> if it exists, is unused and has
    /// not expired, and returns it; null otherwise (two nodes racing with one token: one wins). A write, so it waits
    /// for this process's write turn like every other writer of the file.
    /// </summary>
    public async Task<JoinTokenRecord?> ConsumeJoinTokenAsync(string tokenHash, string nodeId, long now, CancellationToken cancellationToken = default)
    {
        using var turn = await database.EnterWriteAsync(cancellationToken);
        return (await QueryAsync(
            """
            UPDATE node_join_tokens SET used_at = @now, used_by = @node
            WHERE token_hash = @hash AND used_at IS NULL AND withdrawn_at IS NULL AND expires_at > @now
            RETURNING id, token_hash, jurisdiction, pool, created_at, expires_at, device_class
            """,
            ReadJoinToken, cancellationToken, ("@hash", tokenHash), ("@node", nodeId), ("@now", now))).FirstOrDefault();
    }

    /// <summary>
    /// Withdraws an unused join token: from then on every gateway refuses it (they read the token at each join). Returns
    /// what became of it: withdrawn now (or before: the first time is kept), already used (by a node that joined:
    /// withdraw that node instead), or not found.
    /// </summary>
    public async Task<(JoinTokenWithdrawal Outcome, long? WithdrawnAt, string? UsedBy)> WithdrawJoinTokenAsync(string id, long now, CancellationToken cancellationToken = default)
    {
        using (await database.EnterWriteAsync(cancellationToken))
        {
            // One statement decides, so a join consuming the token at the same moment either wins (used) or loses.
            var withdrawn = await QueryAsync(
                "UPDATE node_join_tokens SET withdrawn_at = @now WHERE id = @id AND used_at IS NULL AND withdrawn_at IS NULL RETURNING withdrawn_at",
                r => r.GetInt64(0), cancellationToken, ("@id", id), ("@now", now));
            if (withdrawn.Count > 0)
            {
                return (JoinTokenWithdrawal.Withdrawn, withdrawn[0], null);
            }
        }

        var row = (await QueryAsync(
            "SELECT used_by, withdrawn_at FROM node_join_tokens WHERE id = @id",
            r => (UsedBy: r.IsDBNull(0) ? null : r.GetString(0), WithdrawnAt: r.IsDBNull(1) ? (long?)null : r.GetInt64(1)), cancellationToken, ("@id", id))).FirstOrDefault();
        return row switch
        {
            { WithdrawnAt: { } at } => (JoinTokenWithdrawal.AlreadyWithdrawn, at, null),
            { UsedBy: { } node } => (JoinTokenWithdrawal.Used, null, node),
            _ => (JoinTokenWithdrawal.NotFound, null, null),
        };
    }

    /// <summary>
    /// Records a certificate revocation; revoking a node again moves its time forward (certificates issued to it since the
    /// last revocation are cut off too).
    /// </summary>
    public Task RevokeCertificateAsync(CertificateRevocationRecord revocation, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(revocation);
        return ExecuteAsync(
            """
            INSERT INTO cluster_certificate_revocations (kind, value, revoked_at, reason) VALUES (@kind, @value, @at, @reason)
            ON CONFLICT (kind, value) DO UPDATE SET revoked_at = excluded.revoked_at, reason = excluded.reason
            """,
            cancellationToken,
            ("@kind", revocation.Kind), ("@value", revocation.Value), ("@at", revocation.RevokedAt), ("@reason", revocation.Reason));
    }

    /// <summary>Every certificate revocation.</summary>
    public Task<List<CertificateRevocationRecord>> ListCertificateRevocationsAsync(CancellationToken cancellationToken = default) => QueryAsync(
        "SELECT kind, value, revoked_at, reason FROM cluster_certificate_revocations ORDER BY revoked_at, kind, value",
        r => new CertificateRevocationRecord(r.GetString(0), r.GetString(1), r.GetInt64(2), r.IsDBNull(3) ? null : r.GetString(3)),
        cancellationToken);

    /// <summary>Stores a new operator key (only its hash), or a configured operator token's revocation row.</summary>
    public Task InsertOperatorKeyAsync(OperatorKeyRecord key, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        return ExecuteAsync(
            """
            INSERT INTO operator_keys (id, name, prefix, secret_hash, created_at, created_by, expires_at, revoked_at, revoked_by)
            VALUES (@id, @name, @prefix, @hash, @created, @createdBy, @expires, @revoked, @revokedBy)
            """,
            cancellationToken,
            ("@id", key.Id), ("@name", key.Name), ("@prefix", key.Prefix), ("@hash", key.SecretHash), ("@created", key.CreatedAt),
            ("@createdBy", key.CreatedBy), ("@expires", key.ExpiresAt), ("@revoked", key.RevokedAt), ("@revokedBy", key.RevokedBy));
    }

    /// <summary>
    /// Revokes an operator key by id, once: returns the row as it is after (the first revocation's time and actor
    /// kept) and whether this call revoked it, or null when no key has this id.
    /// </summary>
    public async Task<(OperatorKeyRecord Key, bool Newly)?> RevokeOperatorKeyAsync(string id, long at, string by, CancellationToken cancellationToken = default)
    {
        bool newly;
        using (await database.EnterWriteAsync(cancellationToken))
        {
            newly = (await QueryAsync(
                "UPDATE operator_keys SET revoked_at = @at, revoked_by = @by WHERE id = @id AND revoked_at IS NULL RETURNING id",
                r => r.GetString(0), cancellationToken, ("@id", id), ("@at", at), ("@by", by))).Count > 0;
        }

        var row = (await QueryAsync(OperatorKeySelect + " WHERE id = @id", ReadOperatorKey, cancellationToken, ("@id", id))).FirstOrDefault();
        return row is null ? null : (row, newly);
    }

    /// <summary>
    /// The operator key (or configured token's revocation) whose secret has this hash, or null. One indexed read: every
    /// gateway asks it on each operator request, so a revocation made at one is refused at all of them from its answer on.
    /// </summary>
    public async Task<OperatorKeyRecord?> FindOperatorKeyByHashAsync(string secretHash, CancellationToken cancellationToken = default) =>
        (await QueryAsync(OperatorKeySelect + " WHERE secret_hash = @hash", ReadOperatorKey, cancellationToken, ("@hash", secretHash))).FirstOrDefault();

    /// <summary>Every operator key and configured token's revocation, oldest first.</summary>
    public Task<List<OperatorKeyRecord>> ListOperatorKeysAsync(CancellationToken cancellationToken = default) =>
        QueryAsync(OperatorKeySelect + " ORDER BY created_at, id", ReadOperatorKey, cancellationToken);

    private const string OperatorKeySelect = "SELECT id, name, prefix, secret_hash, created_at, created_by, expires_at, revoked_at, revoked_by FROM operator_keys";

    private static OperatorKeyRecord ReadOperatorKey(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetString(3), r.GetInt64(4), r.GetString(5),
            r.IsDBNull(6) ? null : r.GetInt64(6), r.IsDBNull(7) ? null : r.GetInt64(7), r.IsDBNull(8) ? null : r.GetString(8));

    private const string KeySelect = "SELECT id, tenant_id, prefix, secret_hash, name, policy_json, created_at, revoked_at, expires_at FROM api_keys";

    private static TenantRecord ReadTenant(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), Convert.ToInt64(r.GetValue(4), CultureInfo.InvariantCulture) != 0, r.GetInt64(5), r.GetInt64(6), r.IsDBNull(7) ? null : r.GetString(7));

    private static JoinTokenRecord ReadJoinToken(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), r.GetInt64(4), r.GetInt64(5), r.IsDBNull(6) ? null : r.GetString(6));

    private static ApiKeyRecord ReadKey(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5), r.GetInt64(6), r.IsDBNull(7) ? null : r.GetInt64(7),
            r.IsDBNull(8) ? null : r.GetInt64(8));

    private async Task ExecuteAsync(string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        using var turn = await database.EnterWriteAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            SqlDatabase.AddParameter(command, name, value);
        }

        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task<List<T>> QueryAsync<T>(string sql, Func<DbDataReader, T> read, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            SqlDatabase.AddParameter(command, name, value);
        }

        var rows = new List<T>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(read(reader));
        }

        return rows;
    }
}
