using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// Scale-out across the pool: one gateway (the whole governed pipeline) in front of 1, 2 and 4 I/O-bound mock
/// engines, each with a fixed service time and a fixed number of slots (what it runs at once; more wait in its queue),
/// registered as nodes of the gateway's jurisdiction. The offered load grows with the pool (callers = engines x
/// slots, closed loop), so each engine is kept exactly full: requests/s should grow with the engines at the same
/// latency if the gateway spreads the load and adds nothing that serializes. The one-engine row, measured first in
/// the same run, is the baseline. Engines are added to the running gateway, as an operator adds nodes.
/// </summary>
internal static class ScaleOutBenchmark
{
    public const string Usage = "scale-out [--quick] [--engines 1,2,4] [--slots S (8)] [--service-ms MS (20)] [--seconds S (8)]";

    private const string ModelId = "mock-model";

    public static async Task<int> RunAsync(string[] argv)
    {
        Args args;
        try
        {
            args = Args.Parse(argv, "--engines", "--slots", "--service-ms", "--seconds");
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message + "\nusage: " + Usage);
            return 2;
        }

        var counts = (args.String("--engines") ?? "1,2,4").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        if (counts.Length == 0 || counts.Any(c => c < 1) || !counts.SequenceEqual(counts.Order()))
        {
            Console.Error.WriteLine("--engines must be ascending positive counts, e.g. 1,2,4\nusage: " + Usage);
            return 2;
        }

        var slots = args.Int("--slots", 8, 8);
        var serviceMs = args.Int("--service-ms", 20, 20);
        var seconds = args.Int("--seconds", 8, 4);
        Report.Machine("scale-out", argv);

        var engines = new List<MockEngine>();
        await using var server = await BenchServer.StartAsync(new ServerConfig { DataRoot = null });
        var key = await MockEngine.SetUpTenantAsync(server, "scale-tenant", ModelId);
        using var gateway = BenchServer.CreateClient(server.Address);
        gateway.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var body = Encoding.UTF8.GetBytes($$"""{"model":"{{ModelId}}","messages":[{"role":"user","content":"Hello there"}],"max_tokens":1}""");

        async Task<(int Status, double Ms)> Post()
        {
            var start = Stopwatch.GetTimestamp();
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using var response = await gateway.PostAsync("v1/chat/completions", content);
            await response.Content.ReadAsByteArrayAsync();
            return ((int)response.StatusCode, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        var rows = new List<string[]>();
        double? baseline = null;
        try
        {
            foreach (var count in counts)
            {
                while (engines.Count < count)
                {
                    var engine = await MockEngine.StartAsync(slots, TimeSpan.FromMilliseconds(serviceMs));
                    engines.Add(engine);
                    await server.AdminAsync(HttpMethod.Post, "/admin/v1/nodes", new
                    {
                        id = $"engine-{engines.Count}",
                        jurisdiction = BenchServer.Jurisdiction,
                        base_url = engine.Url,
                        models = new[] { new { id = ModelId, upstream = "mock", capacity = slots } },
                    });
                }

                // Warm: the new engines' connections and gates, then reset the per-engine counts.
                var callers = count * slots;
                await Driver.ConcurrentAsync(callers, TimeSpan.FromSeconds(1), (_, _) => Post());
                engines.ForEach(e => e.ResetServed());
                var run = await Driver.ConcurrentAsync(callers, TimeSpan.FromSeconds(seconds), (_, _) => Post());
                var ok = run.Results.Where(r => r.Status == 200).Select(r => r.Ms).ToList();
                var failed = run.Results.Count(r => r.Status != 200) + run.Errors;
                var rate = ok.Count / run.Elapsed.TotalSeconds;
                baseline ??= rate;
                var latency = new Dist(ok);
                var served = engines.Take(count).Select(e => e.Served).ToArray();
                var ceiling = count * slots * 1000.0 / serviceMs;
                rows.Add([
                    count.ToString(CultureInfo.InvariantCulture), callers.ToString(CultureInfo.InvariantCulture), Report.N(rate), Report.Ratio(rate, baseline.Value),
                    Report.N(ceiling), Report.Ms(latency.P50), Report.Ms(latency.P99), failed.ToString(CultureInfo.InvariantCulture),
                    string.Join(" / ", served.Select(s => s.ToString(CultureInfo.InvariantCulture))),
                    Report.N(run.Cpu.TotalSeconds / run.Elapsed.TotalSeconds, "0.00"),
                ]);
                if (run.FirstError is { } error)
                {
                    Console.WriteLine($"First error with {count} engines: {error}");
                }
            }
        }
        finally
        {
            foreach (var engine in engines)
            {
                await engine.DisposeAsync();
            }
        }

        Console.WriteLine(FormattableString.Invariant($"## Scale-out: {slots} slots per engine, {serviceMs} ms service time, {seconds} s per row, callers = engines x slots"));
        Console.WriteLine();
        Report.Table(["engines", "callers", "req/s", "vs 1 engine", "engines' ceiling req/s", "p50 ms", "p99 ms", "refused or failed", "served per engine", "cores used"], rows);
        return 0;
    }
}
