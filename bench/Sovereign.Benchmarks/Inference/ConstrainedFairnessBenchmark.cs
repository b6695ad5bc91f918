using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Benchmarks.Gateway;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Grammar;

namespace Sovereign.Benchmarks.Inference;

/// <summary>
/// Another tenant's latency for a 20-token request while N requests of one tenant sample with the most expensive
/// grammar the limits allow, with constrained sampling on the decode loop (before) and on the constrained sampler's
/// thread (after), in the same run and the same engine, the modes alternating round by round; plus the same request
/// on an idle engine, and the constrained requests' own tokens/s in each mode (what the change costs them).
/// </summary>
internal static class ConstrainedFairnessBenchmark
{
    public const string Usage = "constrained-fairness [--model PATH (stories260K.gguf)] [--constrained N (4)] [--rounds N (4)] [--probes N per round and mode (8)] [--pattern P (^[a-z]*[a-z]*[a-z]*[a-z]*[a-z]*$)] [--forced N maxLength (1999)] [--depth N characters each load has written before the probes (forced / 4)]";

    public static async Task<int> RunAsync(string[] argv)
    {
        var args = Args.Parse(argv, "--model", "--constrained", "--rounds", "--probes", "--forced", "--depth", "--pattern");
        var path = args.String("--model") ?? SharedModels.Find("stories260K.gguf");
        var constrained = args.Int("--constrained", 4, 4);
        var rounds = args.Int("--rounds", 4, 2);
        var probes = args.Int("--probes", 8, 4);
        var forced = args.Int("--forced", 1999, 100);
        var pattern = args.String("--pattern") ?? "^[a-z]*[a-z]*[a-z]*[a-z]*[a-z]*$";
        // The grammar's cost per token grows with the a's written (more ways to split them): probe deep in the string.
        var depth = args.Int("--depth", forced / 4, forced / 4);
        Sovereign.Benchmarks.Gateway.Report.Machine("constrained-fairness", argv);

        // Five open repetitions in a row: four places where one may go on with what begins the next, the most the pattern
        // limits allow (each gets a fifth of maxLength); of a class, so that many tokens are allowed at every step. A logit bias against every token holding '"' keeps the string
        // open to maxLength, so every token goes through llama.cpp's parse stacks for all the ways to split the a's
        // (explorer10's case, session 37).
        var schema = $$$"""{"type":"object","properties":{"s":{"type":"string","pattern":{{{JsonSerializer.Serialize(pattern)}}},"maxLength":{{{forced}}}}},"required":["s"]}""";
        var grammar = JsonSchemaGrammarCompiler.Compile(JsonDocument.Parse(schema).RootElement);
        Console.WriteLine($"model {Path.GetFileName(path)}, {constrained} constrained requests (pattern {pattern}, up to {forced} characters, quotes biased -100), {probes} probes of 20 tokens per round and mode, {rounds} rounds, threads 1");
        Console.WriteLine($"schema {schema}");

        using var model = LlamaModel.Load(new ModelOptions { Id = "bench", Path = path, ContextLength = forced + 200, Parallel = constrained + 1, Threads = 1 });
        using var metrics = new EngineMetrics();
        await using var batcher = new ContinuousBatcher(model, metrics, NullLogger<ContinuousBatcher>.Instance);
        var constrainedPrompt = model.Tokenize("Once upon a time");
        var noQuotes = Enumerable.Range(0, model.Info.VocabularySize)
            .Where(t => (model.Weights.Vocab.LLamaTokenToString((LLama.Native.LLamaToken)t, isSpecialToken: false) ?? "").Contains('"', StringComparison.Ordinal))
            .ToDictionary(t => t, _ => -100f);
        var probePrompt = model.Tokenize("The little dog");

        // Warm-up: the JIT, the grammar's first use (vocabulary trie, matcher states) in both modes.
        for (var i = 0; i < 3; i++)
        {
            await Probe(batcher, probePrompt);
        }

        foreach (var inline in new[] { true, false })
        {
            batcher.ConstrainedSamplingInline = inline;
            await batcher.Submit(Constrained(constrainedPrompt, grammar, noQuotes, 0, 40)).CollectAsync();
        }

        // "unconstrained load": the same requests without the grammar, what sharing the batch costs by itself.
        string[] modes = ["idle", "unconstrained load", "before (on the loop)", "after (own thread)"];
        var latencies = modes.Select(_ => new List<double>()).ToArray();
        var constrainedTokens = new long[modes.Length];
        var constrainedSeconds = new double[modes.Length];
        for (var round = 0; round < rounds; round++)
        {
            int[] order = round % 2 == 0 ? [0, 1, 2, 3] : [3, 2, 1, 0];
            var roundMedians = new double[modes.Length];
            foreach (var m in order)
            {
                batcher.ConstrainedSamplingInline = m == 2;
                using var stop = new CancellationTokenSource();
                var started = Stopwatch.StartNew();
                Load[] load = m == 0 ? [] : Enumerable.Range(0, constrained)
                    .Select(i => StartConstrained(batcher, Constrained(constrainedPrompt, m == 1 ? null : grammar, noQuotes, round * 100 + i + 1, forced + 20), depth, stop.Token))
                    .ToArray();
                await Task.WhenAll(load.Select(l => l.Deep));


                var measured = new List<double>();
                for (var p = 0; p < probes; p++)
                {
                    measured.Add(await Probe(batcher, probePrompt));
                }

                // The loads' own pace from their start to the probes' end: text chunks (a token each, but for the rare
                // one held back).
                constrainedTokens[m] += load.Sum(l => l.Chunks);
                if (load.Any(l => l.Done.IsCompleted))
                {
                    var ended = load.Where(l => l.Done.IsCompleted).Select(l => l.Done.Result).Select(r => $"{r?.FinishReason} after {r?.CompletionTokens} tokens");
                    Console.WriteLine($"  ({modes[m]}: load requests that ended before the probes did: {string.Join(", ", ended)})");
                }

                constrainedSeconds[m] += started.Elapsed.TotalSeconds;
                await stop.CancelAsync();
                await Task.WhenAll(load.Select(l => l.Done));
                latencies[m].AddRange(measured);
                roundMedians[m] = Stats.Median(measured);
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"round {round + 1}: other tenant's 20-token request p50 {string.Join(", ", modes.Select((mode, m) => $"{mode} {roundMedians[m] * 1000:F1} ms"))}"));
        }

