using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Models;
using Sovereign.Gateway.Routing;
using Sovereign.Inference.Engine;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;
using Sovereign.Residency.Jurisdictions;
using Sovereign.Residency.Policies;
using Sovereign.Storage;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// The residency gate of one request, in process, on the real components of a built server: the caller
/// authenticator (key hash, key grain, tenant grain, cached effective policy), the routing decision over the
/// model's replicas (the node directory's verified snapshot, the replica list, <see cref="RoutingDecider"/>), and the
/// audit append (hash chain, group commit to SQLite). Then the same work as the gateway composes it
/// (<see cref="InferenceRouter.AuthenticateAsync"/> + <see cref="InferenceRouter.RouteAsync"/>). State: N tenants with
/// one key each and M external nodes that all serve the model in the server's jurisdiction, so the decider weighs
/// M + 1 replicas per request (the local engine wins, idle, on the node-id tie-break).
/// </summary>
internal static class ResidencyBenchmark
{
    public const string Usage = "residency [--quick] [--tenants N (10000)] [--nodes M (1000)] [--requests R (10000)] [--rate R/s (1000)] [--seconds S (10)] [--rounds N (3)] [--busy N routes holding a request (0)] [--data-root DIR]";

    private const int StrictTenants = 10;

    public static async Task<int> RunAsync(string[] argv)
    {
        Args args;
        try
        {
            args = Args.Parse(argv, "--tenants", "--nodes", "--requests", "--rate", "--seconds", "--rounds", "--busy", "--data-root");
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message + "\nusage: " + Usage);
            return 2;
        }

        var tenantCount = args.Int("--tenants", 10_000, 1_000);
        var nodeCount = args.Int("--nodes", 1_000, 200);
        var requests = args.Int("--requests", 10_000, 3_000);
        var rate = args.Double("--rate", 1_000);
        var seconds = args.Int("--seconds", 10, 3);
        var rounds = args.Int("--rounds", 3, 1);
        var busy = args.Int("--busy", 0, 0);
        Report.Machine("residency", argv);

        await using var server = await BenchServer.StartAsync(new ServerConfig { DataRoot = args.String("--data-root") });
        var world = await BenchWorld.CreateAsync(server, new WorldSpec { Tenants = tenantCount, Nodes = nodeCount, NodeModel = _ => BenchServer.ModelId, StrictTenants = StrictTenants, Limits = false });
        Console.WriteLine(FormattableString.Invariant(
            $"State: {tenantCount:N0} tenants with one key each ({StrictTenants} of them refuse external providers), {nodeCount:N0} external nodes in {BenchServer.Jurisdiction} serving '{BenchServer.ModelId}' (plus the local engine: {nodeCount + 1:N0} replicas), created in {world.SetupTime.TotalSeconds:F1} s. Data directory: {server.DataDirectory}."));

        var authenticator = server.Get<CallerAuthenticator>();
        var router = server.Get<InferenceRouter>();
        var nodes = server.Get<NodeDirectory>();
        var catalog = server.Get<ModelCatalog>();
        var audit = server.Get<AuditLog>();
        var jurisdictions = server.Get<JurisdictionCatalog>();
        var options = server.Get<IOptions<SovereignOptions>>().Value;
        var served = server.Model;
        var tenants = world.Tenants.Take(tenantCount - StrictTenants).ToArray();
        var random = new Random(7);
        var pick = Enumerable.Range(0, Math.Max(requests, (int)(rate * seconds)) + tenants.Length).Select(_ => tenants[random.Next(tenants.Length)]).ToArray();

        // Warm: every key and tenant grain active, policies parsed, the node snapshot verified, JIT done.
        var warm = Stopwatch.StartNew();
        await Parallel.ForEachAsync(tenants, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (t, _) => await authenticator.AuthenticateAsync(Context(t)));
        Console.WriteLine(FormattableString.Invariant($"Warm-up: {tenants.Length:N0} keys resolved (grain activations) in {warm.Elapsed.TotalSeconds:F1} s."));

