using System.Data.Common;
using Sovereign.Storage;

namespace Sovereign.Residency.Audit;

/// <summary>What <see cref="AuditArchive.RemoveAsync"/> did.</summary>
/// <param name="Record">The signed archive record that now vouches for the removed entries; null when nothing was removed.</param>
/// <param name="FirstRemoved">The first sequence removed (null when nothing was left to remove).</param>
/// <param name="Removed">How many entries left the database.</param>
public sealed record AuditArchiveResult(AuditArchiveRecord? Record, long? FirstRemoved, long Removed);

/// <summary>How <see cref="AuditArchive.ArchiveToFileAsync"/> ended.</summary>
public enum AuditArchiveFileStatus
{
    /// <summary>The file was written and verified, then the entries it holds (all but the newest) left the database.</summary>
    Archived,

    /// <summary>No entry before the time could leave the database (none, or only the newest); no file was written.</summary>
    NothingToArchive,

    /// <summary>The file did not verify when read back; it is kept for inspection and nothing was removed.</summary>
    NotVerified,

    /// <summary>Another process (a gateway or the CLI) is archiving this database now; nothing was done.</summary>
    Busy,
}

/// <summary>What <see cref="AuditArchive.ArchiveToFileAsync"/> did.</summary>
/// <param name="Status">How it ended.</param>
/// <param name="Path">The archive file (it exists only for <see cref="AuditArchiveFileStatus.Archived"/> and <see cref="AuditArchiveFileStatus.NotVerified"/>).</param>
/// <param name="Summary">What the file holds (null when no file was written).</param>
/// <param name="Removal">What left the database (null unless archived).</param>
/// <param name="Sha256">The file's SHA-256, lowercase hex (null unless archived).</param>
/// <param name="Problems">Why the file did not verify (empty otherwise).</param>
public sealed record AuditArchiveFileOutcome(AuditArchiveFileStatus Status, string Path, AuditExportSummary? Summary, AuditArchiveResult? Removal, string? Sha256, IReadOnlyList<AuditProblem> Problems)
{
    /// <summary>
    /// Where the log has member chains: what the file (an export of every chain, version 3) holds of each chain, and
    /// what left each chain (<see cref="Summary"/> and <see cref="Removal"/> then count every chain's entries). Empty on a
    /// log of one chain.
    /// </summary>
    public IReadOnlyList<(AuditExportChain Chain, AuditArchiveResult Removal)> Chains { get; init; } = [];
}

/// <summary>
/// Retention for the audit log: the log only grows (an entry per request), so an operator moves old entries to an
/// archive file and out of the database. The file is an ordinary export of every tenant (<see cref="AuditExport"/>,
/// verifiable offline with the public key); only after it has been written and verified are the entries removed, under
/// a signed archive record (<see cref="AuditArchiveRecord"/>) that lets <see cref="AuditVerifier"/> accept a log that
/// no longer starts at 1. Removing entries without one, or under a forged one, is still reported as tampering.
/// Deleting evidence is the operator's decision: by hand (<c>sovereign audit archive</c>) or on a schedule the operator
/// set (<c>Sovereign:Audit:Archive:AfterDays</c>); both go through <see cref="ArchiveToFileAsync"/>.
/// </summary>
public static class AuditArchive
{
    /// <summary>Entries removed per transaction, so appends on a live log wait for one batch, not the whole archive.</summary>
    public const int RemoveBatchSize = 5_000;

    /// <summary>The name of the database-wide lock (<see cref="SqlDatabase.TryLockAsync"/>) one archive run holds from start to end.</summary>
    public const string LockName = "audit-archive";

