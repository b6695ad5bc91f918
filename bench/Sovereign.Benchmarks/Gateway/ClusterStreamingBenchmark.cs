using System.Security.Cryptography;
using System.Text;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// Cross-node streaming in the cluster's own shape: a throwaway redis-server, a <c>sovereign serve --role node</c>
/// process serving the model on https with its cluster certificate, and a <c>--role gateway</c> process, both with
/// mutual TLS from a CA made here (as the cluster tests start them). Each streamed request goes either straight to the
/// node, as a gateway would send it (https, a gateway's client certificate, the cluster secret), or through the
/// gateway with a tenant key (residency decision and audit, admission, relay over cluster TLS, ledger, settlement).
/// Requests alternate, in the same run.
/// </summary>
internal static class ClusterStreamingBenchmark
{
    public const string Usage = "cluster-streaming [--requests N per path (200)] [--max-tokens N (32)] [--warmup N per path (300)] [--gateways 1|2 (1)] [--marks]";

    public static async Task<int> RunAsync(string[] argv)
    {
        Args args;
        try
        {
            args = Args.Parse(argv, ["--marks"], "--requests", "--max-tokens", "--warmup", "--gateways", "--marks");
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message + "\nusage: " + Usage);
            return 2;
        }

        var requests = args.Int("--requests", 200, 40);
        var maxTokens = args.Int("--max-tokens", 32, 16);
        // Steady state, not start-up: after 10 requests per path (the old warm-up) the members were still warming up
        // (tier-1 compilation) throughout the measured phase, the gateway at 3-4x its warm CPU per relayed request,
        // which doubled both paths' first-token times on the 2-core machine (docs/benchmarks.md).
        var warmup = args.Int("--warmup", 300, 300);

        // Two gateways: the tenant's grain (its money, one activation in the cluster) is on one of them, so admission
        // through the other is a silo-to-silo call; each relayed path is measured against the same direct baseline.
        var gateways = args.Int("--gateways", 1, 1);
        if (gateways is < 1 or > 2)
        {
            Console.Error.WriteLine("--gateways is 1 or 2\nusage: " + Usage);
            return 2;
        }

        // Each member's stage marks (FirstTokenMarks) and the client's, joined per request: where the added time goes.
        var marks = args.Has("--marks");
        Report.Machine("cluster-streaming", argv);

        await using var cluster = BenchCluster.Create();
        if (marks)
        {
            cluster.MarksDirectory = Directory.CreateTempSubdirectory("sovereign-marks-").FullName;
        }

        var (node, nodeUrl) = cluster.StartNode("node-th",
            ["--model", $"{BenchServer.FindStoriesModel()}={BenchServer.ModelId}", "--threads", "1", "--ctx-size", "256", "--parallel", "8"]);
        var (gateway, gatewayUrl) = cluster.StartGateway("gateway-th");
        var second = gateways == 2 ? cluster.StartGateway("gateway-th2") : default;

        // The direct path presents what a gateway presents: a gateway's cluster certificate and the cluster secret.
        using var clientCertificate = cluster.GatewayCertificate("bench-client");
        using var direct = cluster.Client(nodeUrl, clientCertificate, BenchCluster.Secret);
        using var admin = cluster.Client(gatewayUrl, null, BenchServer.AdminToken);
        await BenchCluster.WaitAsync(gateway, admin, "/ready", _ => true);
        await BenchCluster.WaitAsync(node, direct, "/ready", _ => true);
        await BenchCluster.WaitForNodeAsync(gateway, admin, "node-th", BenchServer.ModelId);
        using var secondAdmin = second.Url is null ? null : cluster.Client(second.Url, null, BenchServer.AdminToken);
        if (second.Process is not null)
        {
            await BenchCluster.WaitAsync(second.Process, secondAdmin!, "/ready", _ => true);
            await BenchCluster.WaitForNodeAsync(second.Process, secondAdmin!, "node-th", BenchServer.ModelId);
        }

