namespace Sovereign.Cluster.Grains;

/// <summary>A tenant as grains hand it out.</summary>
[GenerateSerializer, Immutable]
public sealed record TenantView(
    [property: Id(0)] string Id,
    [property: Id(1)] string Name,
    [property: Id(2)] string PolicyJson,
    [property: Id(3)] string Plan,
    [property: Id(4)] bool Disabled,
    [property: Id(5)] long CreatedAt,
    [property: Id(6)] long UpdatedAt);

/// <summary>A tenant change as its single activation made it: the tenant it was applied to, and the tenant after it.</summary>
[GenerateSerializer, Immutable]
public sealed record TenantUpdate([property: Id(0)] TenantView Before, [property: Id(1)] TenantView After);

/// <summary>A key's revocation: when it took effect (unix ms) and whether the call that answered made it.</summary>
[GenerateSerializer, Immutable]
public sealed record KeyRevocation([property: Id(0)] long RevokedAt, [property: Id(1)] bool Newly);

/// <summary>A key as listed (never its secret).</summary>
[GenerateSerializer, Immutable]
public sealed record ApiKeyView(
    [property: Id(0)] string Id,
    [property: Id(1)] string TenantId,
    [property: Id(2)] string Prefix,
    [property: Id(3)] string Name,
    [property: Id(4)] string? PolicyJson,
    [property: Id(5)] long CreatedAt,
    [property: Id(6)] long? RevokedAt,
    [property: Id(7)] long? ExpiresAt = null);

/// <summary>A new key: the only time its secret is returned.</summary>
[GenerateSerializer, Immutable]
public sealed record CreatedApiKey([property: Id(0)] ApiKeyView Key, [property: Id(1)] string Secret);

/// <summary>Who a presented secret belongs to, as of now; <see cref="ExpiresAt"/> (unix ms) is fixed when the key is issued.</summary>
[GenerateSerializer, Immutable]
public sealed record KeyIdentity(
    [property: Id(0)] string KeyId,
    [property: Id(1)] string TenantId,
    [property: Id(2)] string? KeyPolicyJson,
    [property: Id(3)] bool Revoked,
    [property: Id(4)] long? ExpiresAt = null);

/// <summary>
/// The tenant a key authorizes now: null when the tenant does not exist; <see cref="KeyRevoked"/> when the tenant's
/// single activation has revoked the key (so a gateway's cached key identity can never outlive a revocation).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record KeyAuthorization([property: Id(0)] TenantView? Tenant, [property: Id(1)] bool KeyRevoked);

/// <summary>A registered node as grains hand it out.</summary>
[GenerateSerializer, Immutable]
public sealed record NodeView(
    [property: Id(0)] string Id,
    [property: Id(1)] string Jurisdiction,
    [property: Id(2)] string Kind,
    [property: Id(3)] string? BaseUrl,
    [property: Id(4)] IReadOnlyList<NodeModel> Models,
    [property: Id(5)] string State,
    [property: Id(6)] string Credential,
    [property: Id(7)] string? UpstreamKey,
    [property: Id(8)] long UpdatedAt,
    [property: Id(9)] NodeLoad? Load = null,
    [property: Id(10)] string? PromptCache = null)
{
    /// <summary>How the engine keeps its prompt cache apart between tenants (null on rows from before the setting: shared).</summary>
    public string PromptCacheOrShared => PromptCache ?? EnginePromptCaches.Shared;
}

/// <summary>
/// How an external engine's own prompt cache (vLLM's, llama-server's) is kept apart between tenants, as the registry
/// stores it. A cache shared by tenants tells one of them, by <c>cached_tokens</c> and the time to the first token,
/// whether another sent a text.
/// </summary>
public static class EnginePromptCaches
{
    /// <summary>The engine's cache serves every tenant (Ollama, OpenAI-compatible services: nothing to set per request).</summary>
    public const string Shared = "shared";

    /// <summary>Per tenant: the relay sets vLLM's <c>cache_salt</c> to a digest of the tenant (and of the client's own salt).</summary>
    public const string Salt = "salt";

