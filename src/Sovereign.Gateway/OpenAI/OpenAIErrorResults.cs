using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.OpenAI;

/// <summary>Writes every failure of the <c>/v1</c> surface as OpenAI's error JSON with the right status.</summary>
internal static class OpenAIErrorResults
{
    /// <summary>Maps an exception from request handling to the client-facing error.</summary>
    public static OpenAIException Map(Exception exception, long maxBodyBytes) => exception switch
    {
        OpenAIException e => e,
        BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => OpenAIException.TooLarge(maxBodyBytes),
        BadHttpRequestException e => OpenAIException.BadRequest("The request could not be read: " + e.Message),
        InvalidGenerationRequestException e => OpenAIException.BadRequest(e.Message, e.Parameter, e.Code),
        EngineOverloadedException e => OpenAIException.Overloaded(e.Message),
        TenantQueueFullException e => new OpenAIException(StatusCodes.Status429TooManyRequests, e.Message, "requests", null, "tenant_queue_full", TimeSpan.FromSeconds(1)),
        EngineStoppedException e => new OpenAIException(StatusCodes.Status503ServiceUnavailable, e.Message, "server_error", null, "model_unavailable", TimeSpan.FromSeconds(5)),
        _ => new OpenAIException(StatusCodes.Status500InternalServerError, "The server had an error while processing your request.", "server_error", null, "internal_error"),
    };

    public static async Task WriteAsync(HttpContext context, OpenAIException error)
    {
        if (context.Response.HasStarted)
        {
            return;
        }

        // Evidence and rate-limit headers survive: a refusal is audited, and a 429 tells the client when to retry.
        var evidence = context.Response.Headers.Where(h => h.Key.StartsWith("x-sovereign-", StringComparison.OrdinalIgnoreCase) || h.Key.StartsWith("x-ratelimit-", StringComparison.OrdinalIgnoreCase)).ToList();
        context.Response.Clear();
        foreach (var header in evidence)
        {
            context.Response.Headers[header.Key] = header.Value;
        }

        context.Response.StatusCode = error.Status;
        if (error.RetryAfter is { } retry)
        {
            context.Response.Headers.RetryAfter = ((int)Math.Ceiling(retry.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        context.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(context.Response.Body, new OpenAIErrorEnvelope(error.ToError()), OpenAIJson.Options, context.RequestAborted);
    }

    /// <summary>The body limit in force for this request.</summary>
    public static long BodyLimit(HttpContext context, long configured) =>
        context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize ?? configured;
}
