using System.Globalization;
using System.Net.Http.Headers;
using Sovereign.Inference.Engine;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// The latency the gateway adds to a tiny request (max_tokens 1): <c>POST /v1/completions</c> through the whole
/// server with a tenant key (auth, residency decision and audit, admission in the tenant grain, usage ledger,
/// settlement, completion audit, language detection) against the same request submitted straight to the model's
/// <see cref="ContinuousBatcher"/>, in the same process and run, paced at a fixed arrival rate; with
/// <c>GET /health</c> (Kestrel + routing + loopback + HttpClient) as the framework floor.
/// </summary>
internal static class GatewayLatencyBenchmark
{
    public const string Usage = "gateway [--quick] [--rate R/s (1000, or half the saturation rate of the HTTP path when the box cannot sustain 1000)] [--probe-callers C (8)] [--seconds S per route and round (5)] [--rounds N (3)] [--sequential N (1000)] [--tenants N (10000)] [--nodes M (1000)] [--data-root DIR]";

    private const string Prompt = "Once upon a time, there was a little girl named Lily.";

    public static async Task<int> RunAsync(string[] argv)
    {
        Args args;
        try
        {
            args = Args.Parse(argv, "--rate", "--probe-callers", "--seconds", "--rounds", "--sequential", "--tenants", "--nodes", "--data-root");
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message + "\nusage: " + Usage);
            return 2;
        }

        var requestedRate = args.Double("--rate", 0);
        var seconds = args.Int("--seconds", 5, 2);
        var rounds = args.Int("--rounds", 3, 1);
        var sequential = args.Int("--sequential", 1_000, 300);
        var tenantCount = args.Int("--tenants", 10_000, 1_000);
        var nodeCount = args.Int("--nodes", 1_000, 100);
        Report.Machine("gateway", argv);

        await using var server = await BenchServer.StartAsync(new ServerConfig { AnonymousAccess = true, DataRoot = args.String("--data-root") });
        var world = await BenchWorld.CreateAsync(server, new WorldSpec { Tenants = tenantCount, Nodes = nodeCount });
        await world.WarmGrainsAsync(server);
        var model = server.Batcher.Model;
        var ids = model.Tokenize(Prompt);
        Console.WriteLine(FormattableString.Invariant(
            $"State: {tenantCount:N0} tenants (plan with a price for the model, a daily budget and rate limits each, all grains active), {nodeCount:N0} external nodes serving other models; created in {world.SetupTime.TotalSeconds:F1} s. Model: stories260K, 1 thread, parallel {model.Options.Parallel}. Prompt: {ids.Length} tokens, max_tokens 1, temperature 0."));

        // What the idle server burns (Orleans timers, the engine loop; the pacer is not running yet).
        // Let the background work that follows setup (tiered JIT compilation) finish first: for about 3 s it takes
        // half a core, then the idle server takes about 0.02 cores.
        await Task.Delay(TimeSpan.FromSeconds(4));
        var idleCpu = Environment.CpuUsage.TotalTime;
        await Task.Delay(TimeSpan.FromSeconds(2));
        Console.WriteLine(FormattableString.Invariant($"Idle server process CPU: {(Environment.CpuUsage.TotalTime - idleCpu).TotalSeconds / 2:0.000} cores."));
        Console.WriteLine();

        var random = new Random(11);
        var pickCount = (int)(1_000 * seconds) + sequential + 100_000;
        var pick = Enumerable.Range(0, pickCount).Select(_ => world.Tenants[random.Next(world.Tenants.Count)]).ToArray();
        var textBody = BenchServer.Body(new { model = BenchServer.ModelId, prompt = Prompt, max_tokens = 1, temperature = 0 });
        var idsBody = BenchServer.Body(new { model = BenchServer.ModelId, prompt = ids, max_tokens = 1, temperature = 0 });
        var client = server.Client;
        var batcher = server.Batcher;
        var generated = new GenerationRequest { PromptTokens = ids, MaxTokens = 1, Sampling = SamplingOptions.Greedy, Tenant = "bench" };

