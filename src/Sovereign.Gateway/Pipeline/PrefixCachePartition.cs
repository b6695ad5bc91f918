using System.Security.Cryptography;
using System.Text;
using Sovereign.Gateway.ControlPlane;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// Whose cached prompts a request may reuse on this process's engine (the batcher's prefix cache), and who may reuse
/// its own: its tenant's only. A reused prefix shows in <c>usage.prompt_tokens_details.cached_tokens</c> and in the time
/// to the first token, so a cache shared across tenants told a tenant, token by token, whether another tenant had
/// sent a text (a patient's name, a system prompt). OpenAI does not share prompt caches between organizations either.
/// </summary>
internal static class PrefixCachePartition
{
    /// <summary>The header a gateway sends a cluster node with the partition of the tenant it relays for.</summary>
    public const string Header = "x-sovereign-cache-partition";

    private const int RelayedLength = 32;

    /// <summary>What a gateway tells a node: a digest of the tenant id, so the node partitions without learning tenant ids.</summary>
    public static string ForRelay(Caller caller) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(caller.TenantId)))[..RelayedLength];

    /// <summary>
    /// The partition of a request this process's engine runs: the tenant; for work a gateway relays (all of it recorded
    /// under one relay tenant here), the tenant's partition the gateway sent, else one of the request's own (nothing
    /// shared); narrowed by the request's <c>cache_salt</c> (a relay forwards the client's body, salt included).
    /// </summary>
    public static string Of(HttpContext context, Caller caller, string? cacheSalt = null)
    {
        var partition = caller.TenantId != ClusterRelay.RelayTenant
            ? caller.TenantId
            : context.Request.Headers[Header] is [{ Length: RelayedLength } relayed] && relayed.All(char.IsAsciiHexDigitLower)
                ? "relay:" + relayed
                : "request:" + Guid.NewGuid().ToString("N");

        // A client's cache_salt narrows its tenant's partition (vLLM's meaning); it never widens it.
        return cacheSalt is null ? partition : partition + "\u001f" + cacheSalt;
    }
}