    /// <summary>
    /// The whole archive, as the CLI and the scheduled retention run it: under the database-wide archive lock (two
    /// gateways, or a gateway and the CLI, never archive at once), writes every entry older than <paramref name="before"/>
    /// to a new file at <paramref name="path"/> (never overwritten; mode 600 on Unix), flushes it to disk, reads it back and
    /// verifies it with the public key, and only then removes the entries (<see cref="RemoveAsync"/>). When no entry
    /// could leave the database (none before the time, or only the newest, which always stays) no file is written.
    /// </summary>
    /// <exception cref="IOException">The file exists already, or could not be written (nothing was removed; a partly written file is deleted).</exception>
    /// <remarks>
    /// With <paramref name="witness"/> (the last head this signer signed, <see cref="AuditWitness"/>), a log that no
    /// longer holds it is refused before anything is written, signed or removed: the archive signs a checkpoint and an
    /// archive record, which must not vouch for a tail rewritten after the newest checkpoints were deleted.
    /// </remarks>
    /// <exception cref="AuditIntegrityException">The stored chain does not verify, or no longer holds <paramref name="witness"/> (nothing was removed).</exception>
    public static async Task<AuditArchiveFileOutcome> ArchiveToFileAsync(SqlDatabase database, OperatorSigningKey signingKey, DateTimeOffset before, string path,
        AuditWitnessHead? witness = null, TimeProvider? timeProvider = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(signingKey);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        path = Path.GetFullPath(path);
        await database.MigrateAsync(AuditStore.Migrations, cancellationToken);
        await using var held = await database.TryLockAsync(LockName, cancellationToken);
        if (held is null)
        {
            return new AuditArchiveFileOutcome(AuditArchiveFileStatus.Busy, path, null, null, null, []);
        }

        if (!await AnyRemovableAsync(database, before, cancellationToken))
        {
            return new AuditArchiveFileOutcome(AuditArchiveFileStatus.NothingToArchive, path, null, null, null, []);
        }

        if (File.Exists(path) || Directory.Exists(path))
        {
            // Never overwritten: it may be an earlier archive, the only copy of entries no longer in the database.
            throw new IOException($"The file '{path}' already exists.");
        }

        if (await AuditClusterExport.HasMemberChainsAsync(database, cancellationToken))
        {
            return await ArchiveChainsToFileAsync(database, signingKey, before, path, witness, timeProvider, cancellationToken);
        }

        AuditExportSummary summary;
        // Written, flushed and read back under a temporary name beside the file, which takes the file's name only once
        // complete: a process killed half way left a partial archive under the name the operator keeps.
        // Every tenant's ids, models and decisions: readable by the operator's account only, like the key beside it.
        // Created here and incomplete until committed: an abandoned one holds nothing the database lost, and goes.
        AuditVerificationResult check;
        await using (var staging = AtomicFileWriter.Begin(path, ExistingFile.Refuse, FileAccessScope.OwnerOnly))
        {
            summary = await AuditExport.WriteAsync(database, signingKey, tenant: null, DateTimeOffset.UnixEpoch, before, staging.Stream, witness, cancellationToken);
            await staging.CloseAsync(cancellationToken);
            if (summary.LastSequence is null || summary.Checkpoint is null)
            {
                return new AuditArchiveFileOutcome(AuditArchiveFileStatus.NothingToArchive, path, null, null, null, []);
            }

            // Read back what reached the disk before anything is deleted.
            await using (var written = File.OpenRead(staging.TemporaryPath))
            {
                check = await AuditExport.VerifyExportAsync(written, signingKey.PublicKeyPem, cancellationToken);
            }

            // Under its name (one that does not verify too: kept for inspection), before any entry is removed.
            await staging.CommitAsync(cancellationToken);
        }

        var last = summary.LastSequence.Value;
        var closing = summary.Checkpoint;

        if (!check.Valid)
        {
            return new AuditArchiveFileOutcome(AuditArchiveFileStatus.NotVerified, path, summary, null, null, check.Problems);
        }

        var removal = await RemoveAsync(database, signingKey, last, closing.Hash, summary.Entries, timeProvider, cancellationToken);
        string digest;
        await using (var written = File.OpenRead(path))
        {
            digest = Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(written, cancellationToken));
        }

