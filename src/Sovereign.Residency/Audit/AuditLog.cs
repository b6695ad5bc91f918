using System.Buffers;
using System.Collections.Concurrent;
using System.Data.Common;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Sovereign.Storage;

namespace Sovereign.Residency.Audit;

/// <summary>Tuning for <see cref="AuditLog"/>.</summary>
public sealed record AuditLogOptions
{
    /// <summary>A signed checkpoint is written in the same transaction as every entry whose sequence is a multiple of this.</summary>
    public int CheckpointInterval { get; init; } = 1000;

    /// <summary>
    /// Whether this writer signs checkpoints. A cluster's nodes append to the shared chain but hold no operator key
    /// (they joined with a token), so only gateways sign; a node's appends are covered by the next gateway checkpoint.
    /// </summary>
    public bool SignsCheckpoints { get; init; } = true;

    /// <summary>
    /// When set, the head is also signed when this writer's newest checkpoint is older than this: in the commit of
    /// the first append after that (so a log this writer extends has a checkpoint from its first commit on), and by
    /// a timer when the log went idle with an unsigned tail. Bounds how long an entry stays uncovered, which is what
    /// lets a verifier treat an old uncovered tail as suspicious. Null: only every <see cref="CheckpointInterval"/>.
    /// </summary>
    public TimeSpan? CheckpointMaxAge { get; init; }

    /// <summary>
    /// Where this signer keeps the last head it signed (<see cref="AuditWitness"/>), outside the database: beside the
    /// operator key. Before it signs, the chain must still hold that head, or opening and appending are refused
    /// (<see cref="AuditIntegrityException"/>): a database rewritten after its newest checkpoints were deleted is never
    /// signed over. Null: no witness (a node, which does not sign; tests).
    /// </summary>
    public string? WitnessPath { get; init; }

    /// <summary>
    /// The member chain this writer appends to (<see cref="AuditChainScope"/>): a cluster member's id, so members
    /// commit apart, each under its own chain's lock. Null (the default, and the single machine's only choice): the
    /// shared chain, which every member appended to before member chains and an older member still does.
    /// </summary>
    public string? Chain { get; init; }

    /// <summary>
    /// The longest (in real time) the writer tries to commit one batch of appends, its retries included, whatever the
    /// connection string's Command Timeout says: at the deadline the driver is asked to cancel and the writer stops
    /// waiting for it; the batch's appends, and every append queued behind them (they waited as long), fail with
    /// <see cref="AuditUnavailableException"/> whose cause is the database not answering in time. A commit whose answer
    /// never came may have been applied: the retry first looks for it under the chain's lock, so an entry is in the
    /// chain once whatever the retry finds.
    /// </summary>
    public TimeSpan CommitTimeout { get; init; } = DefaultCommitTimeout;

    /// <summary>The default of <see cref="CommitTimeout"/>.</summary>
    public static readonly TimeSpan DefaultCommitTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Tests only: the clock the <see cref="CommitTimeout"/> runs on (the batch's start, the time since and the timer
    /// that fires at the deadline). Null, the default: real time. A test that needs a commit to run out of time holds
    /// this clock and moves it past the deadline once the commit is where it wants it, so its other appends never do
    /// on a loaded machine.
    /// </summary>
    internal TimeProvider? DeadlineClock { get; init; }

    /// <summary>The most appends that share one transaction (group commit).</summary>
    public int MaxBatchSize { get; init; } = 256;

    /// <summary>
    /// SQLite only: <c>synchronous=FULL</c> on the writer's connection, so a committed entry survives power loss, not
    /// just a killed process. It costs an fsync per group commit.
    /// </summary>
    public bool SqliteSynchronousFull { get; init; }

    /// <summary>
    /// SQLite only: how many commits between WAL checkpoints, which then run on a thread of their own (with a connection
    /// of their own, kept open; not a pool thread, which a pass's copy and fsyncs would hold) instead of inside an
    /// append (SQLite's automatic checkpoint copies pages and fsyncs in whichever commit crosses 1000 pages: a
    /// multi-millisecond stall on one request, and on every request queued behind it). 0 keeps SQLite's default.
    /// </summary>
    public int SqliteWalCheckpointCommits { get; init; } = 200;

    /// <summary>
    /// SQLite only, with <see cref="SqliteWalCheckpointCommits"/>: the WAL size at which a checkpoint also makes the WAL
    /// start over. A checkpoint that runs beside commits never ends with every frame copied, and SQLite restarts the WAL
    /// only then, so under steady load it would grow without end (about 19 KiB a request). Past this size the
    /// checkpoint copies the last few frames while this process's writers wait their turn (two fsyncs, once per this
    /// many bytes), so the next commit starts the WAL over; <see cref="SqlDatabase.WalSizeLimitBytes"/> then truncates it.
    /// </summary>
    public long SqliteWalRestartBytes { get; init; } = SqlDatabase.WalSizeLimitBytes;

    /// <summary>
    /// Called once, on the writer's thread (return at once), when this log finds after it opened that the chain was
    /// truncated or rewritten (its tail no longer matches <c>audit_head</c>, or no longer holds the witness): nothing
    /// is appended or signed from then on, and a server stops rather than answer 503 for ever. Not called when
    /// <see cref="AuditLog.OpenAsync"/> refuses: that throws the <see cref="AuditIntegrityException"/> itself.
    /// </summary>
    public Action<AuditIntegrityException>? IntegrityLost { get; init; }
}

/// <summary>Which audit entries to read: one page of a tenant's (or everyone's) entries in a time range.</summary>
public sealed record AuditQuery
{
    /// <summary>Whose entries; null: every tenant's and the operator's.</summary>
    public string? Tenant { get; init; }

    /// <summary>Entries at or after this time.</summary>
    public DateTimeOffset From { get; init; } = DateTimeOffset.UnixEpoch;

    /// <summary>Entries before this time.</summary>
    public DateTimeOffset To { get; init; } = DateTimeOffset.MaxValue;

    /// <summary>Only entries with a higher sequence (the cursor of the next ascending page).</summary>
    public long? After { get; init; }

    /// <summary>Only entries with a lower sequence (the cursor of the next newest-first page).</summary>
    public long? Before { get; init; }

    /// <summary>
    /// The member chain of the cursor's entry (<see cref="After"/> or <see cref="Before"/>); null: the shared chain's.
    /// Where member chains hold entries, pages run across every chain in time order (then chain, then sequence), and
    /// the cursor is the entry the previous page ended with.
    /// </summary>
    public string? CursorChain { get; init; }

    /// <summary>Newest first instead of oldest first.</summary>
    public bool NewestFirst { get; init; }

    /// <summary>The most entries in the page.</summary>
    public int Limit { get; init; } = 10_000;
}

/// <summary>Allowed decisions without an outcome (<see cref="AuditLog.FindOpenDecisionsAsync"/>).</summary>
/// <param name="Decisions">The decision entries, oldest first.</param>
/// <param name="CheckedThrough">The head the search read up to: pass it to <see cref="AuditLog.MarkOutcomesCheckedAsync"/> once they are closed.</param>
public sealed record OpenDecisions(IReadOnlyList<AuditEntry> Decisions, long CheckedThrough);

/// <summary>A process of a cluster gateway, registered at its start (<see cref="AuditLog.RegisterInstanceAsync"/>).</summary>
/// <param name="Instance">Its id (its Orleans silo address), which its decisions carry as the <c>instance</c> detail.</param>
/// <param name="Gateway">Its gateway id (the entries' <c>gateway</c>).</param>
/// <param name="FromSequence">The head when it started: its decisions come after.</param>
/// <param name="Closer">The process that claimed the closing of its open decisions, if any.</param>
/// <param name="Heartbeats">How many heartbeats it has written (<see cref="AuditLog.HeartbeatInstanceAsync"/>): a count that moves while it runs.</param>
/// <param name="Chain">The chain it appends to (null: the shared chain), whose head <paramref name="FromSequence"/> is.</param>
public sealed record AuditInstance(string Instance, string Gateway, long FromSequence, string? Closer, long Heartbeats = 0, string? Chain = null);

/// <summary>
/// The append-only, hash-chained audit log. Exactly one writer extends the chain at a time: appends join a queue and
/// the first caller that finds no writer active becomes it (leader/follower group commit), committing everything
/// queued in one transaction together with the <c>audit_head</c> row and, every
/// <see cref="AuditLogOptions.CheckpointInterval"/> entries, a signed checkpoint. An uncontended append therefore
/// commits on the caller's own thread with no hand-off, and under load many appends share one commit.
/// <see cref="AppendAsync"/> returns only once its entry is committed. Never holds prompt or completion content.
/// </summary>
public sealed class AuditLog : IAsyncDisposable
{
    /// <summary>The detail of a cluster gateway's decision that names the process that made it (its silo address).</summary>
    public const string InstanceDetail = "instance";

    private const int MaxReasons = 64;
    private const int MaxDetails = 64;
    private const int MaxEntryBytes = 256 * 1024;

    private readonly SqlDatabase _database;
    private readonly OperatorSigningKey _signingKey;
    private readonly AuditLogOptions _options;
    private readonly TimeProvider _time;
    private readonly long _openedAt;
    private readonly ConcurrentQueue<Work> _pending = new();
    private int _leader;
    private readonly AuditChainScope _scope;
    private volatile ChainState _state;
    private ITimer? _checkpointTimer;
    private AuditWitnessHead? _witness;
    private AuditIntegrityException? _witnessLost; // once the chain lost the witness, nothing more is appended or signed
    private AuditWitnessHead? _witnessToWrite;
    private int _witnessWriterActive;
    private readonly SemaphoreSlim _signingMembers = new(1, 1); // one signing of members' chains at a time (timer, shutdown)
    private Dictionary<string, (long Sequence, string Hash)>? _witnessedHeads; // under _signingMembers
    private volatile bool _opened; // from here on an integrity failure is reported (IntegrityLost), not thrown by OpenAsync
    private int _integrityLostReported;
    private Task _witnessWrite = Task.CompletedTask;
    private Task _abandoned = Task.CompletedTask; // a commit given up on at its deadline, still inside the driver (it holds the connection)
    private DbConnection? _connection;
    private PreparedStatement? _insert;

    // Only the writer holding the lead binds an insert, so one buffer serves every entry's JSON columns.
    private readonly ArrayBufferWriter<byte> _json = new(1024);
    private Utf8JsonWriter? _jsonWriter;
    private PreparedStatement? _moveHead;
    private PreparedStatement? _insertMovingHead; // PostgreSQL: a commit's last entry and the head's move in one statement
    private PreparedTransaction? _sqliteTransaction; // SQLite: BEGIN IMMEDIATE/COMMIT prepared once per connection
    private PreparedStatement?[]? _appendsInOne; // PostgreSQL member chain: [k - 1] commits k entries as one statement, made at first use
    private int _disposed;
    private int _closed;
    private int _commitsSinceWalCheckpoint;
    private readonly WalCheckpointer? _walCheckpointer; // SQLite with SqliteWalCheckpointCommits > 0

    // Writers that prepared statements on the current connection (told before it closes).
    private readonly HashSet<ICarriedWriter> _carriedWriters = [];

    private AuditLog(SqlDatabase database, OperatorSigningKey signingKey, AuditLogOptions options, TimeProvider time)
    {
        _database = database;
        _signingKey = signingKey;
        _options = options;
        _time = time;
        _openedAt = time.GetUtcNow().ToUnixTimeMilliseconds();
        _scope = AuditChainScope.Of(options.Chain);
        _state = new(0, _scope.Genesis, 0, null, 0);
        if (database.Provider == SqlProvider.Sqlite && options.SqliteWalCheckpointCommits > 0)
        {
            _walCheckpointer = new WalCheckpointer(database, options.SqliteWalRestartBytes);
        }
    }

    /// <summary>The chain this log appends to.</summary>
    public AuditChainScope Scope => _scope;

    /// <summary>The audit schema (names start with <c>audit-</c>); <see cref="OpenAsync"/> applies it.</summary>
    public static IReadOnlyList<SqlMigration> Migrations => AuditStore.Migrations;

    /// <summary>The last committed sequence (0 when empty).</summary>
    public long HeadSequence => _state.Sequence;

    /// <summary>The last committed hash (64 zeros when empty).</summary>
    public string HeadHash => _state.Hash;

    /// <summary>How long a batch of appends may take to commit, its retries included (<see cref="AuditLogOptions.CommitTimeout"/>).</summary>
    internal TimeSpan CommitTimeout => _options.CommitTimeout;

    /// <summary>For tests: the commit given up on at its deadline, until it came out of the driver (completed when none).</summary>
    internal Task AbandonedCommit => _abandoned;

    /// <summary>The WAL housekeeping asked for by the latest commit that was due one (for tests).</summary>
    internal Task WalHousekeeping => _walCheckpointer?.Latest ?? Task.CompletedTask;

    /// <summary>The WAL checkpointer (for tests); null on PostgreSQL or with checkpoints left to SQLite.</summary>
    internal WalCheckpointer? WalCheckpointer => _walCheckpointer;

    /// <summary>The latest write of the witness file (for tests; disposing waits for it).</summary>
    internal Task WitnessWritten => _witnessWrite;

    /// <summary>The key that signs checkpoints.</summary>
    public string KeyId => _signingKey.KeyId;