    /// <summary>Not reused at all: the relay sends llama-server's <c>cache_prompt: false</c>.</summary>
    public const string Off = "off";

    /// <summary>The names, as the admin API and the settings take them.</summary>
    public static readonly IReadOnlyList<string> All = [Shared, Salt, Off];

    /// <summary>The stored name of <paramref name="value"/> (any case), or null when it is none of <see cref="All"/>.</summary>
    public static string? Parse(string? value) => All.FirstOrDefault(name => string.Equals(name, value?.Trim(), StringComparison.OrdinalIgnoreCase));
}

/// <summary>
/// What a cluster node reports about itself at least every second (and at once when a model loads or unloads):
/// per model its busy and free slots, queue depth and KV-cache use, the node's accelerators and its device class
/// (configured, or derived from the accelerators). <see cref="ReportedAt"/> is the registry's clock when the report
/// arrived (Unix ms), whatever the node sent: nodes' clocks are not trusted to agree with the gateways'.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record NodeLoad(
    [property: Id(0)] long ReportedAt,
    [property: Id(1)] IReadOnlyList<ModelLoad> Models,
    [property: Id(2)] IReadOnlyList<Accelerator> Accelerators,
    [property: Id(3)] IReadOnlyList<string>? Available = null,
    [property: Id(4)] string? DeviceClass = null);

/// <summary>
/// One loaded model's load on a node. <see cref="FromGateways"/> counts the requests each gateway relayed that are
/// running or queued there (gateways with none are left out), so a gateway can add its own exact count to what the
/// others had sent at the report; null from a node that does not break its load down.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record ModelLoad(
    [property: Id(0)] string Model,
    [property: Id(1)] int Running,
    [property: Id(2)] int FreeSlots,
    [property: Id(3)] int QueueDepth,
    [property: Id(4)] double KvCacheUse,
    [property: Id(5)] IReadOnlyDictionary<string, int>? FromGateways = null);

/// <summary>A device a node computes on: a GPU (from nvidia-smi) or the CPU.</summary>
[GenerateSerializer, Immutable]
public sealed record Accelerator(
    [property: Id(0)] string Kind,
    [property: Id(1)] string Name,
    [property: Id(2)] long MemoryTotalMiB,
    [property: Id(3)] long MemoryUsedMiB);

/// <summary>
/// A model on a node: the id clients use, the engine's own name for it, how many requests it takes at once, its
/// kind (<see cref="NodeModelKinds"/>: a chat model serves chat, text completions and responses; an embedding model
/// serves <c>/v1/embeddings</c>; null, as registered before kinds existed, is chat), and the languages it serves well
/// (ISO 639-1 codes; a gateway's <c>auto</c> alias routes by them; null or empty: none declared).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record NodeModel(
    [property: Id(0)] string Id,
    [property: Id(1)] string Upstream,
    [property: Id(2)] int Capacity,
    [property: Id(3)] string? License = null,
    [property: Id(4)] string? Origin = null,
    [property: Id(5)] string? Kind = null,
    [property: Id(6)] string[]? Languages = null)
{
    /// <summary>Whether the model serves <c>/v1/embeddings</c> (and nothing else).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool IsEmbedding => Kind == NodeModelKinds.Embedding;

    // By value, languages included: the registry compares a node's report with what it stored to persist only changes.
    public bool Equals(NodeModel? other) =>
        other is not null && Id == other.Id && Upstream == other.Upstream && Capacity == other.Capacity && License == other.License
        && Origin == other.Origin && Kind == other.Kind && (Languages ?? []).SequenceEqual(other.Languages ?? []);

    public override int GetHashCode() => HashCode.Combine(Id, Upstream, Capacity, License, Origin, Kind, Languages?.Length ?? 0);
}

/// <summary>The kinds of model a node serves, as the registry stores them.</summary>
public static class NodeModelKinds
{
    /// <summary>Chat, text completions and responses (the default).</summary>
    public const string Chat = "chat";

    /// <summary><c>/v1/embeddings</c>.</summary>
    public const string Embedding = "embedding";
}

