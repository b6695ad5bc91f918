namespace Sovereign.Cluster.Grains;

/// <summary>A tenant's budgets and rate limits, as the operator set them.</summary>
[GenerateSerializer, Immutable]
public sealed record TenantLimits(
    [property: Id(0)] IReadOnlyList<BudgetSetting> Budgets,
    [property: Id(1)] IReadOnlyList<RateLimitSetting> RateLimits)
{
    /// <summary>No budgets, no rate limits.</summary>
    public static TenantLimits None { get; } = new([], []);
}

/// <summary>A budget: per tenant (no key) or per key, per day, month or in total, in the plan's currency.</summary>
[GenerateSerializer, Immutable]
public sealed record BudgetSetting([property: Id(0)] string? KeyId, [property: Id(1)] string Period, [property: Id(2)] decimal Amount);

/// <summary>Requests and tokens per minute, per tenant (no key) or per key.</summary>
[GenerateSerializer, Immutable]
public sealed record RateLimitSetting([property: Id(0)] string? KeyId, [property: Id(1)] long? RequestsPerMinute, [property: Id(2)] long? TokensPerMinute);

/// <summary>Asks to admit a request: the most it can cost and the most tokens it can use.</summary>
[GenerateSerializer, Immutable]
public sealed record AdmissionRequest(
    [property: Id(0)] string RequestId,
    [property: Id(1)] string? KeyId,
    [property: Id(2)] long Tokens,
    [property: Id(3)] decimal MaxCost,
    [property: Id(4)] string Currency);

/// <summary>The answer: admitted, or refused with OpenAI's status, code and headers.</summary>
[GenerateSerializer, Immutable]
public sealed record AdmissionResult(
    [property: Id(0)] bool Allowed,
    [property: Id(1)] int Status,
    [property: Id(2)] string? Code,
    [property: Id(3)] string? Message,
    [property: Id(4)] IReadOnlyList<KeyValuePair<string, string>> Headers);

/// <summary>What an admitted request actually cost.</summary>
[GenerateSerializer, Immutable]
public sealed record SettlementRequest(
    [property: Id(0)] string RequestId,
    [property: Id(1)] string? KeyId,
    [property: Id(2)] decimal ActualCost,
    [property: Id(3)] long AdmittedTokens,
    [property: Id(4)] long ActualTokens);

/// <summary>One budget's state now.</summary>
[GenerateSerializer, Immutable]
public sealed record BudgetStatusView(
    [property: Id(0)] string? KeyId,
    [property: Id(1)] string Period,
    [property: Id(2)] decimal Limit,
    [property: Id(3)] decimal Settled,
    [property: Id(4)] decimal Reserved,
    [property: Id(5)] decimal Remaining,
    [property: Id(6)] string Currency);
