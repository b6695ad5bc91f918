using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Template;
using Microsoft.Extensions.DependencyInjection;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// The methods the application's endpoints take for a request's path (fallbacks left out). Route constraints are not
/// checked: the routes under /v1 have none that would make a path unknown.
/// </summary>
internal static class AllowedMethods
{
    public static IReadOnlyList<string> For(HttpContext context)
    {
        var sources = context.RequestServices.GetRequiredService<EndpointDataSource>();
        var methods = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var endpoint in sources.Endpoints.OfType<RouteEndpoint>())
        {
            // MapFallback's endpoints match every path at the lowest priority: they say nothing about this one.
            if (endpoint.Order == int.MaxValue || endpoint.Metadata.GetMetadata<IHttpMethodMetadata>() is not { } metadata || metadata.HttpMethods.Count == 0)
            {
                continue;
            }

            var matcher = new TemplateMatcher(new RouteTemplate(endpoint.RoutePattern), new RouteValueDictionary());
            if (matcher.TryMatch(context.Request.Path, new RouteValueDictionary()))
            {
                methods.UnionWith(metadata.HttpMethods);
            }
        }

        return [.. methods];
    }

    /// <summary>The 405 for a known URL, with <c>Allow</c> set (error answers keep it).</summary>
    public static OpenAIException NotAllowed(HttpContext context, IReadOnlyList<string> allowed)
    {
        context.Response.Headers.Allow = string.Join(", ", allowed);
        return new OpenAIException(StatusCodes.Status405MethodNotAllowed,
            $"The method {RequestReader.Shorten(context.Request.Method)} is not allowed for {context.Request.Path}; it takes {string.Join(", ", allowed)}.",
            "invalid_request_error", null, "method_not_allowed");
    }
}
