using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;

namespace Sovereign.Gateway.Hosting;

/// <summary>
/// One id per request, sent on every answer as OpenAI's <c>x-request-id</c> (the SDKs show it: openai-python's
/// <c>_request_id</c>, the raw response's headers in .NET), errors included, so a tenant can quote the request it means.
/// A routed request's audit entries and usage record carry the same id (also sent as <c>x-sovereign-audit-id</c>).
/// It is always made here, never taken from the client: it is the usage ledger's idempotency key, and a chosen id could
/// make a request's record collide with another's.
/// </summary>
internal static class RequestIds
{
    public const string Header = "x-request-id";

    /// <summary>This request's id, made on first use.</summary>
    public static string Of(HttpContext context)
    {
        if (context.Items[typeof(RequestIds)] is not string id)
        {
            id = "req_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
            context.Items[typeof(RequestIds)] = id;
        }

        return id;
    }

    /// <summary>
    /// An operator's audit entry's details with this request's id (<c>request_id</c>, where inference entries keep
    /// theirs): the entry can be found from the <c>x-request-id</c> the answer stated.
    /// </summary>
    public static Dictionary<string, string> Stated(HttpContext context, Dictionary<string, string> details)
    {
        details["request_id"] = Of(context);
        return details;
    }

    /// <summary>Sends the id on every application answer (set when the answer starts, so an error's cleared headers get it too).</summary>
    public static void UseRequestIds(this IApplicationBuilder app) => app.Use((context, next) =>
    {
        // The context as the callback's state: a closure over it was two objects more per request.
        context.Response.OnStarting(StateIdOnStart, context);
        return next(context);
    });

    private static readonly Func<object, Task> StateIdOnStart = state =>
    {
        var context = (HttpContext)state;
        context.Response.Headers[Header] = Of(context);
        return Task.CompletedTask;
    };
}
