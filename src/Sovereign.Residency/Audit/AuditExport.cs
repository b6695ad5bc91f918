using System.Buffers;
using System.Data.Common;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Sovereign.Storage;

namespace Sovereign.Residency.Audit;

/// <summary>What <see cref="AuditExport.WriteAsync"/> wrote.</summary>
/// <param name="FirstSequence">The first sequence covered (null when the range held no entry).</param>
/// <param name="LastSequence">The last sequence covered, which the closing checkpoint signs.</param>
/// <param name="Entries">Full entry lines.</param>
/// <param name="Redacted">Redacted lines (other tenants' entries).</param>
/// <param name="Checkpoint">The closing checkpoint.</param>
public sealed record AuditExportSummary(long? FirstSequence, long? LastSequence, long Entries, long Redacted, AuditCheckpoint? Checkpoint);

/// <summary>
/// Exports the audit trail for an auditor as JSON Lines, verifiable offline with the operator's public key alone:
/// <list type="number">
/// <item><c>{"type":"header","format":"sovereign-audit-export","version":1,"entryFormat":1,"keyId","publicKeyPem",
/// "tenant","from","to","firstSequence","lastSequence","createdAt","signature"}</c>, signed (see
/// <see cref="AuditCanonical"/>) so the scope cannot be changed;</item>
/// <item>one line per sequence in <c>firstSequence..lastSequence</c> (every entry whose time is in [from, to)):
/// <c>{"type":"entry", ...all AuditEntry fields..., "previousHash","hash"}</c> for the tenant's entries (all entries
/// without a tenant filter), and <c>{"type":"redacted","sequence","previousHash","hash"}</c> for other tenants', so the
/// chain still verifies without revealing them;</item>
/// <item><c>{"type":"checkpoint","sequence","hash","timestamp","keyId","signature"}</c> at <c>lastSequence</c>.</item>
/// </list>
/// Times are unix milliseconds; hashes and signatures lowercase hex.
/// </summary>
public static class AuditExport
{
    /// <summary>The header's <c>format</c>.</summary>
    public const string Format = "sovereign-audit-export";

    /// <summary>
    /// The header's <c>version</c>: 2 signs which lines are shown in full (<c>entriesDigest</c>); version 1 files, written
    /// before it, still verify, but their redactions are not signed.
    /// </summary>
    public const int Version = 2;

    /// <summary>
    /// The header's <c>version</c> of a tenant's export of a single-chain log: as version 2, but each run of other
    /// tenants' entries between two of the tenant's is one <c>gap</c> line (<c>fromSequence</c>, <c>toSequence</c>, the
    /// run's first <c>previousHash</c> and last <c>hash</c>) instead of a <c>redacted</c> line per entry. A redacted line
    /// was not re-hashable (it states its hashes), so a run of them bound nothing its two ends do not: the tenant's
    /// entries on both sides re-hash over their own <c>previousHash</c>, and the signed checkpoint ends the chain. A
    /// tenant's export of a year was the whole log's length (389 MB for 22 entries among 2,000,000).
    /// </summary>
    public const int TenantVersion = 4;

    private static readonly JsonWriterOptions LineOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private static readonly HashSet<string> EntryProperties =
    [
        "type", "sequence", "timestamp", "kind", "tenant", "keyId", "actor", "action", "model", "gateway", "node", "jurisdiction",
        "decision", "decisionCode", "reasons", "promptTokens", "completionTokens", "details", "previousHash", "hash",
    ];

    /// <summary>
    /// Writes the entries with <paramref name="from"/> &lt;= time &lt; <paramref name="to"/>, redacting other tenants'
    /// when <paramref name="tenant"/> is set, closed by a checkpoint at the last one (signed and stored now when none is
    /// stored there yet). Refuses (<see cref="AuditIntegrityException"/>) when the stored chain around the range does not
    /// verify, so a fresh signature never vouches for a tampered log.
    /// </summary>
    public static Task<AuditExportSummary> WriteAsync(SqlDatabase database, OperatorSigningKey signingKey, string? tenant, DateTimeOffset from, DateTimeOffset to, Stream output, CancellationToken cancellationToken = default) =>
        WriteAsync(database, signingKey, tenant, from, to, output, null, cancellationToken);

    /// <summary>
    /// As <see cref="WriteAsync(SqlDatabase, OperatorSigningKey, string?, DateTimeOffset, DateTimeOffset, Stream, CancellationToken)"/>,
    /// and refuses (<see cref="AuditIntegrityException"/>) when the log no longer holds <paramref name="witness"/>, the
    /// last head the server signed (<see cref="AuditWitness"/>): a fresh signature must not vouch for a rewritten tail.
    /// </summary>
    public static Task<AuditExportSummary> WriteAsync(SqlDatabase database, OperatorSigningKey signingKey, string? tenant, DateTimeOffset from, DateTimeOffset to, Stream output, AuditWitnessHead? witness, CancellationToken cancellationToken = default) =>
        WriteAsync(database, signingKey, tenant, from, to, output, witness, tenant is null ? Version : TenantVersion, cancellationToken);

