using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Sovereign.Benchmarks.Inference;

/// <summary>
/// Our server against llama-server on the same synthesized GGUF file, in the same run: both as child processes with
/// the same threads, slots, context, batch and greedy sampling, driven by the same HTTP client with the same
/// requests. Rounds alternate which server goes first; each round's ratio is paired (same minute, same load).
/// </summary>
internal static class LlamaServerBenchmark
{
    public const string Usage = """
        Usage: Sovereign.Benchmarks llama-server --llama-server PATH [options]

          --llama-server PATH  The llama-server binary (llama.cpp). Without it the benchmark is skipped.
          --rounds N           Paired rounds per concurrency (default 6).
          --tokens N           Completion tokens per request (default 64).
          --concurrency LIST   Concurrent requests per round, comma-separated (default 8,1).
          --threads N          Decode threads of both servers (default 1).
          --parallel N         Sequence slots of both servers (default 8).
          --ctx N              Tokens per slot; one unified KV cache of parallel x ctx cells (default 512).
          --batch N            Tokens per decode step, both n_batch and n_ubatch (default 512).
          --flash-attn MODE    llama-server's -fa: on, off or auto (default auto, llama.cpp's default and ours).
          --avx LEVEL          Which LLamaSharp llama.cpp build our server loads (default auto).
          --stream             Stream the responses (SSE) from both servers (default: non-streaming).
          --cpus LIST          Pin both servers to these CPUs (taskset -c LIST), e.g. 1: on a shared machine the
                               scheduler otherwise gives a multi-threaded server more CPU than a one-threaded one.
          --prefix-cache N     Our server's prefix cache size in sequences (default: the server's default).
          --llama-args "ARGS"  Extra arguments for llama-server, appended after ours (e.g. "--cache-ram 0").
          --out PATH           Markdown report (default bench/results/llama-server-<cores>c-<cpu>.md; '-' for none).
        """;

    private const string ModelId = "synthetic-106M";

    /// <summary>Full-width rounds each server gets before measuring.</summary>
    private const int WarmUpRounds = 4;

    /// <summary>
    /// Extra full-width rounds our server may get, until its JIT (tiered compilation promoting hot methods, which a
    /// long-running server has long finished) takes under <see cref="SettledJitShare"/> of a round's CPU.
    /// </summary>
    private const int MaxExtraWarmUpRounds = 24;

    private const double SettledJitShare = 0.01;

