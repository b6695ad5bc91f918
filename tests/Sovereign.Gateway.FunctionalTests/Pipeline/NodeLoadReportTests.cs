using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Pipeline.Executors;
using Sovereign.Inference.Scheduling;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// What a node reports of its embedding models: the slots its embedding executor takes, running and waiting. They were
/// reported as 0 running and 0 free, so `cluster status` and the node list left them out of the free slots.
/// </summary>
[Collection(ServerCollection.Name)]
public sealed class NodeLoadReportTests(ServerFixture server)
{
    [Fact]
    public async Task EmbeddingModel_ReportsTheSlotsItsRequestsHoldAndWaitFor()
    {
        var gates = server.App.Services.GetRequiredService<RouteGates>();
        var nodeId = server.App.Services.GetRequiredService<IOptions<SovereignOptions>>().Value.NodeId;
        ModelLoadOf().Should(0, EmbeddingExecutor.Slots, 0);

        // Every slot taken, then a real request: it must wait in the same gate the report reads.
        var gate = gates.For(nodeId, ServerFixture.StoriesEmbedding, EmbeddingExecutor.Slots);
        var held = new List<IDisposable>();
        for (var i = 0; i < EmbeddingExecutor.Slots; i++)
        {
            held.Add(await gate.AcquireAsync(new FairQueueEntry("holder", 1, PriorityClass.Interactive, 1), default));
        }

        var request = server.Http.PostAsync("/v1/embeddings", new StringContent(
            $$"""{"model":"{{ServerFixture.StoriesEmbedding}}","input":"Once upon a time"}""", Encoding.UTF8, "application/json"));
        while (gate.Occupancy.Waiting == 0 && !request.IsCompleted)
        {
            await Task.Delay(10);
        }

        ModelLoadOf().Should(EmbeddingExecutor.Slots, 0, 1);
        held.ForEach(h => h.Dispose());
        using var answered = await request;
        Assert.Equal(200, (int)answered.StatusCode);
        ModelLoadOf().Should(0, EmbeddingExecutor.Slots, 0);

        Sovereign.Cluster.Grains.ModelLoad ModelLoadOf() =>
            NodeLoadReporter.LoadOf(server.Catalog, gates, nodeId).Single(m => m.Model == ServerFixture.StoriesEmbedding);
    }
}

internal static class ModelLoadAssertions
{
    public static void Should(this Sovereign.Cluster.Grains.ModelLoad load, int running, int free, int queued) =>
        Assert.Equal((running, free, queued), (load.Running, load.FreeSlots, load.QueueDepth));
}