        var key = await BenchCluster.SetUpTenantAsync(admin, "stream-tenant", BenchServer.ModelId);
        // And the tenant's prefix-cache partition, as the gateway sends it (the first 32 hex digits of the tenant id's
        // SHA-256): a relay without one reuses no cached prompt, so the direct path would prefill what the gateway's does not.
        direct.DefaultRequestHeaders.Add("x-sovereign-cache-partition", Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("stream-tenant")))[..32]);
        using var relayed = cluster.Client(gatewayUrl, null, key);
        using var relayedSecond = second.Url is null ? null : cluster.Client(second.Url, null, key);
        var body = Encoding.UTF8.GetBytes(
            $$"""{"model":"{{BenchServer.ModelId}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":{{maxTokens}},"temperature":0,"stream":true}""");

        // The gateway routes to the node once its registry (re-read every second) shows the node's model loaded.
        foreach (var client in new[] { relayed, relayedSecond })
        {
            for (var attempt = 0; client is not null; attempt++)
            {
                try
                {
                    await RelayStreamingBenchmark.StreamAsync(client, body);
                    break;
                }
                catch (InvalidOperationException) when (attempt < 100)
                {
                    await Task.Delay(200);
                }
            }
        }

        // Warm both paths (JIT up to tier 1, grains, TLS connections, the node's model).
        for (var i = 0; i < warmup; i++)
        {
            await RelayStreamingBenchmark.StreamAsync(direct, body);
            await RelayStreamingBenchmark.StreamAsync(relayed, body);
            if (relayedSecond is not null)
            {
                await RelayStreamingBenchmark.StreamAsync(relayedSecond, body);
            }
        }

        // Each member's decision commits synchronously: on a shared disk its flush is the most variable part of a figure.
        var flushBefore = cluster.DatabaseFlushMilliseconds();
        var directRuns = new List<RelayStreamingBenchmark.Timing>();
        var relayedRuns = new List<RelayStreamingBenchmark.Timing>();
        var secondRuns = new List<RelayStreamingBenchmark.Timing>();
        var clientMarks = new List<StageMarks.ClientMarks>();
        var cpuBefore = cluster.MemberCpuTimes();
        var wakeUpsBefore = cluster.MemberWakeUps();
        for (var i = 0; i < requests; i++)
        {
            if (marks)
            {
                directRuns.Add(await StageMarks.StreamAsync(direct, body, "direct", FormattableString.Invariant($"bench-direct-{i}"), clientMarks));
                relayedRuns.Add(await StageMarks.StreamAsync(relayed, body, "gateway", null, clientMarks));
                if (relayedSecond is not null)
                {
                    secondRuns.Add(await StageMarks.StreamAsync(relayedSecond, body, "gateway2", null, clientMarks));
                }

                continue;
            }

            directRuns.Add(await RelayStreamingBenchmark.StreamAsync(direct, body));
            relayedRuns.Add(await RelayStreamingBenchmark.StreamAsync(relayed, body));
            if (relayedSecond is not null)
            {
                secondRuns.Add(await RelayStreamingBenchmark.StreamAsync(relayedSecond, body));
            }
        }

        // CPU each process spent per pair of requests: the gateway serves only the relayed one (its background work, a
        // few membership and registry calls a second, included), so its figure is its cost per relayed request; on a
        // shared machine it moves far less with the load than the wall-clock figures do.
        var cpu = cluster.MemberCpuTimes().Select(after => FormattableString.Invariant(
            $"{after.Name} {(after.Cpu - cpuBefore.FirstOrDefault(b => b.Name == after.Name).Cpu).TotalMilliseconds / requests:F2}"));

        // Hand-offs between threads, which on a shared machine each wait for a core: the gateway's count per relayed request.
        var wakeUps = cluster.MemberWakeUps().Select(after => FormattableString.Invariant(
            $"{after.Name} {BenchCluster.WakeUpsBetween(wakeUpsBefore.FirstOrDefault(b => b.Name == after.Name).Threads, after.Threads) / (double)requests:F1}"));

        Console.WriteLine(FormattableString.Invariant(
            $"## Streaming through a --role gateway process to a --role node process over cluster TLS ({requests} requests per path, alternating; {maxTokens} tokens; chunks per stream: direct {directRuns.Average(t => t.Chunks):F1}, relayed {relayedRuns.Average(t => t.Chunks):F1})"));
        Console.WriteLine();
        RelayStreamingBenchmark.Table(directRuns, relayedRuns, "direct to node", "through gateway");
        Console.WriteLine();
        if (relayedSecond is not null)
        {
            Console.WriteLine("Through the second gateway (the same tenant; its one grain activation is on one of the two):");
            Console.WriteLine();
            RelayStreamingBenchmark.Table(directRuns, secondRuns, "direct to node", "through gateway 2");
            Console.WriteLine();
        }

        if (cluster.MarksDirectory is { } marksDirectory)
        {
            // The members write their marks once a second.
            await Task.Delay(TimeSpan.FromSeconds(2.5));
            StageMarks.Report(clientMarks, marksDirectory);
            Console.WriteLine($"Each member's raw marks (id stage timestamp) are kept in {marksDirectory}.");
            Console.WriteLine();
        }
        Console.WriteLine($"CPU per request pair (one direct, one relayed), ms: {string.Join(", ", cpu)}; load average at end {Report.LoadAverage()}");
        Console.WriteLine($"Voluntary context switches per request pair (threads that blocked and were woken; those of threads that ended meanwhile not counted): {string.Join(", ", wakeUps)}");
        Console.WriteLine(FormattableString.Invariant(
            $"Flush of 8 KiB to the database's disk (fsync: about what each synchronous commit waits for), p50: {flushBefore:F2} ms before the measured requests, {cluster.DatabaseFlushMilliseconds():F2} ms after"));
        return 0;
    }
}
