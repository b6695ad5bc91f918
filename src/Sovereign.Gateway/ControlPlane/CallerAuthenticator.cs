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
}

/// <summary>
/// Resolves the bearer key of a /v1 request to its tenant: the key's grain once per gateway (the mapping is immutable),
/// then the tenant's grain on every request, so a revocation anywhere takes effect on the next request everywhere.
/// Effective policies are parsed once per tenant policy and key policy, and cached.
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
    private readonly ConcurrentDictionary<string, KeyIdentity> _identities = new(StringComparer.Ordinal);
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
        var caller = await AuthenticateCallerAsync(context);
        KnownCallers.MarkKnown(context);
        return caller;
    }

    private async Task<Caller> AuthenticateCallerAsync(HttpContext context)
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
            return await TenantCallerAsync(presented);
        }

        if (!await AnonymousAllowedAsync(context.RequestAborted))
        {
            throw OpenAIException.Unauthorized(presented is null
                ? "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'."
                : "Incorrect API key provided.");
        }

        if (_staticKeyHashes.Length > 0)
        {
            var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented ?? ""));
            if (presented is null || !_staticKeyHashes.Any(k => CryptographicOperations.FixedTimeEquals(k, hash)))
            {
                throw OpenAIException.Unauthorized(presented is null
                    ? "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'."
                    : "Incorrect API key provided.");
            }
        }

        return new Caller(Caller.AnonymousTenant, null, null, "default");
    }

    private async Task<Caller> TenantCallerAsync(string secret)
    {
        var hash = ApiKeySecrets.Hash(secret);
        if (!_identities.TryGetValue(hash, out var identity))
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

                _identities[hash] = identity;
            }
        }

        // Expiry is fixed when the key is issued, so the cached identity answers for it exactly, at every gateway.
        if (identity.ExpiresAt is { } expires && time.GetUtcNow().ToUnixTimeMilliseconds() >= expires)
        {
            GatewayLog.ExpiredKeyUsed(_requestLog, identity.KeyId, identity.TenantId);
            throw new OpenAIException(StatusCodes.Status401Unauthorized,
                $"The API key {identity.KeyId} expired at {DateTimeOffset.FromUnixTimeMilliseconds(expires):yyyy-MM-ddTHH:mm:ssZ}; ask for a new key.",
                "invalid_request_error", null, "key_expired");
        }

        // One grain call per request: the tenant's single activation answers for revocation, so a key revoked
        // at any gateway fails on the next request at every gateway, cached identity or not.
        var authorization = await tenants.Get(identity.TenantId).AuthorizeKeyAsync(identity.KeyId);
        if (identity.Revoked || authorization.KeyRevoked)
        {
            _identities.TryRemove(hash, out _);
            GatewayLog.RevokedKeyUsed(_requestLog, identity.KeyId, identity.TenantId);
            throw OpenAIException.Unauthorized($"The API key {identity.KeyId} has been revoked.");
        }

        var tenant = authorization.Tenant ?? throw OpenAIException.Unauthorized("Incorrect API key provided.");
        if (tenant.Disabled)
        {
            throw new OpenAIException(StatusCodes.Status403Forbidden, $"The tenant '{tenant.Id}' is disabled.", "permission_error", null, "tenant_disabled");
        }

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

        return new Caller(tenant.Id, identity.KeyId, cached.Policy, tenant.Plan);
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

    /// <summary>A tenant's policy as it was parsed, and the effective policy (narrowed by a key's) made from it.</summary>
    private sealed record CachedPolicy(string TenantPolicyJson, ResidencyPolicy Policy);
}
