using System.Text.Json.Nodes;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.Routing;

/// <summary>Runs a routed request on its external node: forwards it, relays the answer, audits the outcome.</summary>
internal static class ExternalForwarding
{
    public static async Task ForwardAsync(HttpContext context, RoutedRequest routed, InferenceRouter router, UpstreamProxy proxy, NodeDirectory nodes, string path)
    {
        var node = routed.ExternalNode!;
        if (JsonNode.Parse(RequestReader.RawBody(context).Span) is not JsonObject body)
        {
            throw OpenAIException.BadRequest("The request body must be a JSON object.");
        }

        UpstreamUsage? usage = null;
        var outcome = "failed";
        using (nodes.Track(node.Id))
        {
            try
            {
                usage = await proxy.ForwardAsync(context, new Uri(node.BaseUrl!.TrimEnd('/') + "/"), node.UpstreamKey, path, body, routed.Model, routed.ExternalModel!.Upstream);
                outcome = usage is null ? "upstream_error" : "completed";
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                outcome = "cancelled";
            }
            finally
            {
                await router.CompleteAsync(routed, usage?.PromptTokens ?? 0, usage?.CompletionTokens ?? 0, outcome);
            }
        }
    }
}
