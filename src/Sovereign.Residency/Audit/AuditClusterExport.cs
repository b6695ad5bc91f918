using System.Buffers;
using System.Data.Common;
using System.Text.Json;
using Sovereign.Storage;

namespace Sovereign.Residency.Audit;

/// <summary>One chain's part of a version 3 export's header (<see cref="AuditClusterExport"/>).</summary>
/// <param name="Chain">The member chain's name; null for the shared chain.</param>
/// <param name="FirstSequence">The chain's first sequence in the range (null when the range holds none of its entries).</param>
/// <param name="LastSequence">Its last sequence in the range.</param>
/// <param name="LastHash">The hash of that entry: signed in the header, it binds the section's lines to the chain's name.</param>
/// <param name="EntriesDigest">SHA-256 of <c>I64(sequence)</c> of the section's lines shown in full, in order.</param>
/// <param name="CoveredThrough">
/// The largest sequence up to <paramref name="LastSequence"/> that a signed checkpoint stored in the log covered when
/// the export was made (0 when none did): entries after it were vouched for by nothing but the export's own signature.
/// </param>
/// <param name="UncoveredSince">The time (unix ms) of the oldest exported entry after <paramref name="CoveredThrough"/>, null when none is.</param>
public sealed record AuditExportChain(string? Chain, long? FirstSequence, long? LastSequence, string? LastHash, string EntriesDigest, long CoveredThrough, long? UncoveredSince)
{
    /// <summary>Exported entries that no stored checkpoint covered when the export was made.</summary>
    public long Uncovered => LastSequence is { } last ? last - Math.Max(CoveredThrough, FirstSequence!.Value - 1) : 0;
}

/// <summary>What <see cref="AuditClusterExport.WriteAsync"/> wrote.</summary>
/// <param name="Chains">Every chain of the log, the shared one first, as the header lists them.</param>
/// <param name="Entries">Full entry lines, all chains.</param>
/// <param name="Redacted">Redacted lines (other tenants' entries), all chains.</param>
public sealed record AuditClusterExportSummary(IReadOnlyList<AuditExportChain> Chains, long Entries, long Redacted);

/// <summary>
/// The export of a log with member chains (<see cref="AuditChainScope"/>): version 3 of the export format, one file
/// holding every chain the log held, verifiable offline with the operator's public key alone (FORMAT.md, "Export of
/// several chains"):
/// <list type="number">
/// <item>a <c>header</c> whose signature covers the scope and the list of chains (the shared chain first, then every
/// member chain by name), each with its range, last hash, the digest of the lines shown in full, and how far signed
/// checkpoints stored in the log covered it (<c>coveredThrough</c>, <c>uncoveredSince</c>);</item>
/// <item>per chain with entries in the range, in the header's order: a <c>chain</c> line naming it, then one line per
/// sequence (<c>entry</c> or <c>redacted</c>, as in version 2), each followed by the <c>checkpoint</c> lines the log
/// held at that sequence (their signatures and hashes checked offline).</item>
/// </list>
/// A chain missing from the file, a section cut short, a section moved to another chain's name, a checkpoint forged
/// or an announced chain (<see cref="AuditActions.ChainOpened"/>) absent from the list are each reported. Version 2
/// stays the format of a log without member chains (a single machine, a cluster before them).
/// </summary>
public static class AuditClusterExport
{
    /// <summary>The header's <c>version</c>.</summary>
    public const int Version = 3;

    /// <summary>Whether the log holds any member chain (then an export must be version 3 to hold every chain).</summary>
    public static async Task<bool> HasMemberChainsAsync(SqlDatabase database, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        await using var connection = await database.OpenAsync(cancellationToken);
        return (await AuditVerifier.MemberChainNamesAsync(connection, null, cancellationToken)).Count > 0;
    }

