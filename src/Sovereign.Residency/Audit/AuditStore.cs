using System.Buffers;
using System.Data;
using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Sovereign.Storage;

namespace Sovereign.Residency.Audit;

/// <summary>
/// Which chain a read or write concerns: the shared chain (<c>audit_entries</c>, <c>audit_head</c>,
/// <c>audit_checkpoints</c>: every log before member chains, and the single machine's only chain) or a member's
/// (<c>audit_chain_entries</c>, <c>audit_chains</c>, <c>audit_chain_checkpoints</c>, narrowed to its name).
/// </summary>
public sealed class AuditChainScope
{
    /// <summary>The shared chain.</summary>
    public static readonly AuditChainScope Shared = new(null);

    private AuditChainScope(string? name)
    {
        Name = name;
        Genesis = AuditCanonical.GenesisOf(name);
        EntriesFrom = name is null ? "audit_entries" : "audit_chain_entries WHERE chain = @chain";
        EntriesAnd = name is null ? "audit_entries WHERE" : "audit_chain_entries WHERE chain = @chain AND";
        CheckpointsFrom = name is null ? "audit_checkpoints" : "(SELECT * FROM audit_chain_checkpoints WHERE chain = @chain) c";
        CheckpointsAnd = name is null ? "audit_checkpoints WHERE" : "audit_chain_checkpoints WHERE chain = @chain AND";
        ArchivesFrom = name is null ? "audit_archives" : "(SELECT * FROM audit_chain_archives WHERE chain = @chain) a";
        ArchivesAnd = name is null ? "audit_archives WHERE" : "audit_chain_archives WHERE chain = @chain AND";
    }

    /// <summary>A member chain's scope.</summary>
    /// <exception cref="ArgumentException">Not a chain name (<see cref="AuditCanonical.IsChainName"/>).</exception>
    public static AuditChainScope Member(string name) => AuditCanonical.IsChainName(name)
        ? new AuditChainScope(name)
        : throw new ArgumentException($"'{name}' cannot name an audit chain: 1 to {AuditCanonical.MaxChainNameLength} printable ASCII characters, no spaces.", nameof(name));

    /// <summary>The scope of a chain named <paramref name="name"/> (null: the shared chain).</summary>
    public static AuditChainScope Of(string? name) => name is null ? Shared : Member(name);

    /// <summary>The member's name; null for the shared chain.</summary>
    public string? Name { get; }

    /// <summary>Whether this is the shared chain.</summary>
    public bool IsShared => Name is null;

    /// <summary>The previous hash of the chain's entry 1 (<see cref="AuditCanonical.GenesisOf"/>).</summary>
    public string Genesis { get; }

    /// <summary>How problems and reports name the chain.</summary>
    public string Label => Name is null ? "the shared chain" : $"chain {Name}";

    /// <summary>SQL: the chain's entries, already narrowed (no other WHERE may follow: use <see cref="EntriesAnd"/>).</summary>
    internal string EntriesFrom { get; }

    /// <summary>SQL: the chain's entries followed by WHERE (and a condition narrowing to the chain), so a condition follows.</summary>
    internal string EntriesAnd { get; }

    /// <summary>SQL: the chain's checkpoints, a table or subquery a WHERE clause can follow.</summary>
    internal string CheckpointsFrom { get; }

    /// <summary>SQL: the chain's checkpoints followed by WHERE (and a condition narrowing to the chain), so a condition follows.</summary>
    internal string CheckpointsAnd { get; }

    /// <summary>SQL: the chain's signed archive records, a table or subquery a WHERE clause can follow.</summary>
    internal string ArchivesFrom { get; }

    /// <summary>SQL: the chain's archive records followed by WHERE (and a condition narrowing to the chain), so a condition follows.</summary>
    internal string ArchivesAnd { get; }

