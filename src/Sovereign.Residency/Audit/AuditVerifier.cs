using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Sovereign.Storage;

namespace Sovereign.Residency.Audit;

/// <summary>
/// Verifies an audit database offline with the operator's public key: every entry's hash, the chain links and the
/// sequence, the head row, and every checkpoint's signature and hash. It reads in one snapshot, so a live log can be
/// verified while it grows. What it cannot prove: entries after the newest signed checkpoint (nothing signed covers
/// them, so whoever can write the database can rewrite and re-hash them and the head). It therefore reports how many
/// entries are uncovered and since when, and does not call the log trusted when entries exist but no checkpoint
/// covers any, or the uncovered tail is older than <see cref="AuditVerificationOptions.MaxUncoveredAge"/>. Keep
/// exported checkpoints off the host to pin the covered part too.
/// </summary>
public static class AuditVerifier
{
    /// <summary>The most problems a result lists (the rest are counted).</summary>
    public const int MaxProblems = 1000;

    /// <summary>Verifies with one trusted operator public key (SubjectPublicKeyInfo PEM).</summary>
    public static Task<AuditVerificationResult> VerifyAsync(SqlDatabase database, string publicKeyPem, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(publicKeyPem);
        return VerifyAsync(database, [publicKeyPem], cancellationToken);
    }

    /// <summary>Verifies with one key, reporting the entries checked so far every <see cref="ProgressInterval"/> entries.</summary>
    public static Task<AuditVerificationResult> VerifyAsync(SqlDatabase database, string publicKeyPem, IProgress<long>? progress, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(publicKeyPem);
        return VerifyAsync(database, [publicKeyPem], progress, cancellationToken);
    }

    /// <summary>How often (in entries) a verification reports progress.</summary>
    public const int ProgressInterval = 50_000;

    /// <summary>Verifies trusting several operator keys (after a key rotation, old checkpoints carry the old key).</summary>
    public static Task<AuditVerificationResult> VerifyAsync(SqlDatabase database, IReadOnlyCollection<string> publicKeyPems, CancellationToken cancellationToken = default) =>
        VerifyAsync(database, publicKeyPems, null, cancellationToken);

    /// <summary>Verifies trusting several operator keys, reporting progress (entries checked) when asked.</summary>
    public static Task<AuditVerificationResult> VerifyAsync(SqlDatabase database, IReadOnlyCollection<string> publicKeyPems, IProgress<long>? progress, CancellationToken cancellationToken = default) =>
        VerifyAsync(database, publicKeyPems, null, progress, cancellationToken);

    /// <summary>Verifies the whole log and judges its uncovered tail by <paramref name="options"/> (defaults when null).</summary>
    public static async Task<AuditVerificationResult> VerifyAsync(SqlDatabase database, IReadOnlyCollection<string> publicKeyPems, AuditVerificationOptions? options, IProgress<long>? progress, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(publicKeyPems);
        options ??= new AuditVerificationOptions();
        using var keys = new TrustedKeys(publicKeyPems);
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var snapshot = await AuditStore.BeginSnapshotAsync(connection, cancellationToken);
        var decisions = new AuditDecisionTally();
        var announced = new List<(AuditEntry Entry, string? By)>();
        var witnessed = new Dictionary<string, AuditEntry>(StringComparer.Ordinal);
        var result = await VerifyAsync(connection, snapshot, keys, 1, long.MaxValue, cancellationToken, progress, AuditChainScope.Shared, decisions, announced, witnessed);
        var names = await MemberChainNamesAsync(connection, snapshot, cancellationToken);
        var members = new List<(AuditChainScope Scope, AuditVerificationResult Result)>(names.Count);
        foreach (var name in names)
        {
            var scope = AuditChainScope.Member(name);
            members.Add((scope, await VerifyAsync(connection, snapshot, keys, 1, long.MaxValue, cancellationToken, progress, scope, decisions, announced, witnessed)));
        }

        var extra = new List<AuditProblem>();
        if (options.Witness is { } witness && await AuditWitness.CheckAsync(connection, snapshot, witness, cancellationToken) is { } reason)
        {
            // Signed checkpoints cannot tell: the rewrite deleted those after it, and a re-hashed chain links.
            extra.Add(new AuditProblem(witness.Sequence, AuditProblemKind.WitnessMismatch, $"The signer's witness does not match the log: {reason}.") { Chain = witness.Chain });
        }

        await CheckAnnouncedAsync(connection, snapshot, names, announced, extra, cancellationToken);
        await CheckWitnessedAsync(connection, snapshot, names, witnessed, extra, cancellationToken);
        return Combine(Judge(result with { Decisions = decisions.ToOutcomes() }, options), members, extra, options) with { SignedBy = keys.Used };
    }

