using System.Diagnostics;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Gguf;

namespace Sovereign.Benchmarks.Inference;

/// <summary>How much work one model gets.</summary>
internal sealed record ModelCase(string Name, string Path, string Description, int SingleTokens, int SingleReps, int AggregateTokens, int AggregateReps);

/// <summary>Everything measured for one model.</summary>
internal sealed record ModelResult(
    ModelCase Case,
    ModelInfo Info,
    int PromptTokens,
    IReadOnlyDictionary<Route, List<RunSample>> Single,
    IReadOnlyDictionary<(int Concurrency, Route Route), List<RunSample>> Aggregate,
    IReadOnlyDictionary<int, MemoryReading> Memory,
    MemoryReading? ServerMemory,
    double[] HealthRoundTripsMs,
    double[] AuditAppendsMs,
    IReadOnlyDictionary<Route, List<RunSample>> Minimal);

/// <summary>
/// The inference benchmark: for each model, the same greedy requests through three routes in one process, in
/// interleaved order (so drift and noise from other work on the machine hit all routes alike): a direct LLamaSharp
/// loop (the ceiling), the server's batcher without HTTP, and the real server over loopback HTTP.
/// </summary>
internal static class InferenceBenchmark
{
    /// <summary>The prompt of every request (about 25-30 tokens); the TinyStories model continues it sensibly.</summary>
    public const string StoryPrompt = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.";

    private static readonly int[] Concurrencies = [1, 8, 32];