        // As in a pool that has served for a while: every route has its gate, so each replica's load is a real lookup.
        var gates = server.Get<Sovereign.Gateway.Pipeline.RouteGates>();
        var leases = new List<IDisposable>();
        foreach (var (node, model) in await nodes.ExternalReplicasAsync(BenchServer.ModelId))
        {
            var gate = gates.For(node.Id, model.Id, model.Capacity);

            // Routes that hold a request (one running each) for the whole run, spread over the node order.
            if (leases.Count < busy)
            {
                leases.Add(await gate.AcquireAsync(new Sovereign.Inference.Scheduling.FairQueueEntry("bench-busy", 1, Sovereign.Inference.Scheduling.PriorityClass.Interactive, 1), default));
            }
        }

        Console.WriteLine(FormattableString.Invariant($"Routes holding a request during the run: {leases.Count:N0} of {nodeCount:N0}."));

        Console.WriteLine();

        var here = options.Jurisdiction!.ToUpperInvariant();
        var baseline = await SqliteBaseline.CreateAsync(Path.Combine(server.DataDirectory, "baseline.db"));
        var routedTo = new Dictionary<string, int>(StringComparer.Ordinal);

        // One request, step by step as InferenceRouter does it, each step timed.
        double[] auth = [], decide = [], append = [], sum = [], routerDecide = [];
        long[] routerAllocated = [];
        async Task Parts(int i)
        {
            var tenant = pick[i];
            var context = Context(tenant);
            var t0 = Stopwatch.GetTimestamp();
            var caller = await authenticator.AuthenticateAsync(context);
            var t1 = Stopwatch.GetTimestamp();
            var all = await nodes.GetNodesAsync();
            var replicas = Replicas(all, await nodes.ExternalReplicasAsync(BenchServer.ModelId), served, options, here);
            var decision = RoutingDecider.Decide(new RoutingRequest(here, caller.Policy!, new ModelFacts(BenchServer.ModelId), replicas) { Catalog = jurisdictions });
            var t2 = Stopwatch.GetTimestamp();
            if (!decision.Allowed)
            {
                throw new InvalidOperationException("refused: " + decision.Message);
            }

            await audit.AppendAsync(AllowedEntry(caller, decision, options.NodeId, here), context.RequestAborted);
            var t3 = Stopwatch.GetTimestamp();
            auth[i] = Ms(t0, t1);
            decide[i] = Ms(t1, t2);
            append[i] = Ms(t2, t3);
            sum[i] = Ms(t0, t3);
        }

        async Task Router(int i)
        {
            var context = Context(pick[i]);
            var caller = await router.AuthenticateAsync(context);
            var thread = Environment.CurrentManagedThreadId;
            var allocated = GC.GetAllocatedBytesForCurrentThread();
            var t0 = Stopwatch.GetTimestamp();
            var routed = await router.DecideAsync(context, caller, BenchServer.ModelId, ModelKind.Chat);
            routerDecide[i] = Ms(t0, Stopwatch.GetTimestamp());

            // Counted only when the decision finished on the thread it started on (a counter is per thread).
            routerAllocated[i] = thread == Environment.CurrentManagedThreadId ? GC.GetAllocatedBytesForCurrentThread() - allocated : -1;
            await routed.DecisionRecorded;
            lock (routedTo)
            {
                routedTo[routed.NodeId] = routedTo.GetValueOrDefault(routed.NodeId) + 1;
            }
        }

        Task NoOp(int i) => Task.CompletedTask;

        // Micro rows: the pure pieces alone.
        var snapshot = await nodes.GetNodesAsync();
        var indexed = await nodes.ExternalReplicasAsync(BenchServer.ModelId);
        var fullReplicas = Replicas(snapshot, indexed, served, options, here);
        var policy = (await authenticator.AuthenticateAsync(Context(tenants[0]))).Policy!;
        var oneReplica = new[] { fullReplicas.First(r => r.Kind == NodeKind.Local) };
        var keyTable = tenants.ToDictionary(t => ApiKeySecrets.Hash(t.Secret), t => t.Id, StringComparer.Ordinal);