    /// <summary>
    /// Whether the database has the member chains' tables (migration <c>audit-008-member-chains</c>): a database an
    /// older release wrote, read without migrating it (the CLI's audit commands), has none, and so no member chain.
    /// Asked, not tried: on PostgreSQL a failed statement would end the caller's snapshot.
    /// </summary>
    public static Task<bool> TablesExistAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken = default) =>
        SqlDatabase.TableExistsAsync(connection, "audit_chain_entries", transaction, cancellationToken);

    /// <summary>
    /// Whether the database has the member chains' archive records (migration <c>audit-009-member-chain-archives</c>):
    /// a database written by the release that added member chains, read without migrating it, has none, and so no
    /// member chain was archived. Asked, not tried, as <see cref="TablesExistAsync"/>.
    /// </summary>
    internal static Task<bool> ArchivesExistAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken) =>
        SqlDatabase.TableExistsAsync(connection, "audit_chain_archives", transaction, cancellationToken);

    /// <summary>Adds the <c>@chain</c> parameter where the SQL names it.</summary>
    internal void Bind(DbCommand command)
    {
        if (Name is not null)
        {
            SqlDatabase.AddParameter(command, "@chain", Name);
        }
    }
}

/// <summary>The audit tables and the portable SQL shared by the log, the verifier and the export.</summary>
internal static class AuditStore
{
    public const string EntryColumns =
        "seq, at_ms, kind, tenant, key_id, actor, action, model, gateway, node, jurisdiction, decision, decision_code, " +
        "reasons, prompt_tokens, completion_tokens, details, format, previous_hash, hash";

    public const string CheckpointColumns = "seq, hash, at_ms, key_id, signature";

