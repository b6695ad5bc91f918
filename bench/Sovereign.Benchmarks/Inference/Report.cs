using System.Globalization;
using System.Text;

namespace Sovereign.Benchmarks.Inference;

/// <summary>Renders the results as markdown: one table per model (each HTTP figure as a ratio to the same-run ceiling), then memory.</summary>
internal static class Report
{
    private const double SingleStreamTarget = 0.95;
    private const double TtftTargetMs = 5;
    private const double AggregateTarget = 1.0;
    private const double MiB = 1048576.0;

    public static string Render(MachineInfo machine, BenchOptions options, IReadOnlyList<ModelResult> results, TimeSpan elapsed)
    {
        var md = new StringBuilder();
        md.AppendLine(Invariant($"# Inference benchmark{(options.Quick ? " (--quick)" : "")}"));
        md.AppendLine();
        md.AppendLine(Invariant($"- Machine: {machine.Cores} cores, {machine.Cpu}, {machine.MemoryBytes / 1073741824.0:F1} GiB RAM; {machine.Os}; {machine.Runtime}"));
        md.AppendLine(Invariant($"- Load average (1/5/15 min) at start {machine.LoadAtStart}, at end {MachineInfo.LoadAverage()}: other work shares these cores."));
        md.AppendLine(Invariant($"- Commit {machine.Commit}; llama.cpp {machine.NativeLibrary}; OMP_WAIT_POLICY={machine.OmpWaitPolicy}"));
        md.AppendLine(Invariant($"- Settings (server and ceilings alike): threads {options.Threads}, parallel {options.Parallel}, ctx {options.ContextLength} per sequence (KV cache {options.Parallel * options.ContextLength} cells, unified), batch {options.BatchSize}; greedy; /v1/completions with the prompt as token ids; server data directory {(options.ServerData is null ? "in the temp folder (disk)" : options.ServerData)}"));
        md.AppendLine(Invariant($"- Run took {elapsed.TotalSeconds:F0} s. Routes ran interleaved, rotating which goes first each repetition."));
        md.AppendLine();
        md.AppendLine("Routes: **ceiling** = a plain LLamaSharp `BatchedExecutor` loop (same executor parameters as the server, greedy sampler, detokenize); "
            + "**engine** = the server's `ContinuousBatcher` called in process (no HTTP, no routing or audit); **HTTP** = the real server over loopback (Kestrel), client in the same process. "
            + "Decode tok/s = (tokens - 1) / (last token - first token) of one streamed request; TTFT = to the first token (ceiling) or first non-empty text chunk (engine, HTTP); "
            + "aggregate tok/s = completion tokens of all N requests / wall time of the run (non-streaming HTTP; prefill included). "
            + "HTTP / ceiling is the ratio of the medians; in brackets the range of per-repetition paired ratios, then the ratio of the best runs "
            + "(interference from other work only ever slows a run down, so best-vs-best is the least disturbed comparison). "
            + "CPU per token = process CPU time (all threads, client included) / tokens: nearly insensitive to waiting for the cores.");
        md.AppendLine();

        foreach (var result in results)
        {
            RenderModel(md, result);
        }

        RenderMemory(md, options, results);
        return md.ToString();
    }

