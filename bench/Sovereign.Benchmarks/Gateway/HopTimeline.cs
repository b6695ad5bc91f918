using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Globalization;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// Where one request's time goes between the processes' hops, from the runtime's own events (System.Net.Http for the
/// client's and the gateway's outgoing calls, Kestrel and ASP.NET Core hosting for the requests the gateway and the
/// mock receive), all in one process: the events of one sequential request arrive in a fixed order, so the median of
/// each step between consecutive events says which hop holds the time.
/// </summary>
internal sealed class HopTimeline : EventListener
{
    private static readonly HashSet<string> Sources = ["System.Net.Http", "Microsoft.AspNetCore.Hosting", "Microsoft-AspNetCore-Server-Kestrel"];

    private readonly List<(long Timestamp, string Name)> _events = new(64);
    private readonly List<List<(long Timestamp, string Name)>> _requests = [];
    private readonly object _gate = new();
    private bool _recording;

    protected override void OnEventSourceCreated(EventSource source)
    {
        if (Sources.Contains(source.Name))
        {
            EnableEvents(source, EventLevel.Verbose, EventKeywords.All);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs data)
    {
        if (!_recording || data.EventName is null || data.EventName.StartsWith("Connection", StringComparison.Ordinal) || data.EventName == "EventCounters")
        {
            return;
        }

        var source = data.EventSource.Name switch
        {
            "System.Net.Http" => "http",
            "Microsoft.AspNetCore.Hosting" => "hosting",
            _ => "kestrel",
        };
        lock (_gate)
        {
            _events.Add((Stopwatch.GetTimestamp(), source + "." + data.EventName));
        }
    }

    /// <summary>Runs one request with recording on and keeps its events.</summary>
    public async Task RecordAsync(Func<Task> request)
    {
        lock (_gate)
        {
            _events.Clear();
            _recording = true;
        }

        var start = Stopwatch.GetTimestamp();
        await request();
        var end = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            _recording = false;
            var events = new List<(long, string)>(_events.Count + 2) { (start, "client.start") };
            events.AddRange(_events);
            events.Add((end, "client.end"));
            _requests.Add(events);
        }
    }

    /// <summary>The median of each step, for the requests whose events came in the most common order.</summary>
    public void Print()
    {
        var shapes = _requests.GroupBy(r => string.Join('|', r.Select(e => e.Name))).OrderByDescending(g => g.Count()).ToList();
        var common = shapes[0].ToList();
        Console.WriteLine(FormattableString.Invariant($"Hop timeline: {common.Count} of {_requests.Count} requests in the common order ({shapes.Count} orders seen)"));
        var names = common[0].Select(e => e.Name).ToList();
        for (var i = 1; i < names.Count; i++)
        {
            var steps = common.Select(r => Stopwatch.GetElapsedTime(r[i - 1].Timestamp, r[i].Timestamp).TotalMicroseconds).Order().ToList();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {steps[steps.Count / 2],8:0.0} us  p90 {steps[steps.Count * 9 / 10],8:0.0}  {names[i - 1]} -> {names[i]}"));
        }

        var totals = common.Select(r => Stopwatch.GetElapsedTime(r[0].Timestamp, r[^1].Timestamp).TotalMicroseconds).Order().ToList();
        Console.WriteLine(FormattableString.Invariant($"  total p50 {totals[totals.Count / 2]:0.0} us"));
    }
}