    /// <summary>The member chains in the snapshot: those with a head row, and any holding entries or checkpoints without one (a cut head).</summary>
    internal static async Task<List<string>> MemberChainNamesAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken)
    {
        var names = new List<string>();
        if (!await AuditChainScope.TablesExistAsync(connection, transaction, cancellationToken))
        {
            return names; // a database from before member chains: it has none
        }

        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText =
            "SELECT chain FROM audit_chains UNION SELECT chain FROM audit_chain_entries UNION SELECT chain FROM audit_chain_checkpoints ORDER BY 1";
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            names.Add(reader.GetString(0));
        }

        return names;
    }

    /// <summary>
    /// Each chain an entry announced (<see cref="AuditActions.ChainOpened"/>) must still exist and start with the entry
    /// announced: removing a member's chain whole (entries, head, checkpoints) leaves nothing else to compare with.
    /// </summary>
    internal static async Task CheckAnnouncedAsync(DbConnection connection, DbTransaction transaction, List<string> names, List<(AuditEntry Entry, string? By)> announced, List<AuditProblem> problems, CancellationToken cancellationToken)
    {
        foreach (var (entry, by) in announced)
        {
            var where = $"{AuditChainScope.Of(by).Label} entry {entry.Sequence}";
            if (!entry.Details.TryGetValue("chain", out var chain) || !AuditCanonical.IsChainName(chain) || !entry.Details.TryGetValue("first_hash", out var first))
            {
                problems.Add(new AuditProblem(entry.Sequence, AuditProblemKind.Malformed, $"{where} announces a chain without a valid chain name and first hash.") { Chain = by });
                continue;
            }

            if (!names.Contains(chain, StringComparer.Ordinal))
            {
                problems.Add(new AuditProblem(entry.Sequence, AuditProblemKind.ChainMissing,
                    $"Chain {chain}, announced in {where}, is missing: the member's entries, head and checkpoints were removed.") { Chain = by });
                continue;
            }

            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "SELECT hash FROM audit_chain_entries WHERE chain = @chain AND seq = 1";
            SqlDatabase.AddParameter(command, "@chain", chain);
            var stored = await command.ExecuteScalarAsync(cancellationToken) as string;
            if (stored is null && await AuditStore.ReadFirstSequenceAsync(connection, transaction, AuditChainScope.Member(chain), cancellationToken) > 1)
            {
                // Archived from its start (AuditArchive): the chain's own walk accepts that only under a signed archive record.
                continue;
            }

            if (stored != first)
            {
                problems.Add(new AuditProblem(entry.Sequence, AuditProblemKind.ChainMissing,
                    $"Chain {chain}, announced in {where} with first entry {first}, starts with {stored ?? "nothing"}: the member's chain was removed or replaced.") { Chain = by });
            }
        }
    }

    /// <summary>The heads a <see cref="AuditActions.ChainsSigned"/> entry records: (chain, sequence, hash) for each well-formed detail.</summary>
    internal static IEnumerable<(string Chain, long Sequence, string Hash)> WitnessedHeads(AuditEntry entry)
    {
        foreach (var (key, value) in entry.Details)
        {
            if (key.StartsWith(AuditActions.ChainsSignedPrefix, StringComparison.Ordinal) && key[AuditActions.ChainsSignedPrefix.Length..] is var chain && AuditCanonical.IsChainName(chain)
                && value.Split(':') is [var number, var hash] && long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var sequence) && sequence > 0 && AuditCanonical.IsHash(hash))
            {
                yield return (chain, sequence, hash);
            }
        }
    }

    /// <summary>The shared chain's head a <see cref="AuditActions.ChainsSigned"/> entry records, if it holds a well-formed one.</summary>
    internal static (long Sequence, string Hash)? WitnessedSharedHead(AuditEntry entry) =>
        entry.Details.TryGetValue(AuditActions.ChainsSignedShared, out var value) && value.Split(':') is [var number, var hash]
        && long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var sequence) && sequence > 0 && AuditCanonical.IsHash(hash)
            ? (sequence, hash)
            : null;

    /// <summary>
    /// The heads a <see cref="AuditActions.ChainsSigned"/> entry records, the shared chain's (<see cref="AuditActions.ChainsSignedShared"/>,
    /// chain null) first: (chain, sequence, hash) for each well-formed detail.
    /// </summary>
    internal static IEnumerable<(string? Chain, long Sequence, string Hash)> WitnessedHeadsWithShared(AuditEntry entry)
    {
        if (WitnessedSharedHead(entry) is { } shared)
        {
            yield return (null, shared.Sequence, shared.Hash);
        }

        foreach (var (chain, sequence, hash) in WitnessedHeads(entry))
        {
            yield return (chain, sequence, hash);
        }
    }

    /// <summary>
    /// Each other chain's head that a signer's chain last recorded as signed (<see cref="AuditActions.ChainsSigned"/>),
    /// the shared chain's included, must still be in that chain with that hash (or archived below its first stored
    /// entry, which its own walk judges): a tail rewritten and re-hashed after it, with the checkpoint there deleted
    /// first, links and verifies on its own.
    /// </summary>
    internal static async Task CheckWitnessedAsync(DbConnection connection, DbTransaction transaction, List<string> names, Dictionary<string, AuditEntry> witnessed, List<AuditProblem> problems, CancellationToken cancellationToken)
    {
        foreach (var (by, entry) in witnessed)
        {
            var signer = by.Length == 0 ? null : by;
            var where = $"{AuditChainScope.Of(signer).Label} entry {entry.Sequence}";
            foreach (var (chain, sequence, hash) in WitnessedHeadsWithShared(entry))
            {
                if (chain is not null && !names.Contains(chain, StringComparer.Ordinal))
                {
                    problems.Add(new AuditProblem(entry.Sequence, AuditProblemKind.ChainMissing, $"Chain {chain}, whose entry {sequence} {where} records as signed, is missing.") { Chain = signer });
                    continue;
                }

                var scope = AuditChainScope.Of(chain);
                using var command = connection.CreateCommand();
                command.Transaction = transaction;
                command.CommandText = $"SELECT hash FROM {scope.EntriesAnd} seq = @seq";
                scope.Bind(command);
                SqlDatabase.AddParameter(command, "@seq", sequence);
                var stored = await command.ExecuteScalarAsync(cancellationToken) as string;
                if (stored == hash)
                {
                    continue;
                }

                var first = await AuditStore.ReadFirstSequenceAsync(connection, transaction, scope, cancellationToken);
                if (stored is null && first > sequence)
                {
                    continue; // archived: the chain's own walk accepts that only under a signed archive record
                }

                problems.Add(stored is null
                    ? new AuditProblem(sequence, AuditProblemKind.Truncated, $"{where} records entry {sequence} of {scope.Label} as signed (hash {hash}), but the chain no longer holds it: its tail was removed.") { Chain = chain }
                    : new AuditProblem(sequence, AuditProblemKind.WitnessMismatch, $"{where} records entry {sequence} of {scope.Label} as signed with hash {hash}; the chain has {stored}: it was rewritten from there (and the checkpoints after it deleted).") { Chain = chain });
            }
        }
    }

    /// <summary>The whole log's result: the shared chain's fields, each member chain's report, every problem and one verdict.</summary>
    internal static AuditVerificationResult Combine(AuditVerificationResult shared, List<(AuditChainScope Scope, AuditVerificationResult Result)> members, List<AuditProblem> extra, AuditVerificationOptions options)
    {
        if (members.Count == 0 && extra.Count == 0)
        {
            return shared;
        }

        var reports = new List<AuditChainReport>(members.Count);
        var problems = new List<AuditProblem>(shared.Problems);
        var omitted = shared.ProblemsOmitted;
        var entries = shared.EntriesChecked;
        foreach (var (scope, raw) in members)
        {
            var judged = Judge(raw, options, memberChain: true);
            reports.Add(new AuditChainReport(scope.Name!, judged.EntriesChecked, judged.LastSequence, judged.LastHash, judged.CoveredThrough, judged.Uncovered, judged.UncoveredSince, judged.Verdict, judged.VerdictReason));
            problems.AddRange(judged.Problems.Select(p => p with { Chain = scope.Name }));
            omitted += judged.ProblemsOmitted;
            entries += judged.EntriesChecked;
        }

        problems.AddRange(extra);
        if (problems.Count > MaxProblems)
        {
            omitted += problems.Count - MaxProblems;
            problems = problems[..MaxProblems];
        }

        var combined = shared with
        {
            Valid = problems.Count == 0 && omitted == 0, Problems = problems, ProblemsOmitted = omitted, EntriesChecked = entries, Chains = reports,
            SharedVerdict = reports.Count > 0 ? shared.Verdict : null,
        };
        if (!combined.Valid)
        {
            return combined with { Verdict = AuditVerdict.Tampered, VerdictReason = $"{problems.Count + omitted} problem(s) found: the log was altered." };
        }

        var reasons = reports.Select(r => $"chain {r.Chain}: {r.VerdictReason}").Prepend($"the shared chain: {shared.VerdictReason}");
        var uncovered = shared.Verdict == AuditVerdict.Uncovered || reports.Any(r => r.Verdict == AuditVerdict.Uncovered);
        return combined with
        {
            Verdict = uncovered ? AuditVerdict.Uncovered : AuditVerdict.Trusted,
            VerdictReason = $"{reports.Count + 1} chains; " + string.Join("; ", reasons),
        };
    }

    /// <summary>
    /// Sets the verdict: tampered on any problem; uncovered when the uncovered tail is too old, or, on the shared chain,
    /// when entries exist and no checkpoint covers any. A <paramref name="memberChain"/> is signed by other processes
    /// (the gateways, on their timer), so its entries before its first signature are a tail like any other, judged by
    /// their age: a node's first entries are not uncovered for the minute until the next signing.
    /// </summary>
    internal static AuditVerificationResult Judge(AuditVerificationResult result, AuditVerificationOptions options, bool memberChain = false)
    {
        if (!result.Valid)
        {
            return result with { Verdict = AuditVerdict.Tampered, VerdictReason = $"{result.Problems.Count + result.ProblemsOmitted} problem(s) found: the log was altered." };
        }

        if (result.LastSequence == 0)
        {
            return result with { Verdict = AuditVerdict.Trusted, VerdictReason = "The log is empty." };
        }

        if (result.CoveredThrough == 0 && !memberChain)
        {
            return result with
            {
                Verdict = AuditVerdict.Uncovered,
                VerdictReason = $"No signed checkpoint covers any of the {result.LastSequence} entries: the whole chain could have been rewritten and re-hashed.",
            };
        }

        var covered = result.CoveredThrough == 0 ? "No signed checkpoint covers any entry yet"
            : result.Archive is { } archived
            ? $"Entries 1..{archived.Sequence} were archived under a signed archive record, and a signed checkpoint covers the log through {result.CoveredThrough}"
            : $"A signed checkpoint covers entries 1..{result.CoveredThrough}";
        if (result.Uncovered == 0)
        {
            return result with { Verdict = AuditVerdict.Trusted, VerdictReason = covered + ", every entry." };
        }

        var tail = result.CoveredThrough == 0
            ? $"{covered}: its {result.Uncovered} entries ({result.LastSequence - result.Uncovered + 1}..{result.LastSequence}) wait for a signer's first signature of the chain"
            : $"{covered}; {result.Uncovered} entries after it ({result.CoveredThrough + 1}..{result.LastSequence}) are not covered yet";
        var age = result.UncoveredSince is { } since ? options.Time.GetUtcNow() - DateTimeOffset.FromUnixTimeMilliseconds(since) : TimeSpan.MaxValue;
        return age > options.MaxUncoveredAge
            ? result with
            {
                Verdict = AuditVerdict.Uncovered,
                VerdictReason = tail + $", the oldest for {FormatAge(age)}, longer than the allowed {FormatAge(options.MaxUncoveredAge)}: they could have been rewritten (or newer checkpoints deleted).",
            }
            : result with { Verdict = AuditVerdict.Trusted, VerdictReason = tail + $" (the oldest is {FormatAge(age)} old, within {FormatAge(options.MaxUncoveredAge)})." };
    }

    private static string FormatAge(TimeSpan age) => age == TimeSpan.MaxValue
        ? "an unknown time"
        : age.TotalSeconds < 120 ? string.Create(CultureInfo.InvariantCulture, $"{Math.Max(0, (long)age.TotalSeconds)} s")
        : age.TotalMinutes < 120 ? string.Create(CultureInfo.InvariantCulture, $"{(long)age.TotalMinutes} min")
        : string.Create(CultureInfo.InvariantCulture, $"{(long)age.TotalHours} h");

    /// <summary>
    /// Walks entries <paramref name="fromSequence"/>..<paramref name="toSequence"/> (the whole log when 1..max) in
    /// <paramref name="transaction"/>'s snapshot. A partial window checks checkpoints inside it and the head only if
    /// the window reaches it.
    /// </summary>
    internal static async Task<AuditVerificationResult> VerifyAsync(DbConnection connection, DbTransaction transaction, TrustedKeys keys, long fromSequence, long toSequence, CancellationToken cancellationToken, IProgress<long>? progress = null,
        AuditChainScope? scope = null, AuditDecisionTally? decisions = null, List<(AuditEntry Entry, string? By)>? announced = null, Dictionary<string, AuditEntry>? witnessed = null)
    {
        scope ??= AuditChainScope.Shared;
        long read = 0;
        var problems = new ProblemSink();
        var head = await AuditStore.ReadHeadAsync(connection, transaction, scope, cancellationToken);
        var checkpoints = await AuditStore.ReadCheckpointsAsync(connection, transaction, scope, "WHERE seq >= @from AND seq <= @to", command =>
        {
            SqlDatabase.AddParameter(command, "@from", fromSequence);
            SqlDatabase.AddParameter(command, "@to", toSequence);
        }, cancellationToken);

        // Only checkpoints whose signature verifies may accuse the log of anything.
        var signed = new Dictionary<long, List<AuditCheckpoint>>();
        var verifiedCount = 0;
        foreach (var checkpoint in checkpoints)
        {
            if (keys.Check(checkpoint, problems, line: null))
            {
                verifiedCount++;
                if (!signed.TryGetValue(checkpoint.Sequence, out var list))
                {
                    signed[checkpoint.Sequence] = list = [];
                }

                list.Add(checkpoint);
            }
        }

        // A log that no longer starts at 1 was archived (AuditArchive) or cut: only a signed archive record reaching the
        // first stored entry accounts for the missing ones; otherwise they are reported as removed, as before.
        // A member chain's records are its own (audit_chain_archives): one of another chain signs another hash.
        var firstStored = await AuditStore.ReadFirstSequenceAsync(connection, transaction, scope, cancellationToken);
        var archive = firstStored is { } firstKept && firstKept > 1 && fromSequence <= firstKept
            ? await ReadArchiveAsync(connection, transaction, keys, firstKept, problems, scope, cancellationToken)
            : null;
        var walker = archive is not null
            ? new ChainWalker(problems, firstStored, archive.Sequence == firstStored - 1 ? archive.Hash : null, $"the archive record's hash of entry {archive.Sequence}")
            : new ChainWalker(problems, fromSequence <= 1 ? 1 : null, fromSequence <= 1 ? scope.Genesis : null);

        // Coverage: which signed checkpoints match the log, and when the first entry and the one after each was written.
        var matched = new HashSet<long>();
        var nextTimestamp = new Dictionary<long, long>();
        long? firstTimestamp = null;
        string? hashAtHead = null;
        var present = new HashSet<long>();
        decisions ??= new AuditDecisionTally();
        using (var command = connection.CreateCommand())
        {
            command.Transaction = transaction;
            command.CommandText = $"SELECT {AuditStore.EntryColumns} FROM {scope.EntriesAnd} seq >= @from AND seq <= @to ORDER BY seq";
            scope.Bind(command);
            SqlDatabase.AddParameter(command, "@from", fromSequence);
            SqlDatabase.AddParameter(command, "@to", toSequence);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                if (++read % ProgressInterval == 0)
                {
                    progress?.Report(read);
                }

                var sequence = AuditStore.ToInt64(reader.GetValue(0));
                var blobColumn = AuditStore.BlobInTextColumn(reader); // before the text is read: reading converts the value
                if (!AuditStore.TryReadEntry(reader, out var entry, out var error))
                {
                    problems.Add(new AuditProblem(sequence, AuditProblemKind.Malformed, $"Entry cannot be read: {error}."));
                    var storedHash = reader.IsDBNull(19) ? string.Empty : reader.GetString(19);
                    var storedPrevious = reader.IsDBNull(18) ? string.Empty : reader.GetString(18);
                    walker.Add(sequence, storedPrevious, storedHash, recomputed: null, line: null);
                }
                else
                {
                    if (blobColumn is { } column)
                    {
                        problems.Add(new AuditProblem(sequence, AuditProblemKind.Malformed,
                            $"Column {column} holds a BLOB, not text: it hashes as the same text, but reads that select by {column} (a tenant's audit, by tenant) skip the entry."));
                    }

                    walker.Add(sequence, entry.PreviousHash, entry.Hash, Recompute(entry), line: null, entry.Timestamp);
                    decisions.Add(entry);
                    if (announced is not null && entry.Action == AuditActions.ChainOpened)
                    {
                        announced.Add((entry, scope.Name));
                    }

                    if (witnessed is not null && entry.Action == AuditActions.ChainsSigned)
                    {
                        // Each lists every chain its signer signed: the newest of a chain holds, or its chain was rewritten.
                        witnessed[scope.Name ?? string.Empty] = entry;
                    }

                    firstTimestamp ??= entry.Timestamp;
                    if (signed.ContainsKey(sequence - 1) || sequence - 1 == archive?.Sequence)
                    {
                        nextTimestamp.TryAdd(sequence - 1, entry.Timestamp);
                    }
                }

                var hash = walker.LastHash;
                if (archive is not null && archive.Sequence == sequence && archive.Hash != hash)
                {
                    problems.Add(new AuditProblem(sequence, AuditProblemKind.CheckpointMismatch,
                        $"The archive record signed by {archive.KeyId} records hash {archive.Hash} for entry {sequence}, the log has {hash}."));
                    archive = null;
                }

                if (head is { } h && h.Sequence == sequence)
                {
                    hashAtHead = hash;
                }

                if (signed.TryGetValue(sequence, out var atSequence))
                {
                    present.Add(sequence);
                    foreach (var checkpoint in atSequence.Where(c => c.Hash != hash))
                    {
                        problems.Add(new AuditProblem(sequence, AuditProblemKind.CheckpointMismatch,
                            $"Checkpoint signed by {checkpoint.KeyId} records hash {checkpoint.Hash}, the log has {hash}."));
                    }

                    if (atSequence.All(c => c.Hash == hash))
                    {
                        matched.Add(sequence);
                    }
                }
            }
        }

        var last = walker.LastSequence;
        foreach (var (sequence, list) in signed)
        {
            if (sequence > last)
            {
                problems.Add(new AuditProblem(last + 1, AuditProblemKind.Truncated,
                    $"A checkpoint signed by {list[0].KeyId} covers sequence {sequence} (hash {list[0].Hash}) but the log ends at {last}: entries {last + 1}..{sequence} were removed."));
            }
            else if (!present.Contains(sequence) && !(archive is not null && sequence < firstStored))
            {
                problems.Add(new AuditProblem(sequence, AuditProblemKind.CheckpointMismatch, $"A signed checkpoint covers sequence {sequence}, which is missing from the log."));
            }
        }

        // A window that runs to the end must end where the head says; one that stops earlier checks the head only if it contains it.
        if (toSequence == long.MaxValue || (head is { } reach && reach.Sequence <= toSequence && reach.Sequence >= fromSequence))
        {
            CheckHead(head, walker, hashAtHead, problems, scope.Genesis);
        }

        if (archive is not null && archive.Sequence > last && (toSequence == long.MaxValue || archive.Sequence <= toSequence))
        {
            problems.Add(new AuditProblem(last + 1, AuditProblemKind.Truncated,
                $"The archive record signed by {archive.KeyId} covers sequence {archive.Sequence} but the log ends at {last}: entries {last + 1}..{archive.Sequence} were removed."));
            archive = null;
        }

        // The archive record is signed like a checkpoint: it covers what it archived (and, while its entries are being
        // removed, the ones still stored up to it, whose hashes it matched above).
        if (archive is not null)
        {
            matched.Add(archive.Sequence);
        }

        var coveredThrough = matched.Count == 0 ? 0 : matched.Max();
        var uncovered = Math.Max(0, walker.LastSequence - coveredThrough);
        return problems.ToResult(walker) with
        {
            Archive = archive,
            Decisions = decisions.ToOutcomes(),
            CheckpointsVerified = verifiedCount,
            CoveredThrough = coveredThrough,
            LastCheckpoint = coveredThrough == 0 || !signed.TryGetValue(coveredThrough, out var atCovered) ? null : atCovered.MaxBy(c => c.Timestamp),
            Uncovered = uncovered,
            UncoveredSince = uncovered == 0 ? null : coveredThrough == 0 ? firstTimestamp : nextTimestamp.TryGetValue(coveredThrough, out var at) ? at : null,
        };
    }

    /// <summary>
    /// The newest archive record that verifies with a trusted key and reaches <paramref name="firstStored"/> (archives
    /// through <c>firstStored - 1</c> or later), or null. Forged or foreign records are reported like checkpoints.
    /// </summary>
    private static async Task<AuditArchiveRecord?> ReadArchiveAsync(DbConnection connection, DbTransaction transaction, TrustedKeys keys, long firstStored, ProblemSink problems, AuditChainScope scope, CancellationToken cancellationToken)
    {
        if (!scope.IsShared && !await AuditChainScope.ArchivesExistAsync(connection, transaction, cancellationToken))
        {
            return null; // written before member chains were archived: none was (a failed read would end a PostgreSQL snapshot)
        }

        List<AuditArchiveRecord> records;
        try
        {
            records = await AuditStore.ReadArchivesAsync(connection, transaction, scope, cancellationToken);
        }
        catch (DbException)
        {
            // A database from before archives existed (its table is missing): nothing was archived.
            return null;
        }

        AuditArchiveRecord? reaching = null;
        foreach (var record in records)
        {
            if (keys.Check(record, problems) && record.Sequence >= firstStored - 1 && (reaching is null || record.Sequence > reaching.Sequence))
            {
                reaching = record;
            }
        }

        return reaching;
    }

    /// <summary>Recomputes an entry's hash, or null when its previous hash is not even a hash (already reported).</summary>
    internal static string? Recompute(AuditEntry entry)
    {
        try
        {
            return AuditCanonical.IsHash(entry.PreviousHash) ? AuditCanonical.EntryHash(entry) : null;
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or EncoderFallbackException)
        {
            return null;
        }
    }

    private static void CheckHead((long Sequence, string Hash)? head, ChainWalker walker, string? hashAtHead, ProblemSink problems, string genesis)
    {
        var last = walker.LastSequence;
        if (head is not { } h)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.HeadMismatch, "The audit_head row is missing."));
        }
        else if (h.Sequence > last)
        {
            problems.Add(new AuditProblem(last + 1, AuditProblemKind.Truncated,
                $"audit_head records sequence {h.Sequence} (hash {h.Hash}) but the log ends at {last}: entries {last + 1}..{h.Sequence} were removed."));
        }
        else if (h.Sequence < last)
        {
            problems.Add(new AuditProblem(h.Sequence + 1, AuditProblemKind.HeadMismatch,
                $"The log continues to {last} past audit_head at {h.Sequence}: entries {h.Sequence + 1}..{last} were added outside the writer."));
        }
        else if (hashAtHead is not null && h.Hash != hashAtHead)
        {
            problems.Add(new AuditProblem(h.Sequence, AuditProblemKind.HeadMismatch, $"audit_head records hash {h.Hash}, the log has {hashAtHead}."));
        }
        else if (h.Sequence == 0 && h.Hash != genesis)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.HeadMismatch, $"audit_head of an empty log records hash {h.Hash}."));
        }
    }
}