        foreach (var mode in new[] { "back-to-back", "paced" })
        {
            var n = mode == "paced" ? (int)(rate * seconds) : requests;
            var each = Math.Max(1, n / rounds);
            (auth, decide, append, sum, routerDecide) = (new double[each * rounds], new double[each * rounds], new double[each * rounds], new double[each * rounds], new double[each * rounds]);
            routerAllocated = new long[each * rounds];
            Task<RunStats> Run(Func<int, Task> op) => mode == "paced" ? Driver.PacedAsync(each, rate, op) : Driver.BackToBackAsync(each, op);

            // Warm this mode's path (not reported).
            await Driver.BackToBackAsync(Math.Min(2_000, each), Parts);
            await Driver.BackToBackAsync(Math.Min(2_000, each), Router);
            await Driver.BackToBackAsync(Math.Min(2_000, each), baseline.InsertAsync);

            // Rounds, each starting with a different row, so drift in the machine's load does not favour one row.
            var rows = new (string Name, Func<int, Task> Op)[] { ("sqlite", baseline.InsertAsync), ("noop", NoOp), ("parts", Parts), ("router", Router) };
            var runs = rows.Select(_ => new List<RunStats>()).ToArray();
            for (var round = 0; round < rounds; round++)
            {
                for (var k = 0; k < rows.Length; k++)
                {
                    var r = (k + round) % rows.Length;
                    var offset = round * each;
                    var op = rows[r].Op;
                    runs[r].Add(await Run(i => op(i + offset)));
                }
            }

            var merged = runs.Select(list => Dist.Merge(list.Select(x => x.Latency))).ToArray();
            var errors = runs.Select(list => list.Sum(x => x.Errors)).ToArray();
            var b = merged[0];
            if (mode == "paced")
            {
                var achieved = runs.Select(list => list.Sum(x => x.Latency.Count + x.Errors) / list.Sum(x => x.Elapsed.TotalSeconds)).ToArray();
                var lag = Dist.Merge(runs.SelectMany(list => list.Select(x => x.StartLag!)));
                Console.WriteLine(FormattableString.Invariant(
                    $"### Paced: {rate:N0} requests/s offered, {rounds} rounds of {each:N0} requests per row (achieved {achieved[2]:N0}/s step by step, {achieved[3]:N0}/s through the router; start lag behind schedule p50 {Report.Ms(lag.P50)} ms, p99 {Report.Ms(lag.P99)} ms)"));
            }
            else
            {
                Console.WriteLine(FormattableString.Invariant($"### Back to back: one caller, {rounds} rounds of {each:N0} requests per row"));
            }

            Console.WriteLine();
            Report.Table(
                ["step (per request)", "p50 us", "p99 us", "max us", "p50 vs baseline", "p99 vs baseline", "errors"],
                [
                    Row("baseline: bare SQLite INSERT, autocommit (WAL, synchronous=NORMAL)", b, b, errors[0]),
                    Row("harness no-op (measurement floor)", merged[1], b, errors[1]),
                    Row("auth: CallerAuthenticator (SHA-256, key grain, tenant grain, policy cache)", new Dist(auth.Where(v => v > 0)), b, 0),
                    Row($"decide: node snapshot + {fullReplicas.Count:N0} replicas + RoutingDecider", new Dist(decide.Where(v => v > 0)), b, 0),
                    Row("audit: AuditLog.AppendAsync (chained, committed)", new Dist(append.Where(v => v > 0)), b, 0),
                    Row("total: auth + decide + audit", merged[2], b, errors[2]),
                    Row("total as the gateway runs it: InferenceRouter auth + RouteAsync", merged[3], b, errors[3]),
                    Row($"routing decision as the gateway makes it ({fullReplicas.Count:N0} replicas; audit commit not included)", new Dist(routerDecide.Where(v => v > 0)), b, 0),
                ]);
            var measured = routerAllocated.Where(v => v >= 0).DefaultIfEmpty().ToArray();
            Console.WriteLine(FormattableString.Invariant(
                $"Allocated on the deciding thread per routing decision: {measured.Average():N0} bytes mean, {measured.Order().ElementAt(measured.Length / 2):N0} median over the {measured.Length:N0} that finished on their own thread (GC.GetAllocatedBytesForCurrentThread; the audit append runs on the thread pool). Gen0/1/2 collections in the whole run so far: {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}."));
            Console.WriteLine();
            if (runs.SelectMany(list => list).Select(x => x.FirstError).FirstOrDefault(e => e is not null) is { } error)
            {
                Console.WriteLine("First error: " + error);
                Console.WriteLine();
            }
        }

