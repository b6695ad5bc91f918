using System.Collections.Frozen;
using Microsoft.AspNetCore.Builder;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// The one rule for query strings. An endpoint declares the query parameters it reads
/// (<see cref="Takes{TBuilder}"/>, none by default); every GET and DELETE under <c>/v1</c> and every endpoint under
/// <c>/admin/v1</c> refuses any other parameter with 400 <c>unknown_parameter</c> naming it, and a parameter given
/// more than once with 400 <c>invalid_value</c>, before the handler runs. A misspelt filter (<c>?form=</c>,
/// <c>?tenat=</c>) used to be ignored, so the answer silently covered everything: a usage total or an invoice that
/// looked filtered and was not. <c>/v1</c>'s POST endpoints carry their parameters in the body and ignore the query
/// string, as they ignore body fields they do not know (OpenAI-compatible clients add their own).
/// Names match case-insensitively, as ASP.NET Core reads them.
/// </summary>
internal static class QueryParameters
{
    /// <summary>Declares the query parameters an endpoint reads.</summary>
    public static TBuilder Takes<TBuilder>(this TBuilder builder, params string[] names)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new Declared(names.ToFrozenSet(StringComparer.OrdinalIgnoreCase), names));

    /// <summary>Leaves an endpoint's query string unchecked (the groups' fallbacks answer 404 for any query).</summary>
    public static TBuilder AnyQuery<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(Unchecked.Instance);

    /// <summary>The group filter for <c>/admin/v1</c>: every method.</summary>
    public static ValueTask<object?> Admin(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        Check(invocation.HttpContext, null);
        return next(invocation);
    }

    /// <summary>
    /// The group filter for <c>/v1</c>: GET (and so HEAD) and DELETE, and any endpoint that declares parameters. <c>api-version</c>,
    /// which Azure OpenAI clients add to every request, is passed over: it selects nothing here.
    /// </summary>
    public static ValueTask<object?> OpenAI(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        if (HttpMethods.IsGet(context.Request.Method) || HttpMethods.IsHead(context.Request.Method) || HttpMethods.IsDelete(context.Request.Method)
            || context.GetEndpoint()?.Metadata.GetMetadata<Declared>() is not null)
        {
            Check(context, ClientAdded);
        }

        return next(invocation);
    }

    // Query parameters OpenAI-compatible clients send on their own.
    private static readonly FrozenSet<string> ClientAdded = new[] { "api-version" }.ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    private static void Check(HttpContext context, FrozenSet<string>? passedOver)
    {
        var query = context.Request.Query;
        if (query.Count == 0 || context.GetEndpoint()?.Metadata.GetMetadata<Unchecked>() is not null)
        {
            return;
        }

        var declared = context.GetEndpoint()?.Metadata.GetMetadata<Declared>();
        foreach (var (name, values) in query)
        {
            if (passedOver is not null && passedOver.Contains(name) && declared?.Names.Contains(name) != true)
            {
                continue;
            }

            if (declared is null || !declared.Names.Contains(name))
            {
                var takes = declared is null || declared.Order.Length == 0
                    ? "This endpoint takes no query parameters."
                    : "This endpoint takes " + string.Join(", ", declared.Order) + ".";
                var shown = RequestReader.Shorten(name);
                throw new OpenAIException(StatusCodes.Status400BadRequest, $"Unknown parameter: '{shown}'. {takes}", "invalid_request_error", shown, "unknown_parameter")
                {
                    LoggedParam = "(a query parameter)",
                };
            }

            if (values.Count > 1)
            {
                var known = declared.Spelling(name);
                throw OpenAIException.BadRequest($"{known} is given {values.Count} times; give it once.", known, "invalid_value");
            }

            // No parameter holds a control character, and .NET's number parsing skips trailing NULs: '?limit=1%00' was
            // read as 1 (found by explorer8).
            if (values.ToString().Any(char.IsControl))
            {
                var known = declared.Spelling(name);
                throw OpenAIException.BadRequest($"{known} holds a control character.", known, "invalid_value");
            }
        }
    }

    private sealed record Declared(FrozenSet<string> Names, string[] Order)
    {
        /// <summary>The declared spelling of <paramref name="name"/>, which the query may write in another case.</summary>
        public string Spelling(string name) => Order.First(n => string.Equals(n, name, StringComparison.OrdinalIgnoreCase));
    }

    private sealed class Unchecked
    {
        public static readonly Unchecked Instance = new();
    }
}