/// <summary>
/// The operator keys a verifier trusts, by key id: a key history (<see cref="OperatorKeyHistory"/>), whose compromised
/// keys are trusted only for what they signed before their mark. Tallies what each key signed that verified.
/// </summary>
internal sealed class TrustedKeys : IDisposable
{
    private readonly Dictionary<string, ECDsa> _keys = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AuditKeyUse> _used = new(StringComparer.Ordinal);
    private readonly HashSet<string> _counted = new(StringComparer.Ordinal);

    /// <summary>Trusts every key of every text (a PEM public key, or a key history's text).</summary>
    public TrustedKeys(IEnumerable<string> publicKeyPems)
        : this(Merge(publicKeyPems))
    {
    }

    /// <summary>Trusts the keys of <paramref name="history"/>, each within its marks.</summary>
    public TrustedKeys(OperatorKeyHistory history)
    {
        ArgumentNullException.ThrowIfNull(history);
        History = history;
        foreach (var known in history.Keys)
        {
            _keys.TryAdd(known.KeyId, OperatorSigningKey.ImportPublicKey(known.PublicKeyPem));
        }
    }

    /// <summary>The keys trusted, with their marks.</summary>
    public OperatorKeyHistory History { get; }

    public IEnumerable<string> KeyIds => _keys.Keys;

