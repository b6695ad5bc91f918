using System.Globalization;
using System.Text.Json;
using Sovereign.Metering.Budgets;
using Sovereign.Metering.Ledger;
using Sovereign.Metering.RateLimiting;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Cluster.Grains;

/// <summary>
/// Loads the tenant's row on activation and writes through on every change. It also owns the tenant's money:
/// budgets and rate limits live in this one activation (single writer), and settled spend is rebuilt from the
/// durable usage ledger on activation, so a crash loses only in-flight reservations, never settled records.
/// </summary>
internal sealed class TenantGrain(ControlPlaneStore store, UsageLedger ledger, TimeProvider time) : Grain, ITenantGrain
{
    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);
    private TenantRecord? _tenant;
    private TenantLimits _limits = TenantLimits.None;
    private BudgetAccount? _budget;
    private TenantRateLimiter? _rates;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _tenant = await store.GetTenantAsync(this.GetPrimaryKeyString(), cancellationToken);
        _limits = _tenant?.LimitsJson is { } json ? JsonSerializer.Deserialize<TenantLimits>(json, JsonOptions) ?? TenantLimits.None : TenantLimits.None;
    }

    public Task<TenantLimits> GetLimitsAsync() => Task.FromResult(_limits);

    public async Task SetLimitsAsync(TenantLimits limits)
    {
        if (_tenant is null)
        {
            throw new InvalidOperationException($"Tenant '{this.GetPrimaryKeyString()}' does not exist.");
        }

        var next = _tenant with { LimitsJson = JsonSerializer.Serialize(limits, JsonOptions), UpdatedAt = time.GetUtcNow().ToUnixTimeMilliseconds() };
        await store.UpsertTenantAsync(next);
        _tenant = next;
        _limits = limits;
        _budget = null;
        _rates = null;
    }

    public async Task<AdmissionResult> AdmitAsync(AdmissionRequest request)
    {
        var now = time.GetUtcNow();
        var rates = Rates();
        var rate = rates.TryAcquire(request.KeyId, 1, request.Tokens, now);
        var headers = OpenAIRateLimitHeaders.For(rate).ToList();
        if (!rate.Allowed)
        {
            return new AdmissionResult(false, 429, rate.Outcome == RateLimitOutcome.TooLarge ? "rate_limit_request_too_large" : "rate_limit_exceeded", rate.Message, headers);
        }

        var budget = await BudgetAsync(request.Currency);
        if (budget.Limits.Count > 0)
        {
            var reserved = budget.TryReserve(request.RequestId, request.KeyId, request.MaxCost, now);
            if (!reserved.Succeeded)
            {
                rates.Refund(request.KeyId, request.Tokens);
                var refusal = reserved.Refusal!;
                var scope = refusal.KeyId is null ? "the tenant's" : $"key {refusal.KeyId}'s";
                return new AdmissionResult(false, 429, BudgetRefusal.ErrorCode,
                    string.Create(CultureInfo.InvariantCulture,
                        $"This request could cost up to {request.MaxCost} {budget.Currency}, but {scope} {refusal.Period.ToString().ToLowerInvariant()} budget has {refusal.Remaining} left."),
                    headers);
            }
        }

        return new AdmissionResult(true, 200, null, null, headers);
    }

    public Task<decimal?> SettleAsync(SettlementRequest settlement)
    {
        Rates().Settle(settlement.KeyId, settlement.AdmittedTokens, settlement.ActualTokens);
        if (_budget is not { Limits.Count: > 0 } budget)
        {
            return Task.FromResult<decimal?>(null);
        }

        var now = time.GetUtcNow();
        budget.Settle(settlement.RequestId, settlement.ActualCost, now, settlement.KeyId);
        return Task.FromResult(budget.Remaining(now).Where(b => b.Limit.KeyId is null).Select(b => (decimal?)b.Remaining).Min());
    }

    public async Task<IReadOnlyList<BudgetStatusView>> GetBudgetsAsync()
    {
        var budget = await BudgetAsync(null);
        return budget.Remaining(time.GetUtcNow())
            .Select(b => new BudgetStatusView(b.Limit.KeyId, b.Limit.Period.ToString().ToLowerInvariant(), b.Limit.Amount, b.Settled, b.Reserved, b.Remaining, budget.Currency))
            .ToList();
    }

    private TenantRateLimiter Rates()
    {
        if (_rates is not null)
        {
            return _rates;
        }

        var tenantPolicy = _limits.RateLimits.FirstOrDefault(r => r.KeyId is null) is { } t ? new RateLimitPolicy(t.RequestsPerMinute, t.TokensPerMinute) : RateLimitPolicy.Unlimited;
        _rates = new TenantRateLimiter(tenantPolicy, time);
        foreach (var key in _limits.RateLimits.Where(r => r.KeyId is not null))
        {
            _rates.SetKeyPolicy(key.KeyId!, new RateLimitPolicy(key.RequestsPerMinute, key.TokensPerMinute));
        }

        return _rates;
    }

    /// <summary>The budget account, rebuilt from the ledger's settled records on first use after activation or a change.</summary>
    private async Task<BudgetAccount> BudgetAsync(string? currency)
    {
        if (_budget is not null)
        {
            return _budget;
        }

        var tenant = this.GetPrimaryKeyString();
        var now = time.GetUtcNow();
        var account = new BudgetAccount(tenant, currency ?? "USD");
        if (_limits.Budgets.Count > 0)
        {
            var earliest = _limits.Budgets.Select(b => BudgetPeriods.StartOf(Enum.Parse<BudgetPeriod>(b.Period, ignoreCase: true), now)).Min();
            var records = new List<UsageRecord>();
            await foreach (var record in ledger.ReadRecordsAsync(tenant, earliest, now.AddDays(1)))
            {
                records.Add(record);
            }

            foreach (var setting in _limits.Budgets)
            {
                var period = Enum.Parse<BudgetPeriod>(setting.Period, ignoreCase: true);
                var start = BudgetPeriods.StartOf(period, now);
                var spent = records.Where(r => r.Timestamp >= start && (setting.KeyId is null || r.KeyId == setting.KeyId)).Sum(r => r.Cost);
                account.SetLimit(setting.KeyId is null ? BudgetLimit.ForTenant(period, setting.Amount) : BudgetLimit.ForKey(setting.KeyId, period, setting.Amount), now, spent);
            }
        }

        _budget = account;
        return account;
    }

    public Task<TenantView?> GetAsync() => Task.FromResult(_tenant is null ? null : ToView(_tenant));

    public async Task<TenantView> UpsertAsync(string name, string policyJson, string plan, bool disabled)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var next = new TenantRecord(this.GetPrimaryKeyString(), name, policyJson, plan, disabled, _tenant?.CreatedAt ?? now, now, _tenant?.LimitsJson);
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