    public static async Task<int> RunAsync(string[] args)
    {
        var options = VersusOptions.Parse(args);
        if (options.LlamaServer is null || !File.Exists(options.LlamaServer))
        {
            Console.WriteLine(options.LlamaServer is null
                ? "llama-server benchmark skipped: no --llama-server PATH given (build llama.cpp's llama-server and pass its path)."
                : $"llama-server benchmark skipped: '{options.LlamaServer}' does not exist.");
            return 0;
        }

        var engine = new BenchOptions
        {
            Threads = options.Threads,
            Parallel = options.Parallel,
            ContextLength = options.ContextLength,
            BatchSize = options.BatchSize,
            Avx = options.Avx,
            PrefixCacheSequences = options.PrefixCacheSequences,
        };
        NativeSetup.Configure(engine);
        var machine = MachineInfo.Collect(engine);
        Console.WriteLine(machine.Describe());
        var total = Stopwatch.StartNew();
        var temp = Directory.CreateTempSubdirectory("sovereign-vs-llama-");
        try
        {
            var modelPath = InferenceBenchmark.SynthesizeBenchModel(temp.FullName);
            var version = await LlamaServerVersionAsync(options.LlamaServer);
            var spareRounds = 3;
            var needed = 1 + (WarmUpRounds * options.Concurrencies.Max()) + options.Concurrencies.Sum(c => (options.Rounds + spareRounds) * c);
            var pool = new Queue<int[]>(await ScreenPromptsAsync(options, modelPath, temp.FullName, needed));
            int[][] Take(int count) => [.. Enumerable.Range(0, count).Select(_ => pool.Dequeue())];
            await using var ours = await ChildServer.StartOursAsync(modelPath, engine, options.Cpus);
            await using var theirs = await ChildServer.StartLlamaServerAsync(options, modelPath, temp.FullName);
            Console.WriteLine("Ours:         " + ours.Address + "  " + string.Join(" | ", ours.Settings));
            Console.WriteLine("llama-server: " + theirs.Address + "  " + string.Join(" | ", theirs.Settings));
            using var oursClient = new HttpRunner(ours.Address, ModelId);
            using var theirsClient = new HttpRunner(theirs.Address, ModelId);
            var servers = new[] { (Server: ours, Client: oursClient), (Server: theirs, Client: theirsClient) };

            // Warm-up: connection pools, first touch of weights and of compute buffers at the widest batch, and our
            // JIT: tiered compilation keeps recompiling hot methods for dozens of requests (in a profile after one
            // round, 8% of our server's CPU was the JIT compiler), which a long-running server has long finished.
            var warmUp = Take(1 + (WarmUpRounds * options.Concurrencies.Max()));
            foreach (var (_, client) in servers)
            {
                var width = options.Concurrencies.Max();
                for (var i = -1; i < WarmUpRounds; i++)
                {
                    try
                    {
                        await client.RunAsync(i < 0 ? warmUp[..1] : warmUp[(1 + (i * width))..(1 + ((i + 1) * width))], options.Tokens, options.Stream, CancellationToken.None);
                    }
                    catch (InvalidOperationException)
                    {
                        // A request llama-server could not return (see ScreenPromptsAsync); the others still warmed it.
                    }
                }
            }

            // Our JIT: warm up (with prompts of our own: only llama-server needs screened ones) until it has settled.
            var extraWarmUp = 0;
            var warmUpRandom = new Random(7);
            for (; extraWarmUp < MaxExtraWarmUpRounds; extraWarmUp++)
            {
                var width = options.Concurrencies.Max();
                var prompts = Enumerable.Range(0, width)
                    .Select(_ => (int[])[1, .. Enumerable.Range(0, 33).Select(_ => warmUpRandom.Next(261, 32000))])
                    .ToArray();
                var measured = await MeasureAsync(ours, oursClient, prompts, options);
                if (measured.JitShare is not { } share || share < SettledJitShare)
                {
                    break;
                }
            }

            Console.WriteLine($"Our server got {extraWarmUp} extra warm-up round(s) for its JIT to settle.");
            var results = new List<PairedRound>();
            var discarded = 0;
            foreach (var concurrency in options.Concurrencies)
            {
                Console.WriteLine($"== {concurrency} concurrent, {options.Rounds} rounds x {options.Tokens} tokens per request");
                var spares = spareRounds;
                for (var round = 0; round < options.Rounds; round++)
                {
                    // Fresh prompts every round (the same for both servers), so neither server's prompt cache applies.
                    var prompts = Take(concurrency);
                    var load = MachineInfo.LoadAverage();
                    var oursFirst = round % 2 == 0;
                    Measured? a = null, b = null;
                    try
                    {
                        foreach (var index in oursFirst ? new[] { 0, 1 } : [1, 0])
                        {
                            // Both servers share the pinned CPU: the one measured must not compete with work the other
                            // still does after its own round (cache bookkeeping, timers).
                            var (waited, tail) = await QuietAsync(servers[1 - index].Server);
                            if (waited > TimeSpan.FromMilliseconds(150))
                            {
                                Console.WriteLine(FormattableString.Invariant(
                                    $"   waited {waited.TotalMilliseconds:F0} ms for {(index == 0 ? "llama-server" : "our server")} to go idle ({tail.TotalMilliseconds:F0} ms of its CPU meanwhile)"));
                            }

                            var measured = await MeasureAsync(servers[index].Server, servers[index].Client, prompts, options);
                            if (index == 0)
                            {
                                a = measured;
                            }
                            else
                            {
                                b = measured;
                            }
                        }
                    }
                    catch (InvalidOperationException ex) when (spares > 0)
                    {
                        // A greedy output that differs from the screening run (batch composition) can still trip llama-server.
                        spares--;
                        discarded++;
                        round--;
                        Console.WriteLine("   round discarded, new prompts: " + ex.Message);
                        continue;
                    }

                    var paired = new PairedRound(concurrency, round, oursFirst, a!, b!, load);
                    results.Add(paired);
                    Console.WriteLine(FormattableString.Invariant(
                        $"   round {round + 1} ({(oursFirst ? "ours first" : "llama-server first")}, load {load}): ours {a!.TokensPerSecond,7:F1} tok/s, llama-server {b!.TokensPerSecond,7:F1} tok/s, ratio {paired.Ratio:F3}; CPU/token ours {a.CpuMicrosecondsPerToken:F0} us, llama-server {b.CpuMicrosecondsPerToken:F0} us; our JIT {a.JitShare * 100:F1}% of our CPU"));
                }
            }

            var report = Render(machine, options, version, ours, theirs, results, total.Elapsed, discarded, extraWarmUp);
            Console.WriteLine();
            Console.WriteLine(report);
            var output = options.Output ?? System.IO.Path.Combine(MachineInfo.RepositoryRoot(), "bench", "results", $"llama-server-{machine.Slug}.md");
            if (output != "-")
            {
                Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(output))!);
                await File.WriteAllTextAsync(output, report);
                Console.WriteLine($"Written to {output}");
            }