    /// <summary>
    /// Writes an export of <paramref name="version"/>: <see cref="TenantVersion"/> (a tenant's, with gap lines) or
    /// <see cref="Version"/> (every tenant's; or a tenant's with a redacted line per other entry, as releases before
    /// session 49 wrote it, which verifiers still read).
    /// </summary>
    internal static async Task<AuditExportSummary> WriteAsync(SqlDatabase database, OperatorSigningKey signingKey, string? tenant, DateTimeOffset from, DateTimeOffset to, Stream output, AuditWitnessHead? witness, int version, CancellationToken cancellationToken)
    {
        if (version is not (Version or TenantVersion) || (version == TenantVersion && tenant is null))
        {
            throw new ArgumentOutOfRangeException(nameof(version), version, "version 2, or 4 with a tenant");
        }

        ArgumentNullException.ThrowIfNull(database);
        ArgumentNullException.ThrowIfNull(signingKey);
        ArgumentNullException.ThrowIfNull(output);
        var fromMs = from.ToUnixTimeMilliseconds();
        var toMs = to.ToUnixTimeMilliseconds();
        ArgumentOutOfRangeException.ThrowIfGreaterThan(fromMs, toMs, nameof(from));

        long? first = null;
        long? last = null;
        long entries = 0;
        long redacted = 0;
        AuditCheckpoint? checkpoint = null;
        var fresh = false;
        var buffer = new ArrayBufferWriter<byte>(4096);

        await using (var connection = await database.OpenAsync(cancellationToken))
        await using (var snapshot = await AuditStore.BeginSnapshotAsync(connection, cancellationToken))
        {
            if (witness is not null && await AuditWitness.CheckAsync(connection, snapshot, witness, cancellationToken) is { } reason)
            {
                throw new AuditIntegrityException(
                    $"The audit log no longer holds the head the server last signed: {reason}. Refusing to sign an export. Run 'sovereign audit verify'.",
                    [new AuditProblem(witness.Sequence, AuditProblemKind.WitnessMismatch, reason)]);
            }

            (first, last) = await ReadRangeAsync(connection, snapshot, fromMs, toMs, cancellationToken);
            if (first is { } f && last is { } l)
            {
                checkpoint = await EnsureVerifiedAsync(connection, snapshot, signingKey, f, l, cancellationToken);
                if (checkpoint is null)
                {
                    checkpoint = AuditCheckpoint.Sign(signingKey, l, await ReadHashAsync(connection, snapshot, l, cancellationToken), TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds());
                    fresh = true;
                }
            }

            var entriesDigest = await ShownDigestAsync(connection, snapshot, tenant, first, last, cancellationToken);
            var createdAt = TimeProvider.System.GetUtcNow().ToUnixTimeMilliseconds();
            var headerPayload = AuditCanonical.ExportHeaderPayload(signingKey.KeyId, tenant, fromMs, toMs, first, last, createdAt, entriesDigest, version);
            await WriteLineAsync(output, buffer, writer =>
            {
                writer.WriteString("type", "header");
                writer.WriteString("format", Format);
                writer.WriteNumber("version", version);
                writer.WriteNumber("entryFormat", AuditCanonical.EntryFormatVersion);
                writer.WriteString("keyId", signingKey.KeyId);
                writer.WriteString("publicKeyPem", signingKey.PublicKeyPem);
                WriteNullable(writer, "tenant", tenant);
                writer.WriteNumber("from", fromMs);
                writer.WriteNumber("to", toMs);
                WriteNullable(writer, "firstSequence", first);
                WriteNullable(writer, "lastSequence", last);
                writer.WriteNumber("createdAt", createdAt);
                writer.WriteString("entriesDigest", entriesDigest);
                writer.WriteString("signature", Convert.ToHexStringLower(signingKey.Sign(headerPayload)));
            }, cancellationToken);

            if (first is { } start && last is { } end)
            {
                // The rows were verified above in this same snapshot; re-walk them anyway so the file matches exactly.
                var problems = new ProblemSink();
                var walker = new ChainWalker(problems, start, null);
                using var shown = new AuditCanonical.ExportEntriesDigest();
                using var command = connection.CreateCommand();
                command.Transaction = snapshot;
                command.CommandText = $"SELECT {AuditStore.EntryColumns} FROM audit_entries WHERE seq >= @from AND seq <= @to ORDER BY seq";
                SqlDatabase.AddParameter(command, "@from", start);
                SqlDatabase.AddParameter(command, "@to", end);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                // Other tenants' entries since the last one shown: written as one gap line when the run ends.
                (long First, long Last, string PreviousHash, string Hash)? run = null;
                async Task EndRunAsync()
                {
                    if (run is { } gap)
                    {
                        await WriteLineAsync(output, buffer, writer =>
                        {
                            writer.WriteString("type", "gap");
                            writer.WriteNumber("fromSequence", gap.First);
                            writer.WriteNumber("toSequence", gap.Last);
                            writer.WriteString("previousHash", gap.PreviousHash);
                            writer.WriteString("hash", gap.Hash);
                        }, cancellationToken);
                        run = null;
                    }
                }

                while (await reader.ReadAsync(cancellationToken))
                {
                    if (!AuditStore.TryReadEntry(reader, out var entry, out var error))
                    {
                        throw new AuditIntegrityException($"Audit entry {reader.GetValue(0)} is malformed: {error}.");
                    }

                    walker.Add(entry.Sequence, entry.PreviousHash, entry.Hash, AuditVerifier.Recompute(entry), null, entry.Timestamp);
                    if (tenant is null || entry.Tenant == tenant)
                    {
                        await EndRunAsync();
                        await WriteLineAsync(output, buffer, writer => WriteEntry(writer, entry), cancellationToken);
                        shown.Add(entry.Sequence);
                        entries++;
                    }
                    else if (version == TenantVersion)
                    {
                        run = run is { } open ? open with { Last = entry.Sequence, Hash = entry.Hash } : (entry.Sequence, entry.Sequence, entry.PreviousHash, entry.Hash);
                        redacted++;
                    }
                    else
                    {
                        await WriteLineAsync(output, buffer, writer =>
                        {
                            writer.WriteString("type", "redacted");
                            writer.WriteNumber("sequence", entry.Sequence);
                            writer.WriteString("previousHash", entry.PreviousHash);
                            writer.WriteString("hash", entry.Hash);
                        }, cancellationToken);
                        redacted++;
                    }
                }

                await EndRunAsync();

                if (problems.Count > 0 || walker.LastSequence != end || walker.LastHash != checkpoint!.Hash || shown.Finish() != entriesDigest)
                {
                    throw new AuditIntegrityException("The audit entries changed while they were exported.");
                }
            }
        }

        if (checkpoint is not null)
        {
            if (fresh)
            {
                await using var connection = await database.OpenAsync(cancellationToken);
                await AuditStore.InsertCheckpointAsync(connection, null, checkpoint, cancellationToken);
            }

            await WriteLineAsync(output, buffer, writer =>
            {
                writer.WriteString("type", "checkpoint");
                writer.WriteNumber("sequence", checkpoint.Sequence);
                writer.WriteString("hash", checkpoint.Hash);
                writer.WriteNumber("timestamp", checkpoint.Timestamp);
                writer.WriteString("keyId", checkpoint.KeyId);
                writer.WriteString("signature", checkpoint.Signature);
            }, cancellationToken);
        }

        await output.FlushAsync(cancellationToken);
        return new AuditExportSummary(first, last, entries, redacted, checkpoint);
    }

