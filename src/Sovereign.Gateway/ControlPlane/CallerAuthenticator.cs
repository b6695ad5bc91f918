using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Observability;
using Sovereign.Gateway.OpenAI;
using Sovereign.Residency.ControlPlane;
using Sovereign.Residency.Jurisdictions;
using Sovereign.Residency.Policies;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>Who is calling /v1, and under which effective policy.</summary>
/// <param name="TenantId">The tenant, or <see cref="AnonymousTenant"/>.</param>
/// <param name="KeyId">The key id (safe to log), or null for anonymous callers.</param>
/// <param name="Policy">The tenant policy narrowed by the key's; null for anonymous callers (local node only).</param>
/// <param name="Plan">The tenant's pricing plan.</param>
public sealed record Caller(string TenantId, string? KeyId, ResidencyPolicy? Policy, string Plan)
{
    /// <summary>The tenant id anonymous requests are recorded under.</summary>
    public const string AnonymousTenant = "anonymous";

    /// <summary>
    /// Whether this is an anonymous (no tenant) caller: one without a tenant key. Not decided by the tenant id: a tenant
    /// created as "anonymous" (possible until that id was reserved) would have had its keys' requests skip its budget and
    /// rate limits.
    /// </summary>
    public bool IsAnonymous => KeyId is null;

    /// <summary>
    /// Set when the key's authorization and the tenant were taken from this gateway's cache, not asked of the tenant's
    /// grain: admission confirms them in the same grain call (<see cref="Sovereign.Cluster.Grains.ITenantGrain.AdmitAuthorizedAsync"/>),
    /// and a refusal before admission confirms them first (<see cref="CallerAuthenticator.ConfirmAsync"/>).
    /// </summary>
    internal ProvisionalAuthorization? Provisional { get; init; }
}

/// <summary>
/// A key's authorization taken from a gateway's cache for one request: the key's identity and the version of the
/// tenant's policy and plan the request is decided on (<see cref="TenantVersions.DecisionOf"/>). Confirmed once the
/// tenant's grain answered for it in this request (admission, or a refusal's check).
/// </summary>
internal sealed class ProvisionalAuthorization(string keyHash, KeyIdentity identity, string decisionVersion, bool redecided)
{
    private static readonly object ItemKey = new();
    private volatile bool _confirmed;

    /// <summary>The hash of the presented secret (the key cache's key).</summary>
    public string KeyHash { get; } = keyHash;

    /// <summary>The key's identity as cached.</summary>
    public KeyIdentity Identity { get; } = identity;

    /// <summary>The version of the tenant's policy and plan the request is decided on.</summary>
    public string DecisionVersion { get; } = decisionVersion;

    /// <summary>Whether this is the request's second decision, on the tenant its grain answered with after the first was stale.</summary>
    public bool Redecided { get; } = redecided;

    /// <summary>Whether the tenant's grain answered for the key and tenant in this request (nothing left to confirm on a refusal).</summary>
    public bool Confirmed
    {
        get => _confirmed;
        set => _confirmed = value;
    }

    /// <summary>Notes the request's provisional authorization, for the error answer's check (<see cref="Unconfirmed"/>).</summary>
    public void AttachTo(HttpContext context) => context.Items[ItemKey] = this;

    /// <summary>The request's provisional authorization while the tenant's grain has not answered for it.</summary>
    public static ProvisionalAuthorization? Unconfirmed(HttpContext context) =>
        context.Items.TryGetValue(ItemKey, out var item) && item is ProvisionalAuthorization { Confirmed: false } provisional ? provisional : null;
}

/// <summary>
/// The tenant's policy or plan changed after the request was decided on the cached tenant: decide again, once, as
/// <see cref="Caller"/> (nothing was reserved and no refusal was recorded for the stale decision).
/// </summary>
internal sealed class CallerChangedException(Caller caller) : Exception("The tenant's policy or plan changed after this request was decided.")
{
    /// <summary>The caller as the tenant is now.</summary>
    public Caller Caller { get; } = caller;
}

