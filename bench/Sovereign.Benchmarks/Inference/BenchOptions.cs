using System.Globalization;
using LLama.Native;

namespace Sovereign.Benchmarks.Inference;

/// <summary>Command-line settings of the inference benchmark (and of its memory probe child processes).</summary>
internal sealed record BenchOptions
{
    public const string Usage = """
        Usage: Sovereign.Benchmarks inference [options]

          --quick             Fewer tokens and repetitions (under a minute); numbers are noisier.
          --models LIST       Comma-separated: stories, synthetic (default: both).
          --stories PATH      stories260K.gguf (default: ../shared/models/stories260K.gguf, searched upwards).
          --threads N         CPU threads for decoding, same for server and ceilings (default 1: steadiest on 2 cores).
          --parallel N        Sequences per batch: server Parallel and the ceilings' SeqMax (default 32).
          --ctx N             Tokens per sequence; KV cache = parallel x ctx (default 512).
          --batch N           Tokens per decode step (default 512, the server's default).
          --prefix-cache N    Finished sequences the server keeps for prefix reuse (default: the server's, = parallel; 0: off).
          --avx LEVEL         auto, none, avx, avx2 or avx512: which llama.cpp build to load (default auto).
          --server-data DIR  The server's data directory (audit log, database); default: a fresh temp folder.
                             Put it on tmpfs (e.g. /dev/shm) to see what the database's fsyncs cost.
          --phases LIST       Comma-separated: memory, single, aggregate (default: all three).
          --out PATH          Markdown report (default bench/results/inference-<cores>c-<cpu>.md; '-' for none).
        """;

    public bool Quick { get; init; }
    public IReadOnlyList<string> Models { get; init; } = ["stories", "synthetic"];
    public string? StoriesPath { get; init; }
    public int Threads { get; init; } = 1;
    public int Parallel { get; init; } = 32;
    public int ContextLength { get; init; } = 512;
    public int BatchSize { get; init; } = 512;
    public string Avx { get; init; } = "auto";
    public int? PrefixCacheSequences { get; init; }
    public string? Output { get; init; }
    public string? ServerData { get; init; }
    public IReadOnlyList<string> Phases { get; init; } = ["memory", "single", "aggregate"];

    // Memory probe only.
    public string? ProbeModel { get; init; }
    public int ProbeSequences { get; init; } = 1;
    public string ProbeMode { get; init; } = "direct";

    // Server child only: the model id it serves.
    public string? ServedModelId { get; init; }

    public static BenchOptions Parse(string[] args)
    {
        var options = new BenchOptions();
        for (var i = 0; i < args.Length; i++)
        {
            var flag = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{flag} needs a value");
            int Int() => int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
                ? n
                : throw new ArgumentException($"{flag} needs a positive integer");
            options = flag switch
            {
                "--quick" => options with { Quick = true },
                "--models" => options with { Models = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                "--stories" => options with { StoriesPath = Value() },
                "--threads" => options with { Threads = Int() },
                "--parallel" => options with { Parallel = Int() },
                "--ctx" => options with { ContextLength = Int() },
                "--batch" => options with { BatchSize = Int() },
                "--avx" => options with { Avx = Value().ToLowerInvariant() },
                "--prefix-cache" => options with { PrefixCacheSequences = int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= 0 ? n : throw new ArgumentException("--prefix-cache needs a non-negative integer") },
                "--out" => options with { Output = Value() },
                "--server-data" => options with { ServerData = Value() },
                "--phases" => options with { Phases = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                "--probe-model" => options with { ProbeModel = Value() },
                "--probe-seqs" => options with { ProbeSequences = Int() },
                "--probe-mode" => options with { ProbeMode = Value() },
                "--served-id" => options with { ServedModelId = Value() },
                _ => throw new ArgumentException($"unknown option '{flag}'"),
            };
        }

        foreach (var model in options.Models)
        {
            if (model is not ("stories" or "synthetic"))
            {
                throw new ArgumentException($"--models: unknown model '{model}' (stories, synthetic)");
            }
        }

        foreach (var phase in options.Phases)
        {
            if (phase is not ("memory" or "single" or "aggregate"))
            {
                throw new ArgumentException($"--phases: unknown phase '{phase}' (memory, single, aggregate)");
            }
        }

        _ = options.AvxLevel;
        return options;
    }

    /// <summary>The llama.cpp build to force, or null to let LLamaSharp pick by CPU features.</summary>
    public AvxLevel? AvxLevel => Avx switch
    {
        "auto" => null,
        "none" => LLama.Native.AvxLevel.None,
        "avx" => LLama.Native.AvxLevel.Avx,
        "avx2" => LLama.Native.AvxLevel.Avx2,
        "avx512" => LLama.Native.AvxLevel.Avx512,
        _ => throw new ArgumentException($"--avx: expected auto, none, avx, avx2 or avx512, got '{Avx}'"),
    };

    /// <summary>The flags a child process needs to load models exactly as this process does.</summary>
    public IEnumerable<string> EngineArgs() =>
    [
        "--threads", Threads.ToString(CultureInfo.InvariantCulture),
        "--parallel", Parallel.ToString(CultureInfo.InvariantCulture),
        "--ctx", ContextLength.ToString(CultureInfo.InvariantCulture),
        "--batch", BatchSize.ToString(CultureInfo.InvariantCulture),
        "--avx", Avx,
        .. PrefixCacheSequences is { } cache ? ["--prefix-cache", cache.ToString(CultureInfo.InvariantCulture)] : (string[])[],
        .. ServerData is null ? (string[])[] : ["--server-data", ServerData],
    ];
}