    /// <summary>What each key signed that verified (checkpoints and archive records), oldest key first.</summary>
    public IReadOnlyList<AuditKeyUse> Used => History.Keys.Where(k => _used.ContainsKey(k.KeyId)).Select(k => _used[k.KeyId]).ToList();

    public bool TryGet(string keyId, out ECDsa key) => _keys.TryGetValue(keyId, out key!);

    /// <summary>Why a signature by <paramref name="keyId"/> at <paramref name="signedAt"/> is refused (unknown, or compromised then), or null.</summary>
    public string? Refusal(string keyId, long? signedAt) => History.Refusal(keyId, signedAt);

    private static OperatorKeyHistory Merge(IEnumerable<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var keys = new List<OperatorPublicKey>();
        foreach (var text in texts)
        {
            foreach (var key in OperatorKeyHistory.Parse(text).Keys)
            {
                if (keys.All(k => k.KeyId != key.KeyId))
                {
                    keys.Add(key);
                }
            }
        }

        return keys.Count == 0
            ? throw new ArgumentException("At least one operator public key is needed.", nameof(texts))
            : new OperatorKeyHistory(keys);
    }

    private void Count(string keyId, long sequence, long timestamp, string signature)
    {
        if (!_counted.Add(signature))
        {
            return;
        }

        var status = History.Find(keyId) is { } known
            ? known.CompromisedFrom is not null ? "compromised" : ReferenceEquals(known, History.Current) ? "current" : "retired"
            : "unknown";
        _used[keyId] = _used.TryGetValue(keyId, out var use)
            ? use with
            {
                Signatures = use.Signatures + 1,
                FirstSequence = Math.Min(use.FirstSequence, sequence),
                LastSequence = Math.Max(use.LastSequence, sequence),
                FirstTimestamp = Math.Min(use.FirstTimestamp, timestamp),
                LastTimestamp = Math.Max(use.LastTimestamp, timestamp),
            }
            : new AuditKeyUse(keyId, status, 1, sequence, sequence, timestamp, timestamp);
    }