    public static async Task<int> RunAsync(BenchOptions options)
    {
        var total = Stopwatch.StartNew();
        NativeSetup.Configure(options);
        var machine = MachineInfo.Collect(options);
        Console.WriteLine(machine.Describe());
        var temp = Directory.CreateTempSubdirectory("sovereign-bench-");
        var results = new List<ModelResult>();
        try
        {
            foreach (var name in options.Models)
            {
                var modelCase = name == "stories" ? StoriesCase(options) : SyntheticCase(options, temp.FullName);
                results.Add(await RunModelAsync(modelCase, options));
            }
        }
        finally
        {
            // The synthesized model is only needed for this run.
            temp.Delete(recursive: true);
        }

        var report = Report.Render(machine, options, results, total.Elapsed);
        Console.WriteLine();
        Console.WriteLine(report);
        var output = options.Output ?? System.IO.Path.Combine(MachineInfo.RepositoryRoot(), "bench", "results", $"inference-{machine.Slug}{(options.Quick ? "-quick" : "")}.md");
        if (output != "-")
        {
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(output))!);
            await File.WriteAllTextAsync(output, report);
            Console.WriteLine($"Written to {output}");
        }

        return 0;
    }

    /// <summary>The model settings used by the server, the ceilings and the memory probes alike.</summary>
    public static ModelOptions ModelOptionsFor(string id, string path, BenchOptions options) => new()
    {
        Id = id,
        Path = System.IO.Path.GetFullPath(path),
        Parallel = options.Parallel,
        ContextLength = options.ContextLength,
        BatchSize = options.BatchSize,
        Threads = options.Threads,
        MaxQueue = 1024,
        PrefixCacheSequences = options.PrefixCacheSequences,
    };

    private static ModelCase StoriesCase(BenchOptions options)
    {
        var path = options.StoriesPath ?? MachineInfo.FindUpwards(System.IO.Path.Combine("shared", "models", "stories260K.gguf"))
            ?? throw new ArgumentException("stories260K.gguf not found; pass --stories PATH");
        return options.Quick
            ? new ModelCase("stories260K", path, "TinyStories 260K (llama, F32)", 64, 5, 64, 2)
            : new ModelCase("stories260K", path, "TinyStories 260K (llama, F32)", 128, 15, 128, 5);
    }

    private static ModelCase SyntheticCase(BenchOptions options, string directory)
    {
        var path = SynthesizeBenchModel(directory);
        var description = $"synthetic llama, {SyntheticBenchModel.Layers} x {SyntheticBenchModel.EmbeddingLength}, vocab {SyntheticBenchModel.VocabularySize}, Q8_0, seed {SyntheticBenchModel.Seed}";
        return options.Quick
            ? new ModelCase("synthetic-106M", path, description, 16, 2, 8, 1)
            : new ModelCase("synthetic-106M", path, description, 64, 6, 32, 3);
    }

    /// <summary>About 106M parameters: 8 blocks of width 768 with a 32000-token vocabulary, the shape of a small llama.</summary>
    public static readonly SyntheticModelOptions SyntheticBenchModel = new()
    {
        Layers = 8,
        EmbeddingLength = 768,
        HeadCount = 12,
        VocabularySize = 32000,
        ContextLength = 2048,
        TensorType = GgmlType.Q8_0,
        Seed = 42,
        Name = "sovereign-bench-106m",
    };

    /// <summary>Writes the 106M-parameter Q8_0 benchmark model into <paramref name="directory"/> and returns its path.</summary>
    public static string SynthesizeBenchModel(string directory)
    {
        var estimate = SyntheticModelBuilder.Estimate(SyntheticBenchModel);
        var path = System.IO.Path.Combine(directory, "synthetic-q8_0.gguf");
        var watch = Stopwatch.StartNew();
        SyntheticModelBuilder.Write(SyntheticBenchModel, path);
        Console.WriteLine($"Synthesized {estimate.ParameterCount / 1e6:F1}M-parameter Q8_0 model ({estimate.FileSizeBytes / 1048576.0:F0} MiB) in {watch.Elapsed.TotalSeconds:F1} s");
        return path;
    }

    private static async Task<ModelResult> RunModelAsync(ModelCase modelCase, BenchOptions options)
    {
        var memory = new Dictionary<int, MemoryReading>();
        MemoryReading? serverMemory = null;
        if (options.Phases.Contains("memory"))
        {
            Console.WriteLine($"== {modelCase.Name}: memory probes (child processes)");
            var probes = options.Quick ? new[] { 1, options.Parallel } : [1, 8, 32, options.Parallel];
            foreach (var sequences in probes.Where(n => n <= options.Parallel).Distinct())
            {
                memory[sequences] = await MemoryProbe.MeasureAsync(modelCase.Path, options, "direct", sequences);
            }

            serverMemory = await MemoryProbe.MeasureAsync(modelCase.Path, options, "server", options.Parallel);
            Console.WriteLine(FormattableString.Invariant($"   RSS with the model: {memory[1].RssWarm / 1048576.0:F1} MiB (1 sequence), server {serverMemory.RssWarm / 1048576.0:F1} MiB"));
            Console.WriteLine("   llama.cpp buffers (1 sequence): " + string.Join("; ", memory[1].Buffers));
        }

        Console.WriteLine($"== {modelCase.Name}: loading (direct executor + server)");
        var modelOptions = ModelOptionsFor(modelCase.Name, modelCase.Path, options);
        using var model = LlamaModel.Load(modelOptions);
        var prompt = model.Tokenize(StoryPrompt);
        using var direct = new DirectRunner(model);
        await using var server = await ServerHost.StartAsync(ModelOptionsFor(modelCase.Name, modelCase.Path, options), options.ServerData);
        using var http = new HttpRunner(server.Address, modelCase.Name);
        IRunner[] runners = [direct, new EngineRunner(server.Batcher), http];
        var concurrencies = Concurrencies.Where(c => c <= options.Parallel).ToArray();
        var ct = CancellationToken.None;
        var started = Stopwatch.StartNew();

        // Warm-up: JIT, connection pool, first-touch of weights and of the compute buffers at the largest batch.
        // The wide warm-up uses a short prompt: it only has to reach the batch shapes, not to prefill 32 full prompts.
        foreach (var runner in runners)
        {
            await runner.RunAsync(prompt, 1, 8, stream: true, ct);
            await runner.RunAsync(prompt[..Math.Min(4, prompt.Length)], concurrencies[^1], 2, stream: false, ct);
        }

        Console.WriteLine($"== {modelCase.Name}: single stream, {modelCase.SingleReps} x {modelCase.SingleTokens} tokens per route");
        var single = runners.ToDictionary(r => r.Route, _ => new List<RunSample>());
        for (var rep = 0; rep < (options.Phases.Contains("single") ? modelCase.SingleReps : 0); rep++)
        {
            foreach (var runner in Rotate(runners, rep))
            {
                single[runner.Route].Add(await MeasureAsync(runner, prompt, 1, modelCase.SingleTokens, stream: true));
            }
        }

        if (single[Route.Direct].Count > 0)
        {
            Print(single);
        }

        // The fixed cost of one request: a 4-token prompt and one generated token, one request at a time.
        var minimal = runners.ToDictionary(r => r.Route, _ => new List<RunSample>());
        var shortPrompt = prompt[..Math.Min(4, prompt.Length)];
        for (var rep = 0; rep < (options.Phases.Contains("single") ? (options.Quick ? 8 : 30) : 0); rep++)
        {
            foreach (var runner in Rotate(runners, rep))
            {
                minimal[runner.Route].Add(await MeasureAsync(runner, shortPrompt, 1, 1, stream: true));
            }
        }

        var aggregate = new Dictionary<(int, Route), List<RunSample>>();
        foreach (var concurrency in options.Phases.Contains("aggregate") ? concurrencies : [])
        {
            Console.WriteLine($"== {modelCase.Name}: {concurrency} concurrent, {modelCase.AggregateReps} x {modelCase.AggregateTokens} tokens per request");
            foreach (var runner in runners)
            {
                aggregate[(concurrency, runner.Route)] = [];
            }

            for (var rep = 0; rep < modelCase.AggregateReps; rep++)
            {
                foreach (var runner in Rotate(runners, rep))
                {
                    aggregate[(concurrency, runner.Route)].Add(await MeasureAsync(runner, prompt, concurrency, modelCase.AggregateTokens, stream: false));
                }
            }

            Print(runners.ToDictionary(r => r.Route, r => aggregate[(concurrency, r.Route)]));
        }

        Console.WriteLine(FormattableString.Invariant($"   ({modelCase.Name} measured in {started.Elapsed.TotalSeconds:F0} s)"));
        var pings = await http.PingAsync(options.Quick ? 10 : 40);
        var audits = await server.TimeAuditAppendsAsync(options.Quick ? 10 : 40);
        return new ModelResult(modelCase, model.Info, prompt.Length, single, aggregate, memory, serverMemory, pings, audits, minimal);
    }

    /// <summary>One run, with the process CPU time it took.</summary>
    private static async Task<RunSample> MeasureAsync(IRunner runner, int[] prompt, int concurrency, int maxTokens, bool stream)
    {
        var cpu = Environment.CpuUsage.TotalTime;
        var sample = await runner.RunAsync(prompt, concurrency, maxTokens, stream, CancellationToken.None);
        return sample with { Cpu = Environment.CpuUsage.TotalTime - cpu };
    }

    /// <summary>Each repetition starts with a different route, so none is always first (or last) after a pause.</summary>
    private static IEnumerable<IRunner> Rotate(IRunner[] runners, int rep) =>
        Enumerable.Range(0, runners.Length).Select(i => runners[(i + rep) % runners.Length]);

    private static void Print(Dictionary<Route, List<RunSample>> samples)
    {
        foreach (var (route, runs) in samples)
        {
            var decode = runs.SelectMany(r => r.Requests).Select(q => q.DecodeTokensPerSecond).OfType<double>().ToArray();
            var ttft = runs.SelectMany(r => r.Requests).Select(q => q.TimeToFirstToken?.TotalMilliseconds).OfType<double>().ToArray();
            var line = FormattableString.Invariant($"   {route,-7} aggregate {Stats.Median(runs.Select(r => r.TokensPerSecond)),9:F1} tok/s");
            if (decode.Length > 0)
            {
                line += FormattableString.Invariant($"  decode {Stats.Median(decode),9:F1} tok/s  TTFT p50 {Stats.Median(ttft),7:F2} ms");
            }

            Console.WriteLine(line + FormattableString.Invariant($"  tokens/request {runs.SelectMany(r => r.Requests).Average(q => q.Tokens):F1}"));
        }
    }
}
