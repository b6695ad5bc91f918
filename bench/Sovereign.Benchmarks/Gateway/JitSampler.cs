using System.Collections.Concurrent;
using System.Diagnostics.Tracing;
using System.Globalization;

namespace Sovereign.Benchmarks.Gateway;

/// <summary>
/// Which methods this process compiles while it is measured, from the runtime's own events (one MethodLoadVerbose
/// event per method compiled, naming it and its tier): a server that has settled compiles nothing per request, so a
/// method here during a steady run is still being promoted from tier 0, or is generated again and again (a dynamic
/// method, a new serializer's accessors).
/// </summary>
internal sealed class JitSampler : EventListener
{
    private const EventKeywords JitKeyword = (EventKeywords)0x10;
    private readonly ConcurrentDictionary<string, int> _countByMethod = new(StringComparer.Ordinal);
    private volatile bool _recording;

    public void Start()
    {
        _countByMethod.Clear();
        _recording = true;
    }

    /// <summary>The methods compiled since <see cref="Start"/> (name with its tier), most often first.</summary>
    public IReadOnlyList<(string Method, int Count)> Stop(int top)
    {
        // The runtime hands its events to listeners in batches, seconds late on a loaded machine: take them in first.
        Thread.Sleep(TimeSpan.FromSeconds(3));
        _recording = false;
        return [.. _countByMethod.OrderByDescending(e => e.Value).ThenBy(e => e.Key, StringComparer.Ordinal).Take(top).Select(e => (e.Key, e.Value))];
    }

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(eventSource, EventLevel.Verbose, JitKeyword);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (!_recording || eventData.EventName is null || !eventData.EventName.StartsWith("MethodLoadVerbose", StringComparison.Ordinal) || eventData.Payload is null)
        {
            return;
        }

        var names = eventData.PayloadNames!;
        string Text(string name) => names.IndexOf(name) is var i and >= 0 ? eventData.Payload[i] as string ?? "?" : "?";
        var flags = names.IndexOf("MethodFlags") is var f and >= 0 ? Convert.ToInt64(eventData.Payload[f], CultureInfo.InvariantCulture) : 0;

        // MethodFlags: 0x1 a dynamic method; bits 7-9 the tier (1 min-opts, 2 optimized, 3 tier 0, 4 tier 1, 5 ReadyToRun,
        // 7 tier 0 instrumented, 8 tier 1 instrumented).
        var tier = ((flags >> 7) & 0xF) switch
        {
            1 => "min-opts",
            2 => "optimized",
            3 => "tier 0",
            4 => "tier 1",
            5 => "ReadyToRun",
            7 => "tier 0 instrumented",
            8 => "tier 1 instrumented",
            var other => "tier " + other.ToString(CultureInfo.InvariantCulture),
        };
        var key = ((flags & 0x1) != 0 ? "dynamic " : string.Empty) + Text("MethodNamespace") + "::" + Text("MethodName") + " [" + tier + "]";
        _countByMethod.AddOrUpdate(key, 1, (_, n) => n + 1);
    }
}
