using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// What a tenant may read about itself with its own key (never another tenant's): its keys (no secrets) and its
/// budgets and rate limits. The tenant's console page reads these, as /v1/usage and /v1/audit.
/// </summary>
public static class TenantSelfApi
{
    /// <summary>Maps GET /v1/keys and GET /v1/limits on the /v1 group.</summary>
    public static RouteGroupBuilder MapTenantSelfApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/keys", Keys);
        v1.MapGet("/limits", Limits);
        return v1;
    }

    private static async Task<IResult> Keys(HttpContext context, IGrainFactory grains, TenantReadLimits reads)
    {
        var caller = await reads.TenantAsync(context, "This");
        var keys = await grains.GetGrain<ITenantGrain>(caller.TenantId).ListKeysAsync();
        return TypedResults.Json(new { @object = "list", tenant = caller.TenantId, key_id = caller.KeyId, data = keys.Select(AdminApi.KeyJson) }, OpenAIJson.Options);
    }

    private static async Task<IResult> Limits(HttpContext context, IGrainFactory grains, TenantReadLimits reads)
    {
        var caller = await reads.TenantAsync(context, "This");
        var grain = grains.GetGrain<ITenantGrain>(caller.TenantId);
        return TypedResults.Json(new
        {
            tenant = caller.TenantId,
            plan = caller.Plan,
            limits = MeteringApi.LimitsJson(await grain.GetLimitsAsync()),
            budgets = (await grain.GetBudgetsAsync()).Select(MeteringApi.BudgetJson),
        }, OpenAIJson.Options);
    }
}
