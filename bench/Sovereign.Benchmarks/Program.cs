using Sovereign.Benchmarks.Gateway;
using Sovereign.Benchmarks.Hostile;
using Sovereign.Benchmarks.Inference;
using Sovereign.Benchmarks.Languages;
using Sovereign.Benchmarks.Ledger;

// Entry point: one sub-command per benchmark, plus the hidden probes that the inference benchmark runs as child
// processes (memory is measured in a fresh process so one model's allocations cannot hide in another's figure).
if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine(BenchOptions.Usage + Environment.NewLine + LlamaServerBenchmark.Usage);
    return args.Length == 0 ? 2 : 0;
}

try
{
    return args[0] switch
    {
        "inference" => await InferenceBenchmark.RunAsync(BenchOptions.Parse(args[1..])),
        MemoryProbe.CommandName => await MemoryProbe.RunAsync(BenchOptions.Parse(args[1..])),
        "llama-server" => await LlamaServerBenchmark.RunAsync(args[1..]),
        ServerChild.CommandName => await ServerChild.RunAsync(BenchOptions.Parse(args[1..])),
        "residency" => await ResidencyBenchmark.RunAsync(args[1..]),
        "gateway" => await GatewayLatencyBenchmark.RunAsync(args[1..]),
        "pipeline" => await PipelineBenchmark.RunAsync(args[1..]),
        "scale-out" => await ScaleOutBenchmark.RunAsync(args[1..]),
        "relay-streaming" => await RelayStreamingBenchmark.RunAsync(args[1..]),
        "cluster-streaming" => await ClusterStreamingBenchmark.RunAsync(args[1..]),
        "admission" => await AdmissionBenchmark.RunAsync(args[1..]),
        "throughput" => await ThroughputBenchmark.RunAsync(args[1..]),
        "languages" => await LanguagesBenchmark.RunAsync(args[1..]),
        "languages-accuracy" => await LanguageAccuracyBenchmark.RunAsync(args[1..]),
        "languages-tune" => LanguageTuningBenchmark.Run(args[1..]),
        "ledger" => await LedgerBenchmark.RunAsync(args[1..]),
        "scale-fill" => await Sovereign.Benchmarks.Scale.ScaleFill.RunAsync(args[1..]),
        "commits" => await CommitsBenchmark.RunAsync(args[1..]),
        "prompt-cap" => PromptCapBenchmark.Run(args[1..]),
        "grammar" => await GrammarBenchmark.RunAsync(args[1..]),
        "constrained-fairness" => await ConstrainedFairnessBenchmark.RunAsync(args[1..]),
        "prefix-cache" => await PrefixCacheBenchmark.RunAsync(args[1..]),
        _ => Fail($"unknown command '{args[0]}'"),
    };
}
catch (ArgumentException ex)
{
    return Fail(ex.Message);
}

static int Fail(string message)
{
    Console.Error.WriteLine("Sovereign.Benchmarks: " + message);
    Console.Error.WriteLine(BenchOptions.Usage);
    return 2;
}