/// <summary>
/// Resolves the bearer key of a /v1 request to its tenant: the key's grain once per gateway (the mapping is immutable),
/// then the tenant's grain on every request, so a revocation anywhere takes effect on the next request everywhere.
/// Governed work (<see cref="AuthenticateForAdmissionAsync"/>) asks the tenant's grain once, in admission: it is decided
/// on the tenant as this gateway last saw it, and admission refuses, with nothing reserved, a key revoked or expired, a
/// tenant disabled, or a policy or plan changed since (then decided again once). Effective policies are parsed once per
/// tenant policy and key policy, and cached.
/// </summary>
public sealed class CallerAuthenticator(
    GrainReferences<IApiKeyGrain> keys,
    GrainReferences<ITenantGrain> tenants,
    ControlPlaneStore store,
    JurisdictionCatalog catalog,
    IOptions<SovereignOptions> options,
    ClusterRelay relay,
    TimeProvider time,
    ILoggerFactory loggers)
{
    private readonly ILogger _requestLog = loggers.CreateLogger(GatewayLog.RequestsCategory);

    // Bounds the key cache; an overflowing cache starts again empty rather than tracking recency per request.
    private const int MaxCachedIdentities = 100_000;

    // One entry per (tenant, key policy), replaced when the tenant's policy changes; bounded like the key cache. It
    // used to be keyed by the tenant's version too, so every update of a tenant added an entry that was never removed.
    private readonly ConcurrentDictionary<(string Tenant, string? KeyPolicy), CachedPolicy> _policies = new();

    // A key's hash, tenant, id and policy never change once issued; only revocation does, and the tenant grain owns it.
    // Looked up by the hash's characters (hashed on the stack), so a known key's request makes no hash string.
    private readonly ConcurrentDictionary<string, CachedIdentity> _identities = new(StringComparer.Ordinal);

    // The tenant as its grain last answered here, with the version of its policy and plan: governed work is decided on
    // it, and admission refuses it once it is not current. Bounded like the key cache.
    private readonly ConcurrentDictionary<string, (TenantView Tenant, string DecisionVersion)> _tenantViews = new(StringComparer.Ordinal);
    private readonly byte[][] _staticKeyHashes = options.Value.ApiKeys.Select(k => SHA256.HashData(Encoding.UTF8.GetBytes(k))).ToArray();
    private volatile bool _tenantsExist;

    /// <summary>Remembers that a tenant exists, which ends default anonymous access (called when one is created).</summary>
    public void TenantCreated() => _tenantsExist = true;

    /// <summary>
    /// Whether anyone who reaches /v1 is a caller (anonymous access open, without static keys): then a refusal of a
    /// request not yet authenticated is a caller's, not a stranger's.
    /// </summary>
    public async ValueTask<bool> AnyoneMayCallAsync() =>
        _staticKeyHashes.Length == 0 && await AnonymousAllowedAsync(CancellationToken.None);

    /// <summary>Authenticates the request or throws the 401/403 to answer with.</summary>
    public async Task<Caller> AuthenticateAsync(HttpContext context)
    {
        var caller = await AuthenticateCallerAsync(context, provisional: false);
        KnownCallers.MarkKnown(context, caller);
        return caller;
    }

    /// <summary>
    /// As <see cref="AuthenticateAsync"/>, for work that admission meters (one tenant-grain call per request): a key
    /// whose tenant this gateway has seen is authorized from the cache, provisionally (<see cref="Caller.Provisional"/>),
    /// and admission confirms it in the same call; any refusal before admission confirms it first.
    /// </summary>
    public async Task<Caller> AuthenticateForAdmissionAsync(HttpContext context)
    {
        var caller = await AuthenticateCallerAsync(context, provisional: true);
        caller.Provisional?.AttachTo(context);
        KnownCallers.MarkKnown(context, caller);
        return caller;
    }

    private async Task<Caller> AuthenticateCallerAsync(HttpContext context, bool provisional)
    {
        var header = context.Request.Headers.Authorization.ToString();
        var presented = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header["Bearer ".Length..].Trim() : null;

        // Azure OpenAI clients (AzureOpenAIClient with a key, and openai-python's AzureOpenAI) send the key as
        // 'api-key', not as a bearer token; read where no Authorization header was sent.
        if (header.Length == 0 && context.Request.Headers["api-key"].ToString() is { Length: > 0 } azureKey)
        {
            presented = azureKey.Trim();
        }

        if (relay.Authenticate(presented, context) is { } relayed)
        {
            return relayed;
        }

        if (presented is not null && presented.StartsWith(ApiKeySecrets.Prefix, StringComparison.Ordinal))
        {
            return await TenantCallerAsync(presented, provisional);
        }

        if (!await AnonymousAllowedAsync(context.RequestAborted))
        {
            throw OpenAIException.Unauthorized(presented is null
                ? NoKeyMessage(context)
                : "Incorrect API key provided.");
        }

        if (_staticKeyHashes.Length > 0)
        {
            var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented ?? ""));
            if (presented is null || !_staticKeyHashes.Any(k => CryptographicOperations.FixedTimeEquals(k, hash)))
            {
                throw OpenAIException.Unauthorized(presented is null
                    ? NoKeyMessage(context)
                    : "Incorrect API key provided.");
            }
        }

        return new Caller(Caller.AnonymousTenant, null, null, "default");
    }

    /// <summary>Headers other gateways read a key from, which this server does not: named in the 401, so a client moved here sees why.</summary>
    private static readonly string[] ForeignKeyHeaders = ["x-litellm-api-key", "x-api-key"];

    /// <summary>
    /// The 401 for a request without a key. A client of LiteLLM's proxy that sent its key as <c>x-litellm-api-key</c>
    /// (or Anthropic-style <c>x-api-key</c>) was told it had provided none, with nothing naming the header it had used.
    /// </summary>
    private static string NoKeyMessage(HttpContext context) =>
        ForeignKeyHeaders.FirstOrDefault(h => context.Request.Headers.ContainsKey(h)) is { } foreign
            ? $"You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' (or 'api-key: YOUR_KEY'); this server does not read the key from '{foreign}'."
            : "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.";

    private async Task<Caller> TenantCallerAsync(string secret, bool provisional)
    {
        var (hash, identity) = CachedIdentityOf(secret);
        if (identity is null)
        {
            identity = await keys.Get(hash).ResolveAsync();
            if (identity is null)
            {
                throw OpenAIException.Unauthorized("Incorrect API key provided.");
            }

            if (!identity.Revoked)
            {
                if (_identities.Count >= MaxCachedIdentities)
                {
                    _identities.Clear();
                }

                _identities[hash] = new CachedIdentity(hash, identity);
            }
        }

        // Expiry is fixed when the key is issued, so the cached identity answers for it exactly, at every gateway.
        if (identity.ExpiresAt is { } expires && time.GetUtcNow().ToUnixTimeMilliseconds() >= expires)
        {
            throw Expired(identity, expires);
        }

        if (provisional && !identity.Revoked && _tenantViews.TryGetValue(identity.TenantId, out var seen) && !seen.Tenant.Disabled)
        {
            // No grain call here: admission asks the tenant's grain whether the key and this tenant are still current.
            return CallerOf(identity, seen.Tenant, new ProvisionalAuthorization(hash, identity, seen.DecisionVersion, redecided: false));
        }

        // One grain call per request: the tenant's single activation answers for revocation, so a key revoked
        // at any gateway fails on the next request at every gateway, cached identity or not.
        return Authorized(hash, identity, await tenants.Get(identity.TenantId).AuthorizeKeyAsync(identity.KeyId));
    }

    /// <summary>The presented secret's hash and its cached identity, or the hash alone (made only then) when none is cached.</summary>
    private (string Hash, KeyIdentity? Identity) CachedIdentityOf(string secret)
    {
        Span<char> hex = stackalloc char[ApiKeySecrets.HashLength];
        ApiKeySecrets.Hash(secret, hex);
        return _identities.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(hex, out var cached)
            ? (cached.Hash, cached.Identity)
            : (new string(hex), null);
    }

    /// <summary>
    /// Asks the tenant's grain for a provisional authorization, before a refusal is answered or recorded for it: throws
    /// the 401/403 today's authentication answers when the key or tenant no longer authorize the request; otherwise the
    /// caller as the tenant is now when its policy or plan changed since the decision (null: unchanged).
    /// </summary>
    internal async Task<Caller?> ConfirmAsync(ProvisionalAuthorization provisional)
    {
        ArgumentNullException.ThrowIfNull(provisional);
        if (provisional.Confirmed)
        {
            return null;
        }

        var identity = provisional.Identity;
        var authorization = await tenants.Get(identity.TenantId).AuthorizeKeyAsync(identity.KeyId);
        provisional.Confirmed = true;
        if (identity.ExpiresAt is { } expires && time.GetUtcNow().ToUnixTimeMilliseconds() >= expires)
        {
            throw Expired(identity, expires);
        }

        var caller = Authorized(provisional.KeyHash, identity, authorization);
        var version = TenantVersions.DecisionOf(authorization.Tenant!);
        return version == provisional.DecisionVersion ? null
            // Admission still checks the version the second decision is made on; the key and tenant were just confirmed.
            : caller with { Provisional = new ProvisionalAuthorization(provisional.KeyHash, identity, version, redecided: true) { Confirmed = true } };
    }

    /// <summary>
    /// What a provisional caller's refused authorized admission means: the 401/403 today's authentication answers
    /// (the caches forget what is no longer valid), or, for a stale decision, <see cref="CallerChangedException"/> with
    /// the caller as the tenant is now, to decide again once; decided again already, a 503 the client retries.
    /// </summary>
    internal Exception RefusalOf(Caller caller, AuthorizedAdmission answer)
    {
        ArgumentNullException.ThrowIfNull(caller);
        ArgumentNullException.ThrowIfNull(answer);
        var provisional = caller.Provisional ?? throw new InvalidOperationException("Not a provisional caller.");
        var identity = provisional.Identity;
        if (answer.Tenant is { } tenant)
        {
            Remember(tenant);
        }
        else
        {
            _tenantViews.TryRemove(identity.TenantId, out _);
        }

        switch (answer.Refusal)
        {
            case AuthorizationRefusal.KeyExpired:
                return Expired(identity, identity.ExpiresAt ?? 0);
            case AuthorizationRefusal.KeyRevoked:
                return Revoked(provisional.KeyHash, identity);
            case AuthorizationRefusal.TenantNotFound:
                return OpenAIException.Unauthorized("Incorrect API key provided.");
            case AuthorizationRefusal.TenantDisabled:
                return Disabled(answer.Tenant!);
            case AuthorizationRefusal.DecisionStale when answer.Tenant is { } fresh && !provisional.Redecided:
                // Decided again on the tenant as its grain holds it now; that answer confirmed the key and tenant.
                var again = new ProvisionalAuthorization(provisional.KeyHash, identity, TenantVersions.DecisionOf(fresh), redecided: true) { Confirmed = true };
                return new CallerChangedException(CallerOf(identity, fresh, again));
            case AuthorizationRefusal.DecisionStale:
                // Changed again while this request was decided a second time: refused (nothing reserved), retryable.
                return new OpenAIException(StatusCodes.Status503ServiceUnavailable,
                    "The tenant's policy changed while this request was being decided; try again.", "server_error", null, PolicyChangedCode, TimeSpan.FromSeconds(1));
            default:
                // Fail closed on an answer this gateway does not know.
                return OpenAIException.Unauthorized("Incorrect API key provided.");
        }
    }

    /// <summary>The code of a request refused because its tenant's policy changed twice while it was decided.</summary>
    public const string PolicyChangedCode = "policy_changed";

    /// <summary>The caller a tenant grain's authorization admits, or the 401/403 to answer; remembers the tenant for governed work.</summary>
    private Caller Authorized(string hash, KeyIdentity identity, KeyAuthorization authorization)
    {
        if (identity.Revoked || authorization.KeyRevoked)
        {
            throw Revoked(hash, identity);
        }

        if (authorization.Tenant is not { } tenant)
        {
            _tenantViews.TryRemove(identity.TenantId, out _);
            throw OpenAIException.Unauthorized("Incorrect API key provided.");
        }

        Remember(tenant);
        if (tenant.Disabled)
        {
            throw Disabled(tenant);
        }

        return CallerOf(identity, tenant);
    }

    private void Remember(TenantView tenant)
    {
        if (_tenantViews.TryGetValue(tenant.Id, out var seen) && seen.Tenant == tenant)
        {
            return;
        }

        if (_tenantViews.Count >= MaxCachedIdentities)
        {
            _tenantViews.Clear();
        }

        _tenantViews[tenant.Id] = (tenant, TenantVersions.DecisionOf(tenant));
    }

    private OpenAIException Revoked(string hash, KeyIdentity identity)
    {
        _identities.TryRemove(hash, out _);
        GatewayLog.RevokedKeyUsed(_requestLog, identity.KeyId, identity.TenantId);
        return OpenAIException.Unauthorized($"The API key {identity.KeyId} has been revoked.");
    }

    private OpenAIException Expired(KeyIdentity identity, long expires)
    {
        GatewayLog.ExpiredKeyUsed(_requestLog, identity.KeyId, identity.TenantId);
        return new OpenAIException(StatusCodes.Status401Unauthorized,
            $"The API key {identity.KeyId} expired at {DateTimeOffset.FromUnixTimeMilliseconds(expires):yyyy-MM-ddTHH:mm:ssZ}; ask for a new key.",
            "invalid_request_error", null, "key_expired");
    }

    private static OpenAIException Disabled(TenantView tenant) =>
        new(StatusCodes.Status403Forbidden, $"The tenant '{tenant.Id}' is disabled.", "permission_error", null, "tenant_disabled");

    /// <summary>The caller of <paramref name="identity"/> under <paramref name="tenant"/>, its effective policy parsed once and cached.</summary>
    private Caller CallerOf(KeyIdentity identity, TenantView tenant, ProvisionalAuthorization? provisional = null)
    {
        // Compared by the tenant's policy itself, not its version (UpdatedAt): a rename does not re-parse, and two
        // policy changes within one millisecond cannot leave the first one cached.
        var policyKey = (tenant.Id, identity.KeyPolicyJson);
        if (!_policies.TryGetValue(policyKey, out var cached) || !string.Equals(cached.TenantPolicyJson, tenant.PolicyJson, StringComparison.Ordinal))
        {
            if (cached is null && _policies.Count >= MaxCachedIdentities)
            {
                _policies.Clear();
            }

            cached = new CachedPolicy(tenant.PolicyJson, EffectivePolicy(tenant.PolicyJson, identity.KeyPolicyJson));
            _policies[policyKey] = cached;
        }

        return new Caller(tenant.Id, identity.KeyId, cached.Policy, tenant.Plan) { Provisional = provisional };
    }

    /// <summary>The effective policies cached for one tenant (for tests).</summary>
    internal int CachedPolicyCount(string tenant) => _policies.Keys.Count(k => k.Tenant == tenant);

    private ResidencyPolicy EffectivePolicy(string tenantPolicyJson, string? keyPolicyJson)
    {
        var tenantPolicy = PolicyDocument.FromJson(tenantPolicyJson).ToPolicy();
        if (keyPolicyJson is null)
        {
            return tenantPolicy;
        }

        var narrowed = tenantPolicy.NarrowWith(PolicyDocument.FromJson(keyPolicyJson).ToNarrowing(), catalog);
        return narrowed.IsValid
            ? narrowed.Effective!
            : throw new OpenAIException(StatusCodes.Status403Forbidden, "The key's policy no longer fits its tenant's policy; ask the operator to reissue the key.", "permission_error", null, "residency_violation");
    }

    private async Task<bool> AnonymousAllowedAsync(CancellationToken cancellationToken)
    {
        if (options.Value.AnonymousAccess is { } configured)
        {
            return configured;
        }

        // Default: anonymous only on a fresh install. Tenants are never deleted, so "exists" is cached for good.
        if (!_tenantsExist && await store.AnyTenantAsync(cancellationToken))
        {
            _tenantsExist = true;
        }

        return !_tenantsExist;
    }

    /// <summary>A key's identity as its grain answered, with the hash it is cached under (the key of its grain).</summary>
    private sealed record CachedIdentity(string Hash, KeyIdentity Identity);

    /// <summary>A tenant's policy as it was parsed, and the effective policy (narrowed by a key's) made from it.</summary>
    private sealed record CachedPolicy(string TenantPolicyJson, ResidencyPolicy Policy);
}
