using System.Text.Json.Nodes;
using Sovereign.Gateway.Metering;
using Sovereign.Gateway.OpenAI;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.Routing;

/// <summary>Runs a routed request on its external node: admits and meters it, forwards it, relays the answer, audits the outcome.</summary>
internal static class ExternalForwarding
{
    public static async Task ForwardAsync(HttpContext context, RoutedRequest routed, InferenceRouter router, RequestMetering metering, UpstreamProxy proxy, NodeDirectory nodes, string path, int maxTokens)
    {
        var node = routed.ExternalNode!;
        var raw = RequestReader.RawBody(context);
        if (JsonNode.Parse(raw.Span) is not JsonObject body)
        {
            throw OpenAIException.BadRequest("The request body must be a JSON object.");
        }

        // The engine's tokenizer is remote, so the reservation bounds the prompt by its bytes (a token covers at least one).
        var ticket = await metering.AdmitAsync(context, routed, raw.Length, maxTokens);
        UpstreamResult? result = null;
        var outcome = UsageOutcome.Failed;
        using (nodes.Track(node.Id))
        {
            try
            {
                result = await proxy.ForwardAsync(context, new Uri(node.BaseUrl!.TrimEnd('/') + "/"), node.UpstreamKey, path, body, routed.Model, routed.ExternalModel!.Upstream);
                outcome = result.Succeeded ? UsageOutcome.Completed : UsageOutcome.Failed;
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                outcome = UsageOutcome.Cancelled;
            }
            finally
            {
                var usage = result?.Usage ?? new UpstreamUsage(0, 0);
                await metering.FinishAsync(routed, ticket, usage.PromptTokens, usage.CompletionTokens, null, outcome);
                await router.CompleteAsync(routed, usage.PromptTokens, usage.CompletionTokens, outcome.ToString().ToLowerInvariant());
            }
        }

        if (result is not null)
        {
            await result.FinishAsync(context);
        }
    }
}
