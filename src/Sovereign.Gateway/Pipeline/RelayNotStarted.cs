namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// How a cluster node tells the gateway that relayed a request that it refused it before handing any of it to an
/// engine (the model is not loaded here now, unloading or still loading; its queue is full; its audit log or database
/// cannot record it before the work): a response header on its error answer. The gateway may then route the request
/// again, to another node the policy allows, under the same request id and reservation, as when a node cannot be
/// reached: the node ran nothing and billed nothing, so nothing is run or billed twice. A 503 without it (work the
/// node had started, or a node of an older release) is passed on as the node's own refusal. Only requests of the
/// cluster's relay caller get it, only cluster nodes' answers are read, and the gateway never passes it on.
/// </summary>
internal static class RelayNotStarted
{
    public const string Header = "x-sovereign-not-started";

    /// <summary>States that nothing of the request was handed to an engine; called before the error answer is written.</summary>
    public static void Attach(HttpContext context) => context.Response.Headers[Header] = "1";

    /// <summary>Whether a node's answer states that it did not start the request.</summary>
    public static bool Said(HttpResponseMessage response) =>
        response.Headers.TryGetValues(Header, out var values) && values.ToArray() is ["1"];
}
