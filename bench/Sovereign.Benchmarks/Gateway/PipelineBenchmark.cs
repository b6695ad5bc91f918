using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// The fixed cost of a governed /v1 request: <c>POST /v1/chat/completions</c> through the whole pipeline (tenant key,
/// residency decision and audit, admission and reservation in the tenant grain, the route's fair queue, the relay,
/// the usage ledger, settlement, the completion audit) to a mock OpenAI-compatible engine that answers at once,
/// against the same request sent straight to the mock, in the same process and run. Reports the latency added at
/// one connection and the governed requests per second at many, with every refusal counted.
/// </summary>
internal static class PipelineBenchmark
{
    public const string Usage = "pipeline [--quick] [--sequential N (3000)] [--callers C (64)] [--seconds S (10)] [--rounds R (3)] [--warmup S (10)] [--settle S (60; 0: off)] [--allocations [TOP] (off; alone: 25)] [--jit [TOP] (off; alone: 25; the methods compiled during the governed runs)] [--relay-ceiling (a bare Kestrel + HttpClient relay to the same mock as a third path: the floor of any two-hop gateway)] [--syscalls (after the measured rounds, one more round per path under strace -c -f: system calls per request)] [--set KEY=VALUE[,KEY=VALUE...]] [--hops N (0: off; where one request's time goes: hops between processes, then the gateway's stage spans)]";

    private const string ModelId = "mock-model";

    public static async Task<int> RunAsync(string[] argv)
    {
        Args args;
        try
        {
            args = Args.Parse(argv, ["--allocations", "--jit", "--relay-ceiling", "--syscalls"], "--sequential", "--callers", "--seconds", "--rounds", "--warmup", "--settle", "--allocations", "--jit", "--set", "--hops", "--relay-ceiling", "--syscalls");
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message + "\nusage: " + Usage);
            return 2;
        }

        var sequential = args.Int("--sequential", 3_000, 500);
        var callers = args.Int("--callers", 64, 32);
        var seconds = args.Int("--seconds", 10, 3);
        var rounds = args.Int("--rounds", 3, 1);
        var warmup = args.Int("--warmup", 10, 5);
        Report.Machine("pipeline", argv);

