namespace Sovereign.Residency.Audit;

/// <summary>What an audit entry records: a change made by an operator, or one inference request's routing.</summary>
public enum AuditKind
{
    /// <summary>An operator changed state (tenant, key, policy, node). Serialized as <c>admin</c>.</summary>
    Admin,

    /// <summary>One inference request and where it was (or was not) allowed to run. Serialized as <c>inference</c>.</summary>
    Inference,
}

/// <summary>The residency decision on a request. Serialized as <c>allowed</c> / <c>refused</c>.</summary>
public enum AuditDecision
{
    /// <summary>The request ran where the policy allows.</summary>
    Allowed,

    /// <summary>The request was refused (fail closed); <see cref="AuditEntry.DecisionCode"/> says why.</summary>
    Refused,
}

/// <summary>Well-known <see cref="AuditRecord.Action"/> values; actions are free-form dotted names.</summary>
public static class AuditActions
{
    /// <summary>A tenant was created.</summary>
    public const string TenantCreate = "tenant.create";

    /// <summary>A tenant was changed.</summary>
    public const string TenantUpdate = "tenant.update";

    /// <summary>A tenant was deleted.</summary>
    public const string TenantDelete = "tenant.delete";

    /// <summary>An API key was issued.</summary>
    public const string KeyCreate = "key.create";

    /// <summary>An API key was revoked.</summary>
    public const string KeyRevoke = "key.revoke";

    /// <summary>A residency policy changed (put the old and new policy JSON in <see cref="AuditRecord.Details"/>).</summary>
    public const string PolicyUpdate = "policy.update";

    /// <summary>An inference request was routed and served.</summary>
    public const string InferenceAllowed = "inference.allowed";

    /// <summary>An inference request was refused by the residency policy.</summary>
    public const string InferenceRefused = "inference.refused";

    /// <summary>How an allowed inference request ended (its tokens and outcome); follows its decision.</summary>
    public const string InferenceCompleted = "inference.completed";

    /// <summary>
    /// A correction of an allowed request's outcome: the request was answered as refused (its outcome could not be
    /// recorded in time: 503 <c>audit_unavailable</c>, nothing delivered), and the commit of the outcome it was running
    /// to, sent and never answered, was applied after all, billing it. This entry states the outcome the request was
    /// answered with (a refusal at no cost: no tokens, <c>cost</c> 0) and names the entry it corrects (<c>corrects</c>,
    /// its sequence, and what it stated: <c>corrected_outcome</c>, <c>corrected_cost</c>, <c>corrected_prompt_tokens</c>,
    /// <c>corrected_completion_tokens</c>); the usage record was corrected in the same transaction. The corrected entry
    /// stays in the chain as it was committed.
    /// </summary>
    public const string InferenceCorrected = "inference.corrected";

    /// <summary>
    /// An allowed request whose process stopped (killed, crashed) before it recorded how the request ended: written
    /// by the next start of the same gateway in its place. Its tokens are unknown (null), none were billed.
    /// </summary>
    public const string InferenceInterrupted = "inference.interrupted";

    /// <summary>
    /// A signer first signed another member's chain (details <c>chain</c>, and <c>first_hash</c>, the hash of its entry
    /// 1): from then on the verifier expects that chain, so one removed whole (entries, head and checkpoints) shows.
    /// </summary>
    public const string ChainOpened = "audit.chain_opened";

    /// <summary>
    /// A signer signed other members' chains: <c>details</c> hold, for every member chain this signer has signed so
    /// far, <c>chain:NAME</c> = <c>SEQUENCE:HASH</c>, the newest head of it this signer signed. Committed to the signer's
    /// own chain before the checkpoints, so each chain's head is also vouched for by another chain (covered by that
    /// signer's own checkpoints and witness): a member's tail rewritten after a signed head, with the checkpoint there
    /// deleted first, no longer matches (the verifier's <see cref="AuditProblemKind.WitnessMismatch"/>, naming the chain).
    /// </summary>
    public const string ChainsSigned = "audit.chains_signed";