    /// <summary>
    /// <c>audit_entries</c> is the chain; <c>audit_head</c> (one row, updated in the same transaction as every
    /// append) and <c>audit_checkpoints</c> (signed) make a truncated tail detectable.
    /// </summary>
    public static readonly IReadOnlyList<SqlMigration> Migrations =
    [
        new SqlMigration("audit-001-entries", EntriesTable("BIGINT"))
        {
            // On SQLite the sequence is the rowid: an append writes the table's last leaf and no separate key index
            // (one page of eight per commit). Files created before session 35 keep their BIGINT key, which works alike:
            // rebuilding their table at an upgrade would cost about 18 s per million entries before serving.
            SqliteStatements = EntriesTable("INTEGER"),
        },

        // Signed archive records: entries up to seq were written to an archive file and removed (AuditArchive).
        new SqlMigration("audit-002-archives",
        [
            """
            CREATE TABLE audit_archives (
                seq BIGINT NOT NULL,
                key_id TEXT NOT NULL,
                hash TEXT NOT NULL,
                entries BIGINT NOT NULL,
                at_ms BIGINT NOT NULL,
                signature TEXT NOT NULL,
                PRIMARY KEY (seq, key_id))
            """,
        ]),

        // Per gateway id: every allowed decision it recorded up to seq has an outcome (AuditLog.FindOpenDecisionsAsync
        // starts after it). Only an index for the start's search, never evidence: the chain itself is.
        new SqlMigration("audit-003-outcomes-checked",
        [
            "CREATE TABLE audit_outcomes_checked (gateway TEXT NOT NULL PRIMARY KEY, seq BIGINT NOT NULL, at_ms BIGINT NOT NULL)",
        ]),

        // Per process of a cluster gateway (its silo address): the head when it started, and who closed its open
        // decisions once membership declared it dead. The primary key is the claim: exactly one closer per instance.
        new SqlMigration("audit-004-instances",
        [
            """
            CREATE TABLE audit_instances (
                instance TEXT NOT NULL PRIMARY KEY,
                gateway TEXT NOT NULL,
                from_seq BIGINT NOT NULL,
                started_at_ms BIGINT NOT NULL,
                closer TEXT,
                claimed_at_ms BIGINT,
                closed_at_ms BIGINT)
            """,
        ]),

        // The open-decision search (AuditLog.FindOpenDecisionsAsync) reads one gateway id's entries in a sequence range:
        // a dead cluster process's, from its registration to the head. Without this it walked every entry of the range,
        // all members' alike. Appends extend each gateway's end of it (few ids, rising sequences). Run in the migration
        // transaction under the migration lock, like every migration: processes starting together build it once.
        new SqlMigration("audit-005-entries-by-gateway",
        [
            "CREATE INDEX audit_entries_gateway_seq ON audit_entries (gateway, seq)",
        ]),

        // Each registered process counts heartbeats while it runs (AuditLog.HeartbeatInstanceAsync): a gateway closes the
        // open decisions of a process membership no longer lists only once its count has stopped moving.
        new SqlMigration("audit-006-instance-heartbeats",
        [
            "ALTER TABLE audit_instances ADD COLUMN heartbeats BIGINT NOT NULL DEFAULT 0",
        ]),

        // Times never decrease along the chain, so a time range is a sequence range found on the primary key
        // (FirstSequenceAtOrAfterAsync); the index on time cost every append two more pages (of 18 per request).
        new SqlMigration("audit-007-no-time-index",
        [
            "DROP INDEX IF EXISTS audit_entries_at",
        ]),

        // Member chains (a cluster member's own hash chain, AuditLogOptions.Chain): beside the shared chain's tables,
        // which stay as they are (no rewrite of an existing log; an older member keeps appending to the shared chain),
        // the same rows keyed by (chain, seq), a head per chain and checkpoints per chain. New tables only, created in
        // the migration transaction under the migration lock, like every migration: servers starting together create
        // them once. Time index: readers merge chains in time order (AuditLog.ReadAsync). audit_instances.chain: the
        // chain a registered process appends to (null: the shared chain), whose head its from_seq is.
        new SqlMigration("audit-008-member-chains",
        [
            "CREATE TABLE audit_chains (chain TEXT NOT NULL PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL, updated_at BIGINT NOT NULL, created_at BIGINT NOT NULL)",
            ChainEntriesTable,
            "CREATE INDEX audit_chain_entries_tenant_at ON audit_chain_entries (tenant, at_ms)",
            "CREATE INDEX audit_chain_entries_at ON audit_chain_entries (at_ms)",
            """
            CREATE TABLE audit_chain_checkpoints (
                chain TEXT NOT NULL,
                seq BIGINT NOT NULL,
                key_id TEXT NOT NULL,
                hash TEXT NOT NULL,
                at_ms BIGINT NOT NULL,
                signature TEXT NOT NULL,
                PRIMARY KEY (chain, seq, key_id))
            """,
            "ALTER TABLE audit_instances ADD COLUMN chain TEXT NULL",
        ]),

        // Signed archive records of member chains (AuditArchive on a log with member chains): as audit_archives, per
        // chain. A new table only, created under the migration lock like every migration.
        new SqlMigration("audit-009-member-chain-archives",
        [
            """
            CREATE TABLE audit_chain_archives (
                chain TEXT NOT NULL,
                seq BIGINT NOT NULL,
                key_id TEXT NOT NULL,
                hash TEXT NOT NULL,
                entries BIGINT NOT NULL,
                at_ms BIGINT NOT NULL,
                signature TEXT NOT NULL,
                PRIMARY KEY (chain, seq, key_id))
            """,
        ]),

        // SQLite: the index by gateway (audit-005) dropped. One server holds a SQLite file (its server lock), so every
        // inference entry in the open-decision search's range (since its own last check, or since its own process
        // registered) is that server's, under its one gateway id: the rowid range reads the same rows the index found,
        // and the index cost every append a page (2 of a governed request's ~12.5, its decision's and its outcome's).
        // PostgreSQL keeps it: cluster members share the chain there, and a dead process's range holds every member's rows.
        new SqlMigration("audit-010-no-gateway-index-on-sqlite", [])
        {
            SqliteStatements = ["DROP INDEX IF EXISTS " + GatewayIndex],
        },
    ];

    /// <summary>
    /// The index on <c>audit_entries (gateway, seq)</c> that the open-decision search reads on PostgreSQL (migration
    /// <c>audit-005-entries-by-gateway</c>); a SQLite file has none since <c>audit-010-no-gateway-index-on-sqlite</c>.
    /// </summary>
    public const string GatewayIndex = "audit_entries_gateway_seq";

    private const string ChainEntriesTable =
        """
        CREATE TABLE audit_chain_entries (
            chain TEXT NOT NULL,
            seq BIGINT NOT NULL,
            at_ms BIGINT NOT NULL,
            kind TEXT NOT NULL,
            tenant TEXT NULL,
            key_id TEXT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            model TEXT NULL,
            gateway TEXT NULL,
            node TEXT NULL,
            jurisdiction TEXT NULL,
            decision TEXT NULL,
            decision_code TEXT NULL,
            reasons TEXT NOT NULL,
            prompt_tokens BIGINT NULL,
            completion_tokens BIGINT NULL,
            details TEXT NOT NULL,
            format INTEGER NOT NULL,
            previous_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (chain, seq))
        """;