        // The pure pieces, back to back, in microseconds.
        var request = new RoutingRequest(here, policy, new ModelFacts(BenchServer.ModelId), fullReplicas) { Catalog = jurisdictions };
        var single = request with { Replicas = oneReplica };
        var secret = tenants[0].Secret;
        var prepared = new SnapshotReplicas(indexed, gates, nodes.NodeStaleSeconds);
        var indexedRequest = request with { Replicas = oneReplica };
        var micro = new (string Name, Action Op)[]
        {
            ("baseline: SHA-256 of the key + Dictionary lookup (an auth floor without grains)", () => _ = keyTable.GetValueOrDefault(ApiKeySecrets.Hash(secret))),
            ($"RoutingDecider.Decide over {fullReplicas.Count:N0} replicas (pure)", () => RoutingDecider.Decide(request)),
            ("RoutingDecider.Decide over 1 replica (pure)", () => RoutingDecider.Decide(single)),
            ($"RoutingDecider.Decide indexed: 1 replica + {prepared.Index.Count:N0} of the snapshot's index, every state read as the router reads it", () => RoutingDecider.Decide(indexedRequest, prepared.Index, prepared.ReadAt(nodes, gates), null)),
            ($"RoutingDecider.Decide from the baseline: 1 replica + {prepared.Index.Count:N0}, only busy routes' replicas read", () =>
            {
                var reader = prepared.ReadAt(nodes, gates);
                RoutingDecider.Decide(indexedRequest, prepared.Baseline, prepared.Deviated(nodes, gates, reader.NowMs), reader, null);
            }),
            ($"replica list from the node snapshot's model index ({snapshot.Count:N0} nodes)", () => Replicas(snapshot, indexed, served, options, here)),
        };
        var microStats = micro.Select(m => (m.Name, Dist: Micro(m.Op, Math.Min(requests, 20_000)))).ToList();
        Console.WriteLine("### Pure pieces, back to back (no I/O)");
        Console.WriteLine();
        Report.Table(
            ["piece", "p50 us", "p99 us", "max us", "p50 vs baseline", "p99 vs baseline", "errors"],
            microStats.Select(m => Row(m.Name, m.Dist, microStats[0].Dist, 0)));

        Console.WriteLine("Routed to: " + string.Join(", ", routedTo.Select(kv => $"{kv.Key} x{kv.Value:N0}")));

        // A tenant whose policy excludes every external replica (allow_external_providers: false).
        var strict = world.Tenants[^1];
        try
        {
            var context = Context(strict);
            var caller = await router.AuthenticateAsync(context);
            var routed = await router.RouteAsync(context, caller, BenchServer.ModelId, ModelKind.Chat);
            Console.WriteLine($"Tenant refusing external providers ({nodeCount:N0} replicas excluded): routed to {routed.NodeId}.");
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Console.WriteLine($"Tenant refusing external providers ({nodeCount:N0} replicas excluded): FAILED with {ex.GetType().Name}: {ex.Message}");
        }