        return new AuditArchiveFileOutcome(AuditArchiveFileStatus.Archived, path, summary, removal, digest, []);
    }

    /// <summary>
    /// A log with member chains: one file holding every chain's entries older than <paramref name="before"/> (an export
    /// of every chain, <see cref="AuditClusterExport"/>), written, flushed, read back and verified, then each chain's
    /// entries removed under its own signed archive record, the shared chain's as before. The witness is checked by the
    /// export, before anything is written, signed or removed.
    /// </summary>
    private static async Task<AuditArchiveFileOutcome> ArchiveChainsToFileAsync(SqlDatabase database, OperatorSigningKey signingKey, DateTimeOffset before, string path,
        AuditWitnessHead? witness, TimeProvider? timeProvider, CancellationToken cancellationToken)
    {
        AuditClusterExportSummary summary;
        // Written, flushed and read back under a temporary name beside the file, which takes the file's name only once
        // complete: a process killed half way left a partial archive under the name the operator keeps.
        AuditVerificationResult check;
        await using (var staging = AtomicFileWriter.Begin(path, ExistingFile.Refuse, FileAccessScope.OwnerOnly))
        {
            summary = await AuditClusterExport.WriteAsync(database, signingKey, tenant: null, DateTimeOffset.UnixEpoch, before, staging.Stream, witness, cancellationToken);
            await staging.CloseAsync(cancellationToken);
            await using (var written = File.OpenRead(staging.TemporaryPath))
            {
                check = await AuditExport.VerifyExportAsync(written, signingKey.PublicKeyPem, cancellationToken);
            }

            await staging.CommitAsync(cancellationToken);
        }

        // An old unsigned tail is reported (uncovered), not refused: the archive record signs it from now on, as the
        // single chain's closing checkpoint does.
        if (!check.Valid)
        {
            return new AuditArchiveFileOutcome(AuditArchiveFileStatus.NotVerified, path, null, null, null, check.Problems);
        }

        var removals = new List<(AuditExportChain Chain, AuditArchiveResult Removal)>();
        foreach (var chain in summary.Chains)
        {
            if (chain is { FirstSequence: { } first, LastSequence: { } last, LastHash: { } hash })
            {
                removals.Add((chain, await RemoveAsync(database, signingKey, AuditChainScope.Of(chain.Chain), last, hash, last - first + 1, timeProvider, cancellationToken)));
            }
        }

        string digest;
        await using (var written = File.OpenRead(path))
        {
            digest = Convert.ToHexStringLower(await System.Security.Cryptography.SHA256.HashDataAsync(written, cancellationToken));
        }

        var shared = summary.Chains[0];
        var removed = removals.Sum(r => r.Removal.Removed);
        return new AuditArchiveFileOutcome(AuditArchiveFileStatus.Archived, path,
            new AuditExportSummary(shared.FirstSequence, shared.LastSequence, summary.Entries, 0, null),
            new AuditArchiveResult(removals.FirstOrDefault(r => r.Chain.Chain is null).Removal?.Record, removals.Select(r => r.Removal.FirstRemoved).FirstOrDefault(f => f is not null), removed),
            digest, [])
        {
            Chains = removals,
        };
    }

    // Whether an entry older than the time is stored below its chain's head (the newest entry of each chain always
    // stays): without one, a run would only write a file of entries that all stay in the database.
    private static async Task<bool> AnyRemovableAsync(SqlDatabase database, DateTimeOffset before, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        // The oldest entry is the first to be older (times never decrease along the chain; no index on time).
        command.CommandText = "SELECT seq FROM audit_entries WHERE seq = (SELECT MIN(seq) FROM audit_entries) AND at_ms < @before AND seq < (SELECT MAX(seq) FROM audit_entries)";
        SqlDatabase.AddParameter(command, "@before", before.ToUnixTimeMilliseconds());
        if (await command.ExecuteScalarAsync(cancellationToken) is not null and not DBNull)
        {
            return true;
        }

        if (!await AuditChainScope.TablesExistAsync(connection, null, cancellationToken))
        {
            return false;
        }

        using var members = connection.CreateCommand();
        members.CommandText =
            "SELECT e.chain FROM audit_chain_entries e JOIN (SELECT chain, MIN(seq) AS low, MAX(seq) AS high FROM audit_chain_entries GROUP BY chain) b " +
            "ON e.chain = b.chain AND e.seq = b.low WHERE e.at_ms < @before AND b.low < b.high LIMIT 1";
        SqlDatabase.AddParameter(members, "@before", before.ToUnixTimeMilliseconds());
        return await members.ExecuteScalarAsync(cancellationToken) is not null and not DBNull;
    }

    /// <summary>Writes every entry older than <paramref name="before"/> to <paramref name="output"/>, as an export of all tenants.</summary>
    public static Task<AuditExportSummary> WriteAsync(SqlDatabase database, OperatorSigningKey signingKey, DateTimeOffset before, Stream output, CancellationToken cancellationToken = default) =>
        AuditExport.WriteAsync(database, signingKey, tenant: null, DateTimeOffset.UnixEpoch, before, output, cancellationToken);

    /// <summary>
    /// Removes the stored entries up to <paramref name="throughSequence"/>, whose hash must be
    /// <paramref name="throughHash"/> (what the verified archive file ends with). The newest entry always stays, so the
    /// chain's tail and <c>audit_head</c> still meet. The archive record is committed first and the entries go in
    /// batches, oldest first: a log cut at any point in between still verifies.
    /// </summary>
    /// <exception cref="AuditIntegrityException">The entry is missing or has another hash, or the stored chain does not verify up to it.</exception>
    public static Task<AuditArchiveResult> RemoveAsync(SqlDatabase database, OperatorSigningKey signingKey, long throughSequence, string throughHash, long entries,
        TimeProvider? timeProvider = null, CancellationToken cancellationToken = default) =>
        RemoveAsync(database, signingKey, AuditChainScope.Shared, throughSequence, throughHash, entries, timeProvider, cancellationToken);

    /// <summary>
    /// As <see cref="RemoveAsync(SqlDatabase, OperatorSigningKey, long, string, long, TimeProvider?, CancellationToken)"/>
    /// for <paramref name="scope"/>'s chain. On a member chain the record goes to <c>audit_chain_archives</c>, and a
    /// checkpoint is signed at the last entry removed when this key has none at or after it, so a gateway's signing of
    /// the chain (<see cref="AuditLog.SignMemberChainsAsync"/>, which walks on from its key's newest checkpoint) goes on
    /// from there.
    /// </summary>
    public static async Task<AuditArchiveResult> RemoveAsync(SqlDatabase database, OperatorSigningKey signingKey, AuditChainScope scope, long throughSequence, string throughHash, long entries,
        TimeProvider? timeProvider = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(scope);
        ArgumentNullException.ThrowIfNull(signingKey);
        ArgumentOutOfRangeException.ThrowIfLessThan(throughSequence, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(entries);
        if (!AuditCanonical.IsHash(throughHash))
        {
            throw new ArgumentException("The hash must be 64 lowercase hex digits.", nameof(throughHash));
        }

        await database.MigrateAsync(AuditStore.Migrations, cancellationToken);
        long first;
        long last;
        await using (var connection = await database.OpenAsync(cancellationToken))
        await using (var snapshot = await AuditStore.BeginSnapshotAsync(connection, cancellationToken))
        {
            first = await AuditStore.ReadFirstSequenceAsync(connection, snapshot, scope, cancellationToken) ?? throw new AuditIntegrityException($"{scope.Label} is empty: nothing to archive.");
            last = (await AuditStore.ReadHeadAsync(connection, snapshot, scope, cancellationToken))?.Sequence ?? throw new AuditIntegrityException($"The head row of {scope.Label} is missing; run 'sovereign audit verify'.");
            var stored = await ReadHashAsync(connection, snapshot, scope, throughSequence, cancellationToken);
            if (stored != throughHash)
            {
                throw new AuditIntegrityException(stored is null
                    ? $"Audit entry {throughSequence} of {scope.Label} is not in the database (it holds {first}..{last}); nothing was removed."
                    : $"Audit entry {throughSequence} of {scope.Label} has hash {stored}, not {throughHash} as in the archive; nothing was removed.");
            }

            // Never vouch for a chain that does not verify: the record would make a damaged prefix disappear for good.
            using var keys = new TrustedKeys([signingKey.PublicKeyPem]);
            var check = await AuditVerifier.VerifyAsync(connection, snapshot, keys, 1, throughSequence, cancellationToken, scope: scope);
            var damage = check.Problems.Where(p => p.Kind != AuditProblemKind.KeyMismatch).ToList();
            if (damage.Count > 0)
            {
                throw new AuditIntegrityException($"{scope.Label} does not verify up to sequence {throughSequence} (first problem: {damage[0]}); nothing was removed. Run 'sovereign audit verify'.",
                    damage.Select(p => p with { Chain = scope.Name }).ToList());
            }
        }

        // The newest entry stays: audit_head must keep meeting the chain's last entry.
        var through = Math.Min(throughSequence, last - 1);
        var time = timeProvider ?? TimeProvider.System;
        if (through < first)
        {
            return new AuditArchiveResult(null, null, 0);
        }

        var throughHashKept = through == throughSequence ? throughHash : await ReadHashAtAsync(database, scope, through, cancellationToken)
            ?? throw new AuditIntegrityException($"Audit entry {through} of {scope.Label} is missing.");
        var record = AuditArchiveRecord.Sign(signingKey, through, throughHashKept, entries, time.GetUtcNow().ToUnixTimeMilliseconds());
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            using var turn = await database.EnterWriteAsync(cancellationToken);
            await AuditStore.InsertArchiveAsync(connection, null, scope, record, cancellationToken);
            if ((await AuditStore.ReadCheckpointsAsync(connection, null, scope, "WHERE key_id = @key AND seq >= @through", command =>
                {
                    SqlDatabase.AddParameter(command, "@key", signingKey.KeyId);
                    SqlDatabase.AddParameter(command, "@through", through);
                }, cancellationToken)).Count == 0)
            {
                await AuditStore.InsertCheckpointAsync(connection, null, scope, AuditCheckpoint.Sign(signingKey, through, throughHashKept, record.Timestamp), cancellationToken);
            }
        }

        long removed = 0;
        for (var low = first; low <= through; low += RemoveBatchSize)
        {
            var high = Math.Min(through, low + RemoveBatchSize - 1);
            await using var connection = await database.OpenAsync(cancellationToken);
            using var turn = await database.EnterWriteAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            removed += await ExecuteAsync(connection, transaction, scope, $"DELETE FROM {scope.EntriesAnd} seq >= @low AND seq <= @high", low, high, cancellationToken);
            if (high == through)
            {
                // Checkpoints and older archive records before the new record vouch for entries no longer stored.
                await ExecuteAsync(connection, transaction, scope, $"DELETE FROM {scope.CheckpointsAnd} seq < @low", through, through, cancellationToken);
                await ExecuteAsync(connection, transaction, scope, $"DELETE FROM {scope.ArchivesAnd} seq < @low", through, through, cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        return new AuditArchiveResult(record, first, removed);
    }

    private static async Task<int> ExecuteAsync(DbConnection connection, DbTransaction transaction, AuditChainScope scope, string sql, long low, long high, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        scope.Bind(command);
        SqlDatabase.AddParameter(command, "@low", low);
        if (sql.Contains("@high", StringComparison.Ordinal))
        {
            SqlDatabase.AddParameter(command, "@high", high);
        }

        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task<string?> ReadHashAtAsync(SqlDatabase database, AuditChainScope scope, long sequence, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await ReadHashAsync(connection, null, scope, sequence, cancellationToken);
    }

    private static async Task<string?> ReadHashAsync(DbConnection connection, DbTransaction? transaction, AuditChainScope scope, long sequence, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT hash FROM {scope.EntriesAnd} seq = @seq";
        scope.Bind(command);
        SqlDatabase.AddParameter(command, "@seq", sequence);
        return await command.ExecuteScalarAsync(cancellationToken) as string;
    }
}
