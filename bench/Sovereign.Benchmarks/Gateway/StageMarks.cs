using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// <c>cluster-streaming --marks</c>: the client's own marks of each measured request (sent, headers, first content),
/// joined with the members' stage marks (the server's <c>FirstTokenMarks</c>: one file per member, <c>id stage
/// timestamp</c> lines, <see cref="Stopwatch.GetTimestamp"/> on one clock) by the gateway's request id, which it sends
/// to the node as <c>x-sovereign-relay-of</c>; the direct path sends one of its own, as a gateway would.
/// </summary>
internal static class StageMarks
{
    internal sealed record ClientMarks(string Path, string Id, long Sent, long Headers, long FirstContent);

    /// <summary>One streamed request, as <see cref="RelayStreamingBenchmark.StreamAsync"/>, with the client's marks kept.</summary>
    public static async Task<RelayStreamingBenchmark.Timing> StreamAsync(HttpClient client, byte[] body, string path, string? relayOf, List<ClientMarks> marks)
    {
        var start = Stopwatch.GetTimestamp();
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = content };
        if (relayOf is not null)
        {
            request.Headers.TryAddWithoutValidation("x-sovereign-relay-of", relayOf);
        }

        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var headers = Stopwatch.GetTimestamp();
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"status {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        long? first = null;
        long last = 0;
        var chunks = 0;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: {", StringComparison.Ordinal) && line.Contains("\"content\":\"", StringComparison.Ordinal)
                && !line.Contains("\"content\":\"\"", StringComparison.Ordinal))
            {
                last = Stopwatch.GetTimestamp();
                first ??= last;
                chunks++;
            }
        }

        var end = Stopwatch.GetTimestamp();
        var id = relayOf ?? (response.Headers.TryGetValues("x-sovereign-audit-id", out var ids) ? ids.First() : null);
        if (id is not null && first is { } firstContent)
        {
            marks.Add(new ClientMarks(path, id, start, headers, firstContent));
        }

        double Ms(long from, long to) => (to - from) * 1000.0 / Stopwatch.Frequency;
        return new RelayStreamingBenchmark.Timing(first is { } f ? Ms(start, f) : Ms(start, end), chunks > 1 ? Ms(first!.Value, last) / (chunks - 1) : 0, Ms(start, end), chunks);
    }

    /// <summary>Prints, per path, each stage's median time after the client's send, and the steps that make the added time.</summary>
    public static void Report(IReadOnlyList<ClientMarks> client, string directory)
    {
        // member -> request id -> stage -> first time it was marked.
        var members = new Dictionary<string, Dictionary<string, Dictionary<string, long>>>();
        foreach (var file in Directory.EnumerateFiles(directory, "*.marks"))
        {
            var byId = new Dictionary<string, Dictionary<string, long>>();
            foreach (var line in File.ReadLines(file))
            {
                var parts = line.Split(' ');
                if (parts.Length != 3 || !long.TryParse(parts[2], CultureInfo.InvariantCulture, out var at))
                {
                    continue;
                }

                var stages = byId.TryGetValue(parts[0], out var known) ? known : byId[parts[0]] = [];
                stages.TryAdd(parts[1], at);
            }

            members[Path.GetFileNameWithoutExtension(file)] = byId;
        }

        Console.WriteLine("## Stage marks: median ms after the client's send (the same request's marks in each process, joined by request id)");
        Console.WriteLine();
        foreach (var path in client.Select(c => c.Path).Distinct())
        {
            var gatewayName = path switch { "gateway" => "gateway-th", "gateway2" => "gateway-th2", _ => null };
            var timelines = new List<Dictionary<string, double>>();
            foreach (var request in client.Where(c => c.Path == path))
            {
                double Ms(long at) => (at - request.Sent) * 1000.0 / Stopwatch.Frequency;
                var line = new Dictionary<string, double> { ["client: headers"] = Ms(request.Headers), ["client: first content"] = Ms(request.FirstContent) };
                void Add(string member, string label)
                {
                    if (members.TryGetValue(member, out var byId) && byId.TryGetValue(request.Id, out var stages))
                    {
                        foreach (var (stage, at) in stages)
                        {
                            line[$"{label}: {stage}"] = Ms(at);
                        }
                    }
                }

                if (gatewayName is not null)
                {
                    Add(gatewayName, "gateway");
                }

                Add("node-th", "node");
                timelines.Add(line);
            }

            var complete = timelines.Count(t => t.ContainsKey("node: written") && (gatewayName is null || t.ContainsKey("gateway: written")));
            Console.WriteLine(FormattableString.Invariant($"### {path}: {timelines.Count} requests, {complete} with every member's marks"));
            Console.WriteLine();
            var rows = timelines.SelectMany(t => t.Keys).Distinct()
                .Select(stage => (Stage: stage, Values: timelines.Where(t => t.ContainsKey(stage)).Select(t => t[stage]).Order().ToArray()))
                .OrderBy(s => s.Values[s.Values.Length / 2])
                .Select(s => new[] { s.Stage, s.Values.Length.ToString(CultureInfo.InvariantCulture), Gateway.Report.Ms(s.Values[s.Values.Length / 4]), Gateway.Report.Ms(s.Values[s.Values.Length / 2]), Gateway.Report.Ms(s.Values[3 * s.Values.Length / 4]) })
                .ToList();
            Gateway.Report.Table(["stage", "n", "p25 ms", "p50 ms", "p75 ms"], rows);
            Console.WriteLine();

            // Steps: each request's own difference, then the median (not a difference of medians).
            (string, string, string)[] node =
            [
                ("node: authentication to its work started (its own governed path)", "node: auth", "node: run"),
                ("node: work started to its decision's entry durable", "node: run", "node: entry"),
                ("node: work started to its first content from the engine", "node: run", "node: content"),
                ("node: authentication to its first content written", "node: auth", "node: written"),
            ];
            (string, string, string)[] steps = gatewayName is null
                ? [("client to node (https, Kestrel, to authentication)", "", "node: auth"),
                   .. node,
                   ("node's first content written to the client's read", "node: written", "client: first content")]
                : [("client to gateway (http, Kestrel, to authentication)", "", "gateway: auth"),
                   ("gateway: authentication, body read, to its pipeline", "gateway: auth", "gateway: start"),
                   ("gateway: pipeline to decided (routed)", "gateway: start", "gateway: routed"),
                   ("gateway: routed to admission issued (measured)", "gateway: routed", "gateway: admitting"),
                   ("gateway: admission issued to admitted (the tenant grain)", "gateway: admitting", "gateway: admitted"),
                   ("gateway: admitted to the node's queue slot", "gateway: admitted", "gateway: slot"),
                   ("gateway: slot to relay sent (request built, TLS write)", "gateway: slot", "gateway: sent"),
                   ("gateway: authentication to relay sent (the hold)", "gateway: auth", "gateway: sent"),
                   ("gateway to node (cluster TLS, Kestrel, to authentication)", "gateway: sent", "node: auth"),
                   .. node,
                   ("node's first content written to the gateway's read of it", "node: written", "gateway: content"),
                   ("gateway: first content read to written", "gateway: content", "gateway: written"),
                   ("gateway's first content written to the client's read", "gateway: written", "client: first content"),
                   ("gateway: decision's entry durable, after relay sent", "gateway: sent", "gateway: entry"),
                   ("gateway: node's headers back, after relay sent", "gateway: sent", "gateway: headers")];
            var stepRows = new List<string[]>();
            foreach (var (name, from, to) in steps)
            {
                var values = timelines.Where(t => (from.Length == 0 || t.ContainsKey(from)) && t.ContainsKey(to))
                    .Select(t => t[to] - (from.Length == 0 ? 0 : t[from])).Order().ToArray();
                if (values.Length > 0)
                {
                    stepRows.Add([name, values.Length.ToString(CultureInfo.InvariantCulture), Gateway.Report.Ms(values[values.Length / 4]), Gateway.Report.Ms(values[values.Length / 2]), Gateway.Report.Ms(values[3 * values.Length / 4])]);
                }
            }

            Gateway.Report.Table(["step", "n", "p25 ms", "p50 ms", "p75 ms"], stepRows);
            Console.WriteLine();
        }
    }
}
