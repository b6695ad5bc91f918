namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// How a gateway gets, through a cluster node, the usage so far on every event of a stream from an engine the node
/// fronts that gives it (vLLM's <c>continuous_usage_stats</c>). The node asks its engine for it either way, but kept it
/// from its callers (a client sees usage on the last event alone, as OpenAI sends it), so a stream that the gateway's
/// client left before the usage event was billed no prompt through a gateway while the node's own clients paid it.
/// The gateway asks in a request header; the node answers in a response header, before the first event, when its
/// events carry the count. Only the cluster's relay caller is answered, only nodes' answers are read.
/// </summary>
internal static class RelayUsageSoFar
{
    public const string Header = "x-sovereign-usage-so-far";

    /// <summary>Whether the relaying gateway asked for the count on every event.</summary>
    public static bool Asked(HttpContext context) => context.Request.Headers.ContainsKey(Header);

    /// <summary>Tells the gateway the events carry the count so far; called before anything of the answer is written.</summary>
    public static void Confirm(HttpContext context) => context.Response.Headers[Header] = "1";

    /// <summary>Whether a node's answer says its events carry the count so far.</summary>
    public static bool Given(HttpResponseMessage response) => response.Headers.Contains(Header);
}
