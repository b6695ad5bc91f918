using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Models;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.Pipeline.Executors;

/// <summary>
/// Runs chat and text completions, and embeddings, on an engine this node fronts (<c>Sovereign:Engines</c>: vLLM,
/// llama-server or Ollama beside it, typically on its GPUs): the same relay as to a registered engine, bounded by the
/// same route gate, but the place is this node (its jurisdiction, pool and device class), and a refused connection
/// takes the engine, not the node, out of rotation.
/// </summary>
internal sealed class FrontedEngineExecutor(UpstreamProxy proxy, NodeDirectory nodes, RouteGates gates, IOptions<SovereignOptions> options, EngineOccupancy occupancy, FrontedEngines engines)
    : ExternalEngineExecutor(proxy, nodes, gates, options, occupancy)
{
    public override bool Runs(RoutedRequest route, Workload work) => route.Fronted is not null && Relays(route, work);

    protected override void OnUnreachable(RoutedRequest route) => engines.MarkDown(route.Fronted!.Engine);

    protected override bool AsksUsageOnEveryEvent(RoutedRequest route) => engines.UsageOnEveryEvent(route.Fronted!.Engine);

    protected override Action? EngineAnswered(RoutedRequest route)
    {
        var engine = route.Fronted!.Engine;
        return () => engines.NoteAnswered(engine);
    }

    protected override string PromptCache(RoutedRequest route) => route.Fronted!.PromptCache;
}