        await using var mock = await MockEngine.StartAsync();
        // --set: server settings to compare, e.g. Sovereign:DetectLanguageOfEveryRequest=false.
        var extra = (args.String("--set") ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(pair => pair.Split('=', 2)).ToDictionary(pair => pair[0], pair => (string?)(pair.Length > 1 ? pair[1] : string.Empty));
        // A key that binds to no setting would compare the same configuration twice without a word.
        if (extra.Keys.FirstOrDefault(k => !SettingPaths.Binds(k)) is { } unbound)
        {
            Console.Error.WriteLine($"--set {unbound} names no setting of SovereignOptions (e.g. Sovereign:DetectLanguageOfEveryRequest, Sovereign:Languages:MinimumConfidence).\nusage: {Usage}");
            return 2;
        }

        await using var server = await BenchServer.StartAsync(new ServerConfig { DataRoot = null, Extra = extra });
        var key = await SetUpTenantAsync(server, mock.Url);
        using var gateway = BenchServer.CreateClient(server.Address);
        gateway.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var direct = BenchServer.CreateClient(new Uri(mock.Url.TrimEnd('/') + "/"));
        var body = Encoding.UTF8.GetBytes($$"""{"model":"{{ModelId}}","messages":[{"role":"user","content":"Hello there"}],"max_tokens":1}""");
        var directBody = Encoding.UTF8.GetBytes("""{"model":"mock","messages":[{"role":"user","content":"Hello there"}],"max_tokens":1}""");

        // --relay-ceiling: the same request through a bare Kestrel endpoint that relays it to the same mock (BareRelay).
        await using var bare = args.Has("--relay-ceiling") ? await BareRelay.StartAsync(mock.Url) : null;
        using var relay = bare is null ? null : BenchServer.CreateClient(new Uri(bare.Url.TrimEnd('/') + "/"));

        async Task<int> Post(HttpClient client, byte[] payload)
        {
            using var content = new ByteArrayContent(payload);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using var response = await client.PostAsync("v1/chat/completions", content);
            await response.Content.ReadAsByteArrayAsync();
            return (int)response.StatusCode;
        }

        async Task Ok(HttpClient client, byte[] payload)
        {
            var status = await Post(client, payload);
            if (status != 200)
            {
                throw new InvalidOperationException($"status {status}");
            }
        }

        // Warm both paths (grains, connection pools), then load them until tiered compilation has settled: a fresh
        // process spends 6-9% of its CPU in the JIT for its first tens of seconds, which a running server does not.
        for (var i = 0; i < 300; i++)
        {
            await Ok(gateway, body);
            await Ok(direct, directBody);
            if (relay is not null)
            {
                await Ok(relay, directBody);
            }
        }

        await Driver.ConcurrentAsync(callers, TimeSpan.FromSeconds(warmup), (_, _) => Post(gateway, body));
        await Driver.ConcurrentAsync(callers, TimeSpan.FromSeconds(warmup / 2.0), (_, _) => Post(direct, directBody));
        if (relay is not null)
        {
            await Driver.ConcurrentAsync(callers, TimeSpan.FromSeconds(warmup / 2.0), (_, _) => Post(relay, directBody));
        }

        // --settle S: then load the governed path in 2-s bursts until tiered compilation has caught up (fewer than 2
        // methods compiled per 1,000 requests in a burst, or fewer than 5 in all), at most S seconds. On a loaded machine a fixed warm-up ends
        // with the JIT still promoting the path's methods: a 10-s run after 4 s of warm-up at load 26 compiled 2,013
        // methods (5.8 s compiling) and measured 892 us of CPU per request, the next 367 methods and 528 us.
        var settle = args.Int("--settle", 60, 60);
        if (settle > 0)
        {
            var settleStart = Stopwatch.GetTimestamp();
            var (bursts, lastRate, settled) = (0, double.NaN, false);
            while (Stopwatch.GetElapsedTime(settleStart).TotalSeconds < settle)
            {
                var compiledBefore = System.Runtime.JitInfo.GetCompiledMethodCount();
                var burst = await Driver.ConcurrentAsync(callers, TimeSpan.FromSeconds(2), (_, _) => Post(gateway, body));
                bursts++;
                var compiled = System.Runtime.JitInfo.GetCompiledMethodCount() - compiledBefore;
                lastRate = compiled * 1000.0 / Math.Max(1, burst.Results.Count);
                settled = lastRate < 2 || compiled < 5; // a slow burst on a loaded machine: a few background timers' methods
                if (settled)
                {
                    break;
                }
            }

            Console.WriteLine(FormattableString.Invariant(
                $"JIT settling: {bursts} governed bursts of 2 s after the warm-up, {Stopwatch.GetElapsedTime(settleStart).TotalSeconds:0} s; the last compiled {lastRate:0.0} methods per 1,000 requests ({(settled ? "settled" : "NOT settled: CPU figures include tier-up work")})"));
            Console.WriteLine();
        }

        // --hops N: instead of the measurement, where one request's time goes between the hops (HopTimeline).
        if (args.Int("--hops", 0, 0) is > 0 and var hops)
        {
            Console.WriteLine("## Direct to the mock engine");
            using var timeline = new HopTimeline();
            for (var i = 0; i < hops; i++)
            {
                await timeline.RecordAsync(() => Ok(direct, directBody));
            }

            timeline.Print();

            // The same hop through the gateway's own engine client (its handler, with the engine address rule's connect
            // step), outside the pipeline: whether the relay's client itself makes the hop slower than the bench's client.
            Console.WriteLine();
            Console.WriteLine("## Direct to the mock engine through the gateway's engine client (its handler and connect rule, no pipeline)");
            using var engineClient = new HttpClient(server.Get<IHttpMessageHandlerFactory>().CreateHandler(Sovereign.Gateway.Routing.UpstreamProxy.ClientName), disposeHandler: false)
            {
                BaseAddress = direct.BaseAddress,
            };
            for (var i = 0; i < 300; i++)
            {
                await Ok(engineClient, directBody);
            }

            using var engineTimeline = new HopTimeline();
            for (var i = 0; i < hops; i++)
            {
                await engineTimeline.RecordAsync(() => Ok(engineClient, directBody));
            }

            engineTimeline.Print();
            Console.WriteLine();
            Console.WriteLine("## Through the governed pipeline (kestrel.RequestStart to http.RequestStart: the gateway before the relay)");
            using var governed = new HopTimeline();
            for (var i = 0; i < hops; i++)
            {
                await governed.RecordAsync(() => Ok(gateway, body));
            }

            governed.Print();

            // Then the gateway's own stage spans, recorded apart: listening makes every request build its spans.
            Console.WriteLine();
            Console.WriteLine("## The governed pipeline's stages (the gateway's spans, one connection)");
            using var stages = new StageSpans();
            for (var i = 0; i < hops / 10; i++)
            {
                await Ok(gateway, body); // warm the traced paths
            }

            stages.Recording = true;
            for (var i = 0; i < hops; i++)
            {
                await Ok(gateway, body);
            }

            stages.Recording = false;
            stages.Print();
            return 0;
        }

        Console.WriteLine(FormattableString.Invariant($"## Latency at one connection ({sequential:N0} requests per path and round, {rounds} rounds, paths interleaved)"));
        Console.WriteLine();
        var directRuns = new List<RunStats>();
        var gatewayRuns = new List<RunStats>();
        var relayRuns = new List<RunStats>();
        for (var round = 0; round < rounds; round++)
        {
            directRuns.Add(await Driver.BackToBackAsync(sequential, _ => Ok(direct, directBody)));
            gatewayRuns.Add(await Driver.BackToBackAsync(sequential, _ => Ok(gateway, body)));
            if (relay is not null)
            {
                relayRuns.Add(await Driver.BackToBackAsync(sequential, _ => Ok(relay, directBody)));
            }
        }

        var d = Dist.Merge(directRuns.Select(r => r.Latency));
        var g = Dist.Merge(gatewayRuns.Select(r => r.Latency));
        var gatewayCpuPerRequest = gatewayRuns.Sum(r => r.Cpu.TotalMilliseconds) / gatewayRuns.Sum(r => r.Latency.Count);
        var directCpuPerRequest = directRuns.Sum(r => r.Cpu.TotalMilliseconds) / directRuns.Sum(r => r.Latency.Count);
        var gatewaySwitches = (double)gatewayRuns.Sum(r => r.ContextSwitches) / gatewayRuns.Sum(r => r.Latency.Count);
        var directSwitches = (double)directRuns.Sum(r => r.ContextSwitches) / directRuns.Sum(r => r.Latency.Count);
        var gatewayBytes = (double)gatewayRuns.Sum(r => r.BytesWritten) / gatewayRuns.Sum(r => r.Latency.Count) / 1024;
        var directBytes = (double)directRuns.Sum(r => r.BytesWritten) / directRuns.Sum(r => r.Latency.Count) / 1024;
        var gatewayItems = (double)gatewayRuns.Sum(r => r.PoolWorkItems) / gatewayRuns.Sum(r => r.Latency.Count);
        var directItems = (double)directRuns.Sum(r => r.PoolWorkItems) / directRuns.Sum(r => r.Latency.Count);
        Report.Table(["Path", "p50 ms", "p99 ms", "CPU ms/request (process)", "context switches/request", "pool work items/request", "KiB written/request", "errors"],
        [
            ["direct to the mock engine", Report.Ms(d.P50), Report.Ms(d.P99), Report.Ms(directCpuPerRequest), Report.N(directSwitches, "0.0"), Report.N(directItems, "0.0"), Report.N(directBytes, "0.0"), directRuns.Sum(r => r.Errors).ToString(CultureInfo.InvariantCulture)],
            ["through the governed pipeline", Report.Ms(g.P50), Report.Ms(g.P99), Report.Ms(gatewayCpuPerRequest), Report.N(gatewaySwitches, "0.0"), Report.N(gatewayItems, "0.0"), Report.N(gatewayBytes, "0.0"), gatewayRuns.Sum(r => r.Errors).ToString(CultureInfo.InvariantCulture)],
            ["added by the gateway", "+" + Report.Ms(g.P50 - d.P50), "+" + Report.Ms(g.P99 - d.P99), "+" + Report.Ms(gatewayCpuPerRequest - directCpuPerRequest), "+" + Report.N(gatewaySwitches - directSwitches, "0.0"), "+" + Report.N(gatewayItems - directItems, "0.0"), "+" + Report.N(gatewayBytes - directBytes, "0.0"), ""],
            .. RelayRows(relayRuns, d, directCpuPerRequest, directSwitches, directItems, directBytes),
        ]);
        Console.WriteLine();
        // The slowest 1% at one connection: how many collections (each pauses every thread) fell in each path's runs.
        Console.WriteLine(FormattableString.Invariant(
            $"GC at one connection: direct {directRuns.Sum(r => r.Gen0)} collections (gen1 {directRuns.Sum(r => r.Gen1)}, gen2 {directRuns.Sum(r => r.Gen2)}), paused {directRuns.Sum(r => r.GcPause.TotalMilliseconds):0.0} ms; ") +
            FormattableString.Invariant(
            $"governed {gatewayRuns.Sum(r => r.Gen0)} collections (gen1 {gatewayRuns.Sum(r => r.Gen1)}, gen2 {gatewayRuns.Sum(r => r.Gen2)}), paused {gatewayRuns.Sum(r => r.GcPause.TotalMilliseconds):0.0} ms, longest-1% requests {g.Q(0.99):0.00}-{g.Q(1.0):0.00} ms"));
        Console.WriteLine();

        Console.WriteLine(FormattableString.Invariant($"## Throughput with {callers} concurrent callers ({seconds} s per path and round)"));
        Console.WriteLine();
        var rows = new List<string[]>();
        var gcRows = new List<string[]>();
        var relayRows = new List<string[]>();
        var topTypes = args.IntOrBare("--allocations", 0, 25);
        using var sampler = topTypes > 0 ? new AllocationSampler() : null;
        var topMethods = args.IntOrBare("--jit", 0, 25);
        using var jitSampler = topMethods > 0 ? new JitSampler() : null;
        var allocated = new List<(double Direct, double Governed)>();
        var jitted = new List<(long Methods, TimeSpan Time, int Requests)>();
        for (var round = 0; round < rounds; round++)
        {
            var (directGc, directRun) = await WithGcAsync(() => Driver.ConcurrentAsync(callers, TimeSpan.FromSeconds(seconds), (_, _) => Post(direct, directBody)));
            var (relayGc, relayRun) = relay is null ? default : await WithGcAsync(() => Driver.ConcurrentAsync(callers, TimeSpan.FromSeconds(seconds), (_, _) => Post(relay, directBody)));
            var between = GC.GetTotalAllocatedBytes();
            var gcBefore = GcCounts.Now();
            sampler?.Start();
            jitSampler?.Start();
            var itemsBefore = ThreadPool.CompletedWorkItemCount;
            var (jitBefore, jitTimeBefore) = (System.Runtime.JitInfo.GetCompiledMethodCount(), System.Runtime.JitInfo.GetCompilationTime());
            var gatewayRun = await Driver.ConcurrentAsync(callers, TimeSpan.FromSeconds(seconds), (_, _) => Post(gateway, body));
            var loadedItems = (ThreadPool.CompletedWorkItemCount - itemsBefore) / (double)gatewayRun.Results.Count;
            var gatewayGc = GcCounts.Now() - gcBefore;
            jitted.Add((System.Runtime.JitInfo.GetCompiledMethodCount() - jitBefore, System.Runtime.JitInfo.GetCompilationTime() - jitTimeBefore, gatewayRun.Results.Count));
            var types = sampler?.Stop(topTypes);
            if (jitSampler?.Stop(topMethods) is { } methods)
            {
                Console.WriteLine("Methods compiled during the governed run (times, method [tier]):");
                foreach (var (method, count) in methods)
                {
                    Console.WriteLine(FormattableString.Invariant($"  {count,6}  {method}"));
                }

                Console.WriteLine();
            }

            allocated.Add((directGc.Allocated / (double)directRun.Results.Count, (GC.GetTotalAllocatedBytes() - between) / (double)gatewayRun.Results.Count));
            gcRows.Add([(round + 1).ToString(CultureInfo.InvariantCulture), directGc.Per10k(directRun.Results.Count), relay is null ? "-" : relayGc.Per10k(relayRun.Results.Count), gatewayGc.Per10k(gatewayRun.Results.Count),
                relay is null ? "-" : Report.N(relayGc.Allocated / 1024.0 / Math.Max(1, relayRun.Results.Count), "0.0")]);
            if (relay is not null)
            {
                var relayRate = relayRun.Results.Count(s => s == 200) / relayRun.Elapsed.TotalSeconds;
                relayRows.Add([(round + 1).ToString(CultureInfo.InvariantCulture), Report.N(relayRate), Report.Ratio(relayRate, directRun.Results.Count(s => s == 200) / directRun.Elapsed.TotalSeconds),
                    Report.N(relayRun.Cpu.TotalMilliseconds * 1000 / relayRun.Results.Count, "0"), (relayRun.Results.Count(s => s != 200) + relayRun.Errors).ToString(CultureInfo.InvariantCulture)]);
            }

            if (types is not null)
            {
                Console.WriteLine("Allocation samples of the governed run (bytes, type):");
                foreach (var (type, bytes) in types)
                {
                    Console.WriteLine(FormattableString.Invariant($"  {bytes,14:N0}  {type}"));
                }

                Console.WriteLine();
            }

            var directRate = directRun.Results.Count(s => s == 200) / directRun.Elapsed.TotalSeconds;
            var gatewayRate = gatewayRun.Results.Count(s => s == 200) / gatewayRun.Elapsed.TotalSeconds;
            var refused = gatewayRun.Results.Count(s => s != 200) + gatewayRun.Errors;
            rows.Add([(round + 1).ToString(CultureInfo.InvariantCulture), Report.N(directRate), Report.N(gatewayRate), Report.Ratio(gatewayRate, directRate),
                refused.ToString(CultureInfo.InvariantCulture), Report.N(gatewayRun.Cpu.TotalSeconds / gatewayRun.Elapsed.TotalSeconds, "0.00"),
                Report.N(directRun.Cpu.TotalMilliseconds * 1000 / directRun.Results.Count, "0"), Report.N(gatewayRun.Cpu.TotalMilliseconds * 1000 / gatewayRun.Results.Count, "0"),
                Report.N(loadedItems, "0.0")]);
        }

        // CPU per request and pool work items per request (whole process: client, gateway, mock) depend less on the
        // machine's load than requests/s do: the figures to compare when a change to the path's cost is tried.
        Report.Table(["Round", "direct req/s", "governed req/s", "governed / direct", "refused or failed", "cores used (governed)", "CPU us/request direct", "CPU us/request governed", "pool work items/request governed"], rows);
        Console.WriteLine();
        if (relayRows.Count > 0)
        {
            Report.Table(["Round", "bare relay req/s (Kestrel + HttpClient, no governance)", "bare relay / direct", "CPU us/request bare relay", "refused or failed"], relayRows);
            Console.WriteLine();
        }

        // Collections per 10,000 requests of each path's 32-caller round (whole process), and the pause they took.
        Report.Table(["Round", "GC per 10k requests direct: gen0 / gen1 / gen2, paused ms", "bare relay", "governed", "KiB allocated/request bare relay"], gcRows);
        Console.WriteLine();
        Console.WriteLine(FormattableString.Invariant(
            $"Allocated per request (whole process: client, gateway, mock): direct {allocated.Average(a => a.Direct) / 1024:0.0} KiB, governed {allocated.Average(a => a.Governed) / 1024:0.0} KiB"));
        // A settled server compiles nothing per request: methods still compiled here are tier-0 code being promoted (slow
        // code and JIT work in the measurement) or code generated again and again (--jit TOP names them).
        Console.WriteLine(string.Join("; ", jitted.Select((j, i) => FormattableString.Invariant(
            $"JIT during governed round {i + 1}: {j.Methods:N0} methods compiled ({j.Methods * 1000.0 / Math.Max(1, j.Requests):0.0} per 1,000 requests), {j.Time.TotalMilliseconds:N0} ms compiling"))));

        // --syscalls: one more round per path under strace (slowed several times: counts per request, not times).
        if (args.Has("--syscalls"))
        {
            if (!SyscallCounter.Available)
            {
                Console.WriteLine("--syscalls: strace is not installed here");
                return 0;
            }

            Console.WriteLine();
            Console.WriteLine(FormattableString.Invariant($"## System calls per request (strace -c -f over the whole process; one connection {sequential / 4:N0} requests, then {callers} callers for {seconds} s per path)"));
            Console.WriteLine();
            var paths = new List<(string Name, HttpClient Client, byte[] Body)> { ("direct", direct, directBody) };
            if (relay is not null)
            {
                paths.Add(("bare relay", relay, directBody));
            }

            paths.Add(("governed", gateway, body));
            var traced = new List<(string Name, IReadOnlyList<(string Call, long Count)> Calls, int Requests)>();
            foreach (var (name, client, payload) in paths)
            {
                using (var counter = new SyscallCounter())
                {
                    await counter.StartAsync();
                    var run = await Driver.BackToBackAsync(sequential / 4, _ => Ok(client, payload));
                    traced.Add((name + ", one connection", await counter.StopAsync(), run.Latency.Count));
                }

                using (var counter = new SyscallCounter())
                {
                    await counter.StartAsync();
                    var run = await Driver.ConcurrentAsync(callers, TimeSpan.FromSeconds(seconds), (_, _) => Post(client, payload));
                    traced.Add((name + $", {callers} callers", await counter.StopAsync(), run.Results.Count));
                }
            }

            var calls = traced.SelectMany(t => t.Calls).GroupBy(c => c.Call).Select(g => (Call: g.Key, Max: traced.Max(t => PerRequest(t, g.Key))))
                .Where(c => c.Max >= 0.05).OrderByDescending(c => c.Max).Select(c => c.Call).ToList();
            Report.Table(["system call", .. traced.Select(t => t.Name)],
            [
                .. calls.Select(call => (string[])[call, .. traced.Select(t => Report.N(PerRequest(t, call), "0.00"))]),
                ["all", .. traced.Select(t => Report.N(t.Calls.Sum(c => c.Count) / (double)Math.Max(1, t.Requests), "0.0"))],
                ["requests traced", .. traced.Select(t => t.Requests.ToString("N0", CultureInfo.InvariantCulture))],
            ]);

            static double PerRequest((string Name, IReadOnlyList<(string Call, long Count)> Calls, int Requests) t, string call) =>
                t.Calls.Where(c => c.Call == call).Sum(c => c.Count) / (double)Math.Max(1, t.Requests);
        }

        return 0;
    }

