using System.Diagnostics;
using Sovereign.Inference.Engine;

namespace Sovereign.Benchmarks.Inference;

/// <summary>
/// The server's own <see cref="ContinuousBatcher"/> driven in process, without HTTP: separates what the engine
/// (queue, channels, per-request sampler, stop matching, metrics) costs from what HTTP and JSON cost.
/// </summary>
internal sealed class EngineRunner(ContinuousBatcher batcher) : IRunner
{
    public Route Route => Route.Engine;

    public async Task<RunSample> RunAsync(int[] prompt, int concurrency, int maxTokens, bool stream, CancellationToken cancellationToken)
    {
        var request = new GenerationRequest { PromptTokens = prompt, MaxTokens = maxTokens, Sampling = SamplingOptions.Greedy };
        var start = Stopwatch.GetTimestamp();
        var streams = new GenerationStream[concurrency];
        for (var i = 0; i < concurrency; i++)
        {
            streams[i] = batcher.Submit(request, cancellationToken);
        }

        var samples = await Task.WhenAll(streams.Select(async s =>
        {
            TimeSpan? first = null;
            await foreach (var update in s.WithCancellation(cancellationToken))
            {
                if (update.Text.Length > 0)
                {
                    first ??= Clock.Since(start);
                }

                if (update.Result is { } result)
                {
                    var end = Clock.Since(start);
                    first ??= end;
                    return new RequestSample(first, end - first, result.CompletionTokens);
                }
            }

            throw new InvalidOperationException("The generation ended without a result.");
        }));
        return new RunSample(Clock.Since(start), samples);
    }
}