    /// <summary>
    /// Writes every chain's entries with <paramref name="from"/> &lt;= time &lt; <paramref name="to"/>, redacting other
    /// tenants' when <paramref name="tenant"/> is set, under one signed header. Refuses (<see cref="AuditIntegrityException"/>)
    /// when the log no longer holds <paramref name="witness"/>, when a chain does not verify around its range, or when
    /// a chain an entry announced is gone: a fresh signature never vouches for a tampered log. Writes nothing to the log.
    /// </summary>
    public static async Task<AuditClusterExportSummary> WriteAsync(SqlDatabase database, OperatorSigningKey signingKey, string? tenant, DateTimeOffset from, DateTimeOffset to, Stream output, AuditWitnessHead? witness, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(signingKey);
        ArgumentNullException.ThrowIfNull(output);
        var fromMs = from.ToUnixTimeMilliseconds();
        var toMs = to.ToUnixTimeMilliseconds();
        ArgumentOutOfRangeException.ThrowIfGreaterThan(fromMs, toMs, nameof(from));

        long entries = 0;
        long redacted = 0;
        var buffer = new ArrayBufferWriter<byte>(4096);
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var snapshot = await AuditStore.BeginSnapshotAsync(connection, cancellationToken);
        if (witness is not null && await AuditWitness.CheckAsync(connection, snapshot, witness, cancellationToken) is { } reason)
        {
            throw new AuditIntegrityException(
                $"The audit log no longer holds the head the server last signed: {reason}. Refusing to sign an export. Run 'sovereign audit verify'.",
                [new AuditProblem(witness.Sequence, AuditProblemKind.WitnessMismatch, reason) { Chain = witness.Chain }]);
        }

        var names = await AuditVerifier.MemberChainNamesAsync(connection, snapshot, cancellationToken);
        names.Sort(StringComparer.Ordinal); // PostgreSQL sorts by its collation; the header's order is ordinal
        var scopes = names.Select(AuditChainScope.Member).Prepend(AuditChainScope.Shared).ToList();

        // A chain removed whole leaves nothing to walk: only the entry that announced it shows it is gone.
        // A member's tail rewritten after a head another signer recorded as signed, its checkpoint there deleted first.
        var missing = new List<AuditProblem>();
        await AuditVerifier.CheckAnnouncedAsync(connection, snapshot, names, await ReadActionAsync(connection, snapshot, scopes, AuditActions.ChainOpened, cancellationToken), missing, cancellationToken);
        var witnessed = new Dictionary<string, AuditEntry>(StringComparer.Ordinal);
        foreach (var (entry, by) in await ReadActionAsync(connection, snapshot, scopes, AuditActions.ChainsSigned, cancellationToken))
        {
            witnessed[by ?? string.Empty] = entry; // in sequence order: the newest of each chain stays
        }

        await AuditVerifier.CheckWitnessedAsync(connection, snapshot, names, witnessed, missing, cancellationToken);
        if (missing.Count > 0)
        {
            throw new AuditIntegrityException($"The audit log does not verify (first problem: {missing[0]}); refusing to sign an export. Run 'sovereign audit verify'.", missing);
        }

        using var keys = new TrustedKeys([signingKey.PublicKeyPem]);
        var chains = new List<AuditExportChain>(scopes.Count);
        foreach (var scope in scopes)
        {
            chains.Add(await DescribeAsync(connection, snapshot, keys, scope, tenant, fromMs, toMs, cancellationToken));
        }

        var createdAt = TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds();
        var payload = AuditCanonical.ClusterExportHeaderPayload(signingKey.KeyId, tenant, fromMs, toMs, createdAt, chains);
        await AuditExport.WriteLineAsync(output, buffer, writer =>
        {
            writer.WriteString("type", "header");
            writer.WriteString("format", AuditExport.Format);
            writer.WriteNumber("version", Version);
            writer.WriteNumber("entryFormat", AuditCanonical.EntryFormatVersion);
            writer.WriteString("keyId", signingKey.KeyId);
            writer.WriteString("publicKeyPem", signingKey.PublicKeyPem);
            AuditExport.WriteNullable(writer, "tenant", tenant);
            writer.WriteNumber("from", fromMs);
            writer.WriteNumber("to", toMs);
            writer.WriteNumber("createdAt", createdAt);
            writer.WriteStartArray("chains");
            foreach (var chain in chains)
            {
                writer.WriteStartObject();
                AuditExport.WriteNullable(writer, "chain", chain.Chain);
                AuditExport.WriteNullable(writer, "firstSequence", chain.FirstSequence);
                AuditExport.WriteNullable(writer, "lastSequence", chain.LastSequence);
                AuditExport.WriteNullable(writer, "lastHash", chain.LastHash);
                writer.WriteString("entriesDigest", chain.EntriesDigest);
                writer.WriteNumber("coveredThrough", chain.CoveredThrough);
                AuditExport.WriteNullable(writer, "uncoveredSince", chain.UncoveredSince);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteString("signature", Convert.ToHexStringLower(signingKey.Sign(payload)));
        }, cancellationToken);

        for (var i = 0; i < chains.Count; i++)
        {
            if (chains[i] is not { FirstSequence: { } start, LastSequence: { } end } chain)
            {
                continue;
            }

            var scope = scopes[i];
            await AuditExport.WriteLineAsync(output, buffer, writer =>
            {
                writer.WriteString("type", "chain");
                AuditExport.WriteNullable(writer, "chain", scope.Name);
            }, cancellationToken);

            var checkpoints = (await AuditStore.ReadCheckpointsAsync(connection, snapshot, scope, "WHERE key_id = @key AND seq >= @from AND seq <= @to", command =>
            {
                SqlDatabase.AddParameter(command, "@key", signingKey.KeyId);
                SqlDatabase.AddParameter(command, "@from", start);
                SqlDatabase.AddParameter(command, "@to", end);
            }, cancellationToken)).ToLookup(c => c.Sequence);

            // Walked again as written, in the same snapshot, so the file matches what was signed exactly.
            var problems = new ProblemSink();
            var walker = new ChainWalker(problems, start, null);
            using var shown = new AuditCanonical.ExportEntriesDigest();
            using (var command = connection.CreateCommand())
            {
                command.Transaction = snapshot;
                command.CommandText = $"SELECT {AuditStore.EntryColumns} FROM {scope.EntriesAnd} seq >= @from AND seq <= @to ORDER BY seq";
                scope.Bind(command);
                SqlDatabase.AddParameter(command, "@from", start);
                SqlDatabase.AddParameter(command, "@to", end);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    if (!AuditStore.TryReadEntry(reader, out var entry, out var error))
                    {
                        throw new AuditIntegrityException($"{scope.Label}: audit entry {reader.GetValue(0)} is malformed: {error}.");
                    }

                    walker.Add(entry.Sequence, entry.PreviousHash, entry.Hash, AuditVerifier.Recompute(entry), null, entry.Timestamp);
                    if (tenant is null || entry.Tenant == tenant)
                    {
                        await AuditExport.WriteLineAsync(output, buffer, writer => AuditExport.WriteEntry(writer, entry), cancellationToken);
                        shown.Add(entry.Sequence);
                        entries++;
                    }
                    else
                    {
                        await AuditExport.WriteLineAsync(output, buffer, writer => AuditExport.WriteRedacted(writer, entry), cancellationToken);
                        redacted++;
                    }

                    foreach (var checkpoint in checkpoints[entry.Sequence])
                    {
                        await AuditExport.WriteLineAsync(output, buffer, writer => AuditExport.WriteCheckpoint(writer, checkpoint), cancellationToken);
                    }
                }
            }

            if (problems.Count > 0 || walker.LastSequence != end || walker.LastHash != chain.LastHash || shown.Finish() != chain.EntriesDigest)
            {
                throw new AuditIntegrityException($"{scope.Label}: the audit entries changed while they were exported.");
            }
        }

        await output.FlushAsync(cancellationToken);
        return new AuditClusterExportSummary(chains, entries, redacted);
    }

