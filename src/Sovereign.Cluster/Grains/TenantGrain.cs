using Sovereign.Residency.ControlPlane;

namespace Sovereign.Cluster.Grains;

/// <summary>Loads the tenant's row on activation and writes through on every change.</summary>
internal sealed class TenantGrain(ControlPlaneStore store, TimeProvider time) : Grain, ITenantGrain
{
    private TenantRecord? _tenant;

    public override async Task OnActivateAsync(CancellationToken cancellationToken) =>
        _tenant = await store.GetTenantAsync(this.GetPrimaryKeyString(), cancellationToken);

    public Task<TenantView?> GetAsync() => Task.FromResult(_tenant is null ? null : ToView(_tenant));

    public async Task<TenantView> UpsertAsync(string name, string policyJson, string plan, bool disabled)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var next = new TenantRecord(this.GetPrimaryKeyString(), name, policyJson, plan, disabled, _tenant?.CreatedAt ?? now, now);
        await store.UpsertTenantAsync(next);
        _tenant = next;
        return ToView(next);
    }

    public async Task<IReadOnlyList<ApiKeyView>> ListKeysAsync() =>
        (await store.ListKeysAsync(this.GetPrimaryKeyString())).Select(ToView).ToList();

    public async Task<CreatedApiKey> CreateKeyAsync(string name, string? policyJson)
    {
        if (_tenant is null)
        {
            throw new InvalidOperationException($"Tenant '{this.GetPrimaryKeyString()}' does not exist.");
        }

        var (id, secret, prefix, hash) = ApiKeySecrets.Create();
        var record = new ApiKeyRecord(id, _tenant.Id, prefix, hash, name, policyJson, time.GetUtcNow().ToUnixTimeMilliseconds(), null);
        await store.InsertKeyAsync(record);
        return new CreatedApiKey(ToView(record), secret);
    }

    public async Task<bool> RevokeKeyAsync(string keyId)
    {
        var key = await store.GetKeyAsync(keyId);
        if (key is null || key.TenantId != this.GetPrimaryKeyString())
        {
            return false;
        }

        await store.RevokeKeyAsync(keyId, time.GetUtcNow().ToUnixTimeMilliseconds());
        await GrainFactory.GetGrain<IApiKeyGrain>(key.SecretHash).RefreshAsync();
        return true;
    }

    private static TenantView ToView(TenantRecord t) => new(t.Id, t.Name, t.PolicyJson, t.Plan, t.Disabled, t.CreatedAt, t.UpdatedAt);

    private static ApiKeyView ToView(ApiKeyRecord k) => new(k.Id, k.TenantId, k.Prefix, k.Name, k.PolicyJson, k.CreatedAt, k.RevokedAt);
}

/// <summary>Caches one key's identity in memory; the tenant grain refreshes it on revocation.</summary>
internal sealed class ApiKeyGrain(ControlPlaneStore store) : Grain, IApiKeyGrain
{
    private KeyIdentity? _identity;

    public override Task OnActivateAsync(CancellationToken cancellationToken) => LoadAsync(cancellationToken);

    public Task<KeyIdentity?> ResolveAsync() => Task.FromResult(_identity);

    public Task RefreshAsync() => LoadAsync(CancellationToken.None);

    private async Task LoadAsync(CancellationToken cancellationToken)
    {
        var key = await store.FindKeyByHashAsync(this.GetPrimaryKeyString(), cancellationToken);
        _identity = key is null ? null : new KeyIdentity(key.Id, key.TenantId, key.PolicyJson, key.RevokedAt is not null);
    }
}