/// <summary>
/// The whole registry with a version that changes on every write (for caches), and the registry's clock when it was
/// read (Unix ms): load reports are stamped with that clock, so a reader measures their age against it, not its own.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record NodeRegistrySnapshot([property: Id(0)] long Version, [property: Id(1)] IReadOnlyList<NodeView> Nodes, [property: Id(2)] long Now = 0);

/// <summary>One tenant's configuration and keys; the single writer of its rows.</summary>
/// <remarks>
/// Version 1 added <see cref="TryUpdateIfVersionAsync"/> (session 34), version 2 <see cref="RefundRequestAsync"/>
/// (session 37), version 3 <see cref="AdmitAuthorizedAsync"/> (session 41), version 4 the budget leases
/// (<see cref="AdmitAuthorizedLeasingAsync"/>, <see cref="AdmitFromLeaseAsync"/>, <see cref="ReturnLeaseAsync"/>; session 52): a call from this release moves an activation of the previous one to a member that has the method
/// (tests/.../Cluster/cluster-contracts.txt).
/// </remarks>
[Orleans.CodeGeneration.Version(4)]
public interface ITenantGrain : IGrainWithStringKey
{
    /// <summary>The tenant, or null if it does not exist.</summary>
    Task<TenantView?> GetAsync();

    /// <summary>
    /// The tenant as one of its keys may use it now: one call per request. Gateways cache the immutable part of a key
    /// (hash to tenant, key id, key policy); revocation lives here, in the tenant's single activation.
    /// </summary>
    Task<KeyAuthorization> AuthorizeKeyAsync(string keyId);

    /// <summary>
    /// Creates or updates the tenant (the caller validated the policy). Throws <see cref="BudgetCurrencyConflictException"/>
    /// when the new plan's currency differs from the currency of the tenant's budgets (nothing changes then).
    /// </summary>
    /// <remarks>Kept for gateways of the previous release during a rolling upgrade; this release calls <see cref="CreateAsync"/> and <see cref="UpdateAsync"/>.</remarks>
    Task<TenantView> UpsertAsync(string name, string policyJson, string plan, bool disabled);

    /// <summary>
    /// Creates the tenant unless it exists (null then), decided in its single activation so two creations at once
    /// cannot both succeed, the second overwriting the first. The caller validated the policy.
    /// </summary>
    Task<TenantView?> CreateAsync(string name, string policyJson, string plan, bool disabled);

    /// <summary>
    /// Changes what is given (null keeps it), merged with the tenant as its single activation holds it, so changes
    /// made at once each keep the others' fields; null if the tenant does not exist. Throws
    /// <see cref="BudgetCurrencyConflictException"/> as <see cref="UpsertAsync"/> does (nothing changes then). When
    /// every field given is what the tenant has, nothing is written: the update's After is its Before.
    /// </summary>
    Task<TenantUpdate?> UpdateAsync(string? name, string? policyJson, string? plan, bool? disabled);

    /// <summary>
    /// As <see cref="UpdateAsync"/>, only if the tenant is still at <paramref name="ifVersion"/>
    /// (<see cref="TenantVersions.Of(TenantView)"/>; null: whatever it is), checked in the same turn as the write.
    /// Throws <see cref="TenantVersionConflictException"/> when it is not (nothing changes then).
    /// </summary>
    /// <remarks>Kept for gateways of the previous release during a rolling upgrade; this release calls <see cref="TryUpdateIfVersionAsync"/>.</remarks>
    Task<TenantUpdate?> UpdateIfVersionAsync(string? ifVersion, string? name, string? policyJson, string? plan, bool? disabled);

    /// <summary>
    /// As <see cref="UpdateAsync"/>, only if the tenant is still at <paramref name="ifVersion"/>
    /// (<see cref="TenantVersions.Of(TenantView)"/>; null: whatever it is), checked in the same turn as the write. A
    /// refusal is returned, as <see cref="SetLimitsIfVersionAsync"/> returns its own (nothing changes then):
    /// <see cref="TenantChangeRefusal.TenantNotFound"/>, <see cref="TenantChangeRefusal.VersionChanged"/>, or
    /// <see cref="TenantChangeRefusal.BudgetCurrencyConflict"/> with both currencies; applied, the result holds the update.
    /// </summary>
    Task<TenantChangeResult> TryUpdateIfVersionAsync(string? ifVersion, string? name, string? policyJson, string? plan, bool? disabled);