    /// <summary>Checks a checkpoint's form, key and signature, reporting what is wrong.</summary>
    public bool Check(AuditCheckpoint checkpoint, ProblemSink problems, long? line)
    {
        if (!AuditCanonical.IsHash(checkpoint.Hash) || checkpoint.Sequence < 1)
        {
            problems.Add(new AuditProblem(checkpoint.Sequence, AuditProblemKind.Malformed, "Checkpoint has an invalid sequence or hash.", line));
            return false;
        }

        if (!_keys.TryGetValue(checkpoint.KeyId, out var key))
        {
            problems.Add(new AuditProblem(checkpoint.Sequence, AuditProblemKind.KeyMismatch,
                $"Checkpoint is signed by key {checkpoint.KeyId}, not a trusted key ({string.Join(", ", _keys.Keys)}).", line));
            return false;
        }

        var payload = AuditCanonical.CheckpointPayload(checkpoint.Sequence, checkpoint.Hash, checkpoint.Timestamp, checkpoint.KeyId);
        if (!OperatorSigningKey.Verify(key, payload, checkpoint.Signature))
        {
            problems.Add(new AuditProblem(checkpoint.Sequence, AuditProblemKind.InvalidSignature,
                $"Checkpoint signature by {checkpoint.KeyId} does not verify: forged or altered.", line));
            return false;
        }

        // A leaked key signs whatever its holder likes: from its mark on, its signatures vouch for nothing.
        if (Refusal(checkpoint.KeyId, checkpoint.Timestamp) is { } refusal)
        {
            problems.Add(new AuditProblem(checkpoint.Sequence, AuditProblemKind.CompromisedKey, $"Checkpoint {refusal}: refused.", line));
            return false;
        }

        Count(checkpoint.KeyId, checkpoint.Sequence, checkpoint.Timestamp, checkpoint.Signature);
        return true;
    }