    /// <summary>
    /// One chain's range, last hash, shown digest and coverage, after verifying it from just before the range up to
    /// the signing key's next checkpoint at or after it (or its head), so every exported entry is bound to what was
    /// signed before.
    /// </summary>
    private static async Task<AuditExportChain> DescribeAsync(DbConnection connection, DbTransaction snapshot, TrustedKeys keys, AuditChainScope scope, string? tenant, long fromMs, long toMs, CancellationToken cancellationToken)
    {
        long? first = null;
        long? last = null;
        using (var command = connection.CreateCommand())
        {
            // Times never decrease along a chain (ChainWalker reports one that does), so the range is a sequence range.
            command.Transaction = snapshot;
            command.CommandText = $"SELECT MIN(seq), MAX(seq) FROM {scope.EntriesAnd} at_ms >= @from AND at_ms < @to";
            scope.Bind(command);
            SqlDatabase.AddParameter(command, "@from", fromMs);
            SqlDatabase.AddParameter(command, "@to", toMs);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            if (await reader.ReadAsync(cancellationToken) && !reader.IsDBNull(0))
            {
                first = AuditStore.ToInt64(reader.GetValue(0));
                last = AuditStore.ToInt64(reader.GetValue(1));
            }
        }

        using var digest = new AuditCanonical.ExportEntriesDigest();
        if (first is not { } start || last is not { } end)
        {
            return new AuditExportChain(scope.Name, null, null, null, digest.Finish(), 0, null);
        }

        var keyId = keys.KeyIds.Single();
        var later = await AuditStore.ReadCheckpointsAsync(connection, snapshot, scope, "WHERE key_id = @key AND seq >= @last", command =>
        {
            SqlDatabase.AddParameter(command, "@key", keyId);
            SqlDatabase.AddParameter(command, "@last", end);
        }, cancellationToken);
        var until = later.Count > 0 ? later[0].Sequence : long.MaxValue;
        var window = await AuditVerifier.VerifyAsync(connection, snapshot, keys, Math.Max(1, start - 1), until, cancellationToken, scope: scope);

        // Checkpoints by a previous (rotated) key are not damage; anything else is.
        var damage = window.Problems.Where(p => p.Kind != AuditProblemKind.KeyMismatch).Select(p => p with { Chain = scope.Name }).ToList();
        if (damage.Count > 0)
        {
            throw new AuditIntegrityException(
                $"{scope.Label} does not verify around sequences {start}..{end} (first problem: {damage[0]}); refusing to sign an export. Run 'sovereign audit verify'.", damage);
        }

        // Coverage: the window verified every checkpoint in it against the entries (a mismatch is damage above), so a
        // checkpoint at or after the range's end covers all of it; else the newest that matched, or an older one
        // before the window, checked here.
        var covered = later.Count > 0 ? end : Math.Min(window.CoveredThrough, end);
        if (covered < start - 1)
        {
            covered = await CoveredBeforeAsync(connection, snapshot, keys, scope, start - 1, cancellationToken);
        }

        long? uncoveredSince = null;
        if (covered < end)
        {
            uncoveredSince = await TimeOfAsync(connection, snapshot, scope, Math.Max(covered, start - 1) + 1, cancellationToken);
        }

        string lastHash;
        using (var command = connection.CreateCommand())
        {
            command.Transaction = snapshot;
            command.CommandText = $"SELECT hash FROM {scope.EntriesAnd} seq = @seq";
            scope.Bind(command);
            SqlDatabase.AddParameter(command, "@seq", end);
            lastHash = (string)(await command.ExecuteScalarAsync(cancellationToken) ?? throw new AuditIntegrityException($"{scope.Label}: audit entry {end} is missing."));
        }

        using (var command = connection.CreateCommand())
        {
            command.Transaction = snapshot;
            command.CommandText = $"SELECT seq FROM {scope.EntriesAnd} seq >= @from AND seq <= @to{(tenant is null ? "" : " AND tenant = @tenant")} ORDER BY seq";
            scope.Bind(command);
            SqlDatabase.AddParameter(command, "@from", start);
            SqlDatabase.AddParameter(command, "@to", end);
            if (tenant is not null)
            {
                SqlDatabase.AddParameter(command, "@tenant", tenant);
            }

            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                digest.Add(AuditStore.ToInt64(reader.GetValue(0)));
            }
        }