        leases.ForEach(lease => lease.Dispose());
        Console.WriteLine($"Load average at end: {Report.LoadAverage()}");
        await baseline.DisposeAsync();
        return 0;
    }

    private static string[] Row(string name, Dist d, Dist baseline, int errors) =>
        [name, Report.Us(d.P50), Report.Us(d.P99), Report.Us(d.Max), Report.Ratio(d.P50, baseline.P50), Report.Ratio(d.P99, baseline.P99), errors.ToString(CultureInfo.InvariantCulture)];

    private static Dist Micro(Action op, int count)
    {
        for (var i = 0; i < 1_000; i++)
        {
            op();
        }

        var latencies = new double[count];
        for (var i = 0; i < count; i++)
        {
            var start = Stopwatch.GetTimestamp();
            op();
            latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        return new Dist(latencies);
    }

    private static double Ms(long from, long to) => Stopwatch.GetElapsedTime(from, to).TotalMilliseconds;

    private static DefaultHttpContext Context(BenchTenant tenant)
    {
        var context = new DefaultHttpContext();
        context.Request.Headers.Authorization = "Bearer " + tenant.Secret;
        return context;
    }

    /// <summary>The replica list as <see cref="InferenceRouter.RouteAsync"/> builds it for a chat model, from the directory's model index.</summary>
    private static List<ModelReplica> Replicas(IReadOnlyList<Cluster.Grains.NodeView> all, IReadOnlyList<(Cluster.Grains.NodeView Node, Cluster.Grains.NodeModel Model)> external, ServedModel local, SovereignOptions settings, string here)
    {
        var localNode = all.FirstOrDefault(n => n.Id == settings.NodeId && n.Kind == nameof(NodeKind.Local));
        var batcher = local.Batcher!;
        var replicas = new List<ModelReplica>
        {
            new(settings.NodeId, localNode?.Jurisdiction ?? here, NodeKind.Local, localNode is null || localNode.State == nameof(NodeState.Active),
                batcher.RunningCount + batcher.WaitingCount, batcher.Model.Options.Parallel + batcher.Model.Options.MaxQueue),
        };
        foreach (var (node, model) in external)
        {
            replicas.Add(new ModelReplica(node.Id, node.Jurisdiction, NodeKind.External, node.State == nameof(NodeState.Active), 0, model.Capacity));
        }

        return replicas;
    }

    /// <summary>The entry <c>InferenceRouter.AllowAsync</c> appends.</summary>
    private static AuditRecord AllowedEntry(Caller caller, RoutingDecision decision, string gateway, string here) => new()
    {
        Kind = AuditKind.Inference,
        Actor = caller.KeyId ?? caller.TenantId,
        Action = AuditActions.InferenceAllowed,
        Tenant = caller.TenantId,
        KeyId = caller.KeyId,
        Model = BenchServer.ModelId,
        Gateway = gateway,
        Node = decision.SelectedReplica!.NodeId,
        Jurisdiction = decision.SelectedReplica.Jurisdiction,
        Decision = AuditDecision.Allowed,
        Reasons = decision.Reasons,
        Details = new Dictionary<string, string> { ["request_id"] = "req_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12)), ["gateway_jurisdiction"] = here },
    };
}

/// <summary>The floor of a durable append: one prepared INSERT of a row the size of an audit entry, autocommit, on one pooled connection.</summary>
internal sealed class SqliteBaseline : IAsyncDisposable
{
    private readonly System.Data.Common.DbConnection _connection;
    private readonly System.Data.Common.DbCommand _insert;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly string _payload = new('x', 400);
    private long _next;

    private SqliteBaseline(System.Data.Common.DbConnection connection, System.Data.Common.DbCommand insert)
    {
        _connection = connection;
        _insert = insert;
    }

    public static async Task<SqliteBaseline> CreateAsync(string path)
    {
        var connection = await SqlDatabase.Sqlite(path).OpenAsync();
        using (var create = connection.CreateCommand())
        {
            create.CommandText = "CREATE TABLE IF NOT EXISTS baseline (seq INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, tenant TEXT NOT NULL, body TEXT NOT NULL)";
            await create.ExecuteNonQueryAsync();
        }

        var insert = connection.CreateCommand();
        insert.CommandText = "INSERT INTO baseline (seq, at_ms, tenant, body) VALUES (@seq, @at, @tenant, @body)";
        SqlDatabase.AddParameter(insert, "@seq", 0L);
        SqlDatabase.AddParameter(insert, "@at", 0L);
        SqlDatabase.AddParameter(insert, "@tenant", "");
        SqlDatabase.AddParameter(insert, "@body", "");
        await insert.PrepareAsync();
        return new SqliteBaseline(connection, insert);
    }

    public async Task InsertAsync(int i)
    {
        await _gate.WaitAsync();
        try
        {
            _insert.Parameters["@seq"].Value = ++_next;
            _insert.Parameters["@at"].Value = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            _insert.Parameters["@tenant"].Value = "t" + (i % 10_000).ToString(CultureInfo.InvariantCulture);
            _insert.Parameters["@body"].Value = _payload;
            await _insert.ExecuteNonQueryAsync();
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _insert.DisposeAsync();
        await _connection.DisposeAsync();
        _gate.Dispose();
    }
}
