using System.Text.Json.Serialization;

namespace Sovereign.Residency.Audit;

/// <summary>How far a verified log can be trusted.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<AuditVerdict>))]
public enum AuditVerdict
{
    /// <summary>No problem, and every entry is covered by a signed checkpoint, or only a tail younger than the bound is not.</summary>
    [JsonStringEnumMemberName("trusted")]
    Trusted,

    /// <summary>
    /// No problem found, but entries exist that no signed checkpoint covers: none at all, or a tail older than the
    /// bound. Such entries could have been rewritten and re-hashed (and their checkpoints deleted) without a trace.
    /// </summary>
    [JsonStringEnumMemberName("uncovered")]
    Uncovered,

    /// <summary>At least one problem: the log was modified, truncated, or a checkpoint is forged.</summary>
    [JsonStringEnumMemberName("tampered")]
    Tampered,
}

/// <summary>
/// What kind of damage a verifier found. Reports state it by name (<c>"ChainBreak"</c>), as the CLI and the console
/// show it: the API and <c>audit verify --json</c> stated the number, which a script could read only with this source.
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<AuditProblemKind>))]
public enum AuditProblemKind
{
    /// <summary>A row or line cannot be read (bad hex, unknown format version or kind, invalid JSON).</summary>
    Malformed,

    /// <summary>The fields no longer hash to the stored hash: the entry was modified.</summary>
    HashMismatch,

    /// <summary>Sequences are missing: entries were deleted.</summary>
    SequenceGap,

    /// <summary>A sequence appears twice: an entry was inserted.</summary>
    DuplicateSequence,

    /// <summary>An entry's previous hash is not the preceding entry's hash: inserted, removed, reordered or rewritten entries.</summary>
    ChainBreak,

    /// <summary>The head row or a signed checkpoint names a sequence past the end of the log: the tail was removed.</summary>
    Truncated,

    /// <summary>The <c>audit_head</c> row disagrees with the log (missing, other hash, or entries after it).</summary>
    HeadMismatch,

    /// <summary>A validly signed checkpoint names a hash the log does not have at that sequence.</summary>
    CheckpointMismatch,

    /// <summary>A checkpoint or export header signature does not verify: forged or altered.</summary>
    InvalidSignature,

    /// <summary>Signed by a key other than the one trusted.</summary>
    KeyMismatch,

    /// <summary>An export lacks the closing checkpoint, or it does not cover the last line.</summary>
    MissingCheckpoint,

    /// <summary>An export line contradicts its signed header (sequence range, tenant filter, time range).</summary>
    OutOfScope,

    /// <summary>
    /// The log no longer holds the head the signer last signed, as its witness file records it (<see cref="AuditWitness"/>):
    /// the tail was rewritten and re-hashed, or removed, after newer checkpoints were deleted.
    /// </summary>
    WitnessMismatch,

    /// <summary>
    /// The usage ledger disagrees with the log: a usage record states other tokens, cost or tenant than its request's
    /// entry, has no entry at all, or a daily or period total is not the sum of what it totals (the ledger is not
    /// hash-chained; the log is).
    /// </summary>
    LedgerMismatch,

    /// <summary>
    /// An entry's time is before the preceding entry's: the writer never lets time decrease along the chain (reads by
    /// time rely on it), so the entry was moved or its time rewritten, even where the chain was re-hashed to link.
    /// </summary>
    TimeReversed,

    /// <summary>
    /// A member chain that an entry of a verified chain announced (<see cref="AuditActions.ChainOpened"/>) is gone, or
    /// starts with another entry than the one announced: a member's chain was removed or replaced whole.
    /// </summary>
    ChainMissing,

    /// <summary>
    /// Signed by an operator key the trusted key history marks compromised, at or after the time it is compromised
    /// from (<see cref="OperatorKeyHistory"/>): whoever holds the leaked key could have made it.
    /// </summary>
    CompromisedKey,

