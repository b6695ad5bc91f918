using System.Text.Json;
namespace Sovereign.Gateway.ControlPlane;

internal sealed class TenantCreateRequest
{
    public string? Id { get; set; }
    public string? Name { get; set; }
    public string? Plan { get; set; }
    public PolicyDocument? Policy { get; set; }
    public bool? Disabled { get; set; }
}

/// <summary>
/// <c>PATCH /admin/v1/tenants/{id}</c>. The tenant as GET shows it may be sent back edited: its read-only fields are
/// accepted (<c>id</c> when it is the tenant's, the timestamps ignored), as Kubernetes ignores <c>status</c>.
/// </summary>
internal sealed class TenantUpdateRequest
{
    public string? Name { get; set; }
    public string? Plan { get; set; }
    public PolicyDocument? Policy { get; set; }
    public bool? Disabled { get; set; }

    /// <summary>Read-only: accepted when it is the tenant's id (the URL's); a tenant is never renamed.</summary>
    public string? Id { get; set; }

    /// <summary>Read-only, as GET shows it; ignored.</summary>
    public long? CreatedAt { get; set; }

    /// <summary>Read-only, as GET shows it; ignored.</summary>
    public long? UpdatedAt { get; set; }
}

internal sealed class KeyCreateRequest
{
    public string? Name { get; set; }
    public PolicyDocument? Policy { get; set; }

    /// <summary>
    /// When the key stops authenticating: unix seconds (a number, as OpenAI's API states times) or an ISO 8601 time;
    /// or <see cref="ExpiresIn"/>, never both. Read by <c>AdminApi.KeyExpiry</c>.
    /// </summary>
    public JsonElement? ExpiresAt { get; set; }

    /// <summary>Seconds from now until the key stops authenticating.</summary>
    public long? ExpiresIn { get; set; }
}

internal sealed class NodeCreateRequest
{
    public string? Id { get; set; }
    public string? Jurisdiction { get; set; }
    public string? BaseUrl { get; set; }
    public List<NodeModelRequest?>? Models { get; set; }
    public string? ApiKey { get; set; }
    public string? Pool { get; set; }
    public string? DeviceClass { get; set; }

    /// <summary><c>shared</c> (default), <c>salt</c> (vLLM) or <c>off</c> (llama-server): see <see cref="EnginePromptCaches"/>.</summary>
    public string? PromptCache { get; set; }
}

internal sealed class NodeModelRequest
{
    public string? Id { get; set; }
    public string? Upstream { get; set; }
    public int? Capacity { get; set; }
    public string? License { get; set; }
    public string? Origin { get; set; }

    /// <summary><c>chat</c> (default) or <c>embedding</c>: which endpoints the model serves.</summary>
    public string? Kind { get; set; }

    /// <summary>Languages (ISO 639-1 codes) the model serves well: the gateway's <c>auto</c> alias routes by them.</summary>
    public List<string?>? Languages { get; set; }
}

internal sealed class NodeStateRequest
{
    public string? State { get; set; }
}

/// <summary>
/// The body of an admin POST that takes no parameters (<c>audit/checkpoint</c>, <c>audit/verify</c>,
/// <c>models/{id}/unload</c>): none or <c>{}</c>, read as <see cref="ModelLoadRequest"/>'s optional body is, so any
/// field is a 400 naming it. Such bodies were ignored, so a field meant for the query (<c>max_uncovered_seconds</c>)
/// changed nothing without a word.
/// </summary>
internal sealed class EmptyRequest;

internal sealed class ModelLoadRequest
{
    public int? Parallel { get; set; }
    public int? ContextLength { get; set; }
    public int? Threads { get; set; }
}

/// <summary>Body of <c>POST /admin/v1/cluster/revocations</c>: exactly one of serial and node_id.</summary>
internal sealed class CertificateRevocationRequest
{
    public string? Serial { get; set; }

    public string? NodeId { get; set; }

    public string? Reason { get; set; }
}
