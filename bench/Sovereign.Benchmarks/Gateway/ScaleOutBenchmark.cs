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
/// With <c>--pool nodes</c> the pool is the cluster's own shape: a <c>--role gateway</c> process, and each engine fronted by
/// a <c>--role node</c> process (<c>--engine</c>) that joins over Redis and is reached over https with cluster
/// certificates, so every request takes two governed hops (gateway, then node) before the engine.
/// </summary>
internal static class ScaleOutBenchmark
{
    public const string Usage = "scale-out [--quick] [--pool external|nodes] [--engines 1,2,4] [--slots S (8)] [--service-ms MS (20)] [--seconds S (8)] [--warmup S (1; nodes 15)]";

    private const string ModelId = "mock-model";

    public static async Task<int> RunAsync(string[] argv)
    {
        Args args;
        try
        {
            args = Args.Parse(argv, "--pool", "--engines", "--slots", "--service-ms", "--seconds", "--warmup");
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

        var throughNodes = (args.String("--pool") ?? "external") switch
        {
            "external" => false,
            "nodes" => true,
            var other => throw new ArgumentException($"--pool must be external or nodes; got '{other}'"),
        };
        var slots = args.Int("--slots", 8, 8);
        var serviceMs = args.Int("--service-ms", 20, 20);
        var seconds = args.Int("--seconds", 8, 4);

        // A node process started for the row JIT-compiles its request path and tiers up its timers for its first
        // half-minute or so (about 0.1 core of JIT per process): warm long enough that the row measures the steady state.
        var warmup = args.Int("--warmup", throughNodes ? 15 : 1, throughNodes ? 8 : 1);
        Report.Machine("scale-out", argv);

        var engines = new List<MockEngine>();
        await using var pool = throughNodes ? await ClusterPool.StartAsync() : (IEnginePool)await InProcessPool.StartAsync();
        using var gateway = pool.Gateway;
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
                    await pool.AddAsync(engine, engines.Count, slots);
                }

                // Warm: the new engines' connections and gates, then reset the per-engine counts.
                var callers = count * slots;
                await Driver.ConcurrentAsync(callers, TimeSpan.FromSeconds(warmup), (_, _) => Post());
                engines.ForEach(e => e.ResetServed());
                // What the pool's other processes use with no request at all (membership, load reports, timers).
                var idleBefore = pool.MembersCpu();
                var idleWatch = System.Diagnostics.Stopwatch.StartNew();
                await Task.Delay(TimeSpan.FromSeconds(3));
                var idle = (pool.MembersCpu() - idleBefore).TotalSeconds / idleWatch.Elapsed.TotalSeconds;
                var membersBefore = pool.MembersCpu();
                var eachBefore = pool.MemberCpuTimes();
                var run = await Driver.ConcurrentAsync(callers, TimeSpan.FromSeconds(seconds), (_, _) => Post());
                var members = pool.MembersCpu() - membersBefore;
                var each = pool.MemberCpuTimes();
                if (each.Count > 0)
                {
                    Console.WriteLine($"CPU per process with {count} engines, cores: bench {run.Cpu.TotalSeconds / run.Elapsed.TotalSeconds:0.00}, " + string.Join(", ",
                        each.Select(m => $"{m.Name} {(m.Cpu - (eachBefore.FirstOrDefault(b => b.Name == m.Name).Cpu)).TotalSeconds / run.Elapsed.TotalSeconds:0.00}")));
                }
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
                    Report.N((run.Cpu + members).TotalSeconds / run.Elapsed.TotalSeconds, "0.00"),
                    Report.N(idle, "0.00"),
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

        Console.WriteLine(FormattableString.Invariant($"## Scale-out{(throughNodes ? " through --role node processes" : "")}: {slots} slots per engine, {serviceMs} ms service time, {seconds} s per row, callers = engines x slots"));
        Console.WriteLine();
        Report.Table(["engines", "callers", "req/s", "vs 1 engine", "engines' ceiling req/s", "p50 ms", "p99 ms", "refused or failed", "served per engine", "cores used (all processes)", "other processes idle, cores"], rows);
        return 0;
    }

