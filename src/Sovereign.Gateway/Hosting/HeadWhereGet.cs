using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Primitives;

namespace Sovereign.Gateway.Hosting;

/// <summary>
/// Every endpoint that takes GET takes HEAD too, as RFC 9110 (section 9.3.2) asks of a server that supports GET: the
/// handler runs as for GET and Kestrel sends the same status and headers without the body. Done once, over the route
/// table, so no endpoint can be mapped without it and <c>Allow</c> (<c>OpenAI/AllowedMethods</c>, read from the same
/// table) lists HEAD where it is taken; a method no endpoint takes is still a 405 with <c>Allow</c>.
/// </summary>
/// <remarks>
/// A decorator over each of the application's endpoint data sources, not a middleware that rewrites HEAD to GET:
/// handlers, filters and logs see the method the client sent, and routing needs no second pass.
/// </remarks>
internal sealed class HeadWhereGet(EndpointDataSource inner) : EndpointDataSource
{
    // One reference, swapped whole: readers on other threads see an old pair or a new one, never half of each.
    private Translated? _cache;

    /// <summary>Wraps every data source mapped so far. Call after the last endpoint is mapped.</summary>
    public static void Apply(IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var sources = endpoints.DataSources.ToList();
        endpoints.DataSources.Clear();
        foreach (var source in sources)
        {
            endpoints.DataSources.Add(source is HeadWhereGet ? source : new HeadWhereGet(source));
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Endpoint> Endpoints
    {
        get
        {
            var endpoints = inner.Endpoints;
            if (_cache is { } cache && ReferenceEquals(cache.From, endpoints))
            {
                return cache.To;
            }

            IReadOnlyList<Endpoint> withHead = [.. endpoints.Select(WithHead)];
            _cache = new Translated(endpoints, withHead);
            return withHead;
        }
    }

    /// <inheritdoc/>
    public override IChangeToken GetChangeToken() => inner.GetChangeToken();

    private sealed record Translated(IReadOnlyList<Endpoint> From, IReadOnlyList<Endpoint> To);

    private static Endpoint WithHead(Endpoint endpoint)
    {
        if (endpoint is not RouteEndpoint { RequestDelegate: { } handler } route
            || route.Metadata.GetMetadata<IHttpMethodMetadata>() is not { } methods
            || !methods.HttpMethods.Contains(HttpMethods.Get, StringComparer.OrdinalIgnoreCase)
            || methods.HttpMethods.Contains(HttpMethods.Head, StringComparer.OrdinalIgnoreCase))
        {
            return endpoint;
        }

        var metadata = route.Metadata.Select(item => item is IHttpMethodMetadata taken && taken.HttpMethods.Contains(HttpMethods.Get, StringComparer.OrdinalIgnoreCase)
            ? new HttpMethodMetadata([.. taken.HttpMethods, HttpMethods.Head], taken.AcceptCorsPreflight)
            : item);
        return new RouteEndpoint(handler, route.RoutePattern, route.Order, new EndpointMetadataCollection(metadata), route.DisplayName);
    }
}
