using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Sovereign.Gateway.Observability;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// Where a governed request's time goes, stage by stage, from the gateway's own spans (<see cref="GatewayTelemetry"/>):
/// the median and p90 duration of each span over the requests recorded. Spans overlap where stages do (the decision's
/// audit entry commits beside measuring and admission), so the rows do not add up to the request's time.
/// </summary>
internal sealed class StageSpans : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentQueue<(string Name, double Microseconds)> _spans = new();
    private volatile bool _recording;

    public StageSpans()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == GatewayTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = activity =>
            {
                if (_recording)
                {
                    _spans.Enqueue((activity.OperationName, activity.Duration.TotalMicroseconds));
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
        string[] order =
        [
            GatewayTelemetry.Authenticate, GatewayTelemetry.Route, GatewayTelemetry.AuditDecision, GatewayTelemetry.Measure, GatewayTelemetry.Admit,
            GatewayTelemetry.Execute, GatewayTelemetry.Account, GatewayTelemetry.AuditOutcome, GatewayTelemetry.Settle,
        ];
        var byName = _spans.GroupBy(s => s.Name).ToDictionary(g => g.Key, g => g.Select(s => s.Microseconds).Order().ToList());
        Console.WriteLine("| Stage (span) | spans | p50 us | p90 us |");
        Console.WriteLine("|---|---:|---:|---:|");
        foreach (var name in order.Concat(byName.Keys.Except(order)))
        {
            if (byName.TryGetValue(name, out var d))
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| `{name}` | {d.Count} | {d[d.Count / 2]:0.0} | {d[d.Count * 9 / 10]:0.0} |"));
            }
        }
    }

    public void Dispose() => _listener.Dispose();
}