    /// <summary>The prefix of a <see cref="ChainsSigned"/> entry's detail keys; the chain's name follows.</summary>
    public const string ChainsSignedPrefix = "chain:";

    /// <summary>
    /// The <see cref="ChainsSigned"/> detail key of the shared chain's newest head this signer signed (<c>SEQUENCE:HASH</c>),
    /// present once a signer on a member chain has signed the shared chain (its writers of an earlier release, or with
    /// member chains off, hold no checkpoint of their own then).
    /// </summary>
    public const string ChainsSignedShared = "shared";
}

/// <summary>
/// What the caller asks <see cref="AuditLog.AppendAsync"/> to record; the log adds the sequence, time and hashes.
/// <para>
/// <b>Never put prompt or completion content here</b> (nor in <see cref="Reasons"/> or <see cref="Details"/>): the
/// audit trail is kept for years, exported to auditors and cannot be edited, so it records metadata only (who, which
/// model, where it ran, why, token counts).
/// </para>
/// </summary>
public sealed record AuditRecord
{
    /// <summary>Admin change or inference request.</summary>
    public required AuditKind Kind { get; init; }

    /// <summary>Who acted: the operator's name for admin changes, the API key id for inference.</summary>
    public required string Actor { get; init; }

    /// <summary>What happened, e.g. <see cref="AuditActions.PolicyUpdate"/>.</summary>
    public required string Action { get; init; }

    /// <summary>The tenant concerned (exports filter on it).</summary>
    public string? Tenant { get; init; }

    /// <summary>The API key used (its id, never the secret).</summary>
    public string? KeyId { get; init; }

    /// <summary>The model requested.</summary>
    public string? Model { get; init; }

    /// <summary>The gateway that took the request.</summary>
    public string? Gateway { get; init; }

    /// <summary>The node that ran it (null when refused).</summary>
    public string? Node { get; init; }

    /// <summary>The jurisdiction the request ran in (or would have).</summary>
    public string? Jurisdiction { get; init; }

    /// <summary>Allowed or refused; null for admin changes.</summary>
    public AuditDecision? Decision { get; init; }

    /// <summary>A stable machine code for the decision, e.g. <c>jurisdiction_not_allowed</c>.</summary>
    public string? DecisionCode { get; init; }

    /// <summary>Human-readable reasons behind the decision, in order.</summary>
    public IReadOnlyList<string> Reasons { get; init; } = [];

    /// <summary>Prompt tokens consumed (inference).</summary>
    public long? PromptTokens { get; init; }

    /// <summary>Completion tokens produced (inference).</summary>
    public long? CompletionTokens { get; init; }

    /// <summary>A small map for admin changes, e.g. <c>old</c> / <c>new</c> policy JSON. Keys are unordered.</summary>
    public IReadOnlyDictionary<string, string> Details { get; init; } = AuditEntry.NoDetails;

    /// <summary>
    /// Set by a caller that made <see cref="Reasons"/> and <see cref="Details"/> (an ordinal
    /// <see cref="Dictionary{TKey, TValue}"/>) for this record alone and changes neither after: the entry keeps them
    /// instead of a copy. Every governed request appends two such records (its decision and its outcome); a record
    /// without it is copied, so a caller that goes on editing its dictionary cannot change an entry under the writer.
    /// </summary>
    internal bool HandsOverCollections { get; init; }
}

/// <summary>
/// One committed, hash-chained audit entry. <see cref="Hash"/> is SHA-256 over the canonical v1 serialization of
/// every other field, <see cref="PreviousHash"/> included (see <see cref="AuditCanonical"/>), so changing, removing,
/// inserting or reordering an entry breaks the chain. Like <see cref="AuditRecord"/>, it never holds prompt or
/// completion content.
/// </summary>
public sealed record AuditEntry
{
    /// <summary>
    /// The member chain the entry is in (<see cref="AuditChainScope"/>); null for the shared chain. Not hashed: a member
    /// chain's first entry links to a genesis made from its name (<see cref="AuditCanonical.GenesisOf"/>).
    /// </summary>
    public string? Chain { get; init; }