    private static IEnumerable<string[]> RelayRows(List<RunStats> runs, Dist direct, double directCpu, double directSwitches, double directItems, double directBytes)
    {
        if (runs.Count == 0)
        {
            yield break;
        }

        var r = Dist.Merge(runs.Select(x => x.Latency));
        var count = runs.Sum(x => x.Latency.Count);
        var cpu = runs.Sum(x => x.Cpu.TotalMilliseconds) / count;
        var switches = (double)runs.Sum(x => x.ContextSwitches) / count;
        var items = (double)runs.Sum(x => x.PoolWorkItems) / count;
        var bytes = (double)runs.Sum(x => x.BytesWritten) / count / 1024;
        yield return ["bare relay (Kestrel + HttpClient, no governance)", Report.Ms(r.P50), Report.Ms(r.P99), Report.Ms(cpu), Report.N(switches, "0.0"), Report.N(items, "0.0"), Report.N(bytes, "0.0"), runs.Sum(x => x.Errors).ToString(CultureInfo.InvariantCulture)];
        yield return ["added by the bare relay", "+" + Report.Ms(r.P50 - direct.P50), "+" + Report.Ms(r.P99 - direct.P99), "+" + Report.Ms(cpu - directCpu), "+" + Report.N(switches - directSwitches, "0.0"), "+" + Report.N(items - directItems, "0.0"), "+" + Report.N(bytes - directBytes, "0.0"), ""];
    }