    /// <summary>Verifies an export offline, trusting only <paramref name="publicKeyPem"/> (the header's key must be it).</summary>
    public static Task<AuditVerificationResult> VerifyExportAsync(Stream input, string publicKeyPem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentException.ThrowIfNullOrWhiteSpace(publicKeyPem);
        OperatorKeyHistory.Validate(publicKeyPem); // a bad trusted key is the caller's error, not the file's
        return VerifyCoreAsync(input, publicKeyPem, null, null, cancellationToken);
    }

    /// <summary>
    /// Verifies an export that follows <paramref name="previous"/> (the archive file before it, version 2 or 3): besides
    /// everything <see cref="VerifyExportAsync(Stream, string, CancellationToken)"/> checks, each chain's first entry must
    /// be the one after the previous file's last of that chain and link to its hash (or be that last entry again, with
    /// its hash), and, for an export of several chains, every chain the previous file held must be listed. The previous
    /// file must verify with the same key.
    /// </summary>
    public static async Task<AuditVerificationResult> VerifyExportAsync(Stream input, string publicKeyPem, Stream previous, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(previous);
        ArgumentException.ThrowIfNullOrWhiteSpace(publicKeyPem);
        OperatorKeyHistory.Validate(publicKeyPem);
        var before = await VerifyCoreAsync(previous, publicKeyPem, null, null, cancellationToken);
        previous.Position = 0;
        var ends = await AuditClusterExport.ReadEndsAsync(previous, cancellationToken);
        var result = await VerifyCoreAsync(input, publicKeyPem, null, ends, cancellationToken);
        return before.Valid
            ? result
            : result with
            {
                Valid = false,
                Verdict = AuditVerdict.Tampered,
                Problems = [new AuditProblem(null, AuditProblemKind.Malformed, $"The previous file does not verify (first problem: {before.Problems.FirstOrDefault()}).", 1), .. result.Problems],
            };
    }

