using System.Text.Json.Nodes;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// <c>/tokenize</c> and <c>/detokenize</c> for a model that a node of the cluster runs (a <c>--role gateway</c> runs
/// none): after this gateway's residency decision the body goes to the chosen node's own endpoint, over the same relay
/// as chat (the cluster secret; over https both ends' cluster certificates), and its answer, or its refusal, comes
/// back. A node that cannot be reached is routed around as chat's is (<see cref="InferenceRouter.FailoverAsync"/>:
/// audited, never to a node the policy does not allow, 503 when none is left).
/// </summary>
internal sealed class TokenizerRelay(UpstreamProxy proxy, NodeDirectory nodes, ClusterRelay relay, InferenceRouter router, ILogger<TokenizerRelay> logger)
{
    /// <summary>Whether <paramref name="route"/> runs on another node of this cluster (not an external or fronted engine).</summary>
    public static bool OnClusterNode(RoutedRequest route) =>
        route is { Local: null, Fronted: null, ExternalNode.Kind: nameof(Residency.Policies.NodeKind.Local), ExternalModel: not null };

    /// <summary>
    /// Refuses, before the request is counted, a model that runs on an external engine: engines' tokenizer endpoints
    /// differ (vLLM's, llama-server's; Ollama has none), so this server does not relay them there.
    /// </summary>
    public static void RequireServable(RoutedRequest route, string path)
    {
        ArgumentNullException.ThrowIfNull(route);
        if (route.Local is null && !OnClusterNode(route))
        {
            throw OpenAIException.BadRequest(
                $"{path} is served for models this server or a node of its cluster runs; '{RequestReader.Shorten(route.Model)}' runs on an external engine, whose tokenizer endpoint this server does not relay.",
                "model", "model_not_supported");
        }
    }

    /// <summary>
    /// Serves the request where <paramref name="route"/> says: here through <paramref name="here"/> when this process
    /// runs the model, else relayed to <paramref name="path"/> on the route's node.
    /// </summary>
    public async Task<IResult> ServeAsync(HttpContext context, RoutedRequest route, string path, Func<LlamaModel, Task<IResult>> here)
    {
        for (var failovers = 0; ; failovers++)
        {
            if (route.Local?.Model is { } model)
            {
                return await here(model);
            }

            RequireServable(route, path);
            var node = route.ExternalNode!;
            var body = JsonNode.Parse(RequestReader.RawBody(context).Span) as JsonObject ?? throw OpenAIException.BadRequest("The request body must be a JSON object.");
            HttpResponseMessage response;
            try
            {
                response = await proxy.OpenAtAsync(new Uri(new Uri(node.BaseUrl!.TrimEnd('/') + "/"), path.TrimStart('/')), relay.Secret, body, route.ExternalModel!.Upstream,
                    context.RequestAborted, UpstreamProxy.ClusterNodeClientName);
            }
            catch (UpstreamUnreachableException ex)
            {
                nodes.MarkUnreachable(node);
                if (failovers == Pipeline.RequestPipeline.MaxFailovers || context.RequestAborted.IsCancellationRequested)
                {
                    throw new Pipeline.Executors.NodeUnreachableException(route.NodeId, ex);
                }

                Observability.GatewayLog.RequestFailedOver(logger, route.RequestId, route.NodeId, ex.Reason);
                route = await router.FailoverAsync(context, route, ModelKind.Chat);
                await route.DecisionRecorded;
                continue;
            }

            using (response)
            {
                if (!response.IsSuccessStatusCode)
                {
                    // The node's own refusal (a token id outside its vocabulary, a text too long) as the client's error.
                    throw await UpstreamProxy.ErrorOfAsync(context, response);
                }

                try
                {
                    return TypedResults.Json(await UpstreamProxy.ReadObjectAsync(response, proxy.Idle, context.RequestAborted), OpenAIJson.Options);
                }
                catch (Exception ex) when (UpstreamProxy.IsFailedMidAnswer(ex, context.RequestAborted))
                {
                    throw proxy.FailedMidAnswer(response, stream: false, new RelayProgress(), ex);
                }
            }
        }
    }
}