    /// <summary>
    /// A response the client kept disagrees with the export (<see cref="AuditResponseCheck"/>): no entry for its
    /// request or body id, a 200 its entries say was refused or never ran, a 403 without a refused decision, another
    /// jurisdiction, node or response id than its entries state. Nothing signs a response's headers, so this says the
    /// two records differ, not which is true.
    /// </summary>
    ResponseMismatch,
}

/// <summary>What one operator key signed among what a verification checked (<see cref="AuditVerificationResult.SignedBy"/>).</summary>
/// <param name="KeyId">The key's id.</param>
/// <param name="Status">current, retired or compromised, as the trusted key history has it.</param>
/// <param name="Signatures">Checkpoints and archive records it signed that verified and were accepted.</param>
/// <param name="FirstSequence">The lowest sequence among them.</param>
/// <param name="LastSequence">The highest.</param>
/// <param name="FirstTimestamp">When the earliest was signed (unix ms).</param>
/// <param name="LastTimestamp">When the latest was signed (unix ms).</param>
public sealed record AuditKeyUse(string KeyId, string Status, int Signatures, long FirstSequence, long LastSequence, long FirstTimestamp, long LastTimestamp);

/// <summary>One member chain's part of a verification (<see cref="AuditVerificationResult.Chains"/>).</summary>
/// <param name="Chain">Its name (the member's id).</param>
/// <param name="EntriesChecked">Its entries walked.</param>
/// <param name="LastSequence">Its last sequence.</param>
/// <param name="LastHash">Its last hash.</param>
/// <param name="CoveredThrough">The largest sequence a signed checkpoint of it covers.</param>
/// <param name="Uncovered">Its entries after that.</param>
/// <param name="UncoveredSince">When the oldest of them was written (unix ms).</param>
/// <param name="Verdict">Its own verdict.</param>
/// <param name="VerdictReason">Why.</param>
public sealed record AuditChainReport(string Chain, long EntriesChecked, long LastSequence, string LastHash, long CoveredThrough, long Uncovered, long? UncoveredSince, AuditVerdict Verdict, string VerdictReason);

/// <summary>One problem and where it is.</summary>
/// <param name="Sequence">The entry sequence it concerns, when there is one.</param>
/// <param name="Kind">What kind of damage.</param>
/// <param name="Message">A sentence for the auditor.</param>
/// <param name="Line">For exports: the 1-based line number.</param>
public sealed record AuditProblem(long? Sequence, AuditProblemKind Kind, string Message, long? Line = null)
{
    /// <summary>The longest message kept; a value quoted from a file may be megabytes long.</summary>
    public const int MaxMessageLength = 2_000;

    /// <summary>
    /// A sentence for the auditor. It quotes what the file or the log holds (a line's type, a tenant, a key id, a
    /// reader's error), written by whoever altered it: characters that would act on a terminal instead of showing (an
    /// ESC sequence that hides the lines after it, a line break that forges a line) are shown as <c>\uXXXX</c>
    /// (<see cref="DisplayText"/>), and it is cut at <see cref="MaxMessageLength"/>.
    /// </summary>
    public string Message { get; init; } = DisplayText.Shortened(Message, MaxMessageLength);

    /// <summary>The member chain whose sequence it is; null for the shared chain (or the whole log).</summary>
    public string? Chain { get; init; }

    /// <inheritdoc />
    public override string ToString()
    {
        var where = (Sequence, Line) switch
        {
            ({ } s, { } l) => $"line {l}, seq {s}",
            ({ } s, null) => $"seq {s}",
            (null, { } l) => $"line {l}",
            _ => "log",
        };
        // A chain's name comes from the file too (a section's or an announcement's).
        return Chain is { } chain ? $"chain {DisplayText.Shortened(chain, 256)}, {where}: {Kind}: {Message}" : $"{where}: {Kind}: {Message}";
    }
}

/// <summary>The outcome of verifying an audit log or an export.</summary>
/// <param name="Valid">No problem found.</param>
/// <param name="EntriesChecked">Entries (and redacted lines) walked.</param>
/// <param name="Problems">Up to <see cref="AuditVerifier.MaxProblems"/> problems, ordered by sequence.</param>
public sealed record AuditVerificationResult(bool Valid, long EntriesChecked, IReadOnlyList<AuditProblem> Problems)
{
    /// <summary>The last sequence seen (0 when none).</summary>
    public long LastSequence { get; init; }

