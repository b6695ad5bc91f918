using System.Diagnostics;
using System.Text;
using LLama;
using LLama.Batched;
using LLama.Common;
using LLama.Native;
using LLama.Sampling;
using Sovereign.Inference.Engine;

namespace Sovereign.Benchmarks.Inference;

/// <summary>
/// The engine's ceiling: a plain LLamaSharp <see cref="BatchedExecutor"/> loop (prompt, infer, sample greedily,
/// detokenize, feed the token back), with no queue, channel, HTTP or JSON. The executor is created with exactly the
/// parameters <see cref="ContinuousBatcher"/> uses, so the only differences from the server are what the server adds.
/// </summary>
internal sealed class DirectRunner : IRunner, IDisposable
{
    private readonly LlamaModel _model;
    private readonly BatchedExecutor _executor;

    public DirectRunner(LlamaModel model)
    {
        _model = model;
        _executor = CreateExecutor(model);
    }

    public Route Route => Route.Direct;

    /// <summary>Mirrors ContinuousBatcher.CreateExecutor (src/Sovereign.Inference/Engine/ContinuousBatcher.cs).</summary>
    public static BatchedExecutor CreateExecutor(LlamaModel model, int? sequences = null)
    {
        var resolved = model.Resolved;
        var parallel = sequences ?? Math.Max(1, model.Options.Parallel);
        var kv = sequences is { } n ? n * resolved.ContextLength : resolved.KvCacheTokens;
        return new BatchedExecutor(model.Weights, new ModelParams(model.Info.Path)
        {
            ContextSize = (uint)kv,
            SeqMax = (uint)parallel,
            BatchSize = (uint)Math.Min(resolved.BatchSize, kv),
            UBatchSize = (uint)Math.Min(resolved.BatchSize, kv),
            Threads = resolved.Threads,
            BatchThreads = resolved.Threads,
            GpuLayerCount = model.Options.GpuLayers,
            KVUnified = true,
        });
    }

    public Task<RunSample> RunAsync(int[] prompt, int concurrency, int maxTokens, bool stream, CancellationToken cancellationToken) =>
        RunAsync(_executor, _model, prompt, concurrency, maxTokens, cancellationToken);

    /// <summary>Runs <paramref name="concurrency"/> greedy sequences of the same prompt to completion.</summary>
    public static async Task<RunSample> RunAsync(BatchedExecutor executor, LlamaModel model, int[] prompt, int concurrency, int maxTokens, CancellationToken cancellationToken)
    {
        var tokens = prompt.Select(t => (LLamaToken)t).ToArray();
        var vocab = model.Weights.Vocab;
        var start = Stopwatch.GetTimestamp();
        var active = new List<Sequence>(concurrency);
        var done = new List<RequestSample>(concurrency);
        try
        {
            for (var i = 0; i < concurrency; i++)
            {
                var conversation = executor.Create();
                conversation.Prompt(tokens);
                active.Add(new Sequence(conversation, new GreedySamplingPipeline(), new StreamingTokenDecoder(Encoding.UTF8, model.Weights)));
            }

            while (active.Count > 0)
            {
                // A prompt larger than the batch is queued as several batches; each Infer decodes one, after which
                // only the conversations in it can be sampled.
                var status = await executor.Infer(cancellationToken);
                if (status != DecodeResult.Ok)
                {
                    throw new InvalidOperationException($"llama.cpp decode failed: {status}");
                }

                for (var i = active.Count - 1; i >= 0; i--)
                {
                    var sequence = active[i];
                    if (!sequence.Conversation.RequiresSampling)
                    {
                        continue;
                    }

                    var token = sequence.Conversation.Sample(sequence.Pipeline);
                    var now = Clock.Since(start);
                    sequence.Generated++;
                    sequence.First ??= now;
                    sequence.Last = now;
                    var end = token.IsEndOfGeneration(vocab);
                    if (!end)
                    {
                        sequence.Decoder.Add(token);
                        _ = sequence.Decoder.Read();
                    }

                    if (end || sequence.Generated >= maxTokens)
                    {
                        done.Add(new RequestSample(sequence.First, sequence.Last - sequence.First, sequence.Generated));
                        sequence.Dispose();
                        active.RemoveAt(i);
                    }
                    else
                    {
                        sequence.Conversation.Prompt(token);
                    }
                }
            }

            return new RunSample(Clock.Since(start), done);
        }
        finally
        {
            foreach (var sequence in active)
            {
                sequence.Dispose();
            }
        }
    }

    public void Dispose() => _executor.Dispose();

    private sealed class Sequence(Conversation conversation, GreedySamplingPipeline pipeline, StreamingTokenDecoder decoder) : IDisposable
    {
        public Conversation Conversation { get; } = conversation;
        public GreedySamplingPipeline Pipeline { get; } = pipeline;
        public StreamingTokenDecoder Decoder { get; } = decoder;
        public int Generated { get; set; }
        public TimeSpan? First { get; set; }
        public TimeSpan Last { get; set; }

        public void Dispose()
        {
            Conversation.Dispose();
            Pipeline.Dispose();
        }
    }
}