    /// <summary>The tenant's keys.</summary>
    Task<IReadOnlyList<ApiKeyView>> ListKeysAsync();

    /// <summary>
    /// Issues a key; its secret is returned once and stored only as a hash. <paramref name="expiresAt"/> (unix ms, the
    /// caller checked it is in the future) ends its validity for good; null: valid until revoked.
    /// </summary>
    Task<CreatedApiKey> CreateKeyAsync(string name, string? policyJson, long? expiresAt = null);

    /// <summary>Revokes a key; takes effect on the next request everywhere. Returns false if it is not this tenant's.</summary>
    /// <remarks>Kept for gateways of the previous release during a rolling upgrade; this release calls <see cref="RevokeKeyOnceAsync"/>.</remarks>
    Task<bool> RevokeKeyAsync(string keyId);

    /// <summary>
    /// Revokes a key (takes effect on the next request everywhere) and says whether this call revoked it or it already
    /// was, decided in the tenant's single activation so two revocations at once cannot both count; null if the key
    /// is not this tenant's.
    /// </summary>
    Task<KeyRevocation?> RevokeKeyOnceAsync(string keyId);

    /// <summary>The tenant's budgets and rate limits.</summary>
    Task<TenantLimits> GetLimitsAsync();

    /// <summary>
    /// Replaces the budgets and rate limits (the caller validated them). Budgets are set in the currency of the
    /// tenant's plan, so a tenant whose plan is not in the price book can have rate limits but no budgets.
    /// </summary>
    Task<TenantChangeResult> SetLimitsAsync(TenantLimits limits);

    /// <summary>
    /// As <see cref="SetLimitsAsync"/>, only if the limits are still at <paramref name="ifVersion"/>
    /// (<see cref="TenantVersions.Of(TenantLimits)"/> of what <see cref="GetLimitsAsync"/> answers; null: whatever
    /// they are): refused with <see cref="TenantChangeRefusal.VersionChanged"/> when they are not.
    /// </summary>
    Task<TenantChangeResult> SetLimitsIfVersionAsync(TenantLimits limits, string? ifVersion);

    /// <summary>
    /// Rate-limits the request and reserves the most it can cost, atomically for tenant and key. This grain is the
    /// single writer of the tenant's money, so concurrent requests and gateway replicas can never overspend.
    /// </summary>
    Task<AdmissionResult> AdmitAsync(AdmissionRequest request);

    /// <summary>
    /// Authorization and admission in one turn, for a gateway that authorized the key from its cache and decided on the
    /// cached tenant: refused (<see cref="AuthorizedAdmission.Refusal"/>, nothing taken or reserved) when the key is
    /// revoked or expired, the tenant gone or disabled, or its policy or plan no longer the version the decision used;
    /// otherwise exactly <see cref="AdmitAsync"/>. One grain call per request instead of two.
    /// </summary>
    Task<AuthorizedAdmission> AdmitAuthorizedAsync(AuthorizedAdmissionRequest request);

    /// <summary>
    /// Counts one request that spends no tokens and no money (language detection) against the requests-per-minute
    /// limits of the tenant and of <paramref name="keyId"/>: the same limiter <see cref="AdmitAsync"/> uses, with
    /// nothing reserved, so there is nothing to settle. Refused (taking nothing) when either limit is reached.
    /// </summary>
    Task<AdmissionResult> CountRequestAsync(string? keyId);

    /// <summary>
    /// Gives back one request <see cref="CountRequestAsync"/> counted, when the work then refused it as the client's
    /// mistake (a node's 400 for a relayed <c>/detokenize</c>): an invalid request is not counted, wherever it is
    /// found invalid. The limits' view after it, for the answer's headers.
    /// </summary>
    Task<AdmissionResult> RefundRequestAsync(string? keyId);