    /// <summary>Checks an archive record's form, key and signature, reporting what is wrong.</summary>
    public bool Check(AuditArchiveRecord archive, ProblemSink problems)
    {
        if (!AuditCanonical.IsHash(archive.Hash) || archive.Sequence < 1 || archive.Entries < 0)
        {
            problems.Add(new AuditProblem(archive.Sequence, AuditProblemKind.Malformed, "Archive record has an invalid sequence, hash or count."));
            return false;
        }

        if (!_keys.TryGetValue(archive.KeyId, out var key))
        {
            problems.Add(new AuditProblem(archive.Sequence, AuditProblemKind.KeyMismatch,
                $"Archive record is signed by key {archive.KeyId}, not a trusted key ({string.Join(", ", _keys.Keys)})."));
            return false;
        }

        var payload = AuditCanonical.ArchivePayload(archive.Sequence, archive.Hash, archive.Entries, archive.Timestamp, archive.KeyId);
        if (!OperatorSigningKey.Verify(key, payload, archive.Signature))
        {
            problems.Add(new AuditProblem(archive.Sequence, AuditProblemKind.InvalidSignature, $"Archive record signature by {archive.KeyId} does not verify: forged or altered."));
            return false;
        }

        if (Refusal(archive.KeyId, archive.Timestamp) is { } refusal)
        {
            problems.Add(new AuditProblem(archive.Sequence, AuditProblemKind.CompromisedKey, $"Archive record {refusal}: refused."));
            return false;
        }

        Count(archive.KeyId, archive.Sequence, archive.Timestamp, archive.Signature);
        return true;
    }

