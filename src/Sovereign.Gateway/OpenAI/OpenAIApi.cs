using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.OpenAI;

/// <summary>Maps the OpenAI-compatible <c>/v1</c> surface.</summary>
public static class OpenAIApi
{
    /// <summary>Maps /v1/chat/completions, /v1/completions, /v1/responses, /v1/embeddings, /v1/language/detect and /v1/models, with OpenAI's errors.</summary>
    public static RouteGroupBuilder MapOpenAIApi(this IEndpointRouteBuilder endpoints)
    {
        var v1 = endpoints.MapGroup("/v1");
        v1.AddEndpointFilter(QueryParameters.OpenAI);
        v1.MapPost("/chat/completions", ChatCompletionsEndpoint.HandleAsync);
        v1.MapPost("/completions", CompletionsEndpoint.HandleAsync);
        v1.MapPost("/responses", ResponsesEndpoint.HandleAsync);
        v1.MapGet("/responses/{id}", ResponsesEndpoint.GetAsync).Takes("stream", "include", "include[]", "include_obfuscation", "starting_after");
        v1.MapDelete("/responses/{id}", ResponsesEndpoint.DeleteAsync);
        v1.MapGet("/responses/{id}/input_items", ResponsesEndpoint.InputItemsAsync).Takes("limit", "order", "after", "include", "include[]");
        v1.MapPost("/responses/{id}/cancel", ResponsesEndpoint.CancelAsync);
        v1.MapPost("/embeddings", EmbeddingsEndpoint.HandleAsync);
        v1.MapPost("/language/detect", LanguageDetectEndpoint.HandleAsync);
        v1.MapGet("/models", ListModels);
        // Catch-all: engine-served ids often have a slash (meta-llama/Llama-3-8B), which SDKs send unescaped or as %2F.
        v1.MapGet("/models/{**id}", GetModel);
        v1.MapGet("/audit", TenantAudit).Takes("from", "to", "limit", "order", "after", "id");
        v1.MapFallback(NotFound).AnyQuery();
        return v1;
    }

    /// <summary>
    /// Catches every exception of a /v1 request and answers with OpenAI's error JSON. Registered as middleware so
    /// that failures while binding or reading the body are covered too.
    /// </summary>
    public static IApplicationBuilder UseOpenAIErrors(this IApplicationBuilder app) => app.Use(OpenAIErrorResults.HandleAsync);

    private static async Task<IResult> ListModels(HttpContext context, InferenceRouter router, LanguageRouting languages, ControlPlane.TenantReadLimits reads)
    {
        var caller = await reads.CallerAsync(context);
        var models = await router.VisibleModelsAsync(caller);

        // The aliases requests may name (auto, an operator's) after the models, so a client listing models learns them;
        // only those that could choose a model this caller may use, as GET /v1/models/{alias} answers.
        var aliases = await languages.ReachableAliasesAsync(models);
        return TypedResults.Json(new ModelList("list", [.. models.Select(Card), .. aliases.Select(a => AliasCard(a.Alias, a.Reachable))]), OpenAIJson.Options);
    }

    /// <summary>A tenant's own audit entries (never another tenant's).</summary>
    private static async Task<IResult> TenantAudit(HttpContext context, Residency.Audit.AuditLog audit, ControlPlane.TenantReadLimits reads)
    {
        var caller = await reads.TenantAsync(context, "The audit trail");
        return TypedResults.Json(await ControlPlane.AdminApi.ReadAuditPageAsync(audit, context, caller.TenantId), OpenAIJson.Options);
    }

    private static async Task<IResult> GetModel(string id, HttpContext context, InferenceRouter router, LanguageRouting languages, ControlPlane.TenantReadLimits reads)
    {
        var caller = await reads.CallerAsync(context);
        id = id.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
        var visible = await router.VisibleModelsAsync(caller);
        if (visible.FirstOrDefault(m => m.Id == id) is { } model)
        {
            return TypedResults.Json(Card(model), OpenAIJson.Options);
        }

        // An alias (auto, an operator's) is an id requests may name, so a client checking its configured model with
        // models.retrieve finds it: where it could choose a model this caller may use (it was a 404 "does not exist").
        if ((await languages.ReachableAliasesAsync(visible)).FirstOrDefault(a => a.Alias == id) is { Alias: not null } alias)
        {
            return TypedResults.Json(AliasCard(alias.Alias, alias.Reachable), OpenAIJson.Options);
        }

        throw OpenAIException.ModelNotFound(id);
    }

    /// <summary>
    /// An unknown URL is a 404; a known one asked with a method it does not take (TRACE, GET on a POST endpoint) is a
    /// 405 with <c>Allow</c>, as RFC 9110 asks. The fallback would otherwise answer every such method 404.
    /// </summary>
    private static IResult NotFound(HttpContext context)
    {
        if (AllowedMethods.For(context) is { Count: > 0 } allowed)
        {
            throw AllowedMethods.NotAllowed(context, allowed);
        }

        throw new OpenAIException(StatusCodes.Status404NotFound, $"Unknown request URL: {RequestReader.Shorten(context.Request.Method)} {context.Request.Path}.", "invalid_request_error", null, "unknown_url");
    }

    private static ModelCard Card(ServedModelCard model) => new(model.Id, "model", model.Created, model.OwnedBy);

    /// <summary>An alias's card: created when the first model it may choose was, owned as they are (the operator, <c>Sovereign:ModelOwner</c>).</summary>
    private static ModelCard AliasCard(string alias, IReadOnlyList<ServedModelCard> reachable) => new(alias, "model", reachable.Min(m => m.Created), reachable[0].OwnedBy);
}
