using Sovereign.Residency.Policies;

namespace Sovereign.Residency.ControlPlane;

/// <summary>A customer of the operator: its policy and plan. Stored as rows; served by its Orleans grain.</summary>
/// <param name="Id">Slug used in URLs and logs (lowercase letters, digits, '-').</param>
/// <param name="Name">Display name.</param>
/// <param name="PolicyJson">The residency policy, serialized (validated before it is stored).</param>
/// <param name="Plan">Pricing plan name.</param>
/// <param name="Disabled">A disabled tenant's keys are refused.</param>
/// <param name="CreatedAt">Unix milliseconds.</param>
/// <param name="UpdatedAt">Unix milliseconds.</param>
/// <param name="LimitsJson">Budgets and rate limits (JSON), or null for none.</param>
public sealed record TenantRecord(string Id, string Name, string PolicyJson, string Plan, bool Disabled, long CreatedAt, long UpdatedAt, string? LimitsJson = null);

/// <summary>A tenant API key. Only the SHA-256 of the secret is stored; the secret is shown once.</summary>
/// <param name="Id">Public key id (<c>key_…</c>), safe to log.</param>
/// <param name="TenantId">Owner.</param>
/// <param name="Prefix">The visible start of the secret, to recognise a key in a list.</param>
/// <param name="SecretHash">Lowercase hex SHA-256 of the whole secret.</param>
/// <param name="Name">Label.</param>
/// <param name="PolicyJson">Optional narrowing of the tenant policy for this key.</param>
/// <param name="CreatedAt">Unix milliseconds.</param>
/// <param name="RevokedAt">Unix milliseconds, or null while active.</param>
/// <param name="ExpiresAt">Unix milliseconds from which the key no longer authenticates, or null: it never expires.</param>
public sealed record ApiKeyRecord(string Id, string TenantId, string Prefix, string SecretHash, string Name, string? PolicyJson, long CreatedAt, long? RevokedAt, long? ExpiresAt = null);

/// <summary>
/// An operator key for <c>/admin/v1</c> issued through the API (<see cref="Prefix"/> set), or the revocation of an
/// operator token set in a member's configuration (<see cref="Prefix"/> null, revoked from the start). Only the SHA-256
/// of the secret is stored; the secret is shown once.
/// </summary>
/// <param name="Id">Public id (<c>opk_…</c>, or <c>cfg_…</c> for a configured token's revocation), safe to log.</param>
/// <param name="Name">The operator's label for the key (for a configured token: the audit actor it had).</param>
/// <param name="Prefix">The visible start of the secret, or null for a configured token.</param>
/// <param name="SecretHash">Lowercase hex SHA-256 of the whole secret.</param>
/// <param name="CreatedAt">Unix milliseconds.</param>
/// <param name="CreatedBy">The audit actor that issued it (or revoked the configured token).</param>
/// <param name="ExpiresAt">Unix milliseconds from which it no longer authenticates, or null.</param>
/// <param name="RevokedAt">Unix milliseconds, or null while active.</param>
/// <param name="RevokedBy">The audit actor that revoked it.</param>
public sealed record OperatorKeyRecord(string Id, string Name, string? Prefix, string SecretHash, long CreatedAt, string CreatedBy, long? ExpiresAt, long? RevokedAt, string? RevokedBy);

/// <summary>A one-time token that lets a node join in a jurisdiction (and pool). Only its SHA-256 is stored.</summary>
public sealed record JoinTokenRecord(string Id, string TokenHash, string Jurisdiction, string? Pool, long CreatedAt, long ExpiresAt, string? DeviceClass = null);

/// <summary>Whether a node takes traffic.</summary>
public enum NodeState
{
    /// <summary>Serving.</summary>
    Active,

    /// <summary>Taken out of rotation by the operator (or found unreachable).</summary>
    Down,

    /// <summary>Finishing the work it has; gateways send it nothing new (before a restart or removal).</summary>
    Draining,
}

/// <summary>A node and the models it serves. Its jurisdiction is bound by an operator-signed credential.</summary>
/// <param name="Id">Node id.</param>
/// <param name="Jurisdiction">ISO 3166-1 alpha-2 country the node runs in.</param>
/// <param name="Kind">Local or external.</param>
/// <param name="BaseUrl">For external nodes: the OpenAI-compatible base URL (ending before /v1).</param>
/// <param name="ModelsJson">JSON array of served models: {"id", "upstream", "capacity"}.</param>
/// <param name="State">Active or down.</param>
/// <param name="Credential">The operator-signed credential binding id, jurisdiction, kind and URL.</param>
/// <param name="UpstreamKey">Bearer key for the external engine, if it needs one.</param>
/// <param name="CreatedAt">Unix milliseconds.</param>
/// <param name="UpdatedAt">Unix milliseconds.</param>
/// <param name="PromptCache">For external engines: how the engine's prompt cache is kept apart between tenants (null: shared).</param>
public sealed record NodeRecord(string Id, string Jurisdiction, NodeKind Kind, string? BaseUrl, string ModelsJson, NodeState State, string Credential, string? UpstreamKey, long CreatedAt, long UpdatedAt, string? PromptCache = null);

/// <summary>
/// A cluster certificate revoked before it expires: <see cref="Kind"/> <c>serial</c> (one certificate, by its serial
/// number in upper-case hex) or <c>node</c> (every certificate of node id <see cref="Value"/> whose validity began before
/// <see cref="RevokedAt"/>, unix ms).
/// </summary>
public sealed record CertificateRevocationRecord(string Kind, string Value, long RevokedAt, string? Reason);

/// <summary>What <see cref="ControlPlaneStore.WithdrawJoinTokenAsync"/> found.</summary>
public enum JoinTokenWithdrawal
{
    /// <summary>The token was unused and is withdrawn now.</summary>
    Withdrawn,

    /// <summary>The token was withdrawn before (nothing changed).</summary>
    AlreadyWithdrawn,

    /// <summary>A node joined with the token: there is nothing left to withdraw.</summary>
    Used,

    /// <summary>No token has this id.</summary>
    NotFound,
}