    /// <summary>
    /// Migrates and loads the head. Refuses (<see cref="AuditIntegrityException"/>) to continue a
    /// chain whose tail does not match <c>audit_head</c>, so a truncated or rewritten tail is never built upon.
    /// </summary>
    public static async Task<AuditLog> OpenAsync(SqlDatabase database, OperatorSigningKey signingKey, AuditLogOptions? options = null, TimeProvider? timeProvider = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(signingKey);
        options ??= new AuditLogOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.CheckpointInterval, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxBatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(options.SqliteWalCheckpointCommits);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.SqliteWalRestartBytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.CommitTimeout, TimeSpan.Zero, nameof(options));
        if (options.CheckpointMaxAge is { } maxAge)
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxAge, TimeSpan.Zero, nameof(options));
        }

        await database.MigrateAsync(Migrations, cancellationToken);
        var log = new AuditLog(database, signingKey, options, timeProvider ?? TimeProvider.System);
        if (options.SignsCheckpoints && options.WitnessPath is { } witness)
        {
            log._witness = AuditWitness.Read(witness);
        }

        await log.LoadStateAsync(cancellationToken);
        log._opened = true;
        if (options.SignsCheckpoints)
        {
            AuditMetrics.Track(log); // sovereign_audit_checkpoint_lag_*: a writer that signs its own head
        }
        if (options.SignsCheckpoints && options.CheckpointMaxAge is { } age)
        {
            log._checkpointTimer = log._time.CreateTimer(static state => ((AuditLog)state!).OnCheckpointTimer(), log, age, age);
        }

        return log;
    }

    /// <summary>
    /// Records <paramref name="draft"/>: assigns the next sequence, the time, the previous hash and the hash, and
    /// returns the entry once it is committed. Cancelling stops the wait, not the write: a queued entry is still
    /// recorded.
    /// </summary>
    public Task<AuditEntry> AppendAsync(AuditRecord draft, CancellationToken cancellationToken = default) =>
        AppendAsync(draft, null, cancellationToken);

    /// <summary>
    /// Records <paramref name="draft"/> as <see cref="AppendAsync(AuditRecord, CancellationToken)"/> does, and
    /// <paramref name="carried"/> in the same transaction: both are durable together or neither is (it is told which).
    /// </summary>
    public Task<AuditEntry> AppendAsync(AuditRecord draft, ICarriedWrite? carried, CancellationToken cancellationToken = default)
    {
        if (carried is not null && !ReferenceEquals(carried.Writer.Database, _database))
        {
            throw new ArgumentException("The carried write belongs to another database than the audit log's.", nameof(carried));
        }

        var work = new AppendWork(Validate(draft), carried);
        return SubmitAsync(work, work.Completion.Task, cancellationToken);
    }

    /// <summary>
    /// Records <paramref name="draft"/> (and <paramref name="carried"/>) as
    /// <see cref="AppendAsync(AuditRecord, ICarriedWrite?, CancellationToken)"/> does, unless an earlier append of the
    /// same entry that failed with commits in doubt (<see cref="AuditUnavailableException.InDoubt"/>, passed as
    /// <paramref name="inDoubt"/>) was committed after all: then it returns that entry and appends nothing. It looks under
    /// the chain's lock, which a commit still on its way holds until it is applied or rolled back, so the entry is in the
    /// chain once whichever way that commit went. The carried write is made either way (a usage record the earlier
    /// commit carried is a duplicate that the ledger keeps once).
    /// </summary>
    public Task<AuditEntry> AppendUnlessCommittedAsync(AuditRecord draft, ICarriedWrite? carried, IReadOnlyList<AuditEntry> inDoubt, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(inDoubt);
        if (carried is not null && !ReferenceEquals(carried.Writer.Database, _database))
        {
            throw new ArgumentException("The carried write belongs to another database than the audit log's.", nameof(carried));
        }

        var work = new AppendWork(Validate(draft), carried) { UnlessCommitted = inDoubt.Count == 0 ? null : [.. inDoubt] };
        return SubmitAsync(work, work.Completion.Task, cancellationToken);
    }

    /// <summary>
    /// Signs a checkpoint at the current head (after every append queued before it) and returns it; returns the
    /// existing one when the head is already checkpointed, null while the log is empty. Call it at shutdown.
    /// </summary>
    public Task<AuditCheckpoint?> CheckpointAsync(CancellationToken cancellationToken = default)
    {
        var work = new CheckpointWork();
        return SubmitAsync(work, work.Completion.Task, cancellationToken);
    }

    /// <summary>
    /// Signs the head of every other member chain whose head this signer has not signed yet, after checking that the
    /// chain still links and hashes from this key's newest checkpoint of it (from its entry 1 the first time). A node
    /// holds no operator key, so its chain is covered by the gateways' signatures, as its entries in the shared chain
    /// were by their checkpoints. The first time this key signs a chain, an <see cref="AuditActions.ChainOpened"/> entry
    /// naming it and its first entry's hash is committed to this writer's own chain first, so a verifier expects that
    /// chain from then on (removed whole, it would leave nothing else behind). A signer on a member chain signs the
    /// shared chain's head too when it moved (earlier-release members, or members with member chains off, still append
    /// to it, and hold no checkpoint of their own once the last shared-chain signer moved). A chain that does not check
    /// out is left unsigned (the verifier names what is wrong). Returns how many heads it signed.
    /// </summary>
    public async Task<int> SignMemberChainsAsync(CancellationToken cancellationToken = default)
    {
        if (!_options.SignsCheckpoints)
        {
            return 0;
        }

        if (_witnessLost is { } lost)
        {
            throw lost;
        }

        await _signingMembers.WaitAsync(cancellationToken);
        try
        {
            await using var connection = await _database.OpenAsync(cancellationToken);
            var names = await AuditStore.ReadChainNamesAsync(connection, null, cancellationToken);
            var witnessed = _witnessedHeads ??= await ReadWitnessedHeadsAsync(connection, cancellationToken);
            var due = new List<(AuditChainScope Scope, (long Sequence, string Hash, long Timestamp, string? FirstHash) Head)>();

            // The shared chain as well, when this signer is not on it: members of an earlier release (a rolling upgrade
            // walks the gateways first) or with member chains off still append to it, and once no signer writes it,
            // nothing else would sign its tail. It exists from the start (nobody announces it), and its signed head is
            // recorded as SharedWitnessKey so this signer does not sign a rewrite after a deleted checkpoint either.
            if (!_scope.IsShared && await CheckMemberHeadAsync(connection, AuditChainScope.Shared, witnessed.TryGetValue(SharedWitnessKey, out var shared) ? shared : null, cancellationToken) is { } sharedHead)
            {
                due.Add((AuditChainScope.Shared, sharedHead with { FirstHash = null }));
            }

            foreach (var name in names)
            {
                if (name == _scope.Name)
                {
                    continue;
                }

                var scope = AuditChainScope.Member(name);
                if (await CheckMemberHeadAsync(connection, scope, witnessed.GetValueOrDefault(name), cancellationToken) is { } head)
                {
                    due.Add((scope, head));
                }
            }

            if (due.Count == 0)
            {
                return 0;
            }

            foreach (var (scope, head) in due)
            {
                if (head.FirstHash is { } firstHash)
                {
                    await AppendAsync(new AuditRecord
                    {
                        Kind = AuditKind.Admin,
                        Actor = "sovereign",
                        Action = AuditActions.ChainOpened,
                        Details = new Dictionary<string, string>(StringComparer.Ordinal) { ["chain"] = scope.Name!, ["first_hash"] = firstHash },
                    }, cancellationToken);
                }
            }

            // Every head this signer has signed, the new ones included, into its own chain before the checkpoints: each
            // member's head is then vouched for by another chain too, which this signer's checkpoints and witness cover.
            var heads = new Dictionary<string, (long Sequence, string Hash)>(witnessed, StringComparer.Ordinal);
            foreach (var (scope, head) in due)
            {
                heads[scope.Name ?? SharedWitnessKey] = (head.Sequence, head.Hash);
            }

            await AppendAsync(new AuditRecord
            {
                Kind = AuditKind.Admin,
                Actor = "sovereign",
                Action = AuditActions.ChainsSigned,
                Details = heads.ToDictionary(
                    h => h.Key == SharedWitnessKey ? AuditActions.ChainsSignedShared : AuditActions.ChainsSignedPrefix + h.Key,
                    h => string.Create(CultureInfo.InvariantCulture, $"{h.Value.Sequence}:{h.Value.Hash}"),
                    StringComparer.Ordinal),
            }, cancellationToken);
            _witnessedHeads = heads;

            foreach (var (scope, head) in due)
            {
                var checkpoint = AuditCheckpoint.Sign(_signingKey, head.Sequence, head.Hash, Math.Max(_time.GetUtcNow().ToUnixTimeMilliseconds(), head.Timestamp));
                using var turn = await _database.EnterWriteAsync(cancellationToken);
                await AuditStore.InsertCheckpointAsync(connection, null, scope, checkpoint, cancellationToken);
            }

            return due.Count;
        }
        finally
        {
            _signingMembers.Release();
        }
    }

    /// <summary>The shared chain's key among the heads this signer recorded (no chain name is empty).</summary>
    private const string SharedWitnessKey = "";

    /// <summary>
    /// The heads of other chains this writer's chain last recorded as signed (its newest <see cref="AuditActions.ChainsSigned"/>
    /// entry; each lists every chain its signer had signed), read once: a few entries back from the head.
    /// </summary>
    private async Task<Dictionary<string, (long Sequence, string Hash)>> ReadWitnessedHeadsAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        var heads = new Dictionary<string, (long Sequence, string Hash)>(StringComparer.Ordinal);
        var newest = await AuditStore.ReadEntriesAsync(_database, _scope, "action = @action ORDER BY seq DESC LIMIT 1", command =>
        {
            SqlDatabase.AddParameter(command, "@action", AuditActions.ChainsSigned);
            _scope.Bind(command);
        }, cancellationToken);
        if (newest.Count == 1)
        {
            foreach (var (chain, sequence, hash) in AuditVerifier.WitnessedHeads(newest[0]))
            {
                heads[chain] = (sequence, hash);
            }

            if (AuditVerifier.WitnessedSharedHead(newest[0]) is { } shared)
            {
                heads[SharedWitnessKey] = shared;
            }
        }

        return heads;
    }

    /// <summary>
    /// A member chain's head to sign, or null when this key signed it already or it does not check out from this key's
    /// newest checkpoint of it; with the chain's first entry's hash when this key never signed it.
    /// </summary>
    private async Task<(long Sequence, string Hash, long Timestamp, string? FirstHash)?> CheckMemberHeadAsync(DbConnection connection, AuditChainScope scope, (long Sequence, string Hash)? witnessed, CancellationToken cancellationToken)
    {
        await using var snapshot = await AuditStore.BeginSnapshotAsync(connection, cancellationToken);
        if (await AuditStore.ReadHeadAsync(connection, snapshot, scope, cancellationToken) is not { Sequence: > 0 } head)
        {
            return null;
        }

        var newest = (await AuditStore.ReadCheckpointsAsync(connection, snapshot, scope,
            $"WHERE key_id = @key AND seq = (SELECT MAX(seq) FROM {scope.CheckpointsFrom} WHERE key_id = @key)",
            command => SqlDatabase.AddParameter(command, "@key", _signingKey.KeyId), cancellationToken)).LastOrDefault();

        // The newest head this signer's own chain records as signed: its checkpoint there deleted, the walk would start
        // earlier, where a tail rewritten and re-hashed since links again. The chain must still hold it.
        if (witnessed is { } w && (newest is null || newest.Sequence < w.Sequence))
        {
            newest = new AuditCheckpoint(w.Sequence, w.Hash, 0, _signingKey.KeyId, string.Empty);
        }

        if (newest is not null && newest.Sequence >= head.Sequence)
        {
            return null;
        }

        var from = newest?.Sequence ?? 0;
        var previous = newest?.Hash ?? scope.Genesis;
        string? firstHash = null;
        long timestamp = 0, expected = from;
        using var command = connection.CreateCommand();
        command.Transaction = snapshot;
        command.CommandText = $"SELECT {AuditStore.EntryColumns} FROM {scope.EntriesAnd} seq >= @from AND seq <= @to ORDER BY seq";
        scope.Bind(command);
        SqlDatabase.AddParameter(command, "@from", Math.Max(from, 1));
        SqlDatabase.AddParameter(command, "@to", head.Sequence);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            if (!AuditStore.TryReadEntry(reader, out var entry, out _))
            {
                return null;
            }

            if (entry.Sequence == from)
            {
                // This key's newest checkpoint of the chain: the chain must still hold what it signed.
                if (entry.Hash != newest!.Hash)
                {
                    return null;
                }

                continue;
            }

            if (entry.Sequence != expected + 1 || entry.PreviousHash != previous || entry.ComputeHash() != entry.Hash || entry.Timestamp < timestamp)
            {
                return null;
            }

            firstHash ??= from == 0 ? entry.Hash : null;
            (expected, previous, timestamp) = (entry.Sequence, entry.Hash, entry.Timestamp);
        }

        return expected == head.Sequence && previous == head.Hash ? (head.Sequence, head.Hash, timestamp, from == 0 ? firstHash : null) : null;
    }

    /// <summary>
    /// How far this writer's view of its chain's head is ahead of the newest signed checkpoint it knows: the entries no
    /// checkpoint covers yet, and the seconds since that checkpoint while there are any (0 when the head is signed; an
    /// upper bound on the oldest unsigned entry's age). Since the log's start when none was signed yet.
    /// </summary>
    internal (long Entries, double Seconds) CheckpointLag()
    {
        var state = _state;
        var entries = state.Sequence - (state.LastCheckpoint?.Sequence ?? 0);
        if (entries <= 0)
        {
            return (0, 0);
        }

        var since = state.LastCheckpoint is null ? _openedAt : state.CheckpointedAt;
        return (entries, Math.Max(0, _time.GetUtcNow().ToUnixTimeMilliseconds() - since) / 1000.0);
    }

    /// <summary>Entries with <paramref name="fromSequence"/> &lt;= sequence &lt;= <paramref name="toSequence"/>, in order.</summary>
    public Task<IReadOnlyList<AuditEntry>> ReadAsync(long fromSequence, long toSequence, CancellationToken cancellationToken = default) =>
        ReadAsync(_scope, fromSequence, toSequence, cancellationToken);

    /// <summary>Entries of <paramref name="scope"/>'s chain with <paramref name="fromSequence"/> &lt;= sequence &lt;= <paramref name="toSequence"/>, in order.</summary>
    public Task<IReadOnlyList<AuditEntry>> ReadAsync(AuditChainScope scope, long fromSequence, long toSequence, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(scope);
        return AuditStore.ReadEntriesAsync(_database, scope, "seq >= @from AND seq <= @to ORDER BY seq", command =>
        {
            SqlDatabase.AddParameter(command, "@from", fromSequence);
            SqlDatabase.AddParameter(command, "@to", toSequence);
            scope.Bind(command);
        }, cancellationToken);
    }

    /// <summary>
    /// This writer's chain's entries of <paramref name="action"/> after <paramref name="afterSequence"/>, in order: a
    /// correction looked for before it is appended, so one whose own commit went unanswered is not appended twice.
    /// </summary>
    internal Task<IReadOnlyList<AuditEntry>> ReadActionAfterAsync(string action, long afterSequence, CancellationToken cancellationToken = default) =>
        AuditStore.ReadEntriesAsync(_database, _scope, "seq > @after AND action = @action ORDER BY seq", command =>
        {
            SqlDatabase.AddParameter(command, "@after", afterSequence);
            SqlDatabase.AddParameter(command, "@action", action);
            _scope.Bind(command);
        }, cancellationToken);

    /// <summary>
    /// Entries of <paramref name="tenant"/> (every tenant when null) with <paramref name="from"/> &lt;= time &lt;
    /// <paramref name="to"/>, in sequence order, at most <paramref name="limit"/> (by the tenant and time index; for every tenant, as a sequence range).
    /// </summary>
    public Task<IReadOnlyList<AuditEntry>> ReadAsync(string? tenant, DateTimeOffset from, DateTimeOffset to, int limit = 10_000, CancellationToken cancellationToken = default) =>
        ReadAsync(new AuditQuery { Tenant = tenant, From = from, To = to, Limit = limit }, cancellationToken);

    /// <summary>
    /// One page of entries matching <paramref name="query"/>, in sequence order (newest first when asked); where member
    /// chains hold entries, in time order across every chain (then by chain, the shared one first, then by sequence).
    /// </summary>
    public async Task<IReadOnlyList<AuditEntry>> ReadAsync(AuditQuery query, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfLessThan(query.Limit, 1);
        if (await HasMemberEntriesAsync(cancellationToken))
        {
            return await ReadAcrossChainsAsync(query, cancellationToken);
        }

        if (query.CursorChain is not null)
        {
            throw new ArgumentException($"No member chain holds entries, so none is '{query.CursorChain}'.", nameof(query));
        }

        long? fromSequence = null, toSequence = null;
        if (query.Tenant is null)
        {
            // Every tenant: the time range is a sequence range (times never decrease along the chain; no index on time).
            await using var connection = await _database.OpenAsync(cancellationToken);
            fromSequence = await AuditStore.FirstSequenceAtOrAfterAsync(connection, null, query.From.ToUnixTimeMilliseconds(), cancellationToken);
            if (fromSequence is null)
            {
                return [];
            }

            // None at or after the end yet: entries appended from now on may still fall before it.
            toSequence = await AuditStore.FirstSequenceAtOrAfterAsync(connection, null, query.To.ToUnixTimeMilliseconds(), cancellationToken);
        }

        var where = new System.Text.StringBuilder(query.Tenant is null
            ? "WHERE seq >= @fromSeq" + (toSequence is null ? "" : " AND seq < @toSeq") + " AND at_ms >= @from AND at_ms < @to"
            : "WHERE tenant = @tenant AND at_ms >= @from AND at_ms < @to");
        if (query.After is not null)
        {
            where.Append(" AND seq > @after");
        }

        if (query.Before is not null)
        {
            where.Append(" AND seq < @before");
        }

        where.Append(query.NewestFirst ? " ORDER BY seq DESC LIMIT @limit" : " ORDER BY seq LIMIT @limit");
        return await AuditStore.ReadEntriesAsync(_database, where.ToString(), command =>
        {
            if (query.Tenant is not null)
            {
                SqlDatabase.AddParameter(command, "@tenant", query.Tenant);
            }

            if (fromSequence is { } first)
            {
                SqlDatabase.AddParameter(command, "@fromSeq", first);
            }

            if (toSequence is { } end)
            {
                SqlDatabase.AddParameter(command, "@toSeq", end);
            }

            SqlDatabase.AddParameter(command, "@from", query.From.ToUnixTimeMilliseconds());
            SqlDatabase.AddParameter(command, "@to", query.To.ToUnixTimeMilliseconds());
            if (query.After is { } after)
            {
                SqlDatabase.AddParameter(command, "@after", after);
            }

            if (query.Before is { } before)
            {
                SqlDatabase.AddParameter(command, "@before", before);
            }

            SqlDatabase.AddParameter(command, "@limit", (long)query.Limit);
        }, cancellationToken);
    }

    /// <summary>The entries of the request a response's body id or a request id names (<see cref="AuditRequestLookup.FindAsync"/>).</summary>
    public Task<IReadOnlyList<AuditEntry>> FindRequestAsync(string id, DateTimeOffset? from = null, string? tenant = null, CancellationToken cancellationToken = default) =>
        AuditRequestLookup.FindAsync(_database, id, from, tenant, cancellationToken);

    private volatile bool _memberEntriesSeen;

    /// <summary>Whether any member chain holds entries (once seen, for good: member chains are never archived).</summary>
    private async Task<bool> HasMemberEntriesAsync(CancellationToken cancellationToken)
    {
        if (_memberEntriesSeen)
        {
            return true;
        }

        await using var connection = await _database.OpenAsync(cancellationToken);
        if (!await AuditChainScope.TablesExistAsync(connection, null, cancellationToken))
        {
            return false;
        }

        using var command = connection.CreateCommand();
        command.CommandText = "SELECT 1 FROM audit_chain_entries LIMIT 1";
        return _memberEntriesSeen = await command.ExecuteScalarAsync(cancellationToken) is not null and not DBNull;
    }

    /// <summary>
    /// A page across every chain in time order. The shared chain's part keeps its own way to a time range (a sequence
    /// range found by binary search, or the tenant's index); member chains' rows have an index on time. The cursor is
    /// the previous page's last entry: its time, chain ('' for the shared one) and sequence, compared in that order.
    /// </summary>
    private async Task<IReadOnlyList<AuditEntry>> ReadAcrossChainsAsync(AuditQuery query, CancellationToken cancellationToken)
    {
        long? fromSequence = null, toSequence = null;
        (long At, string Chain, long Sequence)? cursor = null;
        await using (var connection = await _database.OpenAsync(cancellationToken))
        {
            if (query.Tenant is null)
            {
                fromSequence = await AuditStore.FirstSequenceAtOrAfterAsync(connection, null, query.From.ToUnixTimeMilliseconds(), cancellationToken);
                toSequence = fromSequence is null ? null : await AuditStore.FirstSequenceAtOrAfterAsync(connection, null, query.To.ToUnixTimeMilliseconds(), cancellationToken);
            }

            if ((query.After ?? query.Before) is { } position)
            {
                var scope = AuditChainScope.Of(query.CursorChain);
                using var find = connection.CreateCommand();
                find.CommandText = $"SELECT at_ms FROM {scope.EntriesAnd} seq = @seq";
                scope.Bind(find);
                SqlDatabase.AddParameter(find, "@seq", position);
                cursor = await find.ExecuteScalarAsync(cancellationToken) is { } at and not DBNull
                    ? (AuditStore.ToInt64(at), query.CursorChain ?? string.Empty, position)
                    : throw new ArgumentException($"No audit entry {position} in {scope.Label} to page from.", nameof(query));
            }
        }

        var shared = query.Tenant is not null
            ? "tenant = @tenant AND at_ms >= @from AND at_ms < @to"
            : fromSequence is null ? "1 = 0" : "seq >= @fromSeq" + (toSequence is null ? "" : " AND seq < @toSeq") + " AND at_ms >= @from AND at_ms < @to";
        var members = (query.Tenant is null ? "" : "tenant = @tenant AND ") + "at_ms >= @from AND at_ms < @to";
        var (compare, direction) = query.NewestFirst ? ("<", " DESC") : (">", "");
        var where = cursor is null
            ? string.Empty
            : $"WHERE at_ms {compare} @cursorAt OR (at_ms = @cursorAt AND (chain {compare} @cursorChain OR (chain = @cursorChain AND seq {compare} @cursorSeq)))";
        var sql = $"SELECT {AuditStore.EntryColumns}, chain FROM (SELECT {AuditStore.EntryColumns}, '' AS chain FROM audit_entries WHERE {shared} " +
            $"UNION ALL SELECT {AuditStore.EntryColumns}, chain FROM audit_chain_entries WHERE {members}) merged {where} " +
            $"ORDER BY at_ms{direction}, chain{direction}, seq{direction} LIMIT @limit";

        await using var reading = await _database.OpenAsync(cancellationToken);
        using var command = reading.CreateCommand();
        command.CommandText = sql;
        if (query.Tenant is not null)
        {
            SqlDatabase.AddParameter(command, "@tenant", query.Tenant);
        }

        if (fromSequence is { } first && query.Tenant is null)
        {
            SqlDatabase.AddParameter(command, "@fromSeq", first);
            if (toSequence is { } end)
            {
                SqlDatabase.AddParameter(command, "@toSeq", end);
            }
        }

        SqlDatabase.AddParameter(command, "@from", query.From.ToUnixTimeMilliseconds());
        SqlDatabase.AddParameter(command, "@to", query.To.ToUnixTimeMilliseconds());
        if (cursor is { } c)
        {
            SqlDatabase.AddParameter(command, "@cursorAt", c.At);
            SqlDatabase.AddParameter(command, "@cursorChain", c.Chain);
            SqlDatabase.AddParameter(command, "@cursorSeq", c.Sequence);
        }

        SqlDatabase.AddParameter(command, "@limit", (long)query.Limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await AuditStore.ReadAcrossChainsAsync(reader, keep: null, cancellationToken);
    }

    /// <summary>
    /// The allowed decisions that <paramref name="gateway"/> recorded after the sequence it last checked
    /// (<see cref="MarkOutcomesCheckedAsync"/>) and up to the head, that no outcome entry (completed or interrupted),
    /// nor a refusal of the same request decided again, with the same <c>request_id</c> follows, oldest first: requests whose process stopped before it recorded how
    /// they ended. Decisions for endpoints that never get an outcome (<c>/tokenize</c>, <c>/detokenize</c>) are left
    /// out. Call it only when no other live process can be writing decisions under that gateway id.
    /// </summary>
    public async Task<OpenDecisions> FindOpenDecisionsAsync(string gateway, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(gateway);
        long after;
        await using (var connection = await _database.OpenAsync(cancellationToken))
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT seq FROM audit_outcomes_checked WHERE gateway = @gateway";
            SqlDatabase.AddParameter(command, "@gateway", gateway);
            after = await command.ExecuteScalarAsync(cancellationToken) is { } value and not DBNull ? AuditStore.ToInt64(value) : 0;
        }

        return await FindOpenDecisionsAsync(_scope, gateway, after, _state.Sequence, instance: null, cancellationToken);
    }

    /// <summary>
    /// The allowed decisions that one process of a cluster gateway (<paramref name="instance"/>, named in their
    /// <c>instance</c> detail) recorded since it started, that no outcome entry follows, oldest first. Call it only
    /// once that process is provably gone (membership declared it dead) and this caller holds its claim
    /// (<see cref="TryClaimInstanceAsync"/>).
    /// </summary>
    public async Task<OpenDecisions> FindOpenDecisionsAsync(AuditInstance instance, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(instance);
        long through;
        var scope = AuditChainScope.Of(instance.Chain);
        await using (var connection = await _database.OpenAsync(cancellationToken))
        {
            // The head of the chain it appended to, not this process's view of it: the dead process appended through other connections.
            through = (await AuditStore.ReadHeadAsync(connection, null, scope, cancellationToken))?.Sequence ?? 0;
        }

        return await FindOpenDecisionsAsync(scope, instance.Gateway, instance.FromSequence, through, instance.Instance, cancellationToken);
    }

    /// <summary>
    /// The open-decision search's one pass: a gateway id's inference rows in a sequence range (on PostgreSQL through the
    /// index <c>audit_entries_gateway_seq</c>; on SQLite, whose one server wrote every row of the range, on the rowid).
    /// </summary>
    internal const string OpenDecisionsScan =
        "SELECT seq, action, details FROM audit_entries WHERE seq > @after AND seq <= @through AND kind = 'inference' " +
        "AND gateway = @gateway AND action IN (@allowed, @completed, @interrupted, @refused) ORDER BY seq";

    /// <summary>The same pass over a member chain (its primary key (chain, seq) bounds the range).</summary>
    internal const string OpenDecisionsScanOfMember =
        "SELECT seq, action, details FROM audit_chain_entries WHERE chain = @chain AND seq > @after AND seq <= @through AND kind = 'inference' " +
        "AND gateway = @gateway AND action IN (@allowed, @completed, @interrupted, @refused) ORDER BY seq";

    private async Task<OpenDecisions> FindOpenDecisionsAsync(AuditChainScope scope, string gateway, long after, long through, string? instance, CancellationToken cancellationToken)
    {
        // One pass over this gateway's inference rows, reading only what matching needs (a first search may cover the
        // whole log); the open decisions are then read whole.
        var open = new Dictionary<string, long>(StringComparer.Ordinal);
        await using (var connection = await _database.OpenAsync(cancellationToken))
        using (var command = connection.CreateCommand())
        {
            command.CommandText = scope.IsShared ? OpenDecisionsScan : OpenDecisionsScanOfMember;
            scope.Bind(command);
            SqlDatabase.AddParameter(command, "@after", after);
            SqlDatabase.AddParameter(command, "@through", through);
            SqlDatabase.AddParameter(command, "@gateway", gateway);
            SqlDatabase.AddParameter(command, "@allowed", AuditActions.InferenceAllowed);
            SqlDatabase.AddParameter(command, "@completed", AuditActions.InferenceCompleted);
            SqlDatabase.AddParameter(command, "@interrupted", AuditActions.InferenceInterrupted);
            SqlDatabase.AddParameter(command, "@refused", AuditActions.InferenceRefused);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var (requestId, endpoint, decidedBy) = RequestOf(reader.GetString(2));
                if (requestId is null)
                {
                    continue;
                }

                if (reader.GetString(1) != AuditActions.InferenceAllowed)
                {
                    // An outcome, or a refusal: a request decided again (its tenant's policy changed after the first,
                    // allowed decision) and refused ran nothing, and its refusal is how it ended.
                    open.Remove(requestId);
                }
                else if (endpoint is not ("/tokenize" or "/detokenize") && (instance is null || instance == decidedBy))
                {
                    // A failover decides again under the same request id: one outcome closes both.
                    open.TryAdd(requestId, AuditStore.ToInt64(reader.GetValue(0)));
                }
            }
        }

        var decisions = new List<AuditEntry>(open.Count);
        foreach (var sequence in open.Values.Order())
        {
            decisions.AddRange(await ReadAsync(scope, sequence, sequence, cancellationToken));
        }

        return new OpenDecisions(decisions, through);
    }

    /// <summary>The <c>request_id</c>, <c>endpoint</c> and <c>instance</c> of an entry's details JSON (null when absent or unreadable).</summary>
    private static (string? RequestId, string? Endpoint, string? Instance) RequestOf(string details)
    {
        string? requestId = null, endpoint = null, instance = null;
        try
        {
            var reader = new System.Text.Json.Utf8JsonReader(System.Text.Encoding.UTF8.GetBytes(details));
            while (reader.Read())
            {
                if (reader.TokenType == System.Text.Json.JsonTokenType.PropertyName && reader.CurrentDepth == 1)
                {
                    var isRequest = reader.ValueTextEquals("request_id");
                    var isEndpoint = !isRequest && reader.ValueTextEquals("endpoint");
                    var isInstance = !isRequest && !isEndpoint && reader.ValueTextEquals(InstanceDetail);
                    reader.Read();
                    if (reader.TokenType == System.Text.Json.JsonTokenType.String && (isRequest || isEndpoint || isInstance))
                    {
                        var value = reader.GetString();
                        if (isRequest)
                        {
                            requestId = value;
                        }
                        else if (isEndpoint)
                        {
                            endpoint = value;
                        }
                        else
                        {
                            instance = value;
                        }
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
            }
        }
        catch (System.Text.Json.JsonException)
        {
            // A malformed row: the verifier reports it; here it matches nothing.
        }

        return (requestId, endpoint, instance);
    }

    /// <summary>
    /// Records that every allowed decision of <paramref name="gateway"/> up to <paramref name="sequence"/> has an
    /// outcome, so the next <see cref="FindOpenDecisionsAsync"/> starts after it. Never moves back.
    /// </summary>
    public async Task MarkOutcomesCheckedAsync(string gateway, long sequence, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(gateway);
        using var turn = await _database.EnterWriteAsync(cancellationToken);
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText =
            "INSERT INTO audit_outcomes_checked (gateway, seq, at_ms) VALUES (@gateway, @seq, @at) " +
            "ON CONFLICT (gateway) DO UPDATE SET seq = excluded.seq, at_ms = excluded.at_ms WHERE audit_outcomes_checked.seq < excluded.seq";
        SqlDatabase.AddParameter(command, "@gateway", gateway);
        SqlDatabase.AddParameter(command, "@seq", sequence);
        SqlDatabase.AddParameter(command, "@at", _time.GetUtcNow().ToUnixTimeMilliseconds());
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Records that the process <paramref name="instance"/> of cluster gateway <paramref name="gateway"/> starts now,
    /// at the current head: its decisions (whose <c>instance</c> detail names it) all come after. Call it before the
    /// process records any.
    /// </summary>
    public async Task RegisterInstanceAsync(string instance, string gateway, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instance);
        ArgumentException.ThrowIfNullOrWhiteSpace(gateway);
        using var turn = await _database.EnterWriteAsync(cancellationToken);
        await using var connection = await _database.OpenAsync(cancellationToken);
        var head = (await AuditStore.ReadHeadAsync(connection, null, _scope, cancellationToken))?.Sequence ?? 0;
        using var command = connection.CreateCommand();
        command.CommandText =
            "INSERT INTO audit_instances (instance, gateway, from_seq, started_at_ms, chain) VALUES (@instance, @gateway, @seq, @at, @chain) ON CONFLICT (instance) DO NOTHING";
        SqlDatabase.AddParameter(command, "@chain", _scope.Name);
        SqlDatabase.AddParameter(command, "@instance", instance);
        SqlDatabase.AddParameter(command, "@gateway", gateway);
        SqlDatabase.AddParameter(command, "@seq", head);
        SqlDatabase.AddParameter(command, "@at", _time.GetUtcNow().ToUnixTimeMilliseconds());
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The registered processes whose open decisions nobody has closed yet (running ones among them).</summary>
    public async Task<IReadOnlyList<AuditInstance>> ListUnclosedInstancesAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT instance, gateway, from_seq, closer, heartbeats, chain FROM audit_instances WHERE closed_at_ms IS NULL ORDER BY started_at_ms, instance";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var instances = new List<AuditInstance>();
        while (await reader.ReadAsync(cancellationToken))
        {
            instances.Add(new AuditInstance(
                reader.GetString(0), reader.GetString(1), AuditStore.ToInt64(reader.GetValue(2)), reader.IsDBNull(3) ? null : reader.GetString(3), AuditStore.ToInt64(reader.GetValue(4)),
                reader.IsDBNull(5) ? null : reader.GetString(5)));
        }

        return instances;
    }

    /// <summary>
    /// Counts one heartbeat of the running process <paramref name="instance"/>, the proof that it still runs for the
    /// gateways that would otherwise close its open decisions. False when nobody may count one any more: its row was
    /// claimed or closed by another gateway (which took it for dead and closes, or closed, its open decisions), or it
    /// is not registered. The count is compared, never a clock: members' clocks may differ.
    /// </summary>
    public async Task<bool> HeartbeatInstanceAsync(string instance, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instance);
        using var turn = await _database.EnterWriteAsync(cancellationToken);
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText = "UPDATE audit_instances SET heartbeats = heartbeats + 1 WHERE instance = @instance AND closer IS NULL AND closed_at_ms IS NULL";
        SqlDatabase.AddParameter(command, "@instance", instance);
        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    /// <summary>
    /// Takes the right to close <paramref name="instance"/>'s open decisions for <paramref name="closer"/>: true for
    /// exactly one caller, however many gateways try at once (one conditional UPDATE of the instance's row). A claim
    /// held by <paramref name="replacing"/> (a closer that itself died before it finished) may be taken over.
    /// </summary>
    public async Task<bool> TryClaimInstanceAsync(string instance, string closer, string? replacing = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instance);
        ArgumentException.ThrowIfNullOrWhiteSpace(closer);
        using var turn = await _database.EnterWriteAsync(cancellationToken);
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText = replacing is null
            ? "UPDATE audit_instances SET closer = @closer, claimed_at_ms = @at WHERE instance = @instance AND closed_at_ms IS NULL AND closer IS NULL"
            : "UPDATE audit_instances SET closer = @closer, claimed_at_ms = @at WHERE instance = @instance AND closed_at_ms IS NULL AND closer = @replacing";
        SqlDatabase.AddParameter(command, "@instance", instance);
        SqlDatabase.AddParameter(command, "@closer", closer);
        SqlDatabase.AddParameter(command, "@at", _time.GetUtcNow().ToUnixTimeMilliseconds());
        if (replacing is not null)
        {
            SqlDatabase.AddParameter(command, "@replacing", replacing);
        }

        return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
    }

    /// <summary>Records that <paramref name="closer"/>, holding the claim, closed every open decision of <paramref name="instance"/>.</summary>
    public async Task MarkInstanceClosedAsync(string instance, string closer, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(instance);
        using var turn = await _database.EnterWriteAsync(cancellationToken);
        await using var connection = await _database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText = "UPDATE audit_instances SET closed_at_ms = @at WHERE instance = @instance AND closer = @closer AND closed_at_ms IS NULL";
        SqlDatabase.AddParameter(command, "@instance", instance);
        SqlDatabase.AddParameter(command, "@closer", closer);
        SqlDatabase.AddParameter(command, "@at", _time.GetUtcNow().ToUnixTimeMilliseconds());
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Commits what is queued, signs a final checkpoint if the head moved since the last one, and stops.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        AuditMetrics.Untrack(this);
        if (_checkpointTimer is not null)
        {
            await _checkpointTimer.DisposeAsync();
        }

        if (_options.SignsCheckpoints && _database.Provider == SqlProvider.PostgreSql)
        {
            try
            {
                await SignMemberChainsAsync();
            }
            catch (Exception)
            {
                // Best effort, as the final checkpoint: another gateway, or this one's next start, signs them.
            }
        }

        var final = new CheckpointWork();
        _pending.Enqueue(final);
        await DrainAsync(final.Completion.Task);
        try
        {
            await final.Completion.Task;
        }
        catch (Exception)
        {
            // Best effort by design: the host calls CheckpointAsync to see a failure; a later checkpoint covers it.
        }

        // Lead for good, so nobody commits on the connection while it closes; fail whatever raced in.
        while (Interlocked.CompareExchange(ref _leader, 1, 0) != 0)
        {
            await Task.Delay(1);
        }

        Interlocked.Exchange(ref _closed, 1); // before FailPending: an append that misses this flag is failed below
        FailPending();
        if (_abandoned.IsCompleted)
        {
            await CloseConnectionAsync();
        }
        // Else a commit given up on at its deadline holds the connection, and closes it once the driver lets it go.
        if (_walCheckpointer is not null)
        {
            await _walCheckpointer.DisposeAsync();
        }
        await _witnessWrite; // the final checkpoint's witness is on disk before the process exits
        _signingMembers.Dispose();
    }

    /// <summary>
    /// Signs the head if this writer's view of it is unsigned. On PostgreSQL it always asks: another gateway of the
    /// cluster may have appended (or died after appending), and the commit sees the shared head under the chain's lock.
    /// </summary>
    private void OnCheckpointTimer()
    {
        var state = _state;
        var behind = state.Sequence > 0 && state.LastCheckpoint?.Sequence != state.Sequence;
        if (Volatile.Read(ref _disposed) == 0 && (behind || _database.Provider == SqlProvider.PostgreSql))
        {
            _ = CheckpointQuietlyAsync();
        }
    }

    private async Task CheckpointQuietlyAsync()
    {
        try
        {
            await CheckpointAsync();
            if (_database.Provider == SqlProvider.PostgreSql)
            {
                // Members' chains (nodes hold no operator key) are signed at the same pace as this signer's own.
                await SignMemberChainsAsync();
            }
        }
        catch (Exception)
        {
            // Best effort, like the final checkpoint: the next tick or append retries, and a verifier reports the uncovered tail meanwhile.
        }
    }

    private async Task<T> SubmitAsync<T>(Work work, Task<T> completion, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        _pending.Enqueue(work);
        if (Volatile.Read(ref _closed) != 0)
        {
            FailPending(); // raced with DisposeAsync, which holds the writer role for good: nobody else will commit it
        }
        else
        {
            await DrainAsync(completion);
        }

        return await completion.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Becomes the writer if none is active and commits queued work until <paramref name="own"/> is done; leftover
    /// work goes to a pool thread so this caller returns. Whoever holds the role re-checks the queue after releasing
    /// it, so nothing queued is ever stranded.
    /// </summary>
    private async Task DrainAsync(Task? own)
    {
        var batch = new List<Work>();
        while (!_pending.IsEmpty && Interlocked.CompareExchange(ref _leader, 1, 0) == 0)
        {
            try
            {
                while ((own is null || !own.IsCompleted) && TryTake(batch))
                {
                    try
                    {
                        await CommitWithRetryAsync(batch);
                    }
                    catch (Exception ex)
                    {
                        // CommitWithRetryAsync reports its own failures; this only guards against a stranded waiter.
                        batch.ForEach(work => work.Fail(AuditUnavailableException.From(ex)));
                    }

                    batch.Clear();
                }
            }
            finally
            {
                Volatile.Write(ref _leader, 0);
            }

            if (own is { IsCompleted: true })
            {
                if (!_pending.IsEmpty)
                {
                    _ = Task.Run(() => DrainAsync(null));
                }

                return;
            }
        }
    }

    private bool TryTake(List<Work> batch)
    {
        while (batch.Count < _options.MaxBatchSize && _pending.TryDequeue(out var work))
        {
            batch.Add(work);
        }

        return batch.Count > 0;
    }

    private void FailPending()
    {
        while (_pending.TryDequeue(out var work))
        {
            work.Fail(new AuditUnavailableException("The audit log is closed (the server is stopping).", new ObjectDisposedException(nameof(AuditLog))));
        }
    }

    /// <summary>Checks a draft and returns its entry with the chain's fields still blank: the writer fills them in.</summary>
    private static AuditEntry Validate(AuditRecord draft)
    {
        ArgumentNullException.ThrowIfNull(draft);
        if (!Enum.IsDefined(draft.Kind))
        {
            throw new ArgumentOutOfRangeException(nameof(draft), draft.Kind, "Unknown audit kind.");
        }

        if (draft.Decision is { } decision && !Enum.IsDefined(decision))
        {
            throw new ArgumentOutOfRangeException(nameof(draft), decision, "Unknown audit decision.");
        }

        ArgumentException.ThrowIfNullOrWhiteSpace(draft.Actor, "draft.Actor");
        ArgumentException.ThrowIfNullOrWhiteSpace(draft.Action, "draft.Action");
        if (draft.PromptTokens < 0 || draft.CompletionTokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(draft), "Token counts cannot be negative.");
        }

        if (draft.Reasons is null || draft.Reasons.Count > MaxReasons || draft.Details is null || draft.Details.Count > MaxDetails)
        {
            throw draft.Reasons is null || draft.Reasons.Count > MaxReasons
                ? new ArgumentException($"Reasons must be at most {MaxReasons} non-null strings.", nameof(draft))
                : new ArgumentException($"Details must be at most {MaxDetails} non-null string pairs.", nameof(draft));
        }

        // Loops, not LINQ over the fields: every request validates two entries.
        foreach (var reason in draft.Reasons)
        {
            if (reason is null)
            {
                throw new ArgumentException($"Reasons must be at most {MaxReasons} non-null strings.", nameof(draft));
            }
        }

        if (draft.Details is Dictionary<string, string> dictionary)
        {
            foreach (var (key, value) in dictionary)
            {
                EnsureDetail(key, value);
            }
        }
        else
        {
            foreach (var (key, value) in draft.Details)
            {
                EnsureDetail(key, value);
            }
        }

        AuditCanonical.EnsureEncodable(draft.Actor, nameof(draft));
        AuditCanonical.EnsureEncodable(draft.Action, nameof(draft));
        AuditCanonical.EnsureEncodable(draft.Tenant, nameof(draft));
        AuditCanonical.EnsureEncodable(draft.KeyId, nameof(draft));
        AuditCanonical.EnsureEncodable(draft.Model, nameof(draft));
        AuditCanonical.EnsureEncodable(draft.Gateway, nameof(draft));
        AuditCanonical.EnsureEncodable(draft.Node, nameof(draft));
        AuditCanonical.EnsureEncodable(draft.Jurisdiction, nameof(draft));
        AuditCanonical.EnsureEncodable(draft.DecisionCode, nameof(draft));
        foreach (var reason in draft.Reasons)
        {
            AuditCanonical.EnsureEncodable(reason, nameof(draft));
        }

        foreach (var (key, value) in draft.Details)
        {
            AuditCanonical.EnsureEncodable(key, nameof(draft));
            AuditCanonical.EnsureEncodable(value, nameof(draft));
        }

        // Bounded so nobody is tempted to log a prompt "just this once"; a policy document fits easily.
        // The chain's fields have a fixed size, so the blank entry measures what will be stored.
        var blank = AuditEntry.FromRecord(draft, 1, 0, AuditCanonical.GenesisHash);
        var size = AuditCanonical.EntrySize(blank);
        if (size > MaxEntryBytes)
        {
            throw new ArgumentException($"An audit entry is at most {MaxEntryBytes} bytes (this one is {size}); audit metadata, not content.", nameof(draft));
        }

        return blank;

        static void EnsureDetail(string key, string value)
        {
            if (key is null || value is null)
            {
                throw new ArgumentException($"Details must be at most {MaxDetails} non-null string pairs.", "draft");
            }
        }
    }

    private async Task LoadStateAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _database.OpenAsync(cancellationToken);
        if (!_scope.IsShared)
        {
            // A member chain's head row is made at its first open (by whichever of its processes comes first; the
            // others find it). Its absence later is evidence: a chain with entries and no head was cut.
            using var turn = await _database.EnterWriteAsync(cancellationToken);
            using var create = connection.CreateCommand();
            create.CommandText =
                "INSERT INTO audit_chains (chain, seq, hash, updated_at, created_at) SELECT @chain, 0, @genesis, 0, @at " +
                "WHERE NOT EXISTS (SELECT 1 FROM audit_chain_entries WHERE chain = @chain) ON CONFLICT (chain) DO NOTHING";
            _scope.Bind(create);
            SqlDatabase.AddParameter(create, "@genesis", _scope.Genesis);
            SqlDatabase.AddParameter(create, "@at", _time.GetUtcNow().ToUnixTimeMilliseconds());
            await create.ExecuteNonQueryAsync(cancellationToken);
        }

        // One snapshot: another process appending between the two reads must not look like a broken tail.
        await using var snapshot = await AuditStore.BeginSnapshotAsync(connection, cancellationToken);
        var head = await AuditStore.ReadHeadAsync(connection, snapshot, _scope, cancellationToken)
            ?? throw new AuditIntegrityException($"The head row of {_scope.Label} is missing; run 'sovereign audit verify'.");
        AuditEntry? last = null;
        using (var command = connection.CreateCommand())
        {
            command.Transaction = snapshot;
            command.CommandText = $"SELECT {AuditStore.EntryColumns} FROM {_scope.EntriesFrom} ORDER BY seq DESC LIMIT 1";
            _scope.Bind(command);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (await reader.ReadAsync(cancellationToken))
            {
                if (!AuditStore.TryReadEntry(reader, out last, out var error))
                {
                    throw new AuditIntegrityException($"The last audit entry is malformed ({error}); run 'sovereign audit verify'.");
                }
            }
        }

        var lastSequence = last?.Sequence ?? 0;
        var lastHash = last?.Hash ?? _scope.Genesis;
        if (head.Sequence != lastSequence || head.Hash != lastHash || (last is not null && (!AuditCanonical.IsHash(last.PreviousHash) || last.ComputeHash() != last.Hash)))
        {
            throw new AuditIntegrityException(
                $"The audit log's last entry (sequence {lastSequence}, hash {lastHash}) does not match audit_head (sequence {head.Sequence}, hash {head.Hash}) " +
                "or does not hash correctly: it was truncated or altered. Run 'sovereign audit verify'; appending is refused so the evidence stays intact.");
        }

        await EnsureWitnessHeldAsync(connection, snapshot);
        var checkpoints = await AuditStore.ReadCheckpointsAsync(connection, snapshot, _scope, $"WHERE key_id = @key AND seq = (SELECT MAX(seq) FROM {_scope.CheckpointsFrom} WHERE key_id = @key)",
            command => SqlDatabase.AddParameter(command, "@key", _signingKey.KeyId), cancellationToken);
        var newest = checkpoints.Count > 0 ? checkpoints[^1] : null;
        _state = new ChainState(lastSequence, lastHash, last?.Timestamp ?? 0, newest, newest?.Timestamp ?? 0);
    }

    /// <summary>Refuses (<see cref="AuditIntegrityException"/>) a chain that no longer holds the head this signer last signed.</summary>
    private async Task EnsureWitnessHeldAsync(DbConnection connection, DbTransaction? transaction)
    {
        if (_witnessLost is { } lost)
        {
            throw lost;
        }

        if (_witness is { } witness && await AuditWitness.CheckAsync(connection, transaction, witness, CancellationToken.None) is { } reason)
        {
            throw _witnessLost = new AuditIntegrityException(
                $"The audit log no longer holds the head this server last signed (recorded in {_options.WitnessPath}): {reason}. " +
                "Refusing to sign or extend it; run 'sovereign audit verify'. If the database was restored from a backup on purpose: on SQLite, " +
                "restore it with 'sovereign database restore --from BACKUP --accept-rollback' (it records the rollback in the log and keeps " +
                "keys revoked since the backup revoked); on PostgreSQL, move that file aside (it records what was signed after the backup: keep it) and start again.");
        }
    }

    private async Task<bool> CheckWitnessAsync(DbConnection connection, DbTransaction? transaction)
    {
        await EnsureWitnessHeldAsync(connection, transaction);
        return true;
    }

    /// <summary>
    /// Takes a checkpoint this writer just committed as its witness: checked against from now on, and written to the
    /// file on a pool thread (an fsync, about 5 ms, that the appends queued behind this commit need not wait for). A
    /// witness file a little behind is still sound (the chain only grows); a failed write is tried at the next checkpoint.
    /// </summary>
    private void AdvanceWitness(AuditCheckpoint? before, AuditCheckpoint? after)
    {
        if (_options.WitnessPath is null || !_options.SignsCheckpoints || after is null || ReferenceEquals(before, after) || (_witness is { } held && held.Chain == _scope.Name && after.Sequence <= held.Sequence))
        {
            return;
        }

        // A signer that moved to its member chain keeps checking the shared chain's witness until its first checkpoint here.
        _witness = new AuditWitnessHead(after.Sequence, after.Hash, after.Timestamp, after.KeyId) { Chain = _scope.Name };
        Volatile.Write(ref _witnessToWrite, _witness);
        if (Interlocked.CompareExchange(ref _witnessWriterActive, 1, 0) == 0)
        {
            _witnessWrite = Task.Run(WriteWitnesses);
        }
    }

    /// <summary>Writes the newest pending witness until none is left; one writer at a time, so an older head never lands last.</summary>
    private void WriteWitnesses()
    {
        while (true)
        {
            while (Interlocked.Exchange(ref _witnessToWrite, null) is { } head)
            {
                try
                {
                    AuditWitness.Write(_options.WitnessPath!, head);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // The previous file still holds (the chain only grows); the next checkpoint writes it again.
                }
            }

            Volatile.Write(ref _witnessWriterActive, 0);
            if (Volatile.Read(ref _witnessToWrite) is null || Interlocked.CompareExchange(ref _witnessWriterActive, 1, 0) != 0)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Commits <paramref name="batch"/>, trying again (at most three times, and only within
    /// <see cref="AuditLogOptions.CommitTimeout"/>) after a failure. An attempt whose commit was sent and not answered
    /// may have been applied (the server committed and the answer was lost, or a paused server went on after the
    /// driver gave up): each later attempt first looks under the chain's lock for the entries that attempt sent, by
    /// sequence and hash, and returns them if they are there, so an entry is never appended twice. Past the deadline
    /// the batch and every append queued behind it fail with <see cref="AuditUnavailableException"/>: an attempt still
    /// inside the driver then is left to it (Npgsql, asked to cancel, waits for a server that does not answer until its
    /// Command Timeout and the cancel's), and the next batch waits, within its own deadline, until it is out.
    /// </summary>
    private async Task CommitWithRetryAsync(List<Work> batch)
    {
        var started = Stopwatch.GetTimestamp();
        var outcome = await CommitOrFailAsync(batch);
        AuditMetrics.BatchEnded(outcome, batch.Count, Stopwatch.GetElapsedTime(started));
    }

    /// <summary>Commits <paramref name="batch"/> (retrying, within the commit timeout) or fails it: which, for the metrics.</summary>
    private async Task<string> CommitOrFailAsync(List<Work> batch)
    {
        const int attempts = 3;
        // Real time, not the injected clock: the deadline bounds how long the database takes, which a clock set or
        // stepped (a test's manual clock advanced by an hour while a commit runs) must not cut short.
        // Armed only once the batch waits for something (an earlier abandoned attempt, the write turn, the driver): a
        // SQLite commit completes synchronously, and a timer registered and removed for each batch was pure cost. The
        // deadline still runs from the batch's start.
        using var deadline = _options.DeadlineClock is { } clock ? new CancellationTokenSource(Timeout.InfiniteTimeSpan, clock) : new CancellationTokenSource();
        var started = _options.DeadlineClock?.GetTimestamp() ?? Stopwatch.GetTimestamp();
        if (!_abandoned.IsCompleted)
        {
            ArmDeadline(deadline, started);
            try
            {
                await _abandoned.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                FailTimedOut(batch, new TimeoutException("An earlier commit is still waiting for the database."), sent: null);
                return AuditMetrics.TimedOut;
            }
        }

        List<CommitAttempt>? inDoubt = null;
        for (var attempt = 1; ; attempt++)
        {
            var current = new CommitAttempt(batch.Count);
            var commit = CommitAsync(batch, current, inDoubt, deadline.Token);
            if (!commit.IsCompleted)
            {
                ArmDeadline(deadline, started);
            }

            try
            {
                var before = _state.LastCheckpoint;
                var (state, results) = await commit.WaitAsync(deadline.Token);
                _state = state;
                AdvanceWitness(before, state.LastCheckpoint);
                MaybeCheckpointWal();
                for (var i = 0; i < batch.Count; i++)
                {
                    batch[i].Complete(results[i]);
                }

                return AuditMetrics.Committed;
            }
            catch (OperationCanceledException) when (!commit.IsCompleted)
            {
                // The deadline passed with the attempt inside the driver: it keeps the connection until it comes out.
                _abandoned = FinishAbandonedAsync(commit);
                if (current.State is not null)
                {
                    (inDoubt ??= []).Add(current);
                }

                FailTimedOut(batch, new TimeoutException("The commit did not end in time."), inDoubt);
                return AuditMetrics.TimedOut;
            }
            catch (Exception ex)
            {
                if (current.State is not null)
                {
                    (inDoubt ??= []).Add(current);
                }

                // The transaction rolled back (or, sent and unanswered, is looked for by the next attempt), so the
                // in-memory head is still right unless another process appended (the head guard failed): reload it
                // from the database and recompute the whole batch.
                ReportIfIntegrityLost(ex);
                await CloseConnectionAsync();
                ArmDeadline(deadline, started);
                if (deadline.IsCancellationRequested)
                {
                    if (ex is HeadMovedException)
                    {
                        // Out of time, but the chain moved under this writer: whether another process appended or the
                        // chain was rewritten, only the reload tells. Left undone, a rewrite found on a loaded machine
                        // was told nobody until another append came (a server ran on answering 503); it runs behind
                        // the batch, and the next batch waits for it.
                        _abandoned = ReportWhenEndsAsync(LoadStateAsync(CancellationToken.None));
                    }

                    FailTimedOut(batch, ex, inDoubt);
                    return AuditMetrics.TimedOut;
                }

                var reload = LoadStateAsync(deadline.Token);
                try
                {
                    await reload.WaitAsync(deadline.Token);
                }
                catch (Exception reloadError) when (deadline.IsCancellationRequested)
                {
                    // A reload still inside the driver holds only its own connection, but sets the head when it ends:
                    // the next batch waits for it, as for an abandoned commit.
                    ReportIfIntegrityLost(reloadError);
                    if (!reload.IsCompleted)
                    {
                        _abandoned = ReportWhenEndsAsync(reload);
                    }

                    FailTimedOut(batch, reloadError, inDoubt);
                    return AuditMetrics.TimedOut;
                }
                catch (Exception reloadError) when (attempt < attempts)
                {
                    ReportIfIntegrityLost(reloadError);
                    ex = reloadError;
                }
                catch (Exception reloadError)
                {
                    ReportIfIntegrityLost(reloadError);
                    ex = new AggregateException(ex, reloadError);
                }

                if (attempt >= attempts)
                {
                    var unavailable = inDoubt is null
                        ? AuditUnavailableException.From(ex)
                        : new AuditUnavailableException($"The audit log could not record the entry: {ex.Message} {InDoubtNote}", ex);
                    FailBatch(batch, unavailable, inDoubt);
                    return AuditMetrics.Failed;
                }
            }
        }
    }

    /// <summary>Sets <paramref name="deadline"/> to fire when the commit timeout since <paramref name="started"/> runs out (at once if it has).</summary>
    private void ArmDeadline(CancellationTokenSource deadline, long started)
    {
        if (deadline.IsCancellationRequested)
        {
            return;
        }

        var left = _options.CommitTimeout - (_options.DeadlineClock?.GetElapsedTime(started) ?? Stopwatch.GetElapsedTime(started));
        if (left <= TimeSpan.Zero)
        {
            deadline.Cancel();
        }
        else
        {
            deadline.CancelAfter(left);
        }
    }

    /// <summary>
    /// Waits for an attempt given up on at its deadline to come out of the driver, then closes its connection (the next
    /// batch opens another). Its commit may have been applied meanwhile (the server went on): then its head is taken,
    /// though its appends were told they failed; the next commit continues from the head it finds under the lock anyway.
    /// </summary>
    private async Task FinishAbandonedAsync(Task<(ChainState State, object?[] Results)> commit)
    {
        var moved = false;
        try
        {
            var (state, _) = await commit;
            _state = state;
        }
        catch (Exception ex)
        {
            ReportIfIntegrityLost(ex);
            moved = ex is HeadMovedException;
        }

        try
        {
            await CloseConnectionAsync();
        }
        catch (Exception)
        {
            // A connection the driver broke: nothing more to release.
        }

        if (moved)
        {
            // As for a failed attempt past its deadline: the reload tells a rewrite from another process's append.
            await ReportWhenEndsAsync(LoadStateAsync(CancellationToken.None));
        }
    }

    /// <summary>
    /// Waits for a reload left behind a failed batch and tells <see cref="AuditLogOptions.IntegrityLost"/> what it found
    /// (the chain truncated or rewritten); any other failure is the next batch's to meet (it reloads again).
    /// </summary>
    private async Task ReportWhenEndsAsync(Task reload)
    {
        try
        {
            await reload;
        }
        catch (Exception ex)
        {
            ReportIfIntegrityLost(ex);
        }
    }

    /// <summary>The head guard failed: <c>audit_head</c> no longer holds the head this writer extends.</summary>
    private sealed class HeadMovedException() : InvalidOperationException("audit_head moved under this writer (another process appended?).");

    private const string InDoubtNote =
        "A commit of it was sent and not answered: it may be in the log, once (a later commit looks for it and never appends it again).";

    /// <summary>
    /// The deadline passed: fails the batch and every append queued behind it (they waited as long, and none of them
    /// was sent), with a cause that says the database did not answer.
    /// </summary>
    private void FailTimedOut(List<Work> batch, Exception last, List<CommitAttempt>? sent)
    {
        var seconds = _options.CommitTimeout.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
        var fault = new DatabaseTimeoutException($"The database did not commit the audit log's entries within its commit timeout ({seconds} s)", last);
        var message = $"The audit log could not record the entry: the database did not answer within {seconds} s.";
        FailBatch(batch, new AuditUnavailableException(sent is null ? message : message + " " + InDoubtNote, fault), sent);

        // Never sent, so never in doubt: an earlier append of the same entry that was (UnlessCommitted) still may be.
        var notSent = new AuditUnavailableException(message, fault);
        while (_pending.TryDequeue(out var queued))
        {
            queued.Fail(queued is AppendWork { UnlessCommitted: { } earlier } ? WithInDoubt(notSent, earlier) : notSent);
        }
    }

    /// <summary>
    /// Fails each work of <paramref name="batch"/> with <paramref name="unavailable"/>; an append whose entry a commit
    /// that was sent and never answered hashed (<paramref name="sent"/>), or an earlier one did (its
    /// <see cref="AppendWork.UnlessCommitted"/>), gets a copy naming them (<see cref="AuditUnavailableException.InDoubt"/>),
    /// so whoever records it later finds it if that commit was applied after all, instead of appending it twice.
    /// </summary>
    private static void FailBatch(List<Work> batch, AuditUnavailableException unavailable, List<CommitAttempt>? sent)
    {
        for (var i = 0; i < batch.Count; i++)
        {
            List<AuditEntry>? marks = null;
            if (batch[i] is AppendWork { UnlessCommitted: { } earlier })
            {
                marks = [.. earlier];
            }

            foreach (var attempt in sent ?? [])
            {
                if (attempt.Results[i] is AuditEntry entry && marks?.Contains(entry) != true)
                {
                    (marks ??= []).Add(entry);
                }
            }

            batch[i].Fail(marks is null ? unavailable : WithInDoubt(unavailable, marks));
        }
    }

    private static AuditUnavailableException WithInDoubt(AuditUnavailableException unavailable, IReadOnlyList<AuditEntry> inDoubt) =>
        unavailable.InnerException is { } cause
            ? new AuditUnavailableException(unavailable.Message, cause) { InDoubt = inDoubt }
            : new AuditUnavailableException(unavailable.Message) { InDoubt = inDoubt };

    /// <summary>
    /// Takes a finding made beside the log as its own (scheduled retention found that the chain no longer holds the
    /// head this server last signed): from now on nothing is appended or signed, as when the log finds it itself, and
    /// <see cref="AuditLogOptions.IntegrityLost"/> is told once.
    /// </summary>
    public void ReportIntegrityLost(AuditIntegrityException lost)
    {
        ArgumentNullException.ThrowIfNull(lost);
        Interlocked.CompareExchange(ref _witnessLost, lost, null);
        ReportIfIntegrityLost(lost);
    }

    /// <summary>Tells <see cref="AuditLogOptions.IntegrityLost"/>, once, that the running log found the chain truncated or rewritten.</summary>
    private void ReportIfIntegrityLost(Exception error)
    {
        if (_opened && error is AuditIntegrityException lost && _options.IntegrityLost is { } report && Interlocked.Exchange(ref _integrityLostReported, 1) == 0)
        {
            report(lost);
        }
    }

    /// <summary>
    /// One attempt at committing <paramref name="batch"/>, its entries and outcome in <paramref name="current"/>
    /// (<see cref="CommitAttempt.State"/> is set once its commit is sent). Where an earlier attempt's commit went
    /// unanswered (<paramref name="inDoubt"/>), it looks for that attempt's entries under the chain's lock first and
    /// returns that attempt's results, writing nothing, when they are there.
    /// </summary>
    private async Task<(ChainState State, object?[] Results)> CommitAsync(List<Work> batch, CommitAttempt current, List<CommitAttempt>? inDoubt, CancellationToken cancellationToken)
    {
        if (_witnessLost is { } lost)
        {
            throw lost;
        }

        var connection = await EnsureConnectionAsync(cancellationToken);
        var start = _state;

        // Never earlier than the previous entry: time ranges then map to contiguous sequence ranges.
        var timestamp = Math.Max(_time.GetUtcNow().ToUnixTimeMilliseconds(), start.LastTimestamp);
        var results = current.Results;

        using var turn = await _database.EnterWriteAsync(cancellationToken);
        // Not after an unanswered commit: its own statement cannot look for that commit's entries first.
        if (inDoubt is null && _appendsInOne is { } inOne
            && await TryCommitInOneStatementAsync(inOne, batch, connection, start, timestamp, current, cancellationToken) is { } committed)
        {
            return committed;
        }

        // SQLite: the transaction is begun and committed by statements prepared once on this connection (no
        // DbTransaction: the statements below run in the connection's open transaction); elsewhere by the provider.
        var prepared = _sqliteTransaction;
        DbTransaction? transaction = null;
        if (prepared is not null)
        {
            prepared.Begin();
        }
        else
        {
            transaction = await connection.BeginTransactionAsync(cancellationToken);
        }

        try
        {
            var (state, earlier) = await WriteBatchAsync(batch, connection, transaction, start, timestamp, results, inDoubt, cancellationToken);
            if (earlier is not null)
            {
                // An earlier attempt's commit was applied: this one wrote nothing and ends; that one's results stand.
                if (prepared is not null)
                {
                    RollBack(prepared);
                }
                else
                {
                    await transaction!.RollbackAsync(cancellationToken);
                }

                return (earlier.State!, earlier.Results);
            }

            current.State = state; // from here the commit may be applied though its answer never comes
            if (prepared is not null)
            {
                prepared.Commit();
            }
            else
            {
                await transaction!.CommitAsync(cancellationToken);
            }

            return (state, results);
        }
        catch
        {
            RollBack(prepared);
            throw;
        }
        finally
        {
            if (transaction is not null)
            {
                await transaction.DisposeAsync();
            }
        }
    }

    /// <summary>Rolls back a transaction begun by prepared statements after a failure; the failure is what the caller reports.</summary>
    private static void RollBack(PreparedTransaction? prepared)
    {
        try
        {
            prepared?.Rollback();
        }
        catch (SqliteException)
        {
            // The connection is closed next (CommitWithRetryAsync); one still in a transaction is then dropped from the pool.
        }
    }

    /// <summary>
    /// The batch's entries, checkpoints, carried writes and the head's move, in the open transaction; returns the new
    /// state. Where an earlier attempt's commit of the batch was applied (found under the lock, <paramref name="inDoubt"/>),
    /// writes nothing and returns that attempt instead.
    /// </summary>
    private async Task<(ChainState State, CommitAttempt? Earlier)> WriteBatchAsync(List<Work> batch, DbConnection connection, DbTransaction? transaction, ChainState start, long timestamp, object?[] results,
        List<CommitAttempt>? inDoubt, CancellationToken cancellationToken)
    {
        var insert = _insert!;
        var sequence = start.Sequence;
        var hash = start.Hash;
        var checkpoint = start.LastCheckpoint;
        var checkpointedAt = start.CheckpointedAt;
        var maxAge = _options.CheckpointMaxAge is { } age ? (long)age.TotalMilliseconds : long.MaxValue;
        if (_database.Provider == SqlProvider.PostgreSql)
        {
            // Gateways of a cluster share one chain: each commit holds the chain's lock and continues from the head
            // as it is now, so writers in several processes extend one chain instead of failing on each other.
            (start, sequence, hash, checkpoint) = await LockChainAsync(connection, transaction!, start, _scope, cancellationToken);
            timestamp = Math.Max(timestamp, start.LastTimestamp);
        }

        // Under the chain's lock (PostgreSQL) or the file's write lock (SQLite, BEGIN IMMEDIATE): an earlier attempt whose
        // commit was sent holds that lock until it is applied or rolled back, so what is read here is final.
        if (inDoubt is not null && await CommittedEarlierAsync(inDoubt, connection, transaction, cancellationToken) is { } earlier)
        {
            return (start, earlier);
        }

        // Appends of entries whose earlier commit is in doubt: one found in the chain is their result, appended never again.
        AuditEntry?[]? committed = null;
        for (var i = 0; i < batch.Count; i++)
        {
            if (batch[i] is AppendWork { UnlessCommitted: { } marks })
            {
                foreach (var mark in marks)
                {
                    if (await InChainAsync(mark, connection, transaction, cancellationToken))
                    {
                        (committed ??= new AuditEntry?[batch.Count])[i] = mark;
                        break;
                    }
                }
            }
        }

        var witnessChecked = false; // once per commit, before its first signature: never sign over a rewritten chain
        var headMoved = false;
        var lastAppend = -1;
        for (var i = batch.Count - 1; _insertMovingHead is not null && i >= 0; i--)
        {
            if (batch[i] is AppendWork && committed?[i] is null)
            {
                lastAppend = i;
                break;
            }
        }

        for (var i = 0; i < batch.Count; i++)
        {
            if (committed?[i] is { } found)
            {
                results[i] = found;
            }
            else if (batch[i] is AppendWork { Blank: var blank })
            {
                // Hashed with its chain fields in place, then copied once with them and its hash.
                var entryHash = AuditCanonical.EntryHash(blank, sequence + 1, timestamp, hash);
                var entry = blank with { Chain = _scope.Name, Sequence = sequence + 1, Timestamp = timestamp, PreviousHash = hash, Hash = entryHash };
                if (i == lastAppend)
                {
                    // PostgreSQL: the last entry moves the head in the same statement, one round trip fewer per commit
                    // (the decision's commit is on a relayed request's path to its first token).
                    await InsertMovingHeadAsync(_insertMovingHead!, entry, start, transaction!, cancellationToken);
                    headMoved = true;
                }
                else
                {
                    BindInsert(insert, entry);
                    await insert.ExecuteAsync(transaction, cancellationToken);
                }

                sequence = entry.Sequence;
                hash = entry.Hash;
                results[i] = entry;
                // With a max age, the last entry of the batch is signed when this writer's newest checkpoint is too old.
                if (_options.SignsCheckpoints && (sequence % _options.CheckpointInterval == 0 || (i == batch.Count - 1 && timestamp - checkpointedAt >= maxAge)))
                {
                    witnessChecked = witnessChecked || await CheckWitnessAsync(connection, transaction);
                    checkpoint = AuditCheckpoint.Sign(_signingKey, sequence, hash, timestamp);
                    checkpointedAt = timestamp;
                    await AuditStore.InsertCheckpointAsync(connection, transaction, _scope, checkpoint, cancellationToken);
                }
            }
            else if (_options.SignsCheckpoints && sequence > 0 && checkpoint?.Sequence != sequence)
            {
                witnessChecked = witnessChecked || await CheckWitnessAsync(connection, transaction);
                checkpoint = AuditCheckpoint.Sign(_signingKey, sequence, hash, timestamp);
                checkpointedAt = timestamp;
                await AuditStore.InsertCheckpointAsync(connection, transaction, _scope, checkpoint, cancellationToken);
                results[i] = checkpoint;
            }
            else
            {
                results[i] = sequence > 0 ? checkpoint : null;
            }
        }

        await WriteCarriedAsync(batch, connection, transaction, cancellationToken);
        if (sequence != start.Sequence && !headMoved)
        {
            var head = _moveHead!;
            head.Set(0, sequence);
            head.Set(1, hash);
            head.Set(2, timestamp);
            head.Set(3, start.Sequence);
            head.Set(4, start.Hash);
            if (await head.ExecuteAsync(transaction, cancellationToken) != 1)
            {
                throw new HeadMovedException();
            }
        }

        return (new ChainState(sequence, hash, timestamp, checkpoint, checkpointedAt), null);
    }

    /// <summary>
    /// The earlier attempt of <paramref name="inDoubt"/> whose last entry is in the chain at the sequence and hash it
    /// was given (its hash covers its content, its place and every entry before it), or null: none was applied.
    /// </summary>
    private async Task<CommitAttempt?> CommittedEarlierAsync(List<CommitAttempt> inDoubt, DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken)
    {
        foreach (var earlier in inDoubt)
        {
            if (earlier.LastEntry is { } last)
            {
                if (await InChainAsync(last, connection, transaction, cancellationToken))
                {
                    return earlier;
                }
            }
            else if (earlier.LastCheckpoint is { } checkpoint && await CheckpointStoredAsync(checkpoint, connection, transaction, cancellationToken))
            {
                // Signed a checkpoint only: stored, it is the one returned and held as the newest (signing the head
                // again returned a checkpoint the database does not hold, the stored one being kept on conflict).
                return earlier;
            }
        }

        return null;
    }

    /// <summary>Whether the chain holds <paramref name="entry"/>: its sequence with its hash (which covers its content and every entry before it).</summary>
    private async Task<bool> InChainAsync(AuditEntry entry, DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT hash FROM {_scope.EntriesAnd} seq = @seq";
        _scope.Bind(command);
        SqlDatabase.AddParameter(command, "@seq", entry.Sequence);
        return await command.ExecuteScalarAsync(cancellationToken) is string hash && hash == entry.Hash;
    }

    /// <summary>Whether the chain's checkpoints hold <paramref name="checkpoint"/> itself (its signature), not another signed at its sequence.</summary>
    private async Task<bool> CheckpointStoredAsync(AuditCheckpoint checkpoint, DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT signature FROM {_scope.CheckpointsAnd} seq = @seq AND key_id = @key";
        _scope.Bind(command);
        SqlDatabase.AddParameter(command, "@seq", checkpoint.Sequence);
        SqlDatabase.AddParameter(command, "@key", checkpoint.KeyId);
        return await command.ExecuteScalarAsync(cancellationToken) is string signature && signature == checkpoint.Signature;
    }

    /// <summary>
    /// A member chain's commit in one round trip (PostgreSQL), when the batch is appends only (no carried write, no
    /// checkpoint due, at most <see cref="MaxAppendsInOneStatement"/>): one statement, its own transaction, moves the
    /// chain's head from <paramref name="start"/> (the head this writer committed or read last) to the batch's last
    /// entry under the chain's lock and inserts every entry only if the head moved. Its answer comes after its commit,
    /// so the entries are durable when this returns them. Null when the batch does not qualify, or when the head was no
    /// longer <paramref name="start"/> (another process of this member appended): then nothing was written, and the
    /// caller commits as it always did, under the lock from the head as it is then.
    /// </summary>
    private async Task<(ChainState State, object?[] Results)?> TryCommitInOneStatementAsync(PreparedStatement?[] statements, List<Work> batch, DbConnection connection, ChainState start, long timestamp,
        CommitAttempt current, CancellationToken cancellationToken)
    {
        if (batch.Count > statements.Length)
        {
            return null;
        }

        var maxAge = _options.CheckpointMaxAge is { } age ? (long)age.TotalMilliseconds : long.MaxValue;
        for (var i = 0; i < batch.Count; i++)
        {
            var sequence = start.Sequence + i + 1;
            if (batch[i] is not AppendWork { Carried: null, UnlessCommitted: null }
                || (_options.SignsCheckpoints && (sequence % _options.CheckpointInterval == 0 || (i == batch.Count - 1 && timestamp - start.CheckpointedAt >= maxAge))))
            {
                return null;
            }
        }

        var statement = statements[batch.Count - 1] ??= CreateAppendsInOne(connection, batch.Count);
        var results = current.Results;
        var hash = start.Hash;
        for (var i = 0; i < batch.Count; i++)
        {
            var blank = ((AppendWork)batch[i]).Blank;
            var sequence = start.Sequence + i + 1;
            var entryHash = AuditCanonical.EntryHash(blank, sequence, timestamp, hash);
            var entry = blank with { Chain = _scope.Name, Sequence = sequence, Timestamp = timestamp, PreviousHash = hash, Hash = entryHash };
            BindInsert(statement, entry, first: 6 + (i * EntryParameters));
            hash = entryHash;
            results[i] = entry;
        }

        var last = start.Sequence + batch.Count;
        statement.Set(0, last);
        statement.Set(1, hash);
        statement.Set(2, timestamp);
        statement.Set(3, start.Sequence);
        statement.Set(4, start.Hash);
        var state = new ChainState(last, hash, timestamp, start.LastCheckpoint, start.CheckpointedAt);
        current.State = state; // the statement is its own transaction: sent, it may be applied though its answer never comes
        var inserted = await statement.ExecuteAsync(null, cancellationToken);
        if (inserted == 0)
        {
            current.State = null; // answered: nothing was written
            return null;
        }

        if (inserted != batch.Count)
        {
            throw new InvalidOperationException($"One statement inserted {inserted} of {batch.Count} audit entries.");
        }

        return (state, results);
    }

    /// <summary>The most appends <see cref="TryCommitInOneStatementAsync"/> commits at once; a larger batch commits as before.</summary>
    private const int MaxAppendsInOneStatement = 8;

    /// <summary>The values of one entry that <see cref="BindInsert"/> sets.</summary>
    private const int EntryParameters = 20;

    /// <summary>
    /// The statement of <see cref="TryCommitInOneStatementAsync"/> for <paramref name="count"/> entries. The chain's lock
    /// is taken in the head's condition: a row is updated only once the lock is held (so a writer that took the lock
    /// first and read the head commits as it always did), and where that writer moved the head meanwhile, PostgreSQL
    /// checks the condition again on the head as that writer committed it (READ COMMITTED), which no longer matches.
    /// </summary>
    private PreparedStatement CreateAppendsInOne(DbConnection connection, int count)
    {
        var sql = new System.Text.StringBuilder(
            "WITH moved AS (UPDATE audit_chains SET seq = @headSeq, hash = @headHash, updated_at = @headAt " +
            $"WHERE seq = @oldSeq AND hash = @oldHash AND chain = @chain::text AND pg_advisory_xact_lock({MemberChainLockClass}, hashtext(@chain::text)) IS NOT NULL RETURNING seq) " +
            $"INSERT INTO audit_chain_entries ({AuditStore.EntryColumns}, chain) ");
        for (var i = 0; i < count; i++)
        {
            var n = i.ToString(CultureInfo.InvariantCulture);
            sql.Append(i == 0 ? "SELECT " : " UNION ALL SELECT ")
                .Append($"@seq{n}::bigint, @at{n}::bigint, @kind{n}::text, @tenant{n}::text, @keyId{n}::text, @actor{n}::text, @action{n}::text, ")
                .Append($"@model{n}::text, @gateway{n}::text, @node{n}::text, @jurisdiction{n}::text, @decision{n}::text, @decisionCode{n}::text, ")
                .Append($"@reasons{n}::text, @promptTokens{n}::bigint, @completionTokens{n}::bigint, @details{n}::text, @format{n}::integer, ")
                .Append($"@previousHash{n}::text, @hash{n}::text, @chain::text FROM moved");
        }

        var statement = PreparedStatement.Create(connection, sql.ToString());
        statement.Set(5, _scope.Name); // the head's five, then the chain, then each entry's
        return statement;
    }

    /// <summary>The writes the batch's appends carry, each kind written once for the whole batch.</summary>
    private async Task WriteCarriedAsync(List<Work> batch, DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken)
    {
        Dictionary<ICarriedWriter, List<ICarriedWrite>>? byWriter = null;
        foreach (var work in batch)
        {
            if (work is AppendWork { Carried: { } carried })
            {
                byWriter ??= [];
                if (!byWriter.TryGetValue(carried.Writer, out var items))
                {
                    byWriter[carried.Writer] = items = [];
                }

                items.Add(carried);
            }
        }

        if (byWriter is null)
        {
            return;
        }

        foreach (var (writer, items) in byWriter)
        {
            _carriedWriters.Add(writer);
            await writer.WriteAsync(items, connection, transaction, cancellationToken);
        }
    }

    /// <summary>
    /// Inserts <paramref name="entry"/>, the commit's last, and moves the head from <paramref name="start"/> to it, in one
    /// statement: nothing is inserted when the head is no longer <paramref name="start"/> (then this throws and the
    /// commit rolls back, as when the separate move found nothing).
    /// </summary>
    private async Task InsertMovingHeadAsync(PreparedStatement statement, AuditEntry entry, ChainState start, DbTransaction transaction, CancellationToken cancellationToken)
    {
        statement.Set(0, entry.Sequence);
        statement.Set(1, entry.Hash);
        statement.Set(2, entry.Timestamp);
        statement.Set(3, start.Sequence);
        statement.Set(4, start.Hash);
        BindInsert(statement, entry, first: _scope.IsShared ? 5 : 6);
        if (await statement.ExecuteAsync(transaction, cancellationToken) != 1)
        {
            throw new HeadMovedException();
        }
    }

    /// <summary>Takes the chain's transaction lock (PostgreSQL) and returns the head as committed now.</summary>
    private static async Task<(ChainState Start, long Sequence, string Hash, AuditCheckpoint? Checkpoint)> LockChainAsync(DbConnection connection, DbTransaction transaction, ChainState start, AuditChainScope scope, CancellationToken cancellationToken)
    {
        // One round trip: the lock, then the head and its entry's time. Two statements, not one: under READ COMMITTED
        // each takes its own snapshot, so the second reads the head as committed after the lock was granted.
        long sequence;
        string hash;
        long lastAt = 0;
        using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            // A member chain's lock is its own (the two-key form, a key space apart from the shared chain's one key), so
            // members commit apart; two names hashing alike only share a lock, as every member shared one before.
            command.CommandText = scope.IsShared
                ? $"SELECT pg_advisory_xact_lock({ChainLockKey}); " +
                  "SELECT h.seq, h.hash, e.at_ms FROM audit_head h LEFT JOIN audit_entries e ON e.seq = h.seq WHERE h.id = 1"
                : $"SELECT pg_advisory_xact_lock({MemberChainLockClass}, hashtext(@chain)); " +
                  "SELECT h.seq, h.hash, e.at_ms FROM audit_chains h LEFT JOIN audit_chain_entries e ON e.chain = h.chain AND e.seq = h.seq WHERE h.chain = @chain";
            scope.Bind(command);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (!await reader.NextResultAsync(cancellationToken) || !await reader.ReadAsync(cancellationToken))
            {
                throw new AuditIntegrityException($"The head row of {scope.Label} is missing; run 'sovereign audit verify'.");
            }

            sequence = AuditStore.ToInt64(reader.GetValue(0));
            hash = reader.GetString(1);
            if (!await reader.IsDBNullAsync(2, cancellationToken))
            {
                lastAt = AuditStore.ToInt64(reader.GetValue(2));
            }
        }

        if (sequence == start.Sequence && hash == start.Hash)
        {
            return (start, start.Sequence, start.Hash, start.LastCheckpoint);
        }

        // Another process appended: continue after its last entry (the head row and that entry move together).
        // This writer's signing time stays: it only has to sign as often as its max age asks, not on every interleaving.
        var moved = new ChainState(sequence, hash, Math.Max(lastAt, start.LastTimestamp), null, start.CheckpointedAt);
        return (moved, moved.Sequence, moved.Hash, null);
    }

    /// <summary>The PostgreSQL advisory lock key of the audit chain.</summary>
    private const long ChainLockKey = 0x5076417564697443;

    /// <summary>The first key of a member chain's PostgreSQL advisory lock (the second is a hash of its name).</summary>
    internal const int MemberChainLockClass = 0x53764D43;

    /// <summary>
    /// Every N commits, asks the checkpointer (its own thread and connection) for a PASSIVE WAL checkpoint and returns
    /// at once: it never blocks the next append. While a pass runs, the commits go on counting and the next one asks again.
    /// </summary>
    private void MaybeCheckpointWal()
    {
        if (_walCheckpointer is null || ++_commitsSinceWalCheckpoint < _options.SqliteWalCheckpointCommits)
        {
            return;
        }

        if (_walCheckpointer.TryRequest())
        {
            _commitsSinceWalCheckpoint = 0;
        }
    }

    private async Task<DbConnection> EnsureConnectionAsync(CancellationToken cancellationToken)
    {
        if (_connection is not null)
        {
            return _connection;
        }

        var connection = await _database.OpenAsync(cancellationToken);
        try
        {
            if (_database.Provider == SqlProvider.Sqlite && (_options.SqliteSynchronousFull || _options.SqliteWalCheckpointCommits > 0))
            {
                using var pragma = connection.CreateCommand();
                pragma.CommandText = (_options.SqliteSynchronousFull ? "PRAGMA synchronous=FULL;" : string.Empty) +
                    (_options.SqliteWalCheckpointCommits > 0 ? "PRAGMA wal_autocheckpoint=0;" : string.Empty);
                await pragma.ExecuteNonQueryAsync(cancellationToken);
            }

            // One prepared insert reused for every entry: the statement is parsed once per connection (on SQLite bound
            // by index through SQLitePCL: two entries a request, 20 values each, no binder objects per value).
            // A member chain's statements name it last (@chain, the highest position): the entry's and the head's
            // positions stay those of the shared chain's.
            var member = !_scope.IsShared;
            var insert = PreparedStatement.Create(connection,
                $"INSERT INTO {(member ? "audit_chain_entries" : "audit_entries")} ({AuditStore.EntryColumns}{(member ? ", chain" : "")}) " +
                "VALUES (@seq, @at, @kind, @tenant, @keyId, @actor, @action, @model, @gateway, @node, @jurisdiction, @decision, @decisionCode, " +
                $"@reasons, @promptTokens, @completionTokens, @details, @format, @previousHash, @hash{(member ? ", @chain" : "")})");

            // The head moves only from the state this writer knows: if another process appended, nothing matches.
            var moveHead = PreparedStatement.Create(connection, member
                ? "UPDATE audit_chains SET seq = @seq, hash = @hash, updated_at = @at WHERE seq = @oldSeq AND hash = @oldHash AND chain = @chain"
                : "UPDATE audit_head SET seq = @seq, hash = @hash, updated_at = @at WHERE id = 1 AND seq = @oldSeq AND hash = @oldHash");
            if (member)
            {
                insert.Set(20, _scope.Name);
                moveHead.Set(5, _scope.Name);
            }

            if (_database.Provider == SqlProvider.PostgreSql)
            {
                // Parameters typed in the SQL: a SELECT list gives them no column to take their type from.
                _insertMovingHead = PreparedStatement.Create(connection,
                    $"WITH moved AS (UPDATE {(member ? "audit_chains" : "audit_head")} SET seq = @headSeq, hash = @headHash, updated_at = @headAt " +
                    $"WHERE {(member ? "" : "id = 1 AND ")}seq = @oldSeq AND hash = @oldHash{(member ? " AND chain = @chain::text" : "")} RETURNING seq) " +
                    $"INSERT INTO {(member ? "audit_chain_entries" : "audit_entries")} ({AuditStore.EntryColumns}{(member ? ", chain" : "")}) " +
                    "SELECT @seq::bigint, @at::bigint, @kind::text, @tenant::text, " +
                    "@keyId::text, @actor::text, @action::text, @model::text, @gateway::text, @node::text, @jurisdiction::text, @decision::text, " +
                    "@decisionCode::text, @reasons::text, @promptTokens::bigint, @completionTokens::bigint, @details::text, @format::integer, " +
                    $"@previousHash::text, @hash::text{(member ? ", @chain::text" : "")} FROM moved");
                if (member)
                {
                    _insertMovingHead.Set(5, _scope.Name); // the head's five, then the chain, then the entry's
                    _appendsInOne = new PreparedStatement?[MaxAppendsInOneStatement];
                }
            }

            _insert = insert;
            _moveHead = moveHead;
            _sqliteTransaction = _database.Provider == SqlProvider.Sqlite ? PreparedTransaction.Create(connection) : null;
            _connection = connection;
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }


    private void BindInsert(PreparedStatement insert, AuditEntry entry, int first = 0)
    {
        insert.Set(first + 0, entry.Sequence);
        insert.Set(first + 1, entry.Timestamp);
        insert.Set(first + 2, AuditCanonical.KindName(entry.Kind));
        insert.Set(first + 3, entry.Tenant);
        insert.Set(first + 4, entry.KeyId);
        insert.Set(first + 5, entry.Actor);
        insert.Set(first + 6, entry.Action);
        insert.Set(first + 7, entry.Model);
        insert.Set(first + 8, entry.Gateway);
        insert.Set(first + 9, entry.Node);
        insert.Set(first + 10, entry.Jurisdiction);
        insert.Set(first + 11, entry.Decision is { } decision ? AuditCanonical.DecisionName(decision) : null);
        insert.Set(first + 12, entry.DecisionCode);
        // The JSON columns are written into the writer's own buffer and bound as UTF-8: a string and a growing buffer
        // each per column and entry were the largest allocation of a governed request (12% of its bytes).
        insert.SetUtf8(first + 13, Json(entry, static (writer, entry) => AuditStore.WriteReasons(writer, entry.Reasons)));
        insert.Set(first + 14, entry.PromptTokens);
        insert.Set(first + 15, entry.CompletionTokens);
        insert.SetUtf8(first + 16, Json(entry, static (writer, entry) => AuditStore.WriteDetails(writer, entry.Details)));
        insert.Set(first + 17, AuditCanonical.EntryFormatVersion);
        insert.Set(first + 18, entry.PreviousHash);
        insert.Set(first + 19, entry.Hash);
    }

    /// <summary>What <paramref name="write"/> writes, in the writer's buffer: valid until the next call (SQLite copies a bound text).</summary>
    private ReadOnlySpan<byte> Json(AuditEntry entry, Action<Utf8JsonWriter, AuditEntry> write)
    {
        _json.ResetWrittenCount();
        var writer = _jsonWriter ??= new Utf8JsonWriter(_json);
        writer.Reset();
        write(writer, entry);
        writer.Flush();
        return _json.WrittenSpan;
    }

    private async Task CloseConnectionAsync()
    {
        _insert?.Dispose();
        _insert = null;
        _moveHead?.Dispose();
        _moveHead = null;
        _insertMovingHead?.Dispose();
        _insertMovingHead = null;
        foreach (var statement in _appendsInOne ?? [])
        {
            statement?.Dispose();
        }

        _appendsInOne = null;
        var inTransaction = false;
        if (_sqliteTransaction is { } prepared)
        {
            // A rollback that failed left the connection in its transaction: it must not go back to the pool holding it.
            inTransaction = prepared.IsOpen;
            prepared.Dispose();
            _sqliteTransaction = null;
        }

        if (_connection is not null)
        {
            foreach (var writer in _carriedWriters)
            {
                writer.Release(_connection);
            }

            _carriedWriters.Clear();

            // Pooled connections keep their pragmas: give the next user SQLite's default WAL behaviour back.
            if (_connection is SqliteConnection sqlite && _options.SqliteWalCheckpointCommits > 0)
            {
                try
                {
                    using var reset = sqlite.CreateCommand();
                    reset.CommandText = "PRAGMA wal_autocheckpoint=1000";
                    reset.ExecuteNonQuery();
                }
                catch (SqliteException)
                {
                    SqliteConnection.ClearPool(sqlite);
                }
            }

            if (inTransaction && _connection is SqliteConnection open)
            {
                SqliteConnection.ClearPool(open);
            }

            await _connection.DisposeAsync();
            _connection = null;
        }
    }

    private sealed record ChainState(long Sequence, string Hash, long LastTimestamp, AuditCheckpoint? LastCheckpoint, long CheckpointedAt);

    /// <summary>One try at committing a batch: what it hashed, and once its commit was sent, the head it would leave.</summary>
    private sealed class CommitAttempt(int count)
    {
        /// <summary>Each work's result (entry or checkpoint), in the batch's order.</summary>
        public object?[] Results { get; } = new object?[count];

        /// <summary>Set when its commit was sent: from then it may be applied though no answer comes.</summary>
        public ChainState? State { get; set; }

        /// <summary>The last checkpoint it signed (null when it signed none).</summary>
        public AuditCheckpoint? LastCheckpoint => Results.OfType<AuditCheckpoint>().LastOrDefault();

        /// <summary>The last entry it hashed (null when the batch appends nothing).</summary>
        public AuditEntry? LastEntry
        {
            get
            {
                for (var i = Results.Length - 1; i >= 0; i--)
                {
                    if (Results[i] is AuditEntry entry)
                    {
                        return entry;
                    }
                }

                return null;
            }
        }
    }

    /// <summary>An append or a checkpoint request, with whoever waits for it.</summary>
    private abstract class Work
    {
        public abstract void Complete(object? result);

        public abstract void Fail(Exception error);
    }

    private sealed class AppendWork(AuditEntry blank, ICarriedWrite? carried) : Work
    {
        /// <summary>The validated entry, its sequence, time and hashes still to be filled in by the writer.</summary>
        public AuditEntry Blank { get; } = blank;

        /// <summary>Another component's write that commits in the same transaction.</summary>
        public ICarriedWrite? Carried { get; } = carried;

        /// <summary>
        /// The same entry as earlier commits that were never answered hashed it (<see cref="AppendUnlessCommittedAsync"/>):
        /// found in the chain, it is the result and nothing is appended. Null: append.
        /// </summary>
        public AuditEntry[]? UnlessCommitted { get; init; }

        public TaskCompletionSource<AuditEntry> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override void Complete(object? result)
        {
            Carried?.Committed();
            Completion.TrySetResult((AuditEntry)result!);
        }

        public override void Fail(Exception error)
        {
            Carried?.Failed(error);
            Completion.TrySetException(error);
        }
    }

    private sealed class CheckpointWork : Work
    {
        public TaskCompletionSource<AuditCheckpoint?> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override void Complete(object? result) => Completion.TrySetResult((AuditCheckpoint?)result);

        public override void Fail(Exception error) => Completion.TrySetException(error);
    }
}