    private static void RenderModel(StringBuilder md, ModelResult result)
    {
        var info = result.Info;
        md.AppendLine(Invariant($"## {result.Case.Name}: {result.Case.Description}"));
        md.AppendLine();
        md.AppendLine(Invariant($"{info.Parameters / 1e6:F2}M parameters, {info.SizeBytes / MiB:F1} MiB of weights; prompt {result.PromptTokens} tokens; single stream {result.Case.SingleReps} x {result.Case.SingleTokens} tokens, aggregate {result.Case.AggregateReps} x {result.Case.AggregateTokens} tokens per request."));
        md.AppendLine();
        md.AppendLine("| Measure | Ceiling (direct LLamaSharp) | Engine, no HTTP | HTTP | HTTP / ceiling [paired range]; best | Target | Met |");
        md.AppendLine("|---|---:|---:|---:|---:|---|---|");

        static double Decode(RunSample run) => run.Requests[0].DecodeTokensPerSecond ?? double.NaN;
        static double Ttft(RunSample run) => run.Requests[0].TimeToFirstToken?.TotalMilliseconds ?? double.NaN;
        static double Rate(RunSample run) => run.TokensPerSecond;
        var direct = result.Single[Route.Direct];
        var engine = result.Single[Route.Engine];
        var http = result.Single[Route.Http];

        double d, e, h, ratio;
        if (direct.Count > 0)
        {
            (d, e, h) = Medians(direct, engine, http, Decode);
            ratio = h / d;
            Row(md, $"Single-stream decode, tok/s (median of {direct.Count})", d, e, h, "F0",
                $"{ratio:F3}x {Paired(http, direct, Decode)}; best {http.Max(Decode) / direct.Max(Decode):F2}x", $">= {SingleStreamTarget:F2}x", ratio >= SingleStreamTarget);

            (d, e, h) = Medians(direct, engine, http, Ttft);
            Row(md, "TTFT p50, ms", d, e, h, "F2", $"{h - d:+0.00;-0.00} ms ({h / d:F2}x); best {http.Min(Ttft) - direct.Min(Ttft):+0.00;-0.00} ms", $"<= +{TtftTargetMs:F0} ms", h - d <= TtftTargetMs);
            (d, e, h) = (Stats.Percentile(direct.Select(Ttft), 99), Stats.Percentile(engine.Select(Ttft), 99), Stats.Percentile(http.Select(Ttft), 99));
            Row(md, $"TTFT p99, ms ({direct.Count} samples, interpolated)", d, e, h, "F2", $"{h - d:+0.00;-0.00} ms", "", null);

            static double Wall(RunSample run) => run.Wall.TotalMilliseconds;
            static double CpuMs(RunSample run) => run.Cpu.TotalMilliseconds;
            var (md1, me1, mh1) = (result.Minimal[Route.Direct], result.Minimal[Route.Engine], result.Minimal[Route.Http]);
            (d, e, h) = Medians(md1, me1, mh1, Wall);
            Row(md, $"Minimal request (4-token prompt, 1 token), wall p50, ms ({md1.Count} each)", d, e, h, "F2", $"{h - d:+0.00;-0.00} ms", "", null);
            (d, e, h) = Medians(md1, me1, mh1, CpuMs);
            Row(md, "Minimal request, process CPU p50, ms", d, e, h, "F2", $"{h - d:+0.00;-0.00} ms", "", null);
        }

        var concurrencies = result.Aggregate.Keys.Select(k => k.Concurrency).Distinct().Order().ToArray();
        foreach (var n in concurrencies)
        {
            var (ad, ae, ah) = (result.Aggregate[(n, Route.Direct)], result.Aggregate[(n, Route.Engine)], result.Aggregate[(n, Route.Http)]);
            (d, e, h) = Medians(ad, ae, ah, Rate);
            ratio = h / d;
            var target = n == 8 ? $">= {AggregateTarget:F2}x (8-sequence BatchedExecutor)" : "";
            Row(md, $"Aggregate, {n} concurrent, tok/s", d, e, h, "F0", $"{ratio:F3}x {Paired(ah, ad, Rate)}; best {ah.Max(Rate) / ad.Max(Rate):F2}x", target, n == 8 ? ratio >= AggregateTarget : null);
        }

        md.AppendLine();
        md.AppendLine("| CPU per generated token, µs | Ceiling | Engine, no HTTP | HTTP | HTTP / ceiling |");
        md.AppendLine("|---|---:|---:|---:|---:|");
        static double Cpu(RunSample run) => run.CpuMicrosecondsPerToken;
        if (direct.Count > 0)
        {
            CpuRow(md, "Single stream", direct, engine, http);
        }

        foreach (var n in concurrencies)
        {
            CpuRow(md, Invariant($"{n} concurrent"), result.Aggregate[(n, Route.Direct)], result.Aggregate[(n, Route.Engine)], result.Aggregate[(n, Route.Http)]);
        }

        var tokens = string.Join(", ", concurrencies.Select(n => Invariant($"{n} concurrent {result.Aggregate[(n, Route.Http)].SelectMany(r => r.Requests).Average(q => q.Tokens):F1}")));
        md.AppendLine();
        var singleTokens = direct.Count > 0
            ? Invariant($"single stream {http.SelectMany(r => r.Requests).Average(q => q.Tokens):F1} (ceiling {direct.SelectMany(r => r.Requests).Average(q => q.Tokens):F1}); ")
            : "";
        md.AppendLine(Invariant($"Completion tokens actually generated per request (HTTP usage): {singleTokens}{tokens}. ")
            + Invariant($"HTTP floor: GET /health round trip p50 {Stats.Median(result.HealthRoundTripsMs):F2} ms, p99 {Stats.Percentile(result.HealthRoundTripsMs, 99):F2} ms ({result.HealthRoundTripsMs.Length} requests).")
            + (result.AuditAppendsMs.Length == 0 ? "" : Invariant($" Audit append in the server (awaited before each /v1 request generates): p50 {Stats.Median(result.AuditAppendsMs):F2} ms, p99 {Stats.Percentile(result.AuditAppendsMs, 99):F2} ms ({result.AuditAppendsMs.Length} appends).")));
        md.AppendLine();

        static void CpuRow(StringBuilder md, string name, List<RunSample> direct, List<RunSample> engine, List<RunSample> http)
        {
            var (d, e, h) = Medians(direct, engine, http, Cpu);
            md.AppendLine(Invariant($"| {name} | {d:F0} | {e:F0} | {h:F0} | {h / d:F2}x |"));
        }
    }