    /// <summary>
    /// Where a file of one chain (version 1, 2 or 4) must start: entry 1 links to the genesis hash; after
    /// <paramref name="previous"/> (the ends of the archive file before it) its first entry is the one after that file's
    /// last and links to its hash, or is that last entry itself with the same hash (the newest entry stays in the log
    /// when the older ones are archived, so the next file holds it again). Anything else is a problem: before session 52
    /// <c>--previous</c> was read only for version 3 files, and a version 2 archive that did not continue its
    /// predecessor (or was the predecessor itself) verified as intact.
    /// </summary>
    private static (string? Link, string LinkName, (long Sequence, string Hash)? Overlap) ContinuationOf(ExportHeader header, IReadOnlyList<AuditExportChain>? previous, ProblemSink problems)
    {
        var link = header.FirstSequence == 1 ? AuditCanonical.GenesisHash : null;
        if (previous is null)
        {
            return (link, "the genesis hash", null);
        }

        if (previous.FirstOrDefault(p => p.Chain is null) is not { LastSequence: { } before, LastHash: { } hash })
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.SequenceGap,
                "The previous file holds no entry of this chain, so nothing shows that this file continues it.", 1));
            return (link, "the genesis hash", null);
        }

        if (header.FirstSequence is not { } first)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.SequenceGap,
                string.Create(CultureInfo.InvariantCulture, $"The previous file ends at {before}; this one holds no entry, so it does not continue it."), 1));
            return (link, "the genesis hash", null);
        }

        if (first == before + 1)
        {
            return (hash, "the previous file's last hash", null);
        }

        if (first == before)
        {
            return (null, "the genesis hash", (before, hash));
        }

        problems.Add(new AuditProblem(Math.Min(first, before + 1), AuditProblemKind.SequenceGap,
            string.Create(CultureInfo.InvariantCulture, $"The previous file ends at {before}; this one starts at {first}: the files do not continue each other."), 1));
        return (link, "the genesis hash", null);
    }

    /// <summary>Once the walk reaches the entry both files hold, its hash must be the one the previous file ended with.</summary>
    private static void CheckOverlap(ref (long Sequence, string Hash)? overlap, ChainWalker walker, ProblemSink problems, long line)
    {
        if (overlap is not { } both || walker.LastSequence < both.Sequence)
        {
            return;
        }

        overlap = null;
        if (walker.LastSequence > both.Sequence)
        {
            problems.Add(new AuditProblem(both.Sequence, AuditProblemKind.SequenceGap, string.Create(CultureInfo.InvariantCulture,
                $"The previous file ends with entry {both.Sequence}, which this one holds only inside a gap line up to {walker.LastSequence}: the files cannot be shown to continue each other."), line));
        }
        else if (walker.LastHash != both.Hash)
        {
            problems.Add(new AuditProblem(both.Sequence, AuditProblemKind.ChainBreak, string.Create(CultureInfo.InvariantCulture,
                $"Entry {both.Sequence} has hash {walker.LastHash}, but the previous file ends with it as {both.Hash}: the files do not continue each other."), line));
        }
    }

    /// <summary>
    /// Verifies an export offline using the public key in its header, trusted only if its id matches
    /// <paramref name="expectedKeyId"/> (the 16-digit key id, or the full 64-digit SHA-256 of the SubjectPublicKeyInfo).
    /// </summary>
    public static Task<AuditVerificationResult> VerifyExportByKeyIdAsync(Stream input, string expectedKeyId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentException.ThrowIfNullOrWhiteSpace(expectedKeyId);
        return VerifyCoreAsync(input, null, expectedKeyId.Trim().ToLowerInvariant(), null, cancellationToken);
    }

    private static async Task<AuditVerificationResult> VerifyCoreAsync(Stream input, string? publicKeyPem, string? expectedKeyId, IReadOnlyList<AuditExportChain>? previous, CancellationToken cancellationToken)
    {
        var problems = new ProblemSink();
        using var reader = new StreamReader(input, StrictUtf8, detectEncodingFromByteOrderMarks: false, leaveOpen: true);
        string? headerText;
        try
        {
            headerText = await reader.ReadLineAsync(cancellationToken);
        }
        catch (DecoderFallbackException)
        {
            headerText = null;
        }

        // A log with member chains exports every chain in one file (version 3).
        if (headerText is not null && IsVersion(headerText, AuditClusterExport.Version))
        {
            return await AuditClusterExport.VerifyAsync(headerText, reader, publicKeyPem, expectedKeyId, previous, cancellationToken);
        }

        var header = ReadHeader(headerText, publicKeyPem, expectedKeyId, problems);
        if (header is null)
        {
            return problems.ToResult(new ChainWalker(problems, null, null));
        }

        using var keys = header.Keys;
        var (link, linkName, overlap) = ContinuationOf(header, previous, problems);
        var walker = new ChainWalker(problems, header.FirstSequence, link, linkName);
        var decisions = new AuditDecisionTally();
        using var shown = new AuditCanonical.ExportEntriesDigest();
        AuditCheckpoint? checkpoint = null;
        var verified = 0;
        long line = 1;
        while (true)
        {
            string? text;
            try
            {
                text = await reader.ReadLineAsync(cancellationToken);
            }
            catch (DecoderFallbackException)
            {
                problems.Add(new AuditProblem(null, AuditProblemKind.Malformed, "The file is not valid UTF-8 from here on.", line + 1));
                break;
            }

            if (text is null)
            {
                break;
            }

            line++;
            if (checkpoint is not null)
            {
                problems.Add(new AuditProblem(null, AuditProblemKind.Malformed, "Content after the closing checkpoint.", line));
                continue;
            }

            try
            {
                using var document = JsonDocument.Parse(text);
                var root = document.RootElement;
                var type = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                switch (type)
                {
                    case "entry":
                        shown.Add(RequireInt64(root, "sequence"));
                        VerifyEntryLine(root, header.Tenant, header.From, header.To, walker, decisions, problems, line);
                        CheckOverlap(ref overlap, walker, problems, line);
                        break;
                    case "redacted":
                        var sequence = RequireInt64(root, "sequence");
                        RequireOnly(root, "type", "sequence", "previousHash", "hash");
                        if (header.Tenant is null)
                        {
                            problems.Add(new AuditProblem(sequence, AuditProblemKind.OutOfScope, "A redacted line in an export without a tenant filter hides an entry.", line));
                        }

                        walker.Add(sequence, RequireString(root, "previousHash"), RequireString(root, "hash"), null, line);
                        CheckOverlap(ref overlap, walker, problems, line);
                        break;
                    case "gap":
                        var fromSequence = RequireInt64(root, "fromSequence");
                        var toSequence = RequireInt64(root, "toSequence");
                        RequireOnly(root, "type", "fromSequence", "toSequence", "previousHash", "hash");
                        if (header.Version != TenantVersion || header.Tenant is null)
                        {
                            problems.Add(new AuditProblem(fromSequence, AuditProblemKind.OutOfScope,
                                $"A gap line in a version {header.Version} export{(header.Tenant is null ? " without a tenant filter" : "")} hides entries.", line));
                        }

                        if (toSequence < fromSequence)
                        {
                            throw new FormatException($"toSequence {toSequence} is before fromSequence {fromSequence}");
                        }

                        walker.AddRun(fromSequence, toSequence, RequireString(root, "previousHash"), RequireString(root, "hash"), line);
                        CheckOverlap(ref overlap, walker, problems, line);
                        break;
                    case "checkpoint":
                        RequireOnly(root, "type", "sequence", "hash", "timestamp", "keyId", "signature");
                        checkpoint = new AuditCheckpoint(RequireInt64(root, "sequence"), RequireString(root, "hash"), RequireInt64(root, "timestamp"), RequireString(root, "keyId"), RequireString(root, "signature"));
                        if (keys is not null && keys.Check(checkpoint, problems, line))
                        {
                            verified++;
                        }

                        if (walker.Count == 0 || checkpoint.Sequence != walker.LastSequence || checkpoint.Hash != walker.LastHash)
                        {
                            problems.Add(new AuditProblem(checkpoint.Sequence, AuditProblemKind.CheckpointMismatch,
                                $"The checkpoint covers sequence {checkpoint.Sequence} (hash {checkpoint.Hash}), but the last line is {walker.LastSequence} (hash {walker.LastHash}).", line));
                        }

                        break;
                    default:
                        problems.Add(new AuditProblem(null, AuditProblemKind.Malformed, $"Unknown line type '{type}'.", line));
                        break;
                }
            }
            catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException)
            {
                problems.Add(new AuditProblem(null, AuditProblemKind.Malformed, $"The line cannot be read: {ex.Message}", line));
            }
        }

        if (header.LastSequence is { } lastSequence)
        {
            if (walker.LastSequence < lastSequence)
            {
                problems.Add(new AuditProblem(walker.LastSequence + 1, AuditProblemKind.Truncated,
                    $"The header covers sequences {header.FirstSequence}..{lastSequence} but the lines end at {walker.LastSequence}.", line));
            }
            else if (walker.LastSequence > lastSequence)
            {
                problems.Add(new AuditProblem(lastSequence + 1, AuditProblemKind.OutOfScope, $"Lines continue past the header's last sequence {lastSequence}.", line));
            }

            if (checkpoint is null)
            {
                problems.Add(new AuditProblem(walker.LastSequence, AuditProblemKind.MissingCheckpoint, "The export has no closing checkpoint: nothing signs its entries.", line));
            }
        }
        else if (walker.Count > 0 || checkpoint is not null)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.OutOfScope, "The header says the range is empty, but lines follow.", 1));
        }

        if (header.EntriesDigest is not null && shown.Finish() != header.EntriesDigest)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.OutOfScope,
                "The lines shown in full are not the ones the header signs (entriesDigest): an entry was redacted, or a line removed or added, after the export was made.", 1));
        }

        return problems.ToResult(walker) with { CheckpointsVerified = verified, Decisions = decisions.ToOutcomes(), SignedBy = keys?.Used ?? [] };
    }

    internal static AuditEntry? VerifyEntryLine(JsonElement root, string? tenant, long from, long to, ChainWalker walker, AuditDecisionTally decisions, ProblemSink problems, long line)
    {
        var sequence = RequireInt64(root, "sequence");
        var previousHash = RequireString(root, "previousHash");
        var hash = RequireString(root, "hash");
        AuditEntry entry;
        try
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                if (!EntryProperties.Contains(property.Name) || !seen.Add(property.Name))
                {
                    throw new FormatException($"unexpected or repeated property '{property.Name}'");
                }
            }

            if (!AuditCanonical.TryParseKind(RequireString(root, "kind"), out var kind))
            {
                throw new FormatException("unknown kind");
            }

            if (!AuditCanonical.TryParseDecision(OptionalString(root, "decision"), out var decision))
            {
                throw new FormatException("unknown decision");
            }

            entry = new AuditEntry
            {
                Sequence = sequence,
                Timestamp = RequireInt64(root, "timestamp"),
                Kind = kind,
                Tenant = OptionalString(root, "tenant"),
                KeyId = OptionalString(root, "keyId"),
                Actor = RequireString(root, "actor"),
                Action = RequireString(root, "action"),
                Model = OptionalString(root, "model"),
                Gateway = OptionalString(root, "gateway"),
                Node = OptionalString(root, "node"),
                Jurisdiction = OptionalString(root, "jurisdiction"),
                Decision = decision,
                DecisionCode = OptionalString(root, "decisionCode"),
                Reasons = root.TryGetProperty("reasons", out var reasons) ? AuditStore.ReadReasons(reasons) : [],
                PromptTokens = OptionalInt64(root, "promptTokens"),
                CompletionTokens = OptionalInt64(root, "completionTokens"),
                Details = root.TryGetProperty("details", out var details) ? AuditStore.ReadDetails(details) : [],
                PreviousHash = previousHash,
                Hash = hash,
            };
        }
        catch (Exception ex) when (ex is FormatException or InvalidOperationException)
        {
            problems.Add(new AuditProblem(sequence, AuditProblemKind.Malformed, $"The entry cannot be read: {ex.Message}.", line));
            walker.Add(sequence, previousHash, hash, null, line);
            return null;
        }

        walker.Add(sequence, previousHash, hash, AuditVerifier.Recompute(entry), line, entry.Timestamp);
        decisions.Add(entry);
        if (tenant is not null && entry.Tenant != tenant)
        {
            problems.Add(new AuditProblem(sequence, AuditProblemKind.OutOfScope, $"A full entry of tenant '{entry.Tenant}' in an export for '{tenant}'.", line));
        }

        if (entry.Timestamp < from || entry.Timestamp >= to)
        {
            problems.Add(new AuditProblem(sequence, AuditProblemKind.OutOfScope, $"Entry time {entry.Timestamp} is outside the exported range [{from}, {to}).", line));
        }

        return entry;
    }

    /// <summary>Whether a header line says <c>"version": <paramref name="version"/></c> (anything unreadable: no).</summary>
    private static bool IsVersion(string text, int version)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            return document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("version", out var value)
                && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) && number == version;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static ExportHeader? ReadHeader(string? text, string? publicKeyPem, string? expectedKeyId, ProblemSink problems)
    {
        if (text is null)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.Malformed, "The export is empty or not UTF-8: no header.", 1));
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            var version = RequireInt64(root, "version");
            if (OptionalString(root, "type") != "header" || OptionalString(root, "format") != Format || version is not (1 or Version or TenantVersion))
            {
                throw new FormatException($"not a {Format} version 1, {Version} or {TenantVersion} header");
            }

            if (RequireInt64(root, "entryFormat") != AuditCanonical.EntryFormatVersion)
            {
                throw new FormatException($"unknown entry format {RequireInt64(root, "entryFormat")}");
            }

            string? entriesDigest = null;
            if (version == 1)
            {
                RequireOnly(root, "type", "format", "version", "entryFormat", "keyId", "publicKeyPem", "tenant", "from", "to", "firstSequence", "lastSequence", "createdAt", "signature");
            }
            else
            {
                RequireOnly(root, "type", "format", "version", "entryFormat", "keyId", "publicKeyPem", "tenant", "from", "to", "firstSequence", "lastSequence", "createdAt", "entriesDigest", "signature");
                entriesDigest = RequireString(root, "entriesDigest");
                if (!AuditCanonical.IsHash(entriesDigest))
                {
                    throw new FormatException("entriesDigest is not 64 lowercase hex digits");
                }
            }
            var keyId = RequireString(root, "keyId");
            var headerPem = RequireString(root, "publicKeyPem");
            var header = new ExportHeader(keyId, OptionalString(root, "tenant"), RequireInt64(root, "from"), RequireInt64(root, "to"),
                OptionalInt64(root, "firstSequence"), OptionalInt64(root, "lastSequence"), RequireInt64(root, "createdAt"), entriesDigest, null) { Version = (int)version };
            if (version == TenantVersion && header.Tenant is null)
            {
                throw new FormatException($"a version {TenantVersion} export is a tenant's: its tenant is null");
            }

            if ((header.FirstSequence is null) != (header.LastSequence is null) || header.FirstSequence > header.LastSequence || header.FirstSequence < 1)
            {
                throw new FormatException("firstSequence/lastSequence are inconsistent");
            }

            var keys = TrustKey(keyId, headerPem, publicKeyPem, expectedKeyId, header.CreatedAt, problems);
            var payload = AuditCanonical.ExportHeaderPayload(keyId, header.Tenant, header.From, header.To, header.FirstSequence, header.LastSequence, header.CreatedAt, entriesDigest, (int)version);
            if (!keys.TryGet(keyId, out var key) || !OperatorSigningKey.Verify(key, payload, RequireString(root, "signature")))
            {
                problems.Add(new AuditProblem(null, AuditProblemKind.InvalidSignature, "The header's signature does not verify: its scope (tenant, range, sequences) was altered or forged.", 1));
            }

            return header with { Keys = keys };
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.Malformed, $"The header cannot be read: {ex.Message}", 1));
            return null;
        }
    }

    /// <summary>
    /// The key an export's signatures are checked with: <paramref name="publicKeyPem"/> when the auditor gave it (the
    /// header's key id must be its id), else the header's own key, trusted only if its id is <paramref name="expectedKeyId"/>.
    /// </summary>
    internal static TrustedKeys TrustKey(string keyId, string headerPem, string? publicKeyPem, string? expectedKeyId, long createdAt, ProblemSink problems)
    {
        if (publicKeyPem is not null)
        {
            // The auditor's key, or the operator's key history (every key that signed, with their compromise marks).
            var trusted = new TrustedKeys([publicKeyPem]);
            if (trusted.History.Keys.Count == 1 && trusted.History.Find(keyId) is null)
            {
                problems.Add(new AuditProblem(null, AuditProblemKind.KeyMismatch, $"The export is signed by key {keyId}, not the trusted key {trusted.History.Current.KeyId}.", 1));
            }
            else if (trusted.Refusal(keyId, createdAt) is { } refusal)
            {
                problems.Add(new AuditProblem(null, trusted.History.Find(keyId) is null ? AuditProblemKind.KeyMismatch : AuditProblemKind.CompromisedKey, $"The export is {refusal}.", 1));
            }

            return trusted;
        }

        var fingerprint = OperatorSigningKey.ComputeFingerprint(headerPem);
        var matches = expectedKeyId!.Length == 64 ? fingerprint == expectedKeyId : expectedKeyId.Length == 16 && fingerprint[..16] == expectedKeyId;
        if (!matches)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.KeyMismatch, $"The header's public key has id {fingerprint[..16]}, not the expected {expectedKeyId}.", 1));
        }

        if (fingerprint[..16] != keyId)
        {
            problems.Add(new AuditProblem(null, AuditProblemKind.KeyMismatch, $"The header's keyId {keyId} is not the id of its public key ({fingerprint[..16]}).", 1));
        }

        return new TrustedKeys([headerPem]);
    }

    /// <summary>
    /// The header's <c>entriesDigest</c>, read before the lines are written (the header comes first): every sequence of
    /// the range without a tenant filter, else the tenant's. The walk that writes the lines recomputes it and refuses a
    /// difference.
    /// </summary>
    private static async Task<string> ShownDigestAsync(DbConnection connection, DbTransaction snapshot, string? tenant, long? first, long? last, CancellationToken cancellationToken)
    {
        using var digest = new AuditCanonical.ExportEntriesDigest();
        if (first is { } start && last is { } end)
        {
            if (tenant is null)
            {
                for (var sequence = start; sequence <= end; sequence++)
                {
                    digest.Add(sequence);
                }
            }
            else
            {
                using var command = connection.CreateCommand();
                command.Transaction = snapshot;
                command.CommandText = "SELECT seq FROM audit_entries WHERE seq >= @from AND seq <= @to AND tenant = @tenant ORDER BY seq";
                SqlDatabase.AddParameter(command, "@from", start);
                SqlDatabase.AddParameter(command, "@to", end);
                SqlDatabase.AddParameter(command, "@tenant", tenant);
                await using var reader = await command.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    digest.Add(reader.GetInt64(0));
                }
            }
        }

        return digest.Finish();
    }

    /// <summary>The first and last sequence of the entries in the time range: a sequence range, since times never decrease along the chain.</summary>
    private static async Task<(long? First, long? Last)> ReadRangeAsync(DbConnection connection, DbTransaction snapshot, long fromMs, long toMs, CancellationToken cancellationToken)
    {
        if (await AuditStore.FirstSequenceAtOrAfterAsync(connection, snapshot, fromMs, cancellationToken) is not { } from)
        {
            return (null, null);
        }

        var to = await AuditStore.FirstSequenceAtOrAfterAsync(connection, snapshot, toMs, cancellationToken);
        async Task<long?> EndAsync(string order)
        {
            using var command = connection.CreateCommand();
            command.Transaction = snapshot;
            command.CommandText = $"SELECT seq FROM audit_entries WHERE seq >= @from{(to is null ? "" : " AND seq < @to")} ORDER BY seq {order} LIMIT 1";
            SqlDatabase.AddParameter(command, "@from", from);
            if (to is { } end)
            {
                SqlDatabase.AddParameter(command, "@to", end);
            }

            return await command.ExecuteScalarAsync(cancellationToken) is { } value and not DBNull ? AuditStore.ToInt64(value) : null;
        }

        return await EndAsync("ASC") is { } first ? (first, await EndAsync("DESC")) : (null, null);
    }

    /// <summary>
    /// Verifies the stored chain from just before <paramref name="first"/> up to the next checkpoint at or after
    /// <paramref name="last"/> (or the head), so every exported entry is bound to what was signed before; returns the
    /// stored checkpoint at <paramref name="last"/> by this key, if any.
    /// </summary>
    private static async Task<AuditCheckpoint?> EnsureVerifiedAsync(DbConnection connection, DbTransaction snapshot, OperatorSigningKey signingKey, long first, long last, CancellationToken cancellationToken)
    {
        var later = await AuditStore.ReadCheckpointsAsync(connection, snapshot, "WHERE key_id = @key AND seq = (SELECT MIN(seq) FROM audit_checkpoints WHERE key_id = @key AND seq >= @last)", command =>
        {
            SqlDatabase.AddParameter(command, "@key", signingKey.KeyId);
            SqlDatabase.AddParameter(command, "@last", last);
        }, cancellationToken);
        var until = later.Count > 0 ? later[0].Sequence : long.MaxValue;
        using var keys = new TrustedKeys([signingKey.PublicKeyPem]);
        var result = await AuditVerifier.VerifyAsync(connection, snapshot, keys, Math.Max(1, first - 1), until, cancellationToken);

        // Checkpoints by a previous (rotated) key are not damage; anything else is.
        var damage = result.Problems.Where(p => p.Kind != AuditProblemKind.KeyMismatch).ToList();
        if (damage.Count > 0)
        {
            throw new AuditIntegrityException(
                $"The audit chain does not verify around sequences {first}..{last} (first problem: {damage[0]}); refusing to sign an export. Run 'sovereign audit verify'.", damage);
        }

        return later.Count > 0 && later[0].Sequence == last ? later[0] : null;
    }

    private static async Task<string> ReadHashAsync(DbConnection connection, DbTransaction snapshot, long sequence, CancellationToken cancellationToken)
    {
        using var command = connection.CreateCommand();
        command.Transaction = snapshot;
        command.CommandText = "SELECT hash FROM audit_entries WHERE seq = @seq";
        SqlDatabase.AddParameter(command, "@seq", sequence);
        return (string)(await command.ExecuteScalarAsync(cancellationToken) ?? throw new AuditIntegrityException($"Audit entry {sequence} is missing."));
    }

    internal static void WriteRedacted(Utf8JsonWriter writer, AuditEntry entry)
    {
        writer.WriteString("type", "redacted");
        writer.WriteNumber("sequence", entry.Sequence);
        writer.WriteString("previousHash", entry.PreviousHash);
        writer.WriteString("hash", entry.Hash);
    }

    internal static void WriteCheckpoint(Utf8JsonWriter writer, AuditCheckpoint checkpoint)
    {
        writer.WriteString("type", "checkpoint");
        writer.WriteNumber("sequence", checkpoint.Sequence);
        writer.WriteString("hash", checkpoint.Hash);
        writer.WriteNumber("timestamp", checkpoint.Timestamp);
        writer.WriteString("keyId", checkpoint.KeyId);
        writer.WriteString("signature", checkpoint.Signature);
    }

    internal static void WriteEntry(Utf8JsonWriter writer, AuditEntry entry)
    {
        writer.WriteString("type", "entry");
        writer.WriteNumber("sequence", entry.Sequence);
        writer.WriteNumber("timestamp", entry.Timestamp);
        writer.WriteString("kind", AuditCanonical.KindName(entry.Kind));
        WriteNullable(writer, "tenant", entry.Tenant);
        WriteNullable(writer, "keyId", entry.KeyId);
        writer.WriteString("actor", entry.Actor);
        writer.WriteString("action", entry.Action);
        WriteNullable(writer, "model", entry.Model);
        WriteNullable(writer, "gateway", entry.Gateway);
        WriteNullable(writer, "node", entry.Node);
        WriteNullable(writer, "jurisdiction", entry.Jurisdiction);
        WriteNullable(writer, "decision", entry.Decision is { } decision ? AuditCanonical.DecisionName(decision) : null);
        WriteNullable(writer, "decisionCode", entry.DecisionCode);
        writer.WriteStartArray("reasons");
        foreach (var reason in entry.Reasons)
        {
            writer.WriteStringValue(reason);
        }

        writer.WriteEndArray();
        WriteNullable(writer, "promptTokens", entry.PromptTokens);
        WriteNullable(writer, "completionTokens", entry.CompletionTokens);
        writer.WriteStartObject("details");
        foreach (var (key, value) in entry.Details.OrderBy(pair => pair.Key, StringComparer.Ordinal))
        {
            writer.WriteString(key, value);
        }

        writer.WriteEndObject();
        writer.WriteString("previousHash", entry.PreviousHash);
        writer.WriteString("hash", entry.Hash);
    }

    internal static async Task WriteLineAsync(Stream output, ArrayBufferWriter<byte> buffer, Action<Utf8JsonWriter> write, CancellationToken cancellationToken)
    {
        buffer.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(buffer, LineOptions))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        buffer.GetSpan(1)[0] = (byte)'\n';
        buffer.Advance(1);
        await output.WriteAsync(buffer.WrittenMemory, cancellationToken);
    }

    internal static void WriteNullable(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, value);
        }
    }

    internal static void WriteNullable(Utf8JsonWriter writer, string name, long? value)
    {
        if (value is { } v)
        {
            writer.WriteNumber(name, v);
        }
        else
        {
            writer.WriteNull(name);
        }
    }

    internal static void RequireOnly(JsonElement root, params string[] names)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in root.EnumerateObject())
        {
            if (Array.IndexOf(names, property.Name) < 0 || !seen.Add(property.Name))
            {
                throw new FormatException($"unexpected or repeated property '{property.Name}'");
            }
        }
    }

    internal static string RequireString(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : throw new FormatException($"'{name}' must be a string");

    internal static string? OptionalString(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw new FormatException($"'{name}' must be a string or null");
    }

    internal static long RequireInt64(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) ? number : throw new FormatException($"'{name}' must be an integer");

    internal static long? OptionalInt64(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) ? number : throw new FormatException($"'{name}' must be an integer or null");
    }

    private sealed record ExportHeader(string KeyId, string? Tenant, long From, long To, long? FirstSequence, long? LastSequence, long CreatedAt, string? EntriesDigest, TrustedKeys? Keys)
    {
        /// <summary>The header's <c>version</c> (1, 2 or 4).</summary>
        public int Version { get; init; } = AuditExport.Version;
    }
}