        return new AuditExportChain(scope.Name, start, end, lastHash, digest.Finish(), covered, uncoveredSince);
    }

    /// <summary>The newest checkpoint by the key at or before <paramref name="atMost"/> whose signature verifies and whose hash the chain has there; 0 when none.</summary>
    private static async Task<long> CoveredBeforeAsync(DbConnection connection, DbTransaction snapshot, TrustedKeys keys, AuditChainScope scope, long atMost, CancellationToken cancellationToken)
    {
        var candidates = await AuditStore.ReadCheckpointsAsync(connection, snapshot, scope, "WHERE key_id = @key AND seq <= @most", command =>
        {
            SqlDatabase.AddParameter(command, "@key", keys.KeyIds.Single());
            SqlDatabase.AddParameter(command, "@most", atMost);
        }, cancellationToken);
        foreach (var checkpoint in candidates.OrderByDescending(c => c.Sequence))
        {
            using var command = connection.CreateCommand();
            command.Transaction = snapshot;
            command.CommandText = $"SELECT hash FROM {scope.EntriesAnd} seq = @seq";
            scope.Bind(command);
            SqlDatabase.AddParameter(command, "@seq", checkpoint.Sequence);
            if (await command.ExecuteScalarAsync(cancellationToken) as string == checkpoint.Hash && keys.Check(checkpoint, new ProblemSink(), null))
            {
                return checkpoint.Sequence;
            }
        }

        return 0;
    }

    private static async Task<long?> TimeOfAsync(DbConnection connection, DbTransaction snapshot, AuditChainScope scope, long sequence, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = snapshot;
        command.CommandText = $"SELECT at_ms FROM {scope.EntriesAnd} seq = @seq";
        scope.Bind(command);
        SqlDatabase.AddParameter(command, "@seq", sequence);
        return await command.ExecuteScalarAsync(cancellationToken) is { } value and not DBNull ? AuditStore.ToInt64(value) : null;
    }

    /// <summary>
    /// Every entry of <paramref name="action"/> in every chain, in sequence order per chain (announcements: one per chain
    /// a signer signed; signed heads: one per signing, at most a minute apart).
    /// </summary>
    private static async Task<List<(AuditEntry Entry, string? By)>> ReadActionAsync(DbConnection connection, DbTransaction snapshot, List<AuditChainScope> scopes, string action, CancellationToken cancellationToken)
    {
        var announced = new List<(AuditEntry Entry, string? By)>();
        foreach (var scope in scopes)
        {
            using var command = connection.CreateCommand();
            command.Transaction = snapshot;
            command.CommandText = $"SELECT {AuditStore.EntryColumns} FROM {scope.EntriesAnd} action = @action ORDER BY seq";
            scope.Bind(command);
            SqlDatabase.AddParameter(command, "@action", action);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                if (AuditStore.TryReadEntry(reader, out var entry, out _))
                {
                    announced.Add((entry, scope.Name));
                }
            }
        }

        return announced;
    }

    /// <summary>Verifies a version 3 export whose header line is <paramref name="headerText"/>, reading the rest from <paramref name="reader"/>.</summary>
    internal static async Task<AuditVerificationResult> VerifyAsync(string headerText, StreamReader reader, string? publicKeyPem, string? expectedKeyId, IReadOnlyList<AuditExportChain>? previous, CancellationToken cancellationToken)
    {
        var headerProblems = new ProblemSink();
        var header = ReadHeader(headerText, publicKeyPem, expectedKeyId, headerProblems);
        if (header is null)
        {
            return headerProblems.ToResult(new ChainWalker(headerProblems, null, null));
        }

        using var keys = header.Keys;
        var decisions = new AuditDecisionTally();
        var announced = new List<(AuditEntry Entry, string? By)>();
        var witnessed = new Dictionary<string, (AuditEntry Entry, string? By)>(StringComparer.Ordinal);
        var sections = new Dictionary<int, Section>();
        var extra = new List<AuditProblem>(headerProblems.ToResult(new ChainWalker(headerProblems, null, null)).Problems);
        Section? current = null;
        var nextIndex = 0;
        long line = 1;
        while (true)
        {
            string? text;
            try
            {
                text = await reader.ReadLineAsync(cancellationToken);
            }
            catch (System.Text.DecoderFallbackException)
            {
                extra.Add(new AuditProblem(null, AuditProblemKind.Malformed, "The file is not valid UTF-8 from here on.", line + 1));
                break;
            }

            if (text is null)
            {
                break;
            }

            line++;
            try
            {
                using var document = JsonDocument.Parse(text);
                var root = document.RootElement;
                var type = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                if (type == "chain")
                {
                    AuditExport.RequireOnly(root, "type", "chain");
                    var name = AuditExport.OptionalString(root, "chain");
                    var index = header.Chains.FindIndex(c => c.Chain == name);
                    if (index < 0 || header.Chains[index].FirstSequence is null)
                    {
                        extra.Add(new AuditProblem(null, AuditProblemKind.OutOfScope,
                            $"A section of {AuditChainScope.Of(name).Label}, which the signed header {(index < 0 ? "does not list" : "lists with no entries in the range")}.", line) { Chain = name });
                        current = null;
                        continue;
                    }

                    if (sections.ContainsKey(index) || index < nextIndex)
                    {
                        extra.Add(new AuditProblem(null, AuditProblemKind.OutOfScope, $"A second section of {AuditChainScope.Of(name).Label}, or one out of the header's order.", line) { Chain = name });
                        current = null;
                        continue;
                    }

                    nextIndex = index + 1;
                    current = sections[index] = new Section(header.Chains[index], header, keys, previous);
                    continue;
                }

                if (current is null)
                {
                    extra.Add(new AuditProblem(null, AuditProblemKind.Malformed, $"A '{type}' line outside any chain's section.", line));
                    continue;
                }

                current.Add(type, root, decisions, announced, witnessed, line);
            }
            catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException)
            {
                var problem = new AuditProblem(null, AuditProblemKind.Malformed, $"The line cannot be read: {ex.Message}", line);
                if (current is null)
                {
                    extra.Add(problem);
                }
                else
                {
                    current.Problems.Add(problem);
                }
            }
        }

        // Every chain the header lists with entries has its section; every announced chain is listed and starts as announced.
        var results = new List<(AuditExportChain Chain, AuditVerificationResult Result)>(header.Chains.Count);
        for (var i = 0; i < header.Chains.Count; i++)
        {
            var chain = header.Chains[i];
            if (!sections.TryGetValue(i, out var section))
            {
                section = new Section(chain, header, keys, previous);
                if (chain.FirstSequence is { } first)
                {
                    section.Problems.Add(new AuditProblem(first, AuditProblemKind.Truncated,
                        $"The header lists {AuditChainScope.Of(chain.Chain).Label} with entries {first}..{chain.LastSequence}, but the file has no section for it: the chain was removed from the export.", 1));
                }
            }

            results.Add((chain, section.Finish(line)));
        }

        foreach (var (entry, by) in announced)
        {
            var where = $"{AuditChainScope.Of(by).Label} entry {entry.Sequence}";
            if (!entry.Details.TryGetValue("chain", out var name) || !entry.Details.TryGetValue("first_hash", out var firstHash))
            {
                extra.Add(new AuditProblem(entry.Sequence, AuditProblemKind.Malformed, $"{where} announces a chain without a chain name and first hash.") { Chain = by });
            }
            else if (header.Chains.FindIndex(c => c.Chain == name) is var index && index < 0)
            {
                extra.Add(new AuditProblem(entry.Sequence, AuditProblemKind.ChainMissing,
                    $"Chain {name}, announced in {where}, is not in the export's list of chains: it was missing from the log when the export was made.") { Chain = by });
            }
            else if (sections.TryGetValue(index, out var section) && section.FirstHash is { } stored && header.Chains[index].FirstSequence == 1 && stored != firstHash)
            {
                extra.Add(new AuditProblem(entry.Sequence, AuditProblemKind.ChainMissing,
                    $"Chain {name}, announced in {where} with first entry {firstHash}, starts with {stored}: it was replaced.") { Chain = by });
            }
        }

        // The newest heads each signer's chain shown here records as signed, the shared chain's included: where the
        // file holds that entry of the chain, it must have that hash (a tail rewritten after it, with the checkpoint
        // there deleted, would not). A head past the chain's last entry in the file is not judged: the file holds a
        // time range, and only the log can tell a removed tail from entries outside it (the writer refuses the former).
        foreach (var (entry, by) in witnessed.Values)
        {
            foreach (var (name, sequence, hash) in AuditVerifier.WitnessedHeadsWithShared(entry))
            {
                var index = header.Chains.FindIndex(c => c.Chain == name);
                if (index < 0)
                {
                    extra.Add(new AuditProblem(entry.Sequence, AuditProblemKind.ChainMissing,
                        $"Chain {name}, whose entry {sequence} {AuditChainScope.Of(by).Label} entry {entry.Sequence} records as signed, is not in the export's list of chains.") { Chain = by });
                }
                else if (sections.TryGetValue(index, out var section) && section.HashAt(sequence) is { } shown && shown != hash)
                {
                    extra.Add(new AuditProblem(sequence, AuditProblemKind.WitnessMismatch,
                        $"{AuditChainScope.Of(by).Label} entry {entry.Sequence} records entry {sequence} of {AuditChainScope.Of(name).Label} as signed with hash {hash}; the export has {shown}: the chain was rewritten from there.") { Chain = name });
                }
            }
        }

        // A chain the previous file held is in this one's list: chains are never removed, only archived.
        foreach (var gone in previous?.Where(p => p.Chain is not null && header.Chains.All(c => c.Chain != p.Chain)) ?? [])
        {
            extra.Add(new AuditProblem(null, AuditProblemKind.ChainMissing, $"Chain {gone.Chain}, in the previous file, is not in this one's list of chains.", 1) { Chain = gone.Chain });
        }

        var options = new AuditVerificationOptions { Time = new FixedTime(DateTimeOffset.FromUnixTimeMilliseconds(header.CreatedAt)) };
        var shared = results[0].Result with { Decisions = decisions.ToOutcomes() };
        var members = results.Skip(1).Select(r => (AuditChainScope.Member(r.Chain.Chain!), r.Result)).ToList();
        var combined = AuditVerifier.Combine(AuditVerifier.Judge(shared, options), members, extra, options);
        return combined with { CheckpointsVerified = results.Sum(r => r.Result.CheckpointsVerified), SignedBy = keys.Used };
    }

    /// <summary>
    /// Where each chain of an export ends, from its signed header (version 3) or, for a version 2 file (the shared chain
    /// only, written before member chains), its header's last sequence and closing checkpoint's hash. The file itself is
    /// verified by the caller; this only reads what the next file must continue.
    /// </summary>
    internal static async Task<IReadOnlyList<AuditExportChain>> ReadEndsAsync(Stream input, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(input, leaveOpen: true);
        var header = await reader.ReadLineAsync(cancellationToken) ?? throw new FormatException("the previous file is empty");
        using var document = JsonDocument.Parse(header);
        var root = document.RootElement;
        if (AuditExport.RequireInt64(root, "version") == Version)
        {
            return root.GetProperty("chains").EnumerateArray().Select(item => new AuditExportChain(AuditExport.OptionalString(item, "chain"),
                AuditExport.OptionalInt64(item, "firstSequence"), AuditExport.OptionalInt64(item, "lastSequence"), AuditExport.OptionalString(item, "lastHash"),
                AuditExport.RequireString(item, "entriesDigest"), AuditExport.RequireInt64(item, "coveredThrough"), AuditExport.OptionalInt64(item, "uncoveredSince"))).ToList();
        }

        string? last = null;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            last = line;
        }

        var lastSequence = AuditExport.OptionalInt64(root, "lastSequence");
        var hash = last is null ? null : AuditExport.OptionalString(JsonDocument.Parse(last).RootElement, "hash");
        return [new AuditExportChain(null, AuditExport.OptionalInt64(root, "firstSequence"), lastSequence, lastSequence is null ? null : hash, AuditCanonical.GenesisHash, 0, null)];
    }

    private static ClusterHeader? ReadHeader(string text, string? publicKeyPem, string? expectedKeyId, ProblemSink problems)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            AuditExport.RequireOnly(root, "type", "format", "version", "entryFormat", "keyId", "publicKeyPem", "tenant", "from", "to", "createdAt", "chains", "signature");
            if (AuditExport.RequireInt64(root, "entryFormat") != AuditCanonical.EntryFormatVersion)
            {
                throw new FormatException($"unknown entry format {AuditExport.RequireInt64(root, "entryFormat")}");
            }

            var keyId = AuditExport.RequireString(root, "keyId");
            var headerPem = AuditExport.RequireString(root, "publicKeyPem");
            if (!root.TryGetProperty("chains", out var list) || list.ValueKind != JsonValueKind.Array)
            {
                throw new FormatException("'chains' must be an array");
            }

            var chains = new List<AuditExportChain>();
            foreach (var item in list.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Object)
                {
                    throw new FormatException("each of 'chains' must be an object");
                }

                AuditExport.RequireOnly(item, "chain", "firstSequence", "lastSequence", "lastHash", "entriesDigest", "coveredThrough", "uncoveredSince");
                var chain = new AuditExportChain(AuditExport.OptionalString(item, "chain"), AuditExport.OptionalInt64(item, "firstSequence"), AuditExport.OptionalInt64(item, "lastSequence"),
                    AuditExport.OptionalString(item, "lastHash"), AuditExport.RequireString(item, "entriesDigest"), AuditExport.RequireInt64(item, "coveredThrough"), AuditExport.OptionalInt64(item, "uncoveredSince"));
                if ((chain.FirstSequence is null) != (chain.LastSequence is null) || (chain.LastSequence is null) != (chain.LastHash is null)
                    || chain.FirstSequence > chain.LastSequence || chain.FirstSequence < 1 || chain.CoveredThrough < 0
                    || (chain.LastHash is not null && !AuditCanonical.IsHash(chain.LastHash)) || !AuditCanonical.IsHash(chain.EntriesDigest)
                    || (chain.Chain is not null && !AuditCanonical.IsChainName(chain.Chain)))
                {
                    throw new FormatException($"the entry of {AuditChainScope.Of(chain.Chain is { } n && AuditCanonical.IsChainName(n) ? n : null).Label} in 'chains' is inconsistent");
                }

                chains.Add(chain);
            }

            // The shared chain first, then every member chain once, by name: the order the writer lists them in.
            if (chains.Count == 0 || chains[0].Chain is not null || chains.Skip(1).Any(c => c.Chain is null)
                || !chains.Skip(1).Select(c => c.Chain!).SequenceEqual(chains.Skip(1).Select(c => c.Chain!).Order(StringComparer.Ordinal).Distinct(StringComparer.Ordinal)))
            {
                throw new FormatException("'chains' must list the shared chain first, then each member chain once, in order of name");
            }

            var keys = AuditExport.TrustKey(keyId, headerPem, publicKeyPem, expectedKeyId, AuditExport.RequireInt64(root, "createdAt"), problems);
            var header = new ClusterHeader(keyId, AuditExport.OptionalString(root, "tenant"), AuditExport.RequireInt64(root, "from"), AuditExport.RequireInt64(root, "to"),
                AuditExport.RequireInt64(root, "createdAt"), chains, keys);
            var payload = AuditCanonical.ClusterExportHeaderPayload(keyId, header.Tenant, header.From, header.To, header.CreatedAt, chains);
            if (!keys.TryGet(keyId, out var key) || !OperatorSigningKey.Verify(key, payload, AuditExport.RequireString(root, "signature")))
            {
                problems.Add(new AuditProblem(null, AuditProblemKind.InvalidSignature, "The header's signature does not verify: its scope (tenant, range, the list of chains, their ranges and coverage) was altered or forged.", 1));
            }

            return header;
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.Malformed, $"The header cannot be read: {ex.Message}", 1));
            return null;
        }
    }

    private sealed record ClusterHeader(string KeyId, string? Tenant, long From, long To, long CreatedAt, List<AuditExportChain> Chains, TrustedKeys Keys);

    /// <summary>One chain's lines, walked as a version 2 export's are.</summary>
    private sealed class Section
    {
        private readonly AuditExportChain _chain;
        private readonly ClusterHeader _header;
        private readonly TrustedKeys _keys;
        private readonly ChainWalker _walker;
        private readonly AuditCanonical.ExportEntriesDigest _shown = new();
        private readonly Dictionary<long, string> _hashes = [];
        private readonly List<(AuditCheckpoint Checkpoint, long Line)> _checkpoints = [];
        private readonly Dictionary<long, long> _times = [];
        private readonly (long Sequence, string Hash)? _overlap;

        public Section(AuditExportChain chain, ClusterHeader header, TrustedKeys keys, IReadOnlyList<AuditExportChain>? previous)
        {
            _chain = chain;
            _header = header;
            _keys = keys;

            // Entry 1 links to the chain's genesis, which binds it to its name; after an earlier archive file, the first
            // entry links to that file's last of the same chain.
            var link = chain.FirstSequence == 1 ? AuditCanonical.GenesisOf(chain.Chain) : null;
            var label = $"{AuditChainScope.Of(chain.Chain).Label}'s genesis hash";
            if (chain.FirstSequence is { } first && previous?.FirstOrDefault(p => p.Chain == chain.Chain) is { LastSequence: { } before, LastHash: { } hash })
            {
                if (first == before + 1)
                {
                    (link, label) = (hash, $"the previous file's last hash of {AuditChainScope.Of(chain.Chain).Label}");
                }
                else if (first == before)
                {
                    // The newest entry of a chain stays in the log when its older ones are archived: the next file
                    // starts with it again, and it must be the very entry the previous file ended with.
                    _overlap = (before, hash);
                }
                else
                {
                    Problems.Add(new AuditProblem(Math.Min(first, before + 1), AuditProblemKind.SequenceGap,
                        $"The previous file ends {AuditChainScope.Of(chain.Chain).Label} at {before}; this one starts it at {first}: the files do not continue each other.", 1));
                }
            }

            _walker = new ChainWalker(Problems, chain.FirstSequence, link, label);
        }

        public ProblemSink Problems { get; } = new();

        /// <summary>The hash of the section's entry 1, when it starts there.</summary>
        public string? FirstHash { get; private set; }

        public void Add(string? type, JsonElement root, AuditDecisionTally decisions, List<(AuditEntry Entry, string? By)> announced, Dictionary<string, (AuditEntry Entry, string? By)> witnessed, long line)
        {
            switch (type)
            {
                case "entry":
                    var sequence = AuditExport.RequireInt64(root, "sequence");
                    _shown.Add(sequence);
                    var entry = AuditExport.VerifyEntryLine(root, _header.Tenant, _header.From, _header.To, _walker, decisions, Problems, line);
                    if (entry is not null)
                    {
                        _times[entry.Sequence] = entry.Timestamp;
                        if (entry.Action == AuditActions.ChainOpened)
                        {
                            announced.Add((entry, _chain.Chain));
                        }

                        if (entry.Action == AuditActions.ChainsSigned)
                        {
                            witnessed[_chain.Chain ?? string.Empty] = (entry, _chain.Chain);
                        }
                    }

                    Record(sequence);
                    break;
                case "redacted":
                    var redacted = AuditExport.RequireInt64(root, "sequence");
                    AuditExport.RequireOnly(root, "type", "sequence", "previousHash", "hash");
                    if (_header.Tenant is null)
                    {
                        Problems.Add(new AuditProblem(redacted, AuditProblemKind.OutOfScope, "A redacted line in an export without a tenant filter hides an entry.", line));
                    }

                    _walker.Add(redacted, AuditExport.RequireString(root, "previousHash"), AuditExport.RequireString(root, "hash"), null, line);
                    Record(redacted);
                    break;
                case "checkpoint":
                    AuditExport.RequireOnly(root, "type", "sequence", "hash", "timestamp", "keyId", "signature");
                    _checkpoints.Add((new AuditCheckpoint(AuditExport.RequireInt64(root, "sequence"), AuditExport.RequireString(root, "hash"), AuditExport.RequireInt64(root, "timestamp"),
                        AuditExport.RequireString(root, "keyId"), AuditExport.RequireString(root, "signature")), line));
                    break;
                default:
                    Problems.Add(new AuditProblem(null, AuditProblemKind.Malformed, $"Unknown line type '{type}'.", line));
                    break;
            }
        }

        /// <summary>The hash of the section's line at <paramref name="sequence"/>, if it holds one.</summary>
        public string? HashAt(long sequence) => _hashes.GetValueOrDefault(sequence);

        private void Record(long sequence)
        {
            if (_overlap is { } overlap && overlap.Sequence == sequence && overlap.Hash != _walker.LastHash)
            {
                Problems.Add(new AuditProblem(sequence, AuditProblemKind.ChainBreak,
                    $"Entry {sequence} has hash {_walker.LastHash}, but the previous file ends {AuditChainScope.Of(_chain.Chain).Label} with it as {overlap.Hash}."));
            }

            _hashes[sequence] = _walker.LastHash;
            if (sequence == 1)
            {
                FirstHash = _walker.LastHash;
            }
        }

        public AuditVerificationResult Finish(long line)
        {
            var verified = 0;
            var covered = 0L;
            foreach (var (checkpoint, at) in _checkpoints)
            {
                if (!_keys.Check(checkpoint, Problems, at))
                {
                    continue;
                }

                verified++;
                if (!_hashes.TryGetValue(checkpoint.Sequence, out var hash) || hash != checkpoint.Hash)
                {
                    Problems.Add(new AuditProblem(checkpoint.Sequence, AuditProblemKind.CheckpointMismatch,
                        $"The checkpoint signed by {checkpoint.KeyId} records hash {checkpoint.Hash} for entry {checkpoint.Sequence}, the export has {(hash ?? "no such entry")}.", at));
                }
                else
                {
                    covered = Math.Max(covered, checkpoint.Sequence);
                }
            }

            if (_chain.LastSequence is { } last)
            {
                if (_walker.LastSequence < last)
                {
                    Problems.Add(new AuditProblem(_walker.LastSequence + 1, AuditProblemKind.Truncated,
                        $"The header covers sequences {_chain.FirstSequence}..{last} but the lines end at {_walker.LastSequence}.", line));
                }
                else if (_walker.LastSequence > last)
                {
                    Problems.Add(new AuditProblem(last + 1, AuditProblemKind.OutOfScope, $"Lines continue past the header's last sequence {last}.", line));
                }
                else if (_walker.LastHash != _chain.LastHash)
                {
                    Problems.Add(new AuditProblem(last, AuditProblemKind.CheckpointMismatch, $"The header signs hash {_chain.LastHash} for entry {last}, the last line has {_walker.LastHash}.", line));
                }

                // Coverage inside the range is shown by the checkpoint lines themselves; one after the range (its
                // entries are not in the file) is the signer's word in the signed header.
                if (_chain.CoveredThrough >= _chain.FirstSequence && _chain.CoveredThrough < last && covered < _chain.CoveredThrough)
                {
                    Problems.Add(new AuditProblem(_chain.CoveredThrough, AuditProblemKind.MissingCheckpoint,
                        $"The header says a signed checkpoint covers entry {_chain.CoveredThrough}, but no checkpoint line there verifies.", line));
                }

                if (_chain.UncoveredSince is { } since && _chain.Uncovered > 0 && _times.TryGetValue(Math.Max(_chain.CoveredThrough, _chain.FirstSequence!.Value - 1) + 1, out var at2) && at2 != since)
                {
                    Problems.Add(new AuditProblem(null, AuditProblemKind.OutOfScope, $"The header's uncoveredSince {since} is not the time of the oldest uncovered entry ({at2}).", 1));
                }
            }

            if (_shown.Finish() != _chain.EntriesDigest)
            {
                Problems.Add(new AuditProblem(null, AuditProblemKind.OutOfScope,
                    "The lines shown in full are not the ones the header signs (entriesDigest): an entry was redacted, or a line removed or added, after the export was made.", 1));
            }

            _shown.Dispose();
            var coveredThrough = _chain.LastSequence is { } end ? Math.Max(covered, Math.Min(_chain.CoveredThrough, end)) : 0;
            var uncovered = _chain.LastSequence is { } l ? Math.Max(0, l - Math.Max(coveredThrough, _chain.FirstSequence!.Value - 1)) : 0;
            return Problems.ToResult(_walker) with
            {
                CheckpointsVerified = verified,
                CoveredThrough = coveredThrough,
                Uncovered = uncovered,
                UncoveredSince = uncovered == 0 ? null : coveredThrough > (_chain.CoveredThrough) && _times.TryGetValue(coveredThrough + 1, out var next) ? next : _chain.UncoveredSince,
                LastSequence = _chain.LastSequence is null ? 0 : _walker.LastSequence,
            };
        }
    }

    /// <summary>A clock stopped at the export's creation: its uncovered entries are judged by their age then.</summary>
    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
