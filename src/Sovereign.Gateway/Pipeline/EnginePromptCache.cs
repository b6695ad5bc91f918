using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.ControlPlane;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// Keeps an external engine's prompt cache apart between tenants, as <see cref="PrefixCachePartition"/> keeps this
/// process's engine's: by the engine's own per-request field, chosen per engine by the operator
/// (<see cref="EnginePromptCaches"/>), since an engine that does not know a field may refuse it.
/// </summary>
internal static class EnginePromptCache
{
    /// <summary>Sets the field <paramref name="mode"/> calls for in the body relayed to the engine.</summary>
    public static void Apply(JsonObject body, string mode, Caller caller, string? clientSalt)
    {
        switch (mode)
        {
            case EnginePromptCaches.Salt:
                // Always replaced, never taken from the client: a tenant that sent another tenant's salt would share its
                // cache. The client's own salt still narrows its tenant's cache (vLLM's meaning), as on this engine.
                body["cache_salt"] = SaltOf(caller.TenantId, clientSalt);
                break;
            case EnginePromptCaches.Off:
                body["cache_prompt"] = false;
                break;
        }
    }

    /// <summary>43 characters (256 bits, base64url: the length vLLM recommends); the same at every gateway for a tenant.</summary>
    public static string SaltOf(string tenantId, string? clientSalt)
    {
        var input = clientSalt is null ? "sovereign-cache-salt\u001f" + tenantId : "sovereign-cache-salt\u001f" + tenantId + "\u001f" + clientSalt;
        return Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(input))).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }
}
