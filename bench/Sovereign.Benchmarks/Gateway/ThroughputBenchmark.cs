using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Sovereign.Inference.Engine;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// Throughput at saturation: C concurrent non-streaming <c>POST /v1/completions</c> through the whole server with
/// tenant keys (metering on: admission, ledger, settlement, audit) against the same C request loops submitted to the
/// model's <see cref="ContinuousBatcher"/> directly. Rounds alternate the two routes; tokens/s counts the completion
/// tokens of every request started before the deadline, over the time until the last one finished.
/// </summary>
internal static class ThroughputBenchmark
{
    public const string Usage = "throughput [--quick] [--concurrency C (32)] [--max-tokens N (128)] [--seconds S per round (6)] [--rounds N (5)] [--tenants N (1000)] [--threads T (1)] [--data-root DIR]";

    private const string Prompt = "Once upon a time";

    public static async Task<int> RunAsync(string[] argv)
    {
        Args args;
        try
        {
            args = Args.Parse(argv, "--concurrency", "--max-tokens", "--seconds", "--rounds", "--tenants", "--threads", "--data-root");
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message + "\nusage: " + Usage);
            return 2;
        }

        var concurrency = args.Int("--concurrency", 32, 32);
        var maxTokens = args.Int("--max-tokens", 128, 64);
        var seconds = args.Int("--seconds", 6, 3);
        var rounds = args.Int("--rounds", 5, 1);
        var tenantCount = args.Int("--tenants", 1_000, 100);
        var threads = args.Int("--threads", 1, 1);
        Report.Machine("throughput", argv);

        await using var server = await BenchServer.StartAsync(new ServerConfig { Parallel = concurrency, Threads = threads, ContextLength = 512, DataRoot = args.String("--data-root") });
        var world = await BenchWorld.CreateAsync(server, new WorldSpec { Tenants = tenantCount, Nodes = 0 });
        await world.WarmGrainsAsync(server);
        var ids = server.Batcher.Model.Tokenize(Prompt);
        Console.WriteLine(FormattableString.Invariant(
            $"State: {tenantCount:N0} tenants with keys, prices, budgets and rate limits. Model: stories260K, {threads} thread(s), parallel {concurrency}, context 512. Each request: prompt {ids.Length} tokens, max_tokens {maxTokens}, temperature 0, non-streaming; caller c uses tenant c."));
        Console.WriteLine();

        var batcher = server.Batcher;
        var client = server.Client;
        var body = BenchServer.Body(new { model = BenchServer.ModelId, prompt = ids, max_tokens = maxTokens, temperature = 0 });

        async Task<int> Engine(int caller, int n)
        {
            var (_, result) = await batcher.Submit(new GenerationRequest { PromptTokens = ids, MaxTokens = maxTokens, Sampling = SamplingOptions.Greedy, Tenant = "t" + caller.ToString(CultureInfo.InvariantCulture) }).CollectAsync();
            return result.CompletionTokens;
        }

        async Task<int> Http(int caller, int n)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + world.Tenants[caller % world.Tenants.Count].Secret);
            using var response = await client.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            if (!response.IsSuccessStatusCode)
            {
                throw new HttpRequestException($"{(int)response.StatusCode}: {text}");
            }

            using var json = JsonDocument.Parse(text);
            return json.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32();
        }

        var routes = new (string Name, Func<int, int, Task<int>> Op)[]
        {
            ("engine: ContinuousBatcher, in process", Engine),
            ("HTTP, tenant keys, metering on", Http),
        };

        // Warm-up, not reported.
        foreach (var route in routes)
        {
            await Driver.ConcurrentAsync(concurrency, TimeSpan.FromSeconds(1), route.Op);
        }

        var results = routes.Select(_ => new List<(double TokensPerSecond, int Requests, long Tokens, double CpuMsPerToken, int Errors, string? Error)>()).ToArray();
        for (var round = 0; round < rounds; round++)
        {
            for (var k = 0; k < routes.Length; k++)
            {
                var r = (k + round) % routes.Length;
                var run = await Driver.ConcurrentAsync(concurrency, TimeSpan.FromSeconds(seconds), routes[r].Op);
                long tokens = run.Results.Sum();
                results[r].Add((tokens / run.Elapsed.TotalSeconds, run.Results.Count, tokens, run.Cpu.TotalMilliseconds / Math.Max(1, tokens), run.Errors, run.FirstError));
            }
        }

        var engine = results[0].Select(r => r.TokensPerSecond).ToArray();
        var http = results[1].Select(r => r.TokensPerSecond).ToArray();
        Report.Table(
            ["route", "tokens/s (median of rounds)", "rounds", "requests", "tokens/request", "CPU ms/token", "vs engine (median)", "errors"],
            routes.Select((route, i) =>
            {
                var rs = results[i];
                var median = Median(rs.Select(x => x.TokensPerSecond));
                return new[]
                {
                    route.Name, Report.N(median), string.Join(" / ", rs.Select(x => Report.N(x.TokensPerSecond))), Report.N(rs.Sum(x => x.Requests)),
                    Report.N((double)rs.Sum(x => x.Tokens) / Math.Max(1, rs.Sum(x => x.Requests)), "0.0"), Report.N(Median(rs.Select(x => x.CpuMsPerToken)), "0.000"),
                    Report.Ratio(median, Median(engine)), Report.N(rs.Sum(x => x.Errors)),
                };
            }));
        var paired = http.Zip(engine, (h, e) => h / e).ToArray();
        var ratio = Median(paired);
        Console.WriteLine(FormattableString.Invariant(
            $"Paired per-round ratios HTTP/engine: {string.Join(", ", paired.Select(p => p.ToString("0.00", CultureInfo.InvariantCulture)))}; median {ratio:0.00}x; best-vs-best {http.Max() / engine.Max():0.00}x. Target >= 0.95x: {(ratio >= 0.95 ? "met" : "MISSED")}."));
        if (results[1].FirstOrDefault(r => r.Error is not null).Error is { } error)
        {
            Console.WriteLine("First HTTP error: " + error);
        }

        Console.WriteLine($"Load average at end: {Report.LoadAverage()}");
        return 0;
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