            return 0;
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }

    /// <summary>
    /// Prompts for the run: BOS, then 33 ordinary tokens drawn from a seeded generator (past the synthetic
    /// vocabulary's special and byte tokens), so prompts differ from their first token on and no prefix is shared.
    /// The model's random weights make some greedy outputs invalid UTF-8, on which llama-server answers 500 ("does
    /// not match the expected Content-only format"; ours replaces the bytes with U+FFFD). So every prompt is first
    /// generated once by a separate llama-server process (its caches gone before the measured servers start) and
    /// kept only when that succeeds.
    /// </summary>
    private static async Task<List<int[]>> ScreenPromptsAsync(VersusOptions options, string modelPath, string directory, int needed)
    {
        const int firstOrdinaryToken = 261;
        const int vocabulary = 32000;
        var random = new Random(20261203);
        var kept = new List<int[]>(needed);
        var tried = 0;
        var watch = Stopwatch.StartNew();
        await using (var screen = await ChildServer.StartLlamaServerAsync(options, modelPath, directory))
        {
            using var client = new HttpRunner(screen.Address, ModelId);
            while (kept.Count < needed)
            {
                if (tried > needed * 20)
                {
                    throw new InvalidOperationException($"Only {kept.Count} of {tried} prompts gave llama-server an output it could return; {needed} needed.");
                }

                var batch = Enumerable.Range(0, options.Parallel)
                    .Select(_ => (int[])[1, .. Enumerable.Range(0, 33).Select(_ => random.Next(firstOrdinaryToken, vocabulary))])
                    .ToArray();
                tried += batch.Length;
                var ok = await Task.WhenAll(batch.Select(p => client.SucceedsAsync(p, options.Tokens, CancellationToken.None)));
                kept.AddRange(batch.Where((_, i) => ok[i]));
            }
        }

        Console.WriteLine($"Screened prompts: {kept.Count} of {tried} kept (llama-server returned the rest as errors) in {watch.Elapsed.TotalSeconds:F0} s");
        return kept[..needed];
    }

    private static async Task<Measured> MeasureAsync(ChildServer server, HttpRunner client, int[][] prompts, VersusOptions options)
    {
        var jit = await server.JitTimeAsync();
        var cpu = server.CpuTime;
        var sample = await client.RunAsync(prompts, options.Tokens, options.Stream, CancellationToken.None);
        var spent = server.CpuTime - cpu;
        var jitAfter = await server.JitTimeAsync();
        return new Measured(sample, spent, jitAfter - jit);
    }

    private static async Task<string> LlamaServerVersionAsync(string path)
    {
        var start = new ProcessStartInfo(path, "--version") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start llama-server.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var text = (await stdout) + (await stderr);
        return string.Join("; ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(l => l.StartsWith("version", StringComparison.Ordinal) || l.StartsWith("built with", StringComparison.Ordinal)));
    }

    /// <summary>
    /// Waits (at most 10 s) until <paramref name="server"/> uses under 5% of a CPU over 100 ms; returns how long it took
    /// and the CPU the server used meanwhile.
    /// </summary>
    private static async Task<(TimeSpan Waited, TimeSpan Cpu)> QuietAsync(ChildServer server)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var start = server.CpuTime;
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            var before = server.CpuTime;
            await Task.Delay(100);
            if (server.CpuTime - before < TimeSpan.FromMilliseconds(5))
            {
                break;
            }
        }

        return (clock.Elapsed, server.CpuTime - start);
    }

    private static string Render(MachineInfo machine, VersusOptions options, string version, ChildServer ours, ChildServer theirs, List<PairedRound> results, TimeSpan elapsed, int discarded, int extraWarmUp)
    {
        var md = new StringBuilder();
        md.AppendLine("# Our server against llama-server (same GGUF, same run)");
        md.AppendLine();
        md.AppendLine(Invariant($"- Machine: {machine.Cores} cores, {machine.Cpu}, {machine.MemoryBytes / 1073741824.0:F1} GiB RAM; {machine.Os}; {machine.Runtime}"));
        md.AppendLine(Invariant($"- Load average (1/5/15 min) at start {machine.LoadAtStart}, at end {MachineInfo.LoadAverage()}: other work shares these cores."));
        md.AppendLine(Invariant($"- Commit {machine.Commit}; ours: LLamaSharp's llama.cpp {machine.NativeLibrary}; llama-server: {version} ({options.LlamaServer}); OMP_WAIT_POLICY={machine.OmpWaitPolicy}"));
        md.AppendLine(Invariant($"- Model: synthesized llama, 8 x 768, vocabulary 32000, Q8_0, seed 42 (106M parameters), one file for both servers."));
        md.AppendLine(Invariant($"- Both servers: threads {options.Threads} (batch threads too), {options.Parallel} slots, {options.ContextLength} tokens per slot in one unified KV cache of {options.Parallel * options.ContextLength} cells, batch/ubatch {options.BatchSize}, llama-server -fa {options.FlashAttention}{(options.LlamaArgs.Count > 0 ? " " + string.Join(' ', options.LlamaArgs) : "")}, {(options.Cpus is { } pinned ? $"both pinned to CPU(s) {pinned} (taskset), " : "not pinned, ")}our prefix cache {(options.PrefixCacheSequences is { } c ? c.ToString(CultureInfo.InvariantCulture) + " sequences" : "at its default")}; no prompt is ever repeated, so neither server's prompt cache can hit."));
        md.AppendLine(Invariant($"- Requests: POST /v1/completions, prompt = 34 token ids (BOS + 33 seeded random ordinary tokens, different per request and round, the same for both servers, screened as below), max_tokens {options.Tokens}, temperature 0, {(options.Stream ? "streamed" : "not streamed")}; the client runs in the benchmark's process (shared by both)."));
        md.AppendLine(Invariant($"- Each server first got {WarmUpRounds} unmeasured rounds at full width, ours {extraWarmUp} more (its own random prompts) until its JIT took under {SettledJitShare:P0} of a round's CPU (at most {MaxExtraWarmUpRounds}). Rounds alternate which server goes first; {discarded} round(s) discarded and redrawn because a request failed. Run took {elapsed.TotalSeconds:F0} s."));
        md.AppendLine("- Prompts were screened first on a separate llama-server process: the random weights make some greedy outputs invalid UTF-8, on which llama-server answers HTTP 500 (ours returns U+FFFD); only prompts that llama-server completed are used, for both servers.");
        md.AppendLine("- llama.cpp context settings, ours: " + string.Join(" | ", ours.Settings));
        md.AppendLine("- llama.cpp context settings, llama-server: " + string.Join(" | ", theirs.Settings));
        md.AppendLine();
        md.AppendLine("Aggregate tok/s = completion tokens of all requests / wall time of the round (prefill included). Ratio = ours / llama-server, paired per round. "
            + "CPU/token = CPU time of the server process (all its threads) over the round / completion tokens: much less sensitive than wall time to waiting for the cores; "
            + "CPU ratio = llama-server / ours (above 1: we spend less CPU per token).");
        md.AppendLine();
        md.AppendLine("| Concurrent | Rounds | Ours tok/s (median) | llama-server tok/s (median) | Ratio: median of paired [range] | Rounds >= 1.0 | CPU/token ours / llama-server (median, us) | CPU ratio (median of paired) | Our JIT, share of our CPU (median) | Tokens per request ours / llama-server |");
        md.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var group in results.GroupBy(r => r.Concurrency))
        {
            var rounds = group.ToArray();
            md.AppendLine(Invariant($"| {group.Key} | {rounds.Length} | {Stats.Median(rounds.Select(r => r.Ours.TokensPerSecond)):F1} | {Stats.Median(rounds.Select(r => r.Theirs.TokensPerSecond)):F1} | ")
                + Invariant($"**{Stats.Median(rounds.Select(r => r.Ratio)):F3}x** [{rounds.Min(r => r.Ratio):F3}-{rounds.Max(r => r.Ratio):F3}] | {rounds.Count(r => r.Ratio >= 1.0)}/{rounds.Length} | ")
                + Invariant($"{Stats.Median(rounds.Select(r => r.Ours.CpuMicrosecondsPerToken)):F0} / {Stats.Median(rounds.Select(r => r.Theirs.CpuMicrosecondsPerToken)):F0} | {Stats.Median(rounds.Select(r => r.CpuRatio)):F3}x | {Stats.Median(rounds.Select(r => (r.Ours.JitShare ?? 0) * 100)):F1}% | ")
                + Invariant($"{rounds.Average(r => r.Ours.TokensPerRequest):F1} / {rounds.Average(r => r.Theirs.TokensPerRequest):F1} |"));
        }

        md.AppendLine();
        md.AppendLine("Every round:");
        md.AppendLine();
        md.AppendLine("| Concurrent | Round | First | Load (1/5/15) | Ours tok/s | llama-server tok/s | Ratio | CPU/token ours (us) | CPU/token llama-server (us) | Our JIT (ms) |");
        md.AppendLine("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in results)
        {
            md.AppendLine(Invariant($"| {r.Concurrency} | {r.Round + 1} | {(r.OursFirst ? "ours" : "llama-server")} | {r.Load} | {r.Ours.TokensPerSecond:F1} | {r.Theirs.TokensPerSecond:F1} | {r.Ratio:F3} | {r.Ours.CpuMicrosecondsPerToken:F0} | {r.Theirs.CpuMicrosecondsPerToken:F0} | {r.Ours.Jit?.TotalMilliseconds:F0} |"));
        }

        return md.ToString();
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private sealed record Measured(RunSample Sample, TimeSpan ServerCpu, TimeSpan? Jit)
    {
        /// <summary>The JIT's share of the server's CPU in this round (ours only).</summary>
        public double? JitShare => Jit is { } jit && ServerCpu > TimeSpan.Zero ? jit / ServerCpu : null;

        public double TokensPerSecond => Sample.TokensPerSecond;

        public double CpuMicrosecondsPerToken => ServerCpu.TotalMicroseconds / Sample.Tokens;

        public double TokensPerRequest => (double)Sample.Tokens / Sample.Requests.Count;
    }

    private sealed record PairedRound(int Concurrency, int Round, bool OursFirst, Measured Ours, Measured Theirs, string Load)
    {
        public double Ratio => Ours.TokensPerSecond / Theirs.TokensPerSecond;

        public double CpuRatio => Theirs.CpuMicrosecondsPerToken / Ours.CpuMicrosecondsPerToken;
    }

    private sealed record VersusOptions
    {
        public string? LlamaServer { get; init; }
        public int Rounds { get; init; } = 6;
        public int Tokens { get; init; } = 64;
        public IReadOnlyList<int> Concurrencies { get; init; } = [8, 1];
        public int Threads { get; init; } = 1;
        public int Parallel { get; init; } = 8;
        public int ContextLength { get; init; } = 512;
        public int BatchSize { get; init; } = 512;
        public string FlashAttention { get; init; } = "auto";
        public string Avx { get; init; } = "auto";
        public bool Stream { get; init; }
        public string? Cpus { get; init; }
        public int? PrefixCacheSequences { get; init; }
        public IReadOnlyList<string> LlamaArgs { get; init; } = [];
        public string? Output { get; init; }

        public static VersusOptions Parse(string[] args)
        {
            var options = new VersusOptions();
            for (var i = 0; i < args.Length; i++)
            {
                var flag = args[i];
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{flag} needs a value");
                int Positive(string text) => int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0
                    ? n
                    : throw new ArgumentException($"{flag} needs positive integers, got '{text}'");
                options = flag switch
                {
                    "--llama-server" => options with { LlamaServer = Value() },
                    "--rounds" => options with { Rounds = Positive(Value()) },
                    "--tokens" => options with { Tokens = Positive(Value()) },
                    "--concurrency" => options with { Concurrencies = Value().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Positive).ToArray() },
                    "--threads" => options with { Threads = Positive(Value()) },
                    "--parallel" => options with { Parallel = Positive(Value()) },
                    "--ctx" => options with { ContextLength = Positive(Value()) },
                    "--batch" => options with { BatchSize = Positive(Value()) },
                    "--flash-attn" => options with { FlashAttention = Value() is var mode && mode is "on" or "off" or "auto" ? mode : throw new ArgumentException("--flash-attn: on, off or auto") },
                    "--avx" => options with { Avx = Value().ToLowerInvariant() },
                    "--stream" => options with { Stream = true },
                    "--cpus" => options with { Cpus = Value() },
                    "--prefix-cache" => options with { PrefixCacheSequences = int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= 0 ? n : throw new ArgumentException("--prefix-cache needs a non-negative integer") },
                    "--llama-args" => options with { LlamaArgs = Value().Split(' ', StringSplitOptions.RemoveEmptyEntries) },
                    "--out" => options with { Output = Value() },
                    _ => throw new ArgumentException($"unknown option '{flag}'"),
                };
            }

            if (options.Concurrencies.Count == 0 || options.Concurrencies.Max() > options.Parallel)
            {
                throw new ArgumentException($"--concurrency: between 1 and --parallel ({options.Parallel}) requests");
            }

            if (options.Tokens + 34 > options.ContextLength)
            {
                throw new ArgumentException($"--tokens: 34 prompt tokens + {options.Tokens} must fit --ctx {options.ContextLength}");
            }

            return options;
        }
    }

    /// <summary>A server in a child process: ours (this benchmark's serve-child command) or llama-server.</summary>
    private sealed class ChildServer : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly StringBuilder _log = new();
        private readonly bool _stopWithStdin;
        private TaskCompletionSource<string>? _jitReply;

        private ChildServer(Process process, bool stopWithStdin)
        {
            _process = process;
            _stopWithStdin = stopWithStdin;
        }

        public Uri Address { get; private set; } = new("http://127.0.0.1/");

        /// <summary>llama.cpp's log lines about the context it created (flash attention, sizes, threads).</summary>
        public List<string> Settings { get; } = [];

        /// <summary>Time our server's JIT has spent compiling so far; null for llama-server or when it does not answer.</summary>
        public async Task<TimeSpan?> JitTimeAsync()
        {
            if (!_stopWithStdin)
            {
                return null;
            }

            var reply = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _jitReply, reply);
            await _process.StandardInput.WriteLineAsync(ServerChild.JitQuery);
            await _process.StandardInput.FlushAsync();
            var answered = await Task.WhenAny(reply.Task, Task.Delay(TimeSpan.FromSeconds(10)));
            if (answered != reply.Task)
            {
                return null;
            }

            var ms = reply.Task.Result.Split(' ')[0];
            return double.TryParse(ms, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) ? TimeSpan.FromMilliseconds(value) : null;
        }

        public TimeSpan CpuTime
        {
            get
            {
                _process.Refresh();
                return _process.TotalProcessorTime;
            }
        }

        public static async Task<ChildServer> StartOursAsync(string modelPath, BenchOptions engine, string? cpus)
        {
            var start = Pinned(Environment.ProcessPath ?? throw new InvalidOperationException("Unknown process path."), cpus);
            start.RedirectStandardInput = true;
            if (System.IO.Path.GetFileNameWithoutExtension(Environment.ProcessPath).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
            {
                start.ArgumentList.Add(typeof(ServerChild).Assembly.Location);
            }

            foreach (var arg in (string[])[ServerChild.CommandName, "--probe-model", modelPath, "--served-id", ModelId, .. engine.EngineArgs()])
            {
                start.ArgumentList.Add(arg);
            }

            var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start our server.");
            var server = new ChildServer(process, stopWithStdin: true);
            server.Drain(process.StandardError);
            while (await process.StandardOutput.ReadLineAsync() is { } line)
            {
                if (line.StartsWith(ServerChild.ListeningPrefix, StringComparison.Ordinal))
                {
                    server.Address = new Uri(line[ServerChild.ListeningPrefix.Length..]);
                    server.ReadSettings();
                    server.Drain(process.StandardOutput);
                    return server;
                }

                server.Append(line);
            }

            await process.WaitForExitAsync();
            var log = server.Log;
            await server.DisposeAsync();
            throw new InvalidOperationException($"Our server exited with code {process.ExitCode} before listening: {log}");
        }

        public static async Task<ChildServer> StartLlamaServerAsync(VersusOptions options, string modelPath, string directory)
        {
            var port = FreePort();
            string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);
            var start = Pinned(options.LlamaServer!, options.Cpus);
            start.WorkingDirectory = directory;
            foreach (var arg in (string[])[
                "--model", modelPath, "--alias", ModelId, "--host", "127.0.0.1", "--port", Invariant(port),
                "--threads", Invariant(options.Threads), "--threads-batch", Invariant(options.Threads),
                "--ctx-size", Invariant(options.Parallel * options.ContextLength), "--parallel", Invariant(options.Parallel), "--kv-unified",
                "--batch-size", Invariant(options.BatchSize), "--ubatch-size", Invariant(options.BatchSize),
                "--n-gpu-layers", "0", "--flash-attn", options.FlashAttention, "--no-webui", .. options.LlamaArgs])
            {
                start.ArgumentList.Add(arg);
            }

            var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start llama-server.");
            var server = new ChildServer(process, stopWithStdin: false) { Address = new Uri($"http://127.0.0.1:{port}/") };
            server.Drain(process.StandardOutput);
            server.Drain(process.StandardError);
            using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromSeconds(5) };
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < TimeSpan.FromMinutes(3))
            {
                if (process.HasExited)
                {
                    break;
                }

                try
                {
                    using var response = await http.GetAsync("health");
                    if (response.StatusCode == HttpStatusCode.OK)
                    {
                        server.ReadSettings();
                        return server;
                    }
                }
                catch (HttpRequestException)
                {
                }
                catch (TaskCanceledException)
                {
                }

                await Task.Delay(200);
            }

            var log = server.Log;
            await server.DisposeAsync();
            throw new InvalidOperationException($"llama-server did not become healthy: {log[Math.Max(0, log.Length - 3000)..]}");
        }

        private string Log
        {
            get
            {
                lock (_log)
                {
                    return _log.ToString();
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                if (!_process.HasExited)
                {
                    if (_stopWithStdin)
                    {
                        _process.StandardInput.Close();
                        using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(15));
                        try
                        {
                            await _process.WaitForExitAsync(grace.Token);
                        }
                        catch (OperationCanceledException)
                        {
                        }
                    }

                    if (!_process.HasExited)
                    {
                        _process.Kill(entireProcessTree: true);
                        await _process.WaitForExitAsync();
                    }
                }
            }
            finally
            {
                _process.Dispose();
            }
        }

        private void Drain(StreamReader reader) => _ = Task.Run(async () =>
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                Append(line);
            }
        });

        private void Append(string line)
        {
            if (line.StartsWith(ServerChild.JitPrefix, StringComparison.Ordinal))
            {
                Interlocked.Exchange(ref _jitReply, null)?.TrySetResult(line[ServerChild.JitPrefix.Length..]);
                return;
            }

            lock (_log)
            {
                _log.AppendLine(line);
            }
        }

        /// <summary>Keeps llama.cpp's log lines about the context: what both servers must agree on.</summary>
        private void ReadSettings()
        {
            string[] keys = ["flash_attn", "n_ctx ", "n_ctx_seq", "n_batch", "n_ubatch", "kv_unified", "n_seq_max", "n_threads", "system_info", "causal_attn"];
            Settings.AddRange(Log.Split('\n')
                .Select(l => l.Trim())
                .Where(l => keys.Any(k => l.Contains(k, StringComparison.Ordinal)))
                .Select(l => l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim())
                .Distinct());
        }

        /// <summary>Starts <paramref name="program"/> directly, or through taskset when <paramref name="cpus"/> is set.</summary>
        private static ProcessStartInfo Pinned(string program, string? cpus)
        {
            var start = new ProcessStartInfo(cpus is null ? program : "taskset")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            if (cpus is not null)
            {
                start.ArgumentList.Add("-c");
                start.ArgumentList.Add(cpus);
                start.ArgumentList.Add(program);
            }

            return start;
        }

        private static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
    }
}
