using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Benchmarks.Gateway;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Grammar;

namespace Sovereign.Benchmarks.Inference;

/// <summary>
/// Grammar-constrained decoding against free decoding on the same engine, model and seeds, in the same run: tokens/s
/// of one stream with no grammar, with <c>json_object</c>, and with a JSON Schema. Modes alternate within each round so
/// that machine load falls on all of them alike.
/// </summary>
internal static class GrammarBenchmark
{
    public const string Usage = "grammar [--quick] [--model PATH (llama-2-tiny-random.gguf)] [--requests N per mode and round (12)] [--rounds N (3)] [--max-tokens N (160)]";

    private const string Schema =
        """{"type":"object","properties":{"name":{"type":"string","maxLength":40},"age":{"type":"integer","minimum":0,"maximum":120},"tags":{"type":"array","items":{"type":"string","maxLength":12},"maxItems":4},"address":{"type":"object","properties":{"city":{"type":"string"},"zip":{"type":"string","maxLength":10}},"required":["city","zip"]}},"required":["name","age","tags","address"]}""";

    // Patterns, OpenAI's string formats and numeric bounds: grammars of character classes and digit ranges.
    private const string PatternSchema =
        """{"type":"object","properties":{"ref":{"type":"string","pattern":"^[A-Z]{3}-\\d{4}$"},"slug":{"type":"string","pattern":"^[a-z]+(-[a-z]+)*$","maxLength":30},"mail":{"type":"string","format":"email"},"ip":{"type":"string","format":"ipv4"},"age":{"type":"integer","minimum":18},"ratio":{"type":"number","minimum":0,"maximum":1}},"required":["ref","slug","mail","ip","age","ratio"]}""";

    public static async Task<int> RunAsync(string[] argv)
    {
        var args = Args.Parse(argv, "--model", "--requests", "--rounds", "--max-tokens");
        var path = args.String("--model") ?? SharedModels.Find("llama-2-tiny-random.gguf");
        var requests = args.Int("--requests", 12, 4);
        var rounds = args.Int("--rounds", 3, 1);
        var maxTokens = args.Int("--max-tokens", 160, 96);
        Sovereign.Benchmarks.Gateway.Report.Machine("grammar", argv);
        Console.WriteLine($"model {Path.GetFileName(path)}, {requests} requests per mode and round, {rounds} rounds, max_tokens {maxTokens}, one stream, threads 1");

        using var model = LlamaModel.Load(new ModelOptions { Id = "bench", Path = path, ContextLength = 1024, Parallel = 1, Threads = 1 });
        using var metrics = new EngineMetrics();
        await using var batcher = new ContinuousBatcher(model, metrics, NullLogger<ContinuousBatcher>.Instance);
        var prompt = model.Tokenize("Write a JSON record about a person:");
        var jsonSchema = JsonSchemaGrammarCompiler.Compile(JsonDocument.Parse(Schema).RootElement);
        // The last mode samples on the decode loop itself, as before the constrained sampler: what the hand-over to the
        // sampler's thread and back costs one stream.
        (string Name, GbnfGrammar? Grammar, bool Inline)[] modes =
        [
            ("unconstrained", null, false),
            ("json_object", JsonSchemaGrammarCompiler.AnyJsonObject(), false),
            ("json_schema", jsonSchema, false),
            ("pattern_schema", JsonSchemaGrammarCompiler.Compile(JsonDocument.Parse(PatternSchema).RootElement), false),
            ("schema_inline", jsonSchema, true),
        ];

        // Warm-up: the JIT's tiers and the decode path on full-length requests (otherwise round 1 of whichever mode
        // runs first pays them), and the first grammar use (vocabulary trie); grammar states stay mostly cold.
        for (var i = 0; i < 3; i++)
        {
            await Run(batcher, prompt, null, -1 - i, maxTokens);
        }

        foreach (var (_, grammar, inline) in modes)
        {
            batcher.ConstrainedSamplingInline = inline;
            await Run(batcher, prompt, grammar, 0, 16);
        }

        var tokens = new long[modes.Length];
        var seconds = new double[modes.Length];
        for (var round = 0; round < rounds; round++)
        {
            var roundRates = new double[modes.Length];
            for (var m = 0; m < modes.Length; m++)
            {
                var (roundTokens, roundSeconds) = (0L, 0.0);
                batcher.ConstrainedSamplingInline = modes[m].Inline;
                for (var i = 0; i < requests; i++)
                {
                    var (generated, elapsed) = await Run(batcher, prompt, modes[m].Grammar, round * requests + i + 1, maxTokens);
                    roundTokens += generated;
                    roundSeconds += elapsed;
                }

                tokens[m] += roundTokens;
                seconds[m] += roundSeconds;
                roundRates[m] = roundTokens / roundSeconds;
            }

            // Round 1 pays for the grammar states met for the first time (their masks are then cached per grammar).
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"round {round + 1}: {string.Join(", ", modes.Select((mode, m) => $"{mode.Name} {roundRates[m]:F0} tokens/s ({roundRates[m] / roundRates[0]:F2}x)"))}"));
        }

        var baseline = tokens[0] / seconds[0];
        Console.WriteLine($"{"mode",-15} {"tokens",8} {"seconds",8} {"tokens/s",9} {"vs free",8}");
        for (var m = 0; m < modes.Length; m++)
        {
            var rate = tokens[m] / seconds[m];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{modes[m].Name,-15} {tokens[m],8} {seconds[m],8:F2} {rate,9:F0} {rate / baseline,7:F2}x"));
        }

        return 0;
    }

    private static async Task<(int Tokens, double Seconds)> Run(ContinuousBatcher batcher, int[] prompt, GbnfGrammar? grammar, long seed, int maxTokens)
    {
        var clock = Stopwatch.StartNew();
        var (_, result) = await batcher.Submit(new GenerationRequest
        {
            PromptTokens = prompt,
            MaxTokens = maxTokens,
            Sampling = new SamplingOptions { Temperature = 1f, Seed = seed },
            Grammar = grammar,
        }).CollectAsync();
        return (result.CompletionTokens, clock.Elapsed.TotalSeconds);
    }
}