    /// <summary>1-based and gapless within its chain.</summary>
    public required long Sequence { get; init; }

    /// <summary>Unix milliseconds (UTC), never decreasing along the chain.</summary>
    public required long Timestamp { get; init; }

    /// <inheritdoc cref="AuditRecord.Kind"/>
    public required AuditKind Kind { get; init; }

    /// <inheritdoc cref="AuditRecord.Tenant"/>
    public string? Tenant { get; init; }

    /// <inheritdoc cref="AuditRecord.KeyId"/>
    public string? KeyId { get; init; }

    /// <inheritdoc cref="AuditRecord.Actor"/>
    public required string Actor { get; init; }

    /// <inheritdoc cref="AuditRecord.Action"/>
    public required string Action { get; init; }

    /// <inheritdoc cref="AuditRecord.Model"/>
    public string? Model { get; init; }

    /// <inheritdoc cref="AuditRecord.Gateway"/>
    public string? Gateway { get; init; }

    /// <inheritdoc cref="AuditRecord.Node"/>
    public string? Node { get; init; }

    /// <inheritdoc cref="AuditRecord.Jurisdiction"/>
    public string? Jurisdiction { get; init; }

    /// <inheritdoc cref="AuditRecord.Decision"/>
    public AuditDecision? Decision { get; init; }

    /// <inheritdoc cref="AuditRecord.DecisionCode"/>
    public string? DecisionCode { get; init; }

    /// <inheritdoc cref="AuditRecord.Reasons"/>
    public IReadOnlyList<string> Reasons { get; init; } = [];

    /// <inheritdoc cref="AuditRecord.PromptTokens"/>
    public long? PromptTokens { get; init; }

    /// <inheritdoc cref="AuditRecord.CompletionTokens"/>
    public long? CompletionTokens { get; init; }

    /// <inheritdoc cref="AuditRecord.Details"/>
    public IReadOnlyDictionary<string, string> Details { get; init; } = NoDetails;

    /// <summary>
    /// The details of a record or entry that has none, shared: an initializer's own empty dictionary was made for every
    /// record and entry (four per governed request) and then replaced.
    /// </summary>
    internal static readonly IReadOnlyDictionary<string, string> NoDetails = System.Collections.ObjectModel.ReadOnlyDictionary<string, string>.Empty;

    /// <summary>The previous entry's <see cref="Hash"/>; 64 zeros for sequence 1.</summary>
    public required string PreviousHash { get; init; }

    /// <summary>SHA-256 of the canonical serialization, lowercase hex.</summary>
    public required string Hash { get; init; }

    /// <summary>Recomputes the hash from the fields (what a verifier does).</summary>
    public string ComputeHash() => AuditCanonical.EntryHash(this);

    internal static AuditEntry FromRecord(AuditRecord record, long sequence, long timestamp, string previousHash) => new()
    {
        Sequence = sequence,
        Timestamp = timestamp,
        Kind = record.Kind,
        Tenant = record.Tenant,
        KeyId = record.KeyId,
        Actor = record.Actor,
        Action = record.Action,
        Model = record.Model,
        Gateway = record.Gateway,
        Node = record.Node,
        Jurisdiction = record.Jurisdiction,
        Decision = record.Decision,
        DecisionCode = record.DecisionCode,
        Reasons = record.Reasons.Count == 0 ? [] : record.HandsOverCollections ? record.Reasons : [.. record.Reasons],
        PromptTokens = record.PromptTokens,
        CompletionTokens = record.CompletionTokens,

        // A copy unless the record's maker handed its dictionary over (AuditRecord.HandsOverCollections).
        Details = record.HandsOverCollections && record.Details is Dictionary<string, string> handedOver ? handedOver
            : record.Details.Count == 0 ? NoDetails
            : new Dictionary<string, string>(record.Details, StringComparer.Ordinal),
        PreviousHash = previousHash,
        Hash = string.Empty,
    };
}
