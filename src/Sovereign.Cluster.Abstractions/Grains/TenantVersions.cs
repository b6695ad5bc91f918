using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Sovereign.Cluster.Grains;

/// <summary>
/// The versions of what an operator's edit reads and writes back whole (a tenant's fields and policy, its limits): a
/// digest of the content, which the admin API sends as the <c>ETag</c> and the tenant's single activation compares
/// with <c>If-Match</c> before it writes. An edit made from a stale read is then refused, not written back over a
/// change made meanwhile (two <c>sovereign limits</c> at once each kept only their own flag).
/// </summary>
/// <remarks>
/// A digest, not a counter: no stored column, and a tenant changed and changed back matches again, which is right for
/// an edit of what it read. The tenant's version leaves out its limits and timestamps, so setting limits does not
/// refuse a policy edit read before it, and the other way round.
/// </remarks>
public static class TenantVersions
{
    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);

    /// <summary>The version of the tenant's name, policy, plan and state.</summary>
    public static string Of(TenantView tenant)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        return Digest(JsonSerializer.Serialize(new object[] { tenant.Name, tenant.PolicyJson, tenant.Plan, tenant.Disabled }, JsonOptions));
    }

    /// <summary>
    /// The version of what a gateway's decision and admission read from the tenant: its policy and plan (not its name,
    /// not its state, which admission checks by itself). A gateway that decided on a cached tenant sends it with the
    /// admission; the tenant's activation admits only while it is still current.
    /// </summary>
    public static string DecisionOf(TenantView tenant)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        return Digest(JsonSerializer.Serialize(new object[] { tenant.PolicyJson, tenant.Plan }, JsonOptions));
    }

    /// <summary>The version of the tenant's budgets, rate limits and their currency, as <see cref="ITenantGrain.GetLimitsAsync"/> answers them.</summary>
    public static string Of(TenantLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        return Digest(JsonSerializer.Serialize(limits, JsonOptions));
    }

    private static string Digest(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)).AsSpan(0, 12));
}

/// <summary>
/// The tenant changed after the version an edit was based on (<c>If-Match</c>) was read: nothing was written. Read it
/// again and make the edit on what it is now.
/// </summary>
[GenerateSerializer]
public sealed class TenantVersionConflictException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public TenantVersionConflictException()
    {
    }

    /// <summary>Creates the exception with its message.</summary>
    public TenantVersionConflictException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its message and cause.</summary>
    public TenantVersionConflictException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
