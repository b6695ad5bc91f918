using System.Collections.Concurrent;
using System.Diagnostics;
using Sovereign.Gateway.Observability;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// Tells a test when the gateway has closed a request's books: its <see cref="GatewayTelemetry.Account"/> span ended,
/// so the outcome entry and the usage record committed and the reservation was settled (the span holds
/// <see cref="GatewayTelemetry.AuditOutcome"/> and <see cref="GatewayTelemetry.Settle"/>). The request is known by its
/// id or its tenant, both read from its <see cref="GatewayTelemetry.Route"/> span, which ends before the account span
/// starts and shares its trace. Listens from construction until disposed; create it before the request is sent. A test
/// waits on the event, not on time: the bound given to <see cref="WaitAsync"/> only turns a hang into a failure.
/// </summary>
internal sealed class BooksClosedListener : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentDictionary<ActivityTraceId, (string? Tenant, string? RequestId)> _routed = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _closed = new(StringComparer.Ordinal);

    public BooksClosedListener()
    {
        _listener = new ActivityListener
        {
            // ASP.NET Core's own source too: its request span is the parent that gives the stages one trace.
            ShouldListenTo = source => source.Name is GatewayTelemetry.ActivitySourceName or "Microsoft.AspNetCore",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = Stopped,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    /// <summary>Completes when the books of request <paramref name="requestId"/> have closed.</summary>
    public Task ClosedForRequestAsync(string requestId) => WaitAsync(Entry("request:" + requestId));

    /// <summary>Completes when the books of a request of <paramref name="tenant"/> have closed.</summary>
    public Task ClosedForTenantAsync(string tenant) => WaitAsync(Entry("tenant:" + tenant));

    public void Dispose() => _listener.Dispose();

    private static Task WaitAsync(TaskCompletionSource closed) => closed.Task.WaitAsync(TimeSpan.FromMinutes(2));

    private TaskCompletionSource Entry(string key) => _closed.GetOrAdd(key, static _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

    private void Stopped(Activity activity)
    {
        if (activity.Source.Name != GatewayTelemetry.ActivitySourceName)
        {
            return;
        }

        if (activity.OperationName == GatewayTelemetry.Route)
        {
            _routed[activity.TraceId] = (activity.GetTagItem("sovereign.tenant") as string, activity.GetTagItem("sovereign.request_id") as string);
        }
        else if (activity.OperationName == GatewayTelemetry.Account && _routed.TryGetValue(activity.TraceId, out var routed))
        {
            if (routed.Tenant is { } tenant)
            {
                Entry("tenant:" + tenant).TrySetResult();
            }

            if (routed.RequestId is { } requestId)
            {
                Entry("request:" + requestId).TrySetResult();
            }
        }
    }
}
