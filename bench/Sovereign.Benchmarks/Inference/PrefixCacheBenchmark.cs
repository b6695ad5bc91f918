using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Benchmarks.Gateway;
using Sovereign.Inference.Engine;

namespace Sovereign.Benchmarks.Inference;

/// <summary>
/// Time to first token of a request whose long prompt prefix (a shared system prompt) is in the prefix cache, against
/// the same request on an engine with the cache turned off, on the same weights, in the same run. Requests alternate
/// between the two engines so that machine load falls on both alike; each request has its own suffix, so the warm
/// engine reuses the prefix and prefills only the suffix, while the cold engine prefills everything.
/// </summary>
internal static class PrefixCacheBenchmark
{
    public const string Usage = "prefix-cache [--quick] [--model PATH (synthesizes the 106M Q8_0 llama)] [--prefix N tokens (1000)] [--suffix N tokens (24)] [--requests N (12)] [--threads N (1)]";

    public static async Task<int> RunAsync(string[] argv)
    {
        var args = Args.Parse(argv, "--model", "--prefix", "--suffix", "--requests", "--threads");
        var prefixLength = args.Int("--prefix", 1000, 1000);
        var suffixLength = args.Int("--suffix", 24, 24);
        var requests = args.Int("--requests", 12, 4);
        var threads = args.Int("--threads", 1, 1);
        Sovereign.Benchmarks.Gateway.Report.Machine("prefix-cache", argv);
        var temp = Directory.CreateTempSubdirectory("sovereign-prefix-bench-");
        try
        {
            var path = args.String("--model") ?? InferenceBenchmark.SynthesizeBenchModel(temp.FullName);
            var context = prefixLength + suffixLength + 64;
            ModelOptions Options(int? cache) => new() { Id = "bench", Path = path, ContextLength = context, Parallel = 1, Threads = threads, PrefixCacheSequences = cache };
            using var warmModel = LlamaModel.Load(Options(null));
            using var coldModel = LlamaModel.Load(Options(0));
            using var metrics = new EngineMetrics();
            await using var warm = new ContinuousBatcher(warmModel, metrics, NullLogger<ContinuousBatcher>.Instance);
            await using var cold = new ContinuousBatcher(coldModel, metrics, NullLogger<ContinuousBatcher>.Instance);
            Console.WriteLine($"model {Path.GetFileName(path)}, prefix {prefixLength} tokens, suffix {suffixLength} tokens, {requests} requests per engine, max_tokens 1, threads {threads}, one stream");

            // Token ids drawn from the vocabulary (seeded): the same prefix for every request, a new suffix each time.
            var random = new Random(42);
            var vocabulary = warmModel.Info.VocabularySize;
            var prefix = Enumerable.Range(0, prefixLength).Select(_ => random.Next(3, vocabulary)).ToArray();
            int[] Prompt() => [.. prefix, .. Enumerable.Range(0, suffixLength).Select(_ => random.Next(3, vocabulary))];

            // Warm-up of both engines; it also puts the prefix in the warm engine's cache.
            await Run(warm, Prompt());
            await Run(cold, Prompt());

            var warmTtft = new List<double>();
            var coldTtft = new List<double>();
            var cachedTokens = new List<int>();
            for (var i = 0; i < requests; i++)
            {
                // Alternate which engine goes first.
                var prompt = Prompt();
                if (i % 2 == 0)
                {
                    await Measure(cold, prompt, coldTtft, null);
                    await Measure(warm, prompt, warmTtft, cachedTokens);
                }
                else
                {
                    await Measure(warm, prompt, warmTtft, cachedTokens);
                    await Measure(cold, prompt, coldTtft, null);
                }
            }

            var coldMedian = Median(coldTtft);
            var warmMedian = Median(warmTtft);
            Console.WriteLine($"{"engine",-8} {"TTFT p50 ms",12} {"min ms",8} {"max ms",8} {"cached tokens",14}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"uncached",-8} {coldMedian,12:F1} {coldTtft.Min(),8:F1} {coldTtft.Max(),8:F1} {0,14}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"cached",-8} {warmMedian,12:F1} {warmTtft.Min(),8:F1} {warmTtft.Max(),8:F1} {cachedTokens.Min(),14}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"TTFT speed-up with the prefix cached: {coldMedian / warmMedian:F1}x (p50 over p50; worst cached vs best uncached: {coldTtft.Min() / warmTtft.Max():F1}x)"));
            return 0;
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }

    private static async Task Measure(ContinuousBatcher batcher, int[] prompt, List<double> ttft, List<int>? cached)
    {
        var (_, result) = await Run(batcher, prompt);
        ttft.Add(result.TimeToFirstToken!.Value.TotalMilliseconds);
        cached?.Add(result.CachedPromptTokens);
    }

    private static async Task<(string, GenerationResult)> Run(ContinuousBatcher batcher, int[] prompt) =>
        await batcher.Submit(new GenerationRequest { PromptTokens = prompt, MaxTokens = 1, Sampling = SamplingOptions.Greedy }).CollectAsync();

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
