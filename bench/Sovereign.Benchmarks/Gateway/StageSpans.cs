using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Sovereign.Gateway.Observability;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// Where a governed request's time goes, stage by stage, from the gateway's own spans (<see cref="GatewayTelemetry"/>):
/// each stage's median and p90 over the requests recorded, then the same stages in the slowest 1% of requests (by the
/// gateway's own request span), which says what makes the tail. Spans overlap where stages do (the decision's audit
/// entry commits beside measuring and admission), so the rows do not add up to the request's time.
/// </summary>
internal sealed class StageSpans : IDisposable
{
    private const string HostingSource = "Microsoft.AspNetCore";

    private static readonly string[] Stages =
    [
        GatewayTelemetry.Authenticate, GatewayTelemetry.Route, GatewayTelemetry.AuditDecision, GatewayTelemetry.Measure, GatewayTelemetry.Admit,
        GatewayTelemetry.Execute, GatewayTelemetry.Account, GatewayTelemetry.AuditOutcome, GatewayTelemetry.Settle,
    ];

    private readonly ActivityListener _listener;
    private readonly ConcurrentQueue<(ActivityTraceId Trace, bool Root, string Name, double Microseconds)> _spans = new();
    private volatile bool _recording;

    public StageSpans()
    {
        _listener = new ActivityListener
        {
            // ASP.NET Core's request span too: it is the parent that ties one request's stage spans together.
            ShouldListenTo = source => source.Name is GatewayTelemetry.ActivitySourceName or HostingSource,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = activity =>
            {
                if (_recording)
                {
                    _spans.Enqueue((activity.TraceId, activity.Parent is null && activity.ParentSpanId == default, activity.Source.Name == HostingSource ? "request" : activity.OperationName,
                        activity.Duration.TotalMicroseconds));
                }
            },
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public bool Recording
    {
        get => _recording;
        set => _recording = value;
    }

    public void Print()
    {
        // One request per trace: the gateway's request span is the trace's root (the mock's request is its descendant).
        var requests = _spans.GroupBy(s => s.Trace)
            .Select(g => (Total: g.Where(s => s.Root && s.Name == "request").Select(s => s.Microseconds).DefaultIfEmpty(double.NaN).First(),
                Stages: g.Where(s => s.Name != "request").GroupBy(s => s.Name).ToDictionary(s => s.Key, s => s.Sum(x => x.Microseconds))))
            .Where(r => !double.IsNaN(r.Total) && r.Stages.Count > 0)
            .OrderBy(r => r.Total)
            .ToList();
        if (requests.Count == 0)
        {
            Console.WriteLine("No request spans recorded.");
            return;
        }

        var tail = requests.Skip(requests.Count * 99 / 100).ToList();
        static double P(List<double> sorted, double q) => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(sorted.Count * q))];
        List<double> Of(IEnumerable<(double Total, Dictionary<string, double> Stages)> set, string stage) =>
            set.Where(r => r.Stages.ContainsKey(stage)).Select(r => r.Stages[stage]).Order().ToList();

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{requests.Count} requests; the slowest 1% ({tail.Count}) took {tail[0].Total:0} us or more in the gateway"));
        Console.WriteLine();
        Console.WriteLine("| Stage (span) | p50 us | p90 us | median in the slowest 1% us |");
        Console.WriteLine("|---|---:|---:|---:|");
        var totals = requests.Select(r => r.Total).ToList();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| the gateway's request span (whole) | {P(totals, 0.5):0.0} | {P(totals, 0.9):0.0} | {P(tail.Select(r => r.Total).ToList(), 0.5):0.0} |"));
        foreach (var stage in Stages)
        {
            var all = Of(requests, stage);
            if (all.Count > 0)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| `{stage}` | {P(all, 0.5):0.0} | {P(all, 0.9):0.0} | {P(Of(tail, stage), 0.5):0.0} |"));
            }
        }
    }

    public void Dispose() => _listener.Dispose();
}