    private static async Task<(GcCounts Gc, T Result)> WithGcAsync<T>(Func<Task<T>> run)
    {
        var before = GcCounts.Now();
        var result = await run();
        return (GcCounts.Now() - before, result);
    }

    /// <summary>The process's collections, GC pause and allocated bytes, to subtract around a round.</summary>
    private readonly record struct GcCounts(int Gen0, int Gen1, int Gen2, TimeSpan Paused, long Allocated)
    {
        public static GcCounts Now() => new(GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalPauseDuration(), GC.GetTotalAllocatedBytes());

        public static GcCounts operator -(GcCounts a, GcCounts b) => new(a.Gen0 - b.Gen0, a.Gen1 - b.Gen1, a.Gen2 - b.Gen2, a.Paused - b.Paused, a.Allocated - b.Allocated);

        public string Per10k(int requests)
        {
            var k = 10_000.0 / Math.Max(1, requests);
            return FormattableString.Invariant($"{Gen0 * k:0.0} / {Gen1 * k:0.0} / {Gen2 * k:0.0}, {Paused.TotalMilliseconds * k:0.0}");
        }
    }

    /// <summary>The mock as a node of the server's jurisdiction, and a tenant that may use it.</summary>
    private static async Task<string> SetUpTenantAsync(BenchServer server, string mockUrl)
    {
        await server.AdminAsync(HttpMethod.Post, "/admin/v1/nodes", new
        {
            id = "mock-engine",
            jurisdiction = BenchServer.Jurisdiction,
            base_url = mockUrl,
            models = new[] { new { id = ModelId, upstream = "mock", capacity = 1024 } },
        });
        return await MockEngine.SetUpTenantAsync(server, "bench-tenant", ModelId);
    }
}