    public void Dispose()
    {
        foreach (var key in _keys.Values)
        {
            key.Dispose();
        }
    }
}

/// <summary>Collects problems, capped, and orders them by sequence.</summary>
internal sealed class ProblemSink
{
    private readonly List<AuditProblem> _problems = [];
    private long _omitted;

    public int Count => _problems.Count + (int)Math.Min(_omitted, int.MaxValue);

    public void Add(AuditProblem problem)
    {
        if (_problems.Count < AuditVerifier.MaxProblems)
        {
            _problems.Add(problem);
        }
        else
        {
            _omitted++;
        }
    }

    public AuditVerificationResult ToResult(ChainWalker walker)
    {
        var ordered = _problems
            .Select((problem, index) => (problem, index))
            .OrderBy(p => p.problem.Sequence ?? long.MaxValue)
            .ThenBy(p => p.problem.Line ?? long.MaxValue)
            .ThenBy(p => p.index)
            .Select(p => p.problem)
            .ToList();
        return new AuditVerificationResult(ordered.Count == 0 && _omitted == 0, walker.Count, ordered)
        {
            LastSequence = walker.LastSequence,
            LastHash = walker.LastHash,
            ProblemsOmitted = _omitted,
        };
    }
}

/// <summary>
/// Walks a chain in sequence order. Links are checked against the preceding entry's <em>stored</em> hash, so a
/// modified entry shows as one hash mismatch there, and a rewritten-and-rehashed entry as a chain break after it.
/// Times are checked too: the writer never lets them decrease (FORMAT.md, field 4), and readers by time rely on it
/// (a time range is a sequence range), so an entry earlier than the one before it was moved or re-timed, even in a
/// chain re-hashed to link.
/// </summary>
internal sealed class ChainWalker(ProblemSink problems, long? firstSequence, string? firstPreviousHash, string firstLink = "the genesis hash")
{
    private long? _expected = firstSequence;
    private string? _previousHash = firstPreviousHash;
    private long _previousSequence;
    private (long Sequence, long Timestamp)? _previousTime;

