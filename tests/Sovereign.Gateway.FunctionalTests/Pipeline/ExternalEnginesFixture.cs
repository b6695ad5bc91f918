using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>A TH server with no model of its own in front of external engines registered by each test.</summary>
public sealed class ExternalEnginesFixture() : AdminServerFixture(AdminToken, "sovereign-failover-")
{
    public const string AdminToken = "failover-admin-token";

    private int _tenants;

    protected override IDictionary<string, string?> Overrides => new Dictionary<string, string?>
    {
        ["Sovereign:Jurisdiction"] = "TH",
        ["Sovereign:BuiltInEmbeddings"] = "false",
        ["Sovereign:ModelOwner"] = ModelOwner,
    };

    /// <summary>The operator's name this server's tenants read as every model's <c>owned_by</c>.</summary>
    public const string ModelOwner = "Acme Cloud TH";

    /// <summary>A TH tenant on <paramref name="plan"/> that may use external engines, with a client holding its key.</summary>
    public async Task<(string Tenant, HttpClient Client)> NewTenantAsync(string plan)
    {
        var id = "f" + Interlocked.Increment(ref _tenants);
        await SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan, policy = new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true } }, 201);
        var key = (await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        return (id, TenantClient(key));
    }

    public Task<JsonElement> RegisterEngineAsync(string id, string url, string model, string? pool = null, string jurisdiction = "TH") =>
        SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id, jurisdiction, base_url = url, pool, models = new[] { new { id = model, upstream = "upstream", capacity = 2 } } }, 201);
}