    private static void RenderMemory(StringBuilder md, BenchOptions options, IReadOnlyList<ModelResult> results)
    {
        results = results.Where(r => r.Memory.ContainsKey(1)).ToList();
        if (results.Count == 0)
        {
            return;
        }

        md.AppendLine("## Memory (resident set, fresh child process per figure)");
        md.AppendLine();
        md.AppendLine(Invariant($"| Model | Weights (llama.cpp buffers) | RSS before load | RSS after load | RSS, 1 sequence, after a decode | KV cache per sequence (llama.cpp, ctx {options.ContextLength}) | RSS per extra sequence, 1 -> 8 | RSS per extra sequence, 1 -> {options.Parallel} | Server RSS, parallel {options.Parallel}, warm |"));
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var result in results)
        {
            var one = result.Memory[1];
            string PerExtra(int n) => result.Memory.TryGetValue(n, out var many) && n > 1 ? Mib((many.RssWarm - one.RssWarm) / (double)(n - 1)) : "-";
            md.AppendLine(Invariant(
                $"| {result.Case.Name} | {one.ModelBufferMiB:F1} MiB | {Mib(one.RssBeforeLoad)} | {Mib(one.RssAfterLoad)} | {Mib(one.RssWarm)} (anon {Mib(one.RssWarmAnonymous)}, file {Mib(one.RssWarmFile)}) | {one.KvBufferMiB:F2} MiB | {PerExtra(8)} | {PerExtra(options.Parallel)} | {(result.ServerMemory is { } s ? Mib(s.RssWarm) : "-")} |"));
        }

        md.AppendLine();
        md.AppendLine("Method: each figure comes from a fresh process (`probe-memory`) reading VmRSS (and its anonymous/file split) from /proc/self/status: before loading "
            + "(runtime and llama.cpp library loaded), after `LlamaModel.Load`, and after creating a `BatchedExecutor` sized as the server sizes it "
            + "(N sequences, KV cache N x ctx cells) and decoding one step for each sequence. Per extra sequence = (RSS with N sequences - RSS with 1) / (N - 1); "
            + "it covers the KV cache (which llama.cpp zeroes, so it is resident at once) and the compute buffers, which grow with the batch. "
            + "The llama.cpp figures are the buffer sizes it logs (weights: all model buffers; KV: one sequence); "
            + "its log names the weights buffer `CPU` when they were read into memory (anonymous RSS) and `CPU_Mapped` when mmapped (file RSS). "
            + "Server RSS: the real server (ASP.NET Core, control plane, telemetry, the batcher's KV cache for all parallel sequences) after a warm-up request.");
        md.AppendLine();
    }

    private static (double Direct, double Engine, double Http) Medians(List<RunSample> direct, List<RunSample> engine, List<RunSample> http, Func<RunSample, double> metric) =>
        (Stats.Median(direct.Select(metric)), Stats.Median(engine.Select(metric)), Stats.Median(http.Select(metric)));

    private static void Row(StringBuilder md, string name, double direct, double engine, double http, string format, string ratio, string target, bool? met)
    {
        string F(double v) => double.IsNaN(v) ? "-" : v.ToString(format, CultureInfo.InvariantCulture);
        var engineRatio = double.IsNaN(engine / direct) ? "" : Invariant($" ({engine / direct:F2}x)");
        md.AppendLine(Invariant($"| {name} | {F(direct)} | {F(engine)}{engineRatio} | {F(http)} | {ratio} | {target} | {(met is { } m ? (m ? "yes" : "**no**") : "")} |"));
    }

    /// <summary>Range of per-repetition ratios (the runs of one repetition ran back to back).</summary>
    private static string Paired(List<RunSample> http, List<RunSample> direct, Func<RunSample, double> metric)
    {
        var ratios = http.Zip(direct, (h, d) => metric(h) / metric(d)).Where(r => !double.IsNaN(r)).ToArray();
        return ratios.Length < 2 ? "" : Invariant($"[{ratios.Min():F2}-{ratios.Max():F2}]");
    }

    private static string Mib(double bytes) => Invariant($"{bytes / MiB:F1} MiB");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