        batcher.ConstrainedSamplingInline = false;
        Console.WriteLine();
        Console.WriteLine($"{"mode",-22} {"probe p50",10} {"probe p90",10} {"probe max",10} {"vs idle",8} {"load tok/s",11}");
        var idle = Stats.Median(latencies[0]);
        for (var m = 0; m < modes.Length; m++)
        {
            var sorted = latencies[m].Order().ToList();
            var p50 = Stats.Median(sorted);
            var rate = m == 0 ? "-" : (constrainedTokens[m] / constrainedSeconds[m]).ToString("F0", CultureInfo.InvariantCulture);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{modes[m],-22} {p50 * 1000,8:F1}ms {sorted[(int)(0.9 * (sorted.Count - 1))] * 1000,8:F1}ms {sorted[^1] * 1000,8:F1}ms {p50 / idle,7:F1}x {rate,11}"));
        }

        return 0;
    }

    private static GenerationRequest Constrained(int[] prompt, GbnfGrammar? grammar, Dictionary<int, float> bias, long seed, int maxTokens) => new()
    {
        PromptTokens = prompt,
        MaxTokens = maxTokens,
        Sampling = new SamplingOptions { Temperature = 1f, Seed = seed, LogitBias = bias },
        Grammar = grammar,
        Tenant = "constrained",
    };

    private sealed class Load
    {
        private long _chunks;

        public required Task Deep { get; init; }

        public Task<GenerationResult?> Done { get; set; } = Task.FromResult<GenerationResult?>(null);

        public long Chunks => Interlocked.Read(ref _chunks);

        public void Chunk() => Interlocked.Increment(ref _chunks);
    }

    /// <summary>Starts a load request; its <see cref="Load.Deep"/> completes once it has written <paramref name="depth"/> characters (or ended).</summary>
    private static Load StartConstrained(ContinuousBatcher batcher, GenerationRequest request, int depth, CancellationToken stop)
    {
        var deep = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stream = batcher.Submit(request, stop);
        var load = new Load { Deep = deep.Task };
        load.Done = Consume();
        return load;

        async Task<GenerationResult?> Consume()
        {
            var written = 0;
            GenerationResult? result = null;
            await foreach (var update in stream.WithCancellation(CancellationToken.None))
            {
                if (update.Text.Length > 0)
                {
                    load.Chunk();
                    written += update.Text.Length;
                    if (written >= depth)
                    {
                        deep.TrySetResult();
                    }
                }

                result ??= update.Result;
            }

            deep.TrySetResult();
            return result;
        }
    }

    private static async Task<double> Probe(ContinuousBatcher batcher, int[] prompt)
    {
        var clock = Stopwatch.StartNew();
        await batcher.Submit(new GenerationRequest
        {
            PromptTokens = prompt,
            MaxTokens = 20,
            Sampling = SamplingOptions.Greedy,
            Tenant = "other",
        }).CollectAsync();
        return clock.Elapsed.TotalSeconds;
    }
}
