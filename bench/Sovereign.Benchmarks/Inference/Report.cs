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
        void Line(FormattableString text) => md.AppendLine(text.ToString(CultureInfo.InvariantCulture));
        Line($"# Inference benchmark{(options.Quick ? " (--quick)" : "")}");
        md.AppendLine();
        Line($"- Machine: {machine.Cores} cores, {machine.Cpu}, {machine.MemoryBytes / 1073741824.0:F1} GiB RAM; {machine.Os}; {machine.Runtime}");
        Line($"- llama.cpp: {machine.NativeLibrary}; OMP_WAIT_POLICY={machine.OmpWaitPolicy}");
        Line($"- Settings (server and ceilings alike): threads {options.Threads}, parallel {options.Parallel}, ctx {options.ContextLength} per sequence (KV cache {options.Parallel * options.ContextLength} cells, unified), batch {options.BatchSize}; greedy; /v1/completions with the prompt as token ids");
        Line($"- Run took {elapsed.TotalSeconds:F0} s. Routes ran interleaved, rotating which goes first each repetition.");
        md.AppendLine();
        md.AppendLine("Routes: **ceiling** = a plain LLamaSharp `BatchedExecutor` loop (same executor parameters as the server, greedy sampler, detokenize); "
            + "**engine** = the server's `ContinuousBatcher` called in process (no HTTP); **HTTP** = the real server over loopback (Kestrel), client in the same process. "
            + "Decode tok/s = (tokens - 1) / (last token - first token) of one streamed request; TTFT = to the first token (ceiling) or first non-empty text chunk (engine, HTTP); "
            + "aggregate tok/s = completion tokens of all N requests / wall time of the run (non-streaming HTTP; prefill included). "
            + "Ratios are HTTP / ceiling (median over median); brackets give the range of the per-repetition paired ratios.");
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
        md.AppendLine("| Measure | Ceiling (direct LLamaSharp) | Engine, no HTTP | HTTP | HTTP / ceiling | Target | Met |");
        md.AppendLine("|---|---:|---:|---:|---:|---|---|");

        double Decode(RunSample run) => run.Requests[0].DecodeTokensPerSecond ?? double.NaN;
        double Ttft(RunSample run) => run.Requests[0].TimeToFirstToken?.TotalMilliseconds ?? double.NaN;
        var direct = result.Single[Route.Direct];
        var engine = result.Single[Route.Engine];
        var http = result.Single[Route.Http];

        var (d, e, h) = (Stats.Median(direct.Select(Decode)), Stats.Median(engine.Select(Decode)), Stats.Median(http.Select(Decode)));
        var ratio = h / d;
        Row(md, $"Single-stream decode, tok/s (median of {direct.Count})", d, e, h, "F0",
            $"{ratio:F3}x {Range(http, direct, Decode)}", $">= {SingleStreamTarget:F2}x", ratio >= SingleStreamTarget);

        (d, e, h) = (Stats.Median(direct.Select(Ttft)), Stats.Median(engine.Select(Ttft)), Stats.Median(http.Select(Ttft)));
        Row(md, "TTFT p50, ms", d, e, h, "F2", $"+{h - d:F2} ms ({h / d:F2}x)", $"<= +{TtftTargetMs:F0} ms", h - d <= TtftTargetMs);
        (d, e, h) = (Stats.Percentile(direct.Select(Ttft), 99), Stats.Percentile(engine.Select(Ttft), 99), Stats.Percentile(http.Select(Ttft), 99));
        Row(md, $"TTFT p99, ms ({direct.Count} samples)", d, e, h, "F2", $"+{h - d:F2} ms", "", null);

        var concurrencies = result.Aggregate.Keys.Select(k => k.Concurrency).Distinct().Order();
        foreach (var n in concurrencies)
        {
            var (ad, ae, ah) = (result.Aggregate[(n, Route.Direct)], result.Aggregate[(n, Route.Engine)], result.Aggregate[(n, Route.Http)]);
            double Rate(RunSample run) => run.TokensPerSecond;
            (d, e, h) = (Stats.Median(ad.Select(Rate)), Stats.Median(ae.Select(Rate)), Stats.Median(ah.Select(Rate)));
            ratio = h / d;
            var target = n == 8 ? $">= {AggregateTarget:F2}x (8-sequence BatchedExecutor)" : "";
            Row(md, $"Aggregate, {n} concurrent, tok/s", d, e, h, "F0", $"{ratio:F3}x {Range(ah, ad, Rate)}", target, n == 8 ? ratio >= AggregateTarget : null);
        }

        var tokens = string.Join(", ", result.Aggregate.Keys.Select(k => k.Concurrency).Distinct().Order()
            .Select(n => Invariant($"{n} conc. {result.Aggregate[(n, Route.Http)].SelectMany(r => r.Requests).Average(q => q.Tokens):F1}")));
        md.AppendLine();
        md.AppendLine(Invariant($"Completion tokens actually generated per request (HTTP): single {http.SelectMany(r => r.Requests).Average(q => q.Tokens):F1}; {tokens}. Ceiling: single {direct.SelectMany(r => r.Requests).Average(q => q.Tokens):F1}."));
        md.AppendLine();
    }

    private static void RenderMemory(StringBuilder md, BenchOptions options, IReadOnlyList<ModelResult> results)
    {
        md.AppendLine("## Memory (resident set, fresh child process per figure)");
        md.AppendLine();
        md.AppendLine(Invariant($"| Model | Weights (llama.cpp) | RSS before load | RSS after load | RSS, 1 sequence, after a decode | KV cache per sequence (llama.cpp, ctx {options.ContextLength}) | RSS per extra sequence, 1 -> 8 | RSS per extra sequence, 1 -> {options.Parallel} | Server RSS, parallel {options.Parallel}, warm |"));
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var result in results)
        {
            var one = result.Memory[1];
            string PerExtra(int n) => result.Memory.TryGetValue(n, out var many) && n > 1 ? Mib((many.RssWarm - one.RssWarm) / (double)(n - 1)) : "-";
            md.AppendLine(Invariant(
                $"| {result.Case.Name} | {one.ModelBufferMiB:F1} MiB | {Mib(one.RssBeforeLoad)} | {Mib(one.RssAfterLoad)} | {Mib(one.RssWarm)} (anon {Mib(one.RssWarmAnonymous)}, file {Mib(one.RssWarmFile)}) | {one.KvBufferMiB:F2} MiB | {PerExtra(8)} | {PerExtra(options.Parallel)} | {(result.ServerMemory is { } s ? Mib(s.RssWarm) : "-")} |"));
        }

        md.AppendLine();
        md.AppendLine("Method: each figure comes from a fresh process (`probe-memory`) reading VmRSS from /proc/self/status: before loading (runtime and llama.cpp "
            + "library loaded), after `LlamaModel.Load` (weights are mmapped, so pages count only once touched), and after creating a `BatchedExecutor` sized as the "
            + "server sizes it (N sequences, KV cache N x ctx cells) and decoding one step for each sequence. Per extra sequence = (RSS with N sequences - RSS with 1) / (N - 1); "
            + "it covers the KV cache (which llama.cpp zeroes, so it is resident at once) and the compute buffers, which grow with the batch. "
            + "The llama.cpp KV figure is the buffer size it logs for a one-sequence context. Server RSS: the real server (ASP.NET Core, telemetry, the batcher's KV cache for "
            + "all parallel sequences) after a warm-up request.");
        md.AppendLine();
    }

    private static void Row(StringBuilder md, string name, double direct, double engine, double http, string format, string ratio, string target, bool? met)
    {
        string F(double v) => double.IsNaN(v) ? "-" : v.ToString(format, CultureInfo.InvariantCulture);
        var engineRatio = double.IsNaN(engine / direct) ? "" : Invariant($" ({engine / direct:F2}x)");
        md.AppendLine(Invariant($"| {name} | {F(direct)} | {F(engine)}{engineRatio} | {F(http)} | {ratio} | {target} | {(met is { } m ? (m ? "yes" : "**no**") : "")} |"));
    }

    /// <summary>Range of per-repetition ratios (runs of the same repetition ran back to back).</summary>
    private static string Range(List<RunSample> http, List<RunSample> direct, Func<RunSample, double> metric)
    {
        var ratios = http.Zip(direct, (h, d) => metric(h) / metric(d)).Where(r => !double.IsNaN(r)).ToArray();
        return ratios.Length < 2 ? "" : Invariant($"[{ratios.Min():F2}-{ratios.Max():F2}]");
    }

    private static string Mib(double bytes) => Invariant($"{bytes / MiB:F1} MiB");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
