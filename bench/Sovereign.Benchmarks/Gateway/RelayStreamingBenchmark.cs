using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// Streaming through a gateway to another server: time to first token and the time between tokens of a streamed chat
/// completion sent straight to a Sovereign server that runs the model (anonymous), against the same request sent to a
/// second server, the gateway (tenant key, residency decision and audit, admission, relay, ledger, settlement), which
/// has the first registered as a node of its jurisdiction and relays its stream. Both on this machine, requests
/// alternating, in the same run.
/// </summary>
internal static class RelayStreamingBenchmark
{
    public const string Usage = "relay-streaming [--quick] [--requests N per path (200)] [--max-tokens N (32)] [--warmup N per path (300)]";

    private const string RemoteModel = "stories-remote";

    public static async Task<int> RunAsync(string[] argv)
    {
        Args args;
        try
        {
            args = Args.Parse(argv, "--requests", "--max-tokens", "--warmup");
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message + "\nusage: " + Usage);
            return 2;
        }

        var requests = args.Int("--requests", 200, 40);
        var maxTokens = args.Int("--max-tokens", 32, 16);
        var warmup = args.Int("--warmup", 300, 300);
        Report.Machine("relay-streaming", argv);

        await using var node = await BenchServer.StartAsync(new ServerConfig { AnonymousAccess = true });
        await using var gateway = await BenchServer.StartAsync(new ServerConfig());
        await gateway.AdminAsync(HttpMethod.Post, "/admin/v1/nodes", new
        {
            id = "node-same-machine",
            jurisdiction = BenchServer.Jurisdiction,
            base_url = node.Address.ToString(),
            models = new[] { new { id = RemoteModel, upstream = BenchServer.ModelId, capacity = 8 } },
        });
        var key = await MockEngine.SetUpTenantAsync(gateway, "relay-tenant", RemoteModel);
        using var direct = BenchServer.CreateClient(node.Address);
        using var relayed = BenchServer.CreateClient(gateway.Address);
        relayed.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);

        byte[] Body(string model) => Encoding.UTF8.GetBytes(
            $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":{{maxTokens}},"temperature":0,"stream":true}""");
        var directBody = Body(BenchServer.ModelId);
        var relayedBody = Body(RemoteModel);

        // Warm both paths (JIT up to tier 1, grains, connections, the node's model), as cluster-streaming does.
        for (var i = 0; i < warmup; i++)
        {
            await StreamAsync(direct, directBody);
            await StreamAsync(relayed, relayedBody);
        }

        var directRuns = new List<Timing>();
        var relayedRuns = new List<Timing>();

        // The process's CPU time and allocations around each request (one at a time; both servers and the client are
        // in this process): the relayed request's minus the direct one's is what the gateway spent on it.
        TimeSpan directCpu = default, relayedCpu = default;
        long directBytes = 0, relayedBytes = 0;
        for (var i = 0; i < requests; i++)
        {
            var (cpu, bytes) = (Environment.CpuUsage.TotalTime, GC.GetTotalAllocatedBytes());
            directRuns.Add(await StreamAsync(direct, directBody));
            var (cpuBetween, bytesBetween) = (Environment.CpuUsage.TotalTime, GC.GetTotalAllocatedBytes());
            relayedRuns.Add(await StreamAsync(relayed, relayedBody));
            (directCpu, directBytes) = (directCpu + (cpuBetween - cpu), directBytes + (bytesBetween - bytes));
            (relayedCpu, relayedBytes) = (relayedCpu + (Environment.CpuUsage.TotalTime - cpuBetween), relayedBytes + (GC.GetTotalAllocatedBytes() - bytesBetween));
        }

        Console.WriteLine(FormattableString.Invariant(
            $"## Streaming through a gateway to a server on the same machine ({requests} requests per path, alternating; {maxTokens} tokens; chunks per stream: direct {directRuns.Average(t => t.Chunks):F1}, relayed {relayedRuns.Average(t => t.Chunks):F1})"));
        Console.WriteLine();
        Table(directRuns, relayedRuns, "direct", "relayed");
        Console.WriteLine();
        Console.WriteLine(FormattableString.Invariant(
            $"CPU per request (whole process): direct {directCpu.TotalMicroseconds / requests:0} us, relayed {relayedCpu.TotalMicroseconds / requests:0} us, added {(relayedCpu - directCpu).TotalMicroseconds / requests:+0;-0} us. Allocated per request: direct {directBytes / 1024.0 / requests:0.0} KiB, relayed {relayedBytes / 1024.0 / requests:0.0} KiB, added {(relayedBytes - directBytes) / 1024.0 / requests:+0.0;-0.0} KiB"));
        return 0;
    }

    /// <summary>Time to first token, between tokens and the whole stream, each path's p50 and p99 and the difference.</summary>
    internal static void Table(IReadOnlyList<Timing> directRuns, IReadOnlyList<Timing> relayedRuns, string direct, string relayed)
    {
        var rows = new List<string[]>();
        void Row(string name, Func<Timing, double> metric)
        {
            var d = new Dist(directRuns.Select(metric));
            var r = new Dist(relayedRuns.Select(metric));
            rows.Add([name, Report.Ms(d.P50), Report.Ms(r.P50), Signed(r.P50 - d.P50), Report.Ms(d.P99), Report.Ms(r.P99), Signed(r.P99 - d.P99), Report.Ratio(r.P50, d.P50)]);
        }

        Row("time to first token", t => t.FirstTokenMs);
        Row("time between tokens (mean per request)", t => t.BetweenTokensMs);
        Row("whole stream", t => t.TotalMs);
        Report.Table(["", $"{direct} p50 ms", $"{relayed} p50 ms", "added p50", $"{direct} p99 ms", $"{relayed} p99 ms", "added p99", $"{relayed} / {direct} p50"], rows);
    }

    private static string Signed(double ms) => (ms >= 0 ? "+" : "") + Report.Ms(ms);

    internal static async Task<Timing> StreamAsync(HttpClient client, byte[] body)
    {
        var start = Stopwatch.GetTimestamp();
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = content };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"status {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        double? first = null;
        double last = 0;
        var chunks = 0;
        while (await reader.ReadLineAsync() is { } line)
        {
            // A chunk that carries text: "content":"<something>".
            if (line.StartsWith("data: {", StringComparison.Ordinal) && line.Contains("\"content\":\"", StringComparison.Ordinal)
                && !line.Contains("\"content\":\"\"", StringComparison.Ordinal))
            {
                last = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                first ??= last;
                chunks++;
            }
        }

        var total = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        return new Timing(first ?? total, chunks > 1 ? (last - first!.Value) / (chunks - 1) : 0, total, chunks);
    }

    internal sealed record Timing(double FirstTokenMs, double BetweenTokensMs, double TotalMs, int Chunks);
}