    public long Count { get; private set; }

    public long LastSequence { get; private set; }

    public string LastHash { get; private set; } = AuditCanonical.GenesisHash;

    /// <param name="sequence">The entry's sequence.</param>
    /// <param name="previousHash">Its stored previous hash.</param>
    /// <param name="hash">Its stored hash.</param>
    /// <param name="recomputed">The hash recomputed from its fields; null when it cannot be (redacted lines).</param>
    /// <param name="line">For exports, the line number.</param>
    /// <param name="timestamp">The entry's time (unix ms); null when it is not known (redacted or unreadable lines).</param>
    public void Add(long sequence, string previousHash, string hash, string? recomputed, long? line, long? timestamp = null)
    {
        Count++;
        if (Count > 1 && sequence == _previousSequence)
        {
            problems.Add(new AuditProblem(sequence, AuditProblemKind.DuplicateSequence, $"Sequence {sequence} appears more than once.", line));
        }
        else if (_expected is { } expected && sequence > expected)
        {
            problems.Add(new AuditProblem(expected, AuditProblemKind.SequenceGap,
                sequence == expected + 1 ? $"Entry {expected} is missing." : $"Entries {expected}..{sequence - 1} are missing.", line));
        }
        else if (_expected is { } e && sequence < e)
        {
            problems.Add(new AuditProblem(sequence, AuditProblemKind.SequenceGap, $"Sequence {sequence} is out of order (expected {e}).", line));
        }

        if (!AuditCanonical.IsHash(previousHash) || !AuditCanonical.IsHash(hash))
        {
            problems.Add(new AuditProblem(sequence, AuditProblemKind.Malformed, "The hash or previous hash is not 64 lowercase hex digits.", line));
        }
        else if (recomputed is not null && recomputed != hash)
        {
            problems.Add(new AuditProblem(sequence, AuditProblemKind.HashMismatch, $"The entry's fields hash to {recomputed}, not the recorded {hash}: it was modified (or moved here).", line));
        }

        if (_previousHash is not null && previousHash != _previousHash)
        {
            var before = Count > 1 ? $"entry {_previousSequence}'s hash" : firstLink;
            problems.Add(new AuditProblem(sequence, AuditProblemKind.ChainBreak, $"previous_hash {previousHash} is not {before} {_previousHash}: the chain is broken here.", line));
        }

        if (timestamp is { } at)
        {
            // Compared with the last entry whose time is known (a redacted line between them has none).
            if (_previousTime is { } earlier && at < earlier.Timestamp)
            {
                problems.Add(new AuditProblem(sequence, AuditProblemKind.TimeReversed,
                    $"Entry {sequence}'s time {FormatTime(at)} is before entry {earlier.Sequence}'s {FormatTime(earlier.Timestamp)}: times never decrease along the chain, so an entry was moved or its time rewritten.", line));
            }

            _previousTime = (sequence, at);
        }

        _previousSequence = sequence;
        _previousHash = hash;
        if (_expected is null || sequence >= _expected.Value)
        {
            _expected = sequence + 1;
        }

        LastSequence = Math.Max(LastSequence, sequence);
        LastHash = hash;
    }

    /// <summary>
    /// A run of entries <paramref name="first"/>..<paramref name="last"/> shown only by its ends (an export's gap line):
    /// checked where it starts as one entry (sequence, link, hashes well formed), then taken as ending at
    /// <paramref name="last"/> with <paramref name="hash"/>. Nothing inside it can be re-hashed, as for redacted lines.
    /// </summary>
    public void AddRun(long first, long last, string previousHash, string hash, long? line)
    {
        Add(first, previousHash, hash, recomputed: null, line);
        _previousSequence = last;
        if (_expected is { } expected && last >= expected)
        {
            _expected = last + 1;
        }

        LastSequence = Math.Max(LastSequence, last);
        Count += last - first;
    }

    private static string FormatTime(long unixMs) =>
        unixMs is >= -62135596800000 and <= 253402300799999
            ? string.Create(CultureInfo.InvariantCulture, $"{DateTimeOffset.FromUnixTimeMilliseconds(unixMs):yyyy-MM-ddTHH:mm:ss.fffZ} ({unixMs})")
            : unixMs.ToString(CultureInfo.InvariantCulture);
}
