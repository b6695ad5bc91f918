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
}