    /// <summary>The member chains that exist (a row in <c>audit_chains</c>), by name.</summary>
    public static async Task<List<string>> ReadChainNamesAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "SELECT chain FROM audit_chains ORDER BY chain";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var names = new List<string>();
        while (await reader.ReadAsync(cancellationToken))
        {
            names.Add(reader.GetString(0));
        }

        return names;
    }

    /// <summary>The chain's tables, with <paramref name="sequenceType"/> as the sequence's column type.</summary>
    private static string[] EntriesTable(string sequenceType) =>
    [
        $"""
        CREATE TABLE audit_entries (
            seq {sequenceType} NOT NULL PRIMARY KEY,
            at_ms BIGINT NOT NULL,
            kind TEXT NOT NULL,
            tenant TEXT NULL,
            key_id TEXT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            model TEXT NULL,
            gateway TEXT NULL,
            node TEXT NULL,
            jurisdiction TEXT NULL,
            decision TEXT NULL,
            decision_code TEXT NULL,
            reasons TEXT NOT NULL,
            prompt_tokens BIGINT NULL,
            completion_tokens BIGINT NULL,
            details TEXT NOT NULL,
            format INTEGER NOT NULL,
            previous_hash TEXT NOT NULL,
            hash TEXT NOT NULL)
        """,
        "CREATE INDEX audit_entries_tenant_at ON audit_entries (tenant, at_ms)",
        "CREATE INDEX audit_entries_at ON audit_entries (at_ms)",
        "CREATE TABLE audit_head (id INTEGER NOT NULL PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL, updated_at BIGINT NOT NULL)",
        $"INSERT INTO audit_head (id, seq, hash, updated_at) VALUES (1, 0, '{AuditCanonical.GenesisHash}', 0)",
        """
        CREATE TABLE audit_checkpoints (
            seq BIGINT NOT NULL,
            key_id TEXT NOT NULL,
            hash TEXT NOT NULL,
            at_ms BIGINT NOT NULL,
            signature TEXT NOT NULL,
            PRIMARY KEY (seq, key_id))
        """,
    ];

    /// <summary>
    /// The first sequence whose entry is at or after <paramref name="atMs"/>; null when none is (yet).
    /// Every append takes a time no earlier than its predecessor's (<see cref="AuditLog"/>), so times rise with sequences
    /// and the position is a binary search on the primary key: about log2(entries) point reads, no index on time.
    /// Gaps in the sequence (none in a log that verifies) are stepped over.
    /// </summary>
    public static async Task<long?> FirstSequenceAtOrAfterAsync(DbConnection connection, DbTransaction? transaction, long atMs, CancellationToken cancellationToken)
    {
        using var probe = connection.CreateCommand();
        probe.Transaction = transaction;
        probe.CommandText = "SELECT seq, at_ms FROM audit_entries WHERE seq >= @seq ORDER BY seq LIMIT 1";
        var at = SqlDatabase.AddParameter(probe, "@seq", 0L);
        async Task<(long Sequence, long At)?> EntryFromAsync(long sequence)
        {
            at.Value = sequence;
            await using var reader = await probe.ExecuteReaderAsync(cancellationToken);
            return await reader.ReadAsync(cancellationToken) ? (ToInt64(reader.GetValue(0)), ToInt64(reader.GetValue(1))) : null;
        }

        long newest;
        using (var last = connection.CreateCommand())
        {
            last.Transaction = transaction;
            last.CommandText = "SELECT seq, at_ms FROM audit_entries ORDER BY seq DESC LIMIT 1";
            await using var reader = await last.ExecuteReaderAsync(cancellationToken);
            if (!await reader.ReadAsync(cancellationToken) || ToInt64(reader.GetValue(1)) < atMs)
            {
                // Also the common case of a range reaching up to now.
                return null;
            }

            newest = ToInt64(reader.GetValue(0));
        }

        var oldest = (await EntryFromAsync(0))!.Value;
        if (oldest.At >= atMs)
        {
            return oldest.Sequence;
        }

        // The least position s whose first entry at or after it is at or after the time: every entry from s on is,
        // none before it. The oldest is not (left), the newest is (right).
        var (left, right) = (oldest.Sequence + 1, newest);
        while (left < right)
        {
            var middle = left + ((right - left) / 2);
            var entry = (await EntryFromAsync(middle))!.Value;
            if (entry.At >= atMs)
            {
                right = middle;
            }
            else
            {
                // Neither is any entry up to this one.
                left = entry.Sequence + 1;
            }
        }

        return left;
    }

    public static Task<(long Sequence, string Hash)?> ReadHeadAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken) =>
        ReadHeadAsync(connection, transaction, AuditChainScope.Shared, cancellationToken);

    /// <summary>The head row of <paramref name="scope"/>'s chain (<c>audit_head</c>, or its row in <c>audit_chains</c>), or null when it has none.</summary>
    public static async Task<(long Sequence, string Hash)?> ReadHeadAsync(DbConnection connection, DbTransaction? transaction, AuditChainScope scope, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = scope.IsShared ? "SELECT seq, hash FROM audit_head WHERE id = 1" : "SELECT seq, hash FROM audit_chains WHERE chain = @chain";
        scope.Bind(command);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        return (ToInt64(reader.GetValue(0)), reader.GetString(1));
    }

    /// <summary>
    /// A read-only transaction whose reads all see one snapshot, without blocking the writer: SQLite's deferred
    /// BEGIN (the provider's default is IMMEDIATE, which takes the write lock), PostgreSQL's REPEATABLE READ.
    /// </summary>
    public static async Task<DbTransaction> BeginSnapshotAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        if (connection is SqliteConnection sqlite)
        {
            return sqlite.BeginTransaction(IsolationLevel.Serializable, deferred: true);
        }

        return await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken);
    }

    public static Task<List<AuditCheckpoint>> ReadCheckpointsAsync(DbConnection connection, DbTransaction? transaction, string where, Action<DbCommand>? bind, CancellationToken cancellationToken) =>
        ReadCheckpointsAsync(connection, transaction, AuditChainScope.Shared, where, bind, cancellationToken);

    /// <summary>
    /// Checkpoints of <paramref name="scope"/>'s chain matching <paramref name="where"/> (a WHERE clause; on a member
    /// chain the table is already narrowed to it, so the clause must not name another chain).
    /// </summary>
    public static async Task<List<AuditCheckpoint>> ReadCheckpointsAsync(DbConnection connection, DbTransaction? transaction, AuditChainScope scope, string where, Action<DbCommand>? bind, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT {CheckpointColumns} FROM {scope.CheckpointsFrom} {where} ORDER BY seq, key_id";
        bind?.Invoke(command);
        scope.Bind(command);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var checkpoints = new List<AuditCheckpoint>();
        while (await reader.ReadAsync(cancellationToken))
        {
            checkpoints.Add(new AuditCheckpoint(
                ToInt64(reader.GetValue(0)),
                reader.IsDBNull(1) ? string.Empty : reader.GetString(1),
                ToInt64(reader.GetValue(2)),
                reader.IsDBNull(3) ? string.Empty : reader.GetString(3),
                reader.IsDBNull(4) ? string.Empty : reader.GetString(4)));
        }

        return checkpoints;
    }

    public static Task<List<AuditArchiveRecord>> ReadArchivesAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken) =>
        ReadArchivesAsync(connection, transaction, AuditChainScope.Shared, cancellationToken);

    /// <summary>The signed archive records of <paramref name="scope"/>'s chain, by sequence.</summary>
    public static async Task<List<AuditArchiveRecord>> ReadArchivesAsync(DbConnection connection, DbTransaction? transaction, AuditChainScope scope, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT seq, hash, entries, at_ms, key_id, signature FROM {scope.ArchivesFrom} ORDER BY seq, key_id";
        scope.Bind(command);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var archives = new List<AuditArchiveRecord>();
        while (await reader.ReadAsync(cancellationToken))
        {
            archives.Add(new AuditArchiveRecord(
                ToInt64(reader.GetValue(0)),
                reader.IsDBNull(1) ? string.Empty : reader.GetString(1),
                ToInt64(reader.GetValue(2)),
                ToInt64(reader.GetValue(3)),
                reader.IsDBNull(4) ? string.Empty : reader.GetString(4),
                reader.IsDBNull(5) ? string.Empty : reader.GetString(5)));
        }

        return archives;
    }

    public static Task InsertArchiveAsync(DbConnection connection, DbTransaction? transaction, AuditArchiveRecord archive, CancellationToken cancellationToken) =>
        InsertArchiveAsync(connection, transaction, AuditChainScope.Shared, archive, cancellationToken);

    /// <summary>Stores a signed archive record of <paramref name="scope"/>'s chain (once per sequence and key).</summary>
    public static async Task InsertArchiveAsync(DbConnection connection, DbTransaction? transaction, AuditChainScope scope, AuditArchiveRecord archive, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = scope.IsShared
            ? "INSERT INTO audit_archives (seq, key_id, hash, entries, at_ms, signature) VALUES (@seq, @key, @hash, @entries, @at, @sig) ON CONFLICT (seq, key_id) DO NOTHING"
            : "INSERT INTO audit_chain_archives (chain, seq, key_id, hash, entries, at_ms, signature) VALUES (@chain, @seq, @key, @hash, @entries, @at, @sig) ON CONFLICT (chain, seq, key_id) DO NOTHING";
        scope.Bind(command);
        SqlDatabase.AddParameter(command, "@seq", archive.Sequence);
        SqlDatabase.AddParameter(command, "@key", archive.KeyId);
        SqlDatabase.AddParameter(command, "@hash", archive.Hash);
        SqlDatabase.AddParameter(command, "@entries", archive.Entries);
        SqlDatabase.AddParameter(command, "@at", archive.Timestamp);
        SqlDatabase.AddParameter(command, "@sig", archive.Signature);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The smallest sequence in the log (1 unless entries were archived), or null when it is empty.</summary>
    public static Task<long?> ReadFirstSequenceAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken) =>
        ReadFirstSequenceAsync(connection, transaction, AuditChainScope.Shared, cancellationToken);

    /// <summary>The smallest sequence in <paramref name="scope"/>'s chain, or null when it is empty.</summary>
    public static async Task<long?> ReadFirstSequenceAsync(DbConnection connection, DbTransaction? transaction, AuditChainScope scope, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT MIN(seq) FROM {scope.EntriesFrom}";
        scope.Bind(command);
        var value = await command.ExecuteScalarAsync(cancellationToken);
        return value is null or DBNull ? null : ToInt64(value);
    }

    public static Task InsertCheckpointAsync(DbConnection connection, DbTransaction? transaction, AuditCheckpoint checkpoint, CancellationToken cancellationToken) =>
        InsertCheckpointAsync(connection, transaction, AuditChainScope.Shared, checkpoint, cancellationToken);

    /// <summary>Stores a signed checkpoint of <paramref name="scope"/>'s chain (once per sequence and key).</summary>
    public static async Task InsertCheckpointAsync(DbConnection connection, DbTransaction? transaction, AuditChainScope scope, AuditCheckpoint checkpoint, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = scope.IsShared
            ? "INSERT INTO audit_checkpoints (seq, key_id, hash, at_ms, signature) VALUES (@seq, @key, @hash, @at, @sig) ON CONFLICT (seq, key_id) DO NOTHING"
            : "INSERT INTO audit_chain_checkpoints (chain, seq, key_id, hash, at_ms, signature) VALUES (@chain, @seq, @key, @hash, @at, @sig) ON CONFLICT (chain, seq, key_id) DO NOTHING";
        scope.Bind(command);
        SqlDatabase.AddParameter(command, "@seq", checkpoint.Sequence);
        SqlDatabase.AddParameter(command, "@key", checkpoint.KeyId);
        SqlDatabase.AddParameter(command, "@hash", checkpoint.Hash);
        SqlDatabase.AddParameter(command, "@at", checkpoint.Timestamp);
        SqlDatabase.AddParameter(command, "@sig", checkpoint.Signature);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Reads entries of <paramref name="scope"/>'s chain matching <paramref name="condition"/> (SQL after WHERE, ordering included); malformed rows throw.</summary>
    public static Task<IReadOnlyList<AuditEntry>> ReadEntriesAsync(SqlDatabase database, AuditChainScope scope, string condition, Action<DbCommand> bind, CancellationToken cancellationToken) =>
        ReadEntriesAsync(database, $"FROM {scope.EntriesAnd} {condition}", scope, bind, cancellationToken);

    /// <summary>Reads entries (ordered by sequence) matching a WHERE clause; malformed rows throw.</summary>
    public static Task<IReadOnlyList<AuditEntry>> ReadEntriesAsync(SqlDatabase database, string where, Action<DbCommand> bind, CancellationToken cancellationToken) =>
        ReadEntriesAsync(database, $"FROM audit_entries {where}", AuditChainScope.Shared, bind, cancellationToken);

    private static async Task<IReadOnlyList<AuditEntry>> ReadEntriesAsync(SqlDatabase database, string from, AuditChainScope scope, Action<DbCommand> bind, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {EntryColumns} {from}";
        bind(command);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var entries = new List<AuditEntry>();
        while (await reader.ReadAsync(cancellationToken))
        {
            if (!TryReadEntry(reader, out var entry, out var error))
            {
                throw new FormatException($"Audit entry {reader.GetValue(0)} of {scope.Label} is malformed: {error}");
            }

            entries.Add(scope.IsShared ? entry : entry with { Chain = scope.Name });
        }

        return entries;
    }

    /// <summary>
    /// Reads the rows of a query across chains, each selected as <see cref="EntryColumns"/> then its chain ('' for the
    /// shared one, as column 20), into entries with their chain set, keeping those <paramref name="keep"/> accepts (all
    /// when null); a malformed row throws, naming its sequence and chain. The one reader of <see cref="AuditLog"/>'s
    /// pages across chains and <see cref="AuditRequestLookup"/>'s matches, which each had their own copy of this loop.
    /// </summary>
    public static async Task<List<AuditEntry>> ReadAcrossChainsAsync(DbDataReader reader, Func<AuditEntry, bool>? keep, CancellationToken cancellationToken)
    {
        var entries = new List<AuditEntry>();
        while (await reader.ReadAsync(cancellationToken))
        {
            var chain = reader.GetString(20);
            if (!TryReadEntry(reader, out var entry, out var error))
            {
                throw new FormatException($"Audit entry {reader.GetValue(0)} of {AuditChainScope.Of(chain.Length == 0 ? null : chain).Label} is malformed: {error}");
            }

            if (keep is null || keep(entry))
            {
                entries.Add(chain.Length == 0 ? entry : entry with { Chain = chain });
            }
        }

        return entries;
    }

    /// <summary>Maps a row selected with <see cref="EntryColumns"/>; on failure says what is wrong.</summary>
    public static bool TryReadEntry(DbDataReader reader, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out AuditEntry? entry, [System.Diagnostics.CodeAnalysis.NotNullWhen(false)] out string? error)
    {
        entry = null;
        try
        {
            var format = ToInt64(reader.GetValue(17));
            if (format != AuditCanonical.EntryFormatVersion)
            {
                error = $"unknown entry format {format}";
                return false;
            }

            if (!AuditCanonical.TryParseKind(Text(reader, 2), out var kind))
            {
                error = $"unknown kind '{Text(reader, 2)}'";
                return false;
            }

            if (!AuditCanonical.TryParseDecision(Text(reader, 11), out var decision))
            {
                error = $"unknown decision '{Text(reader, 11)}'";
                return false;
            }

            entry = new AuditEntry
            {
                Sequence = ToInt64(reader.GetValue(0)),
                Timestamp = ToInt64(reader.GetValue(1)),
                Kind = kind,
                Tenant = Text(reader, 3),
                KeyId = Text(reader, 4),
                Actor = Text(reader, 5) ?? throw new FormatException("actor is null"),
                Action = Text(reader, 6) ?? throw new FormatException("action is null"),
                Model = Text(reader, 7),
                Gateway = Text(reader, 8),
                Node = Text(reader, 9),
                Jurisdiction = Text(reader, 10),
                Decision = decision,
                DecisionCode = Text(reader, 12),
                Reasons = DecodeReasons(Text(reader, 13) ?? throw new FormatException("reasons is null")),
                PromptTokens = reader.IsDBNull(14) ? null : ToInt64(reader.GetValue(14)),
                CompletionTokens = reader.IsDBNull(15) ? null : ToInt64(reader.GetValue(15)),
                Details = DecodeDetails(Text(reader, 16) ?? throw new FormatException("details is null")),
                PreviousHash = Text(reader, 18) ?? string.Empty,
                Hash = Text(reader, 19) ?? string.Empty,
            };
            error = null;
            return true;
        }
        catch (Exception ex) when (ex is FormatException or InvalidCastException or JsonException or OverflowException)
        {
            entry = null;
            error = ex.Message;
            return false;
        }
    }

    private static readonly string[] ColumnNames = EntryColumns.Split(", ");

    /// <summary>
    /// The first text column of a row selected with <see cref="EntryColumns"/> that holds a BLOB, or null. SQLite
    /// keeps a BLOB in a TEXT column as given: its bytes read back as the same text, so the entry still hashes, but
    /// no comparison with text matches it, so reads that select by the column (a tenant's audit, by tenant) skip the
    /// entry. Only a hand-edited database holds one. Call it before the row's text is read (SQLite converts a value
    /// read as text, and reports the converted type after).
    /// </summary>
    public static string? BlobInTextColumn(DbDataReader reader)
    {
        for (var ordinal = 2; ordinal < ColumnNames.Length; ordinal++)
        {
            if (ordinal is not (14 or 15 or 17) && !reader.IsDBNull(ordinal) && reader.GetFieldType(ordinal) == typeof(byte[]))
            {
                return ColumnNames[ordinal];
            }
        }

        return null;
    }

    /// <summary>The reasons column's JSON: an array of the strings, in order.</summary>
    public static void WriteReasons(Utf8JsonWriter writer, IReadOnlyList<string> reasons)
    {
        writer.WriteStartArray();
        foreach (var reason in reasons)
        {
            writer.WriteStringValue(reason);
        }

        writer.WriteEndArray();
    }

    /// <summary>The details column's JSON: an object, its keys in ordinal order.</summary>
    public static void WriteDetails(Utf8JsonWriter writer, IReadOnlyDictionary<string, string> details)
    {
        var count = details.Count;
        var sorted = ArrayPool<KeyValuePair<string, string>>.Shared.Rent(count);
        try
        {
            var pairs = sorted.AsSpan(0, count);
            var i = 0;
            if (details is Dictionary<string, string> dictionary)
            {
                foreach (var pair in dictionary)
                {
                    pairs[i++] = pair;
                }
            }
            else
            {
                foreach (var pair in details)
                {
                    pairs[i++] = pair;
                }
            }

            pairs.Sort(static (a, b) => string.CompareOrdinal(a.Key, b.Key));
            writer.WriteStartObject();
            foreach (var (key, value) in pairs)
            {
                writer.WriteString(key, value);
            }

            writer.WriteEndObject();
        }
        finally
        {
            ArrayPool<KeyValuePair<string, string>>.Shared.Return(sorted, clearArray: true);
        }
    }

    public static List<string> DecodeReasons(string json)
    {
        using var document = JsonDocument.Parse(json);
        return ReadReasons(document.RootElement);
    }

    public static Dictionary<string, string> DecodeDetails(string json)
    {
        using var document = JsonDocument.Parse(json);
        return ReadDetails(document.RootElement);
    }

    /// <summary>A JSON array of strings, nothing else.</summary>
    public static List<string> ReadReasons(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException("reasons must be a JSON array of strings");
        }

        var reasons = new List<string>(element.GetArrayLength());
        foreach (var item in element.EnumerateArray())
        {
            reasons.Add(item.ValueKind == JsonValueKind.String ? item.GetString()! : throw new FormatException("reasons must be strings"));
        }

        return reasons;
    }

    /// <summary>A JSON object of string values with no duplicate keys (a duplicate would make the content ambiguous).</summary>
    public static Dictionary<string, string> ReadDetails(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("details must be a JSON object of strings");
        }

        var details = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
        {
            if (property.Value.ValueKind != JsonValueKind.String)
            {
                throw new FormatException($"details.{property.Name} must be a string");
            }

            if (!details.TryAdd(property.Name, property.Value.GetString()!))
            {
                throw new FormatException($"details has a duplicate key '{property.Name}'");
            }
        }

        return details;
    }

    public static long ToInt64(object value) => Convert.ToInt64(value, CultureInfo.InvariantCulture);

    private static string? Text(DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
}