    /// <summary>
    /// Settles an admitted request at its actual cost and refunds unused tokens; idempotent per request. Returns the
    /// tenant-wide budget left (null without one), for the remaining-budget metric.
    /// </summary>
    Task<decimal?> SettleAsync(SettlementRequest settlement);

    /// <summary>Each budget's limit, spend, reservations and remaining amount now, in the budgets' currency.</summary>
    Task<IReadOnlyList<BudgetStatusView>> GetBudgetsAsync();

    /// <summary>
    /// Releases reservations older than the reservation lifetime (their request never settled: the caller crashed
    /// or lost the settle) and logs each as a money correction. A grain timer calls it while reservations are
    /// outstanding; returns how many were released.
    /// </summary>
    Task<int> ReleaseExpiredReservationsAsync();

    /// <summary>
    /// Renews the reservations of admitted requests that are still running (by request id), so a request longer than
    /// the reservation lifetime keeps the money it may still spend; a gateway calls it for its long requests. Returns
    /// how many were held (an id already settled or expired is skipped).
    /// </summary>
    Task<int> RenewReservationsAsync(IReadOnlyList<string> requestIds);

    /// <summary>
    /// As <see cref="AdmitAuthorizedAsync"/>, and when it admits, grants the calling gateway a budget lease as
    /// <paramref name="ask"/> asks where the budgets and rate limits leave enough (else none): the lease's money is
    /// reserved in this grain and its requests and tokens taken from the rate limits until it is returned or closed.
    /// </summary>
    Task<LeasedAdmission> AdmitAuthorizedLeasingAsync(AuthorizedAdmissionRequest request, BudgetLeaseAsk ask);

    /// <summary>
    /// A request a gateway admitted from lease <paramref name="leaseId"/>: authorized as <see cref="AdmitAuthorizedAsync"/>
    /// does in this turn, then its most cost moved from the lease into a reservation of its own (settled, renewed and
    /// expired as any); a lease this grain no longer holds (closed, expired, or an earlier activation's) admits it as
    /// <see cref="AdmitAuthorizedAsync"/> would, refusals included, and answers no lease.
    /// </summary>
    Task<LeasedAdmission> AdmitFromLeaseAsync(Guid leaseId, AuthorizedAdmissionRequest request);

    /// <summary>Gives a lease's unspent money, requests and tokens back (its term ended, or its gateway stops); unknown: nothing.</summary>
    Task ReturnLeaseAsync(Guid leaseId);
}

/// <summary>Resolves one presented secret (keyed by its hash) to its tenant; the cache that revocation invalidates.</summary>
public interface IApiKeyGrain : IGrainWithStringKey
{
    /// <summary>The key's identity, or null for an unknown secret.</summary>
    Task<KeyIdentity?> ResolveAsync();

    /// <summary>Reloads from the store (after a revocation or policy change).</summary>
    Task RefreshAsync();
}

/// <summary>The node registry: every node, its jurisdiction, credential, state and models.</summary>
public interface INodeRegistryGrain : IGrainWithStringKey
{
    /// <summary>All nodes and the registry version.</summary>
    Task<NodeRegistrySnapshot> GetAsync();

    /// <summary>Adds or replaces a node (the caller verified its credential).</summary>
    Task<NodeView> UpsertAsync(NodeView node);

    /// <summary>
    /// Adds a node, or replaces the one registered under its id keeping the state its operator set (active, draining,
    /// down), decided here so a state set meanwhile is kept too (the caller verified its credential).
    /// </summary>
    Task<NodeView> RegisterAsync(NodeView node);

    /// <summary>Marks a node active or down; false if unknown.</summary>
    Task<bool> SetStateAsync(string nodeId, string state);

    /// <summary>Removes a node; false if unknown.</summary>
    Task<bool> DeleteAsync(string nodeId);

    /// <summary>
    /// A registered node's live report: the models it serves now (persisted when they change) and its load (kept in
    /// memory: it is stale within seconds anyway). False if the node is not registered.
    /// </summary>
    Task<bool> ReportAsync(string nodeId, IReadOnlyList<NodeModel> models, NodeLoad load);
}