    /// <summary>Where the engines are added: a gateway that relays to them, one way or the other.</summary>
    private interface IEnginePool : IAsyncDisposable
    {
        /// <summary>A client of the gateway with the tenant's key.</summary>
        HttpClient Gateway { get; }

        /// <summary>Puts the <paramref name="ordinal"/>-th engine in the pool and returns once the gateway routes to it.</summary>
        Task AddAsync(MockEngine engine, int ordinal, int slots);

        /// <summary>CPU time of the pool's processes other than this one (gateway, nodes, Redis).</summary>
        TimeSpan MembersCpu();

        /// <summary>The same, per process.</summary>
        IReadOnlyList<(string Name, TimeSpan Cpu)> MemberCpuTimes();
    }

    /// <summary>One in-process gateway; engines registered as external engines of its jurisdiction.</summary>
    private sealed class InProcessPool(BenchServer server, HttpClient gateway) : IEnginePool
    {
        public HttpClient Gateway => gateway;

        public static async Task<InProcessPool> StartAsync()
        {
            var server = await BenchServer.StartAsync(new ServerConfig { DataRoot = null });
            var key = await MockEngine.SetUpTenantAsync(server, "scale-tenant", ModelId);
            var gateway = BenchServer.CreateClient(server.Address);
            gateway.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            return new InProcessPool(server, gateway);
        }

        public async Task AddAsync(MockEngine engine, int ordinal, int slots) =>
            await server.AdminAsync(HttpMethod.Post, "/admin/v1/nodes", new
            {
                id = $"engine-{ordinal}",
                jurisdiction = BenchServer.Jurisdiction,
                base_url = engine.Url,
                models = new[] { new { id = ModelId, upstream = "mock", capacity = slots } },
            });

        public TimeSpan MembersCpu() => TimeSpan.Zero;

        public IReadOnlyList<(string Name, TimeSpan Cpu)> MemberCpuTimes() => [];

        public ValueTask DisposeAsync() => server.DisposeAsync();
    }

    /// <summary>A <c>--role gateway</c> process; each engine fronted by its own <c>--role node</c> process.</summary>
    private sealed class ClusterPool(BenchCluster cluster, System.Diagnostics.Process gatewayProcess, HttpClient admin, HttpClient gateway) : IEnginePool
    {
        public HttpClient Gateway => gateway;

        public static async Task<ClusterPool> StartAsync()
        {
            var cluster = BenchCluster.Create();
            var (process, url) = cluster.StartGateway("gateway-th");
            var admin = cluster.Client(url, null, BenchServer.AdminToken);
            await BenchCluster.WaitAsync(process, admin, "/ready", _ => true);
            var key = await BenchCluster.SetUpTenantAsync(admin, "scale-tenant", ModelId);
            return new ClusterPool(cluster, process, admin, cluster.Client(url, null, key));
        }

        public async Task AddAsync(MockEngine engine, int ordinal, int slots)
        {
            var nodeId = $"node-{ordinal}";
            var (node, url) = cluster.StartNode(nodeId, ["--engine", engine.Url, "--engine-model", ModelId + "=mock", "--engine-capacity", slots.ToString(CultureInfo.InvariantCulture)]);
            using var certificate = cluster.GatewayCertificate("bench-client");
            using var direct = cluster.Client(url, certificate, BenchCluster.Secret);
            await BenchCluster.WaitAsync(node, direct, "/ready", _ => true);
            await BenchCluster.WaitForNodeAsync(gatewayProcess, admin, nodeId, ModelId);
        }

        public TimeSpan MembersCpu() => cluster.MembersCpu();

        public IReadOnlyList<(string Name, TimeSpan Cpu)> MemberCpuTimes() => cluster.MemberCpuTimes();

        public async ValueTask DisposeAsync()
        {
            admin.Dispose();
            await cluster.DisposeAsync();
        }
    }
}
