using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Inference.Engine;

namespace Sovereign.Inference.Tests;

/// <summary>
/// A model loaded with its metrics and a running batcher, disposed batcher first: the engine tests' common set-up
/// (seven classes wrote the same three fields and their start and stop by hand).
/// </summary>
internal sealed class TestEngine : IAsyncDisposable
{
    public TestEngine(ModelOptions options)
    {
        Model = LlamaModel.Load(options);
        Metrics = new EngineMetrics();
        Batcher = new ContinuousBatcher(Model, Metrics, NullLogger<ContinuousBatcher>.Instance);
    }

    public LlamaModel Model { get; }

    public EngineMetrics Metrics { get; }

    public ContinuousBatcher Batcher { get; }

    public async ValueTask DisposeAsync()
    {
        await Batcher.DisposeAsync();
        Metrics.Dispose();
        Model.Dispose();
    }
}