    /// <summary>The hash of the last entry seen.</summary>
    public string LastHash { get; init; } = AuditCanonical.GenesisHash;

    /// <summary>Checkpoints whose signature verified.</summary>
    public int CheckpointsVerified { get; init; }

    /// <summary>Problems found beyond <see cref="AuditVerifier.MaxProblems"/> and left out.</summary>
    public long ProblemsOmitted { get; init; }

    /// <summary>The verdict: trusted, uncovered (intact but not covered by a signed checkpoint) or tampered.</summary>
    public AuditVerdict Verdict { get; init; } = AuditVerdict.Trusted;

    /// <summary>A sentence explaining <see cref="Verdict"/> for the operator or auditor.</summary>
    public string VerdictReason { get; init; } = string.Empty;

    /// <summary>The newest validly signed checkpoint that matches the log (null when none).</summary>
    public AuditCheckpoint? LastCheckpoint { get; init; }

    /// <summary>Every entry up to this sequence is covered by a signed checkpoint (0 when none is).</summary>
    public long CoveredThrough { get; init; }

    /// <summary>Entries after <see cref="CoveredThrough"/>: no signed checkpoint vouches for them yet.</summary>
    public long Uncovered { get; init; }

    /// <summary>The time (unix ms) of the oldest uncovered entry, null when every entry is covered.</summary>
    public long? UncoveredSince { get; init; }

    /// <summary>
    /// The signed archive record that vouches for the entries before the first one stored (entries 1..its sequence
    /// were archived to a file and removed; <c>sovereign audit archive</c>), or null when the log starts at 1.
    /// </summary>
    public AuditArchiveRecord? Archive { get; init; }

    /// <summary>
    /// How the allowed inference requests among the entries walked ended: completed, closed as interrupted (their
    /// process stopped first), or open (still running, or left by a stopped process not closed yet). Null where not
    /// counted. Informational: an open request is no problem of the chain and never changes the verdict.
    /// </summary>
    public AuditDecisionOutcomes? Decisions { get; init; }

    /// <summary>
    /// Each member chain, verified as the shared one is (the fields above are the shared chain's, the verdict and the
    /// problems the whole log's). Empty where no member chain exists (a single machine; a cluster before member chains).
    /// </summary>
    public IReadOnlyList<AuditChainReport> Chains { get; init; } = [];

    /// <summary>
    /// Where <see cref="Chains"/> lists member chains: the shared chain's own verdict (<see cref="Verdict"/> is the
    /// whole log's, the worst of the chains'), so a report can show every chain's beside each other. Null otherwise.
    /// </summary>
    public AuditVerdict? SharedVerdict { get; init; }

    /// <summary>Which operator key signed which of the checkpoints that verified, oldest key first (empty where not reported).</summary>
    public IReadOnlyList<AuditKeyUse> SignedBy { get; init; } = [];
}

/// <summary>How strict a verification is about entries no signed checkpoint covers.</summary>
public sealed record AuditVerificationOptions
{
    /// <summary>The default bound: a running gateway signs its head at least every minute, so ten minutes is generous.</summary>
    public static readonly TimeSpan DefaultMaxUncoveredAge = TimeSpan.FromMinutes(10);

    /// <summary>The oldest uncovered entry may be at most this old for the log to be trusted.</summary>
    public TimeSpan MaxUncoveredAge { get; init; } = DefaultMaxUncoveredAge;

    /// <summary>
    /// The last head a signer signed, from its witness file (<see cref="AuditWitness.Read"/>): the log must still
    /// hold it (a <see cref="AuditProblemKind.WitnessMismatch"/> otherwise). Null: not checked.
    /// </summary>
    public AuditWitnessHead? Witness { get; init; }

    /// <summary>The clock the age is measured with.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}
