using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Models;

namespace Sovereign.Gateway.OpenAI;

/// <summary>Maps the OpenAI-compatible <c>/v1</c> surface.</summary>
public static class OpenAIApi
{
    /// <summary>Maps /v1/chat/completions, /v1/completions, /v1/embeddings and /v1/models, with OpenAI's errors.</summary>
    public static RouteGroupBuilder MapOpenAIApi(this IEndpointRouteBuilder endpoints)
    {
        var v1 = endpoints.MapGroup("/v1");
        v1.AddEndpointFilter(RequireApiKey);
        v1.MapPost("/chat/completions", ChatCompletionsEndpoint.HandleAsync);
        v1.MapPost("/completions", CompletionsEndpoint.HandleAsync);
        v1.MapPost("/embeddings", EmbeddingsEndpoint.HandleAsync);
        v1.MapGet("/models", ListModels);
        v1.MapGet("/models/{id}", GetModel);
        v1.MapFallback(NotFound);
        return v1;
    }

    /// <summary>
    /// Catches every exception of a /v1 request and answers with OpenAI's error JSON. Registered as middleware so
    /// that failures while binding or reading the body are covered too.
    /// </summary>
    public static IApplicationBuilder UseOpenAIErrors(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        try
        {
            await next(context);
        }
        catch (Exception ex) when (!context.RequestAborted.IsCancellationRequested || ex is not OperationCanceledException)
        {
            var configured = context.RequestServices.GetRequiredService<IOptions<SovereignOptions>>().Value.Limits.MaxRequestBodyBytes;
            var error = OpenAIErrorResults.Map(ex, OpenAIErrorResults.BodyLimit(context, configured));
            if (error.Status >= 500)
            {
                context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Sovereign.Gateway.OpenAI")
                    .LogError(ex, "Request {Path} failed", context.Request.Path.Value);
            }

            await OpenAIErrorResults.WriteAsync(context, error);
        }
    });

    private static async ValueTask<object?> RequireApiKey(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var keys = invocation.HttpContext.RequestServices.GetRequiredService<IOptions<SovereignOptions>>().Value.ApiKeys;
        if (keys.Count == 0)
        {
            return await next(invocation);
        }

        var header = invocation.HttpContext.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            throw OpenAIException.Unauthorized("You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.");
        }

        var presented = Encoding.UTF8.GetBytes(header["Bearer ".Length..].Trim());
        foreach (var key in keys)
        {
            if (CryptographicOperations.FixedTimeEquals(presented, Encoding.UTF8.GetBytes(key)))
            {
                return await next(invocation);
            }
        }

        throw OpenAIException.Unauthorized("Incorrect API key provided.");
    }

    private static IResult ListModels(ModelCatalog catalog) =>
        TypedResults.Json(new ModelList("list", catalog.All.Select(Card).ToArray()), OpenAIJson.Options);

    private static IResult GetModel(string id, ModelCatalog catalog) =>
        catalog.TryGet(id, out var model) ? TypedResults.Json(Card(model), OpenAIJson.Options) : throw OpenAIException.ModelNotFound(id);

    private static IResult NotFound(HttpContext context) =>
        throw new OpenAIException(StatusCodes.Status404NotFound, $"Unknown request URL: {context.Request.Method} {context.Request.Path}.", "invalid_request_error", null, "unknown_url");

    private static ModelCard Card(ServedModel model) => new(model.Id, "model", model.Created, model.OwnedBy);
}