        async Task Http(HttpMethod method, string path, byte[]? body, BenchTenant? tenant)
        {
            using var request = new HttpRequestMessage(method, path);
            if (body is not null)
            {
                request.Content = new ByteArrayContent(body);
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            }

            if (tenant is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + tenant.Secret);
            }

            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead);
            if (!response.IsSuccessStatusCode)
            {
                throw new HttpRequestException($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            }
        }

        var routes = new (string Name, Func<int, Task> Op)[]
        {
            ("GET /health (HTTP floor)", _ => Http(HttpMethod.Get, "health", null, null)),
            ("engine: ContinuousBatcher.Submit, in process", async _ => await batcher.Submit(generated).CollectAsync()),
            ("HTTP, anonymous (no tenant: audit + ledger, no grains)", _ => Http(HttpMethod.Post, "v1/completions", idsBody, null)),
            ("HTTP, tenant key, prompt as token ids", i => Http(HttpMethod.Post, "v1/completions", idsBody, pick[i])),
            ("HTTP, tenant key, prompt as text (+ tokenize, language detection)", i => Http(HttpMethod.Post, "v1/completions", textBody, pick[i])),
        };

        // Warm-up: JIT, connections, the language detector (loaded on first use), not reported.
        foreach (var route in routes)
        {
            await Driver.BackToBackAsync(300, route.Op);
        }

        // Saturation: C closed-loop callers per route. It tells which arrival rate the box can sustain at all.
        var probeCallers = args.Int("--probe-callers", 8, 8);
        var probeCounter = 0;
        var saturation = new double[routes.Length];
        for (var r = 1; r < routes.Length; r++)
        {
            var op = routes[r].Op;
            var probe = await Driver.ConcurrentAsync(probeCallers, TimeSpan.FromSeconds(seconds), async (_, _) => { await op(Interlocked.Increment(ref probeCounter) % pickCount); return 1; });
            saturation[r] = probe.Results.Count / probe.Elapsed.TotalSeconds;
        }

        Console.WriteLine(FormattableString.Invariant($"### Saturation ({probeCallers} closed-loop callers, {seconds} s per route)"));
        Console.WriteLine();
        Report.Table(
            ["route", "requests/s", "vs engine"],
            routes.Select((route, r) => r == 0 ? null : new[] { route.Name, Report.N(saturation[r]), Report.Ratio(saturation[r], saturation[1]) }).OfType<string[]>());
        var slowest = saturation.Skip(1).Min();
        var rate = requestedRate > 0 ? requestedRate : slowest >= 2_000 ? 1_000 : Math.Max(10, Math.Floor(slowest / 2 / 10) * 10);
        Console.WriteLine(requestedRate > 0
            ? FormattableString.Invariant($"Paced runs use the requested {rate:N0} requests/s.")
            : rate >= 1_000
                ? "Paced runs use the target rate, 1,000 requests/s."
                : FormattableString.Invariant($"1,000 requests/s cannot be sustained here (the slowest route saturates at {slowest:N0}/s, the engine alone at {saturation[1]:N0}/s): paced runs use {rate:N0}/s, half the slowest route's saturation rate, so latency is measured below saturation rather than as queueing."));
        Console.WriteLine();

        var seq = new List<RunStats>[routes.Length];
        var paced = new List<RunStats>[routes.Length];
        for (var r = 0; r < routes.Length; r++)
        {
            seq[r] = [];
            paced[r] = [];
        }

        for (var round = 0; round < rounds; round++)
        {
            for (var k = 0; k < routes.Length; k++)
            {
                // Each round starts with a different route, so drift in the machine's load does not favour one.
                var r = (k + round) % routes.Length;
                seq[r].Add(await Driver.BackToBackAsync(Math.Max(1, sequential / rounds), routes[r].Op));
                paced[r].Add(await Driver.PacedAsync((int)(rate * seconds), rate, routes[r].Op));
            }
        }

        Print("Back to back (one caller, closed loop)", routes.Select(r => r.Name).ToArray(), seq, null);
        Print(FormattableString.Invariant($"Paced at {rate:N0} requests/s (open loop), {seconds} s per route and round, {rounds} rounds"), routes.Select(r => r.Name).ToArray(), paced, rate);

        Console.WriteLine($"Load average at end: {Report.LoadAverage()}");
        return 0;
    }

    private static void Print(string title, string[] names, List<RunStats>[] runs, double? rate)
    {
        var dists = runs.Select(r => Dist.Merge(r.Select(s => s.Latency))).ToArray();
        var errors = runs.Select(r => r.Sum(s => s.Errors)).ToArray();
        var cpu = runs.Select(r => r.Sum(s => s.Cpu.TotalMilliseconds) / Math.Max(1, r.Sum(s => s.Latency.Count + s.Errors))).ToArray();
        var achieved = runs.Select(r => r.Sum(s => s.Latency.Count + s.Errors) / r.Sum(s => s.Elapsed.TotalSeconds)).ToArray();
        var gcPause = runs.Select(r => r.Sum(s => s.GcPause.TotalMilliseconds) / r.Sum(s => s.Elapsed.TotalSeconds)).ToArray();
        var gen2 = runs.Select(r => r.Sum(s => s.Gen2)).ToArray();
        var health = dists[0];
        var engine = dists[1];
        Console.WriteLine("### " + title);
        Console.WriteLine();
        Report.Table(
            ["route", "p50 ms", "p90 ms", "p99 ms", "max ms", "req/s", rate is null ? "CPU ms/req" : "CPU ms/s of wall", "p50 vs /health", "added p50 ms", "added p99 ms", "GC pause ms/s", "gen2 GCs", "errors"],
            names.Select((name, i) => new[]
            {
                name, Report.Ms(dists[i].P50), Report.Ms(dists[i].P90), Report.Ms(dists[i].P99), Report.Ms(dists[i].Max),
                Report.N(achieved[i]), rate is null ? Report.Ms(cpu[i]) : Report.N(cpu[i] * achieved[i]), Report.Ratio(dists[i].P50, health.P50),
                i >= 2 ? Report.Ms(dists[i].P50 - engine.P50) : "-", i >= 2 ? Report.Ms(dists[i].P99 - engine.P99) : "-",
                Report.N(gcPause[i], "0.0"), Report.N(gen2[i]), errors[i].ToString(CultureInfo.InvariantCulture),
            }));
        Console.WriteLine(rate is null
            ? "'added' = the route's percentile minus the engine's (same run); CPU ms/req = process CPU time (server, engine and the in-process client, all threads) per request."
            : "'added' = the route's percentile minus the engine's (same run); CPU ms/s = process CPU milliseconds per second of the run (1,000 = one core busy), idle background included.");
        if (rate is { } offered)
        {
            var lag = Dist.Merge(runs.SelectMany(r => r.Select(s => s.StartLag!)));
            Console.WriteLine(FormattableString.Invariant($"Pacing: start lag behind schedule p50 {Report.Ms(lag.P50)} ms, p99 {Report.Ms(lag.P99)} ms (offered {offered:N0}/s)."));
            for (var i = 3; i < names.Length; i++)
            {
                var addedP50 = dists[i].P50 - engine.P50;
                var addedP99 = dists[i].P99 - engine.P99;
                Console.WriteLine(FormattableString.Invariant(
                    $"Target for '{names[i]}': added p50 <= 1 ms: {(addedP50 <= 1 ? "met" : "MISSED")} ({Report.Ms(addedP50)} ms); added p99 <= 5 ms: {(addedP99 <= 5 ? "met" : "MISSED")} ({Report.Ms(addedP99)} ms); rate sustained: {(achieved[i] >= 0.97 * offered && errors[i] == 0 ? "yes" : "NO")}."));
            }
        }

        foreach (var (run, i) in runs.Select((r, i) => (r, i)))
        {
            if (run.FirstOrDefault(s => s.FirstError is not null)?.FirstError is { } first)
            {
                Console.WriteLine($"First error of '{names[i]}': {first}");
            }
        }

        Console.WriteLine();
    }
}
