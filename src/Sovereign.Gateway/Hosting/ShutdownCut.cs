using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Sovereign.Gateway.Hosting;

/// <summary>
/// Ends the streams still running when a stop's grace (<see cref="HostOptions.ShutdownTimeout"/>) is about to run
/// out, a moment before Kestrel aborts their connections: each is cut at its next step and ends with OpenAI's error
/// event (<see cref="Code"/>), billed for what it delivered, its books closed as failed. At the timeout Kestrel reset
/// the connection, so a client saw a transport error and no error event, and what it was billed was decided by a
/// cancellation that looked like the client leaving. Answers not yet started (no byte sent) are left to finish.
/// </summary>
internal sealed class ShutdownCut : IDisposable
{
    /// <summary>The error code of a stream ended because the server stopped.</summary>
    public const string Code = "server_shutting_down";

    /// <summary>The message the client reads.</summary>
    public const string Message = "The server is stopping and its grace for requests in flight ran out, so this answer was cut here; it is billed for what it delivered. Try again.";

    private static readonly object OriginalKey = new();
    private readonly CancellationTokenSource _cut = new();
    private readonly ITimer? _timer;
    private readonly CancellationTokenRegistration _stopping;

    public ShutdownCut(IHostApplicationLifetime lifetime, IOptions<HostOptions> host, TimeProvider time)
    {
        var grace = host.Value.ShutdownTimeout;
        if (grace <= TimeSpan.Zero || grace == Timeout.InfiniteTimeSpan)
        {
            return;
        }

        // Long enough before the timeout for the engine to stop the work, the books to close (one commit) and the event
        // to be written, on a loaded machine too (at a load of 40 on 2 cores that took 0.5 s, once over 1 s).
        var at = grace - TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(5).Ticks, grace.Ticks / 4));
        _timer = time.CreateTimer(static state => ((CancellationTokenSource)state!).Cancel(), _cut, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _stopping = lifetime.ApplicationStopping.Register(() => _timer.Change(at, Timeout.InfiniteTimeSpan));
    }

    /// <summary>
    /// Gives the request a cancellation that fires when its client leaves, as before, or when the grace runs out while
    /// its answer has started; the returned scope ends the watch.
    /// </summary>
    public IDisposable Watch(HttpContext context)
    {
        var original = context.RequestAborted;
        var watched = CancellationTokenSource.CreateLinkedTokenSource(original);
        context.Items[OriginalKey] = original;
        var registration = _cut.Token.UnsafeRegister(static state =>
        {
            var (http, source) = ((HttpContext, CancellationTokenSource))state!;
            if (http.Response.HasStarted)
            {
                try
                {
                    source.Cancel();
                }
                catch (ObjectDisposedException)
                {
                    // The request ended meanwhile.
                }
            }
        }, (context, watched));
        context.RequestAborted = watched.Token;
        return new Scope(registration, watched);
    }

    /// <summary>Whether the request was cut by the stop (its client is still there).</summary>
    public static bool WasCut(HttpContext context) =>
        context.RequestAborted.IsCancellationRequested && context.Items.TryGetValue(OriginalKey, out var original)
        && original is CancellationToken client && !client.IsCancellationRequested;

    /// <summary>The client's own cancellation (its connection), under the watch's.</summary>
    public static CancellationToken ClientToken(HttpContext context) =>
        context.Items.TryGetValue(OriginalKey, out var original) && original is CancellationToken client ? client : context.RequestAborted;

    public void Dispose()
    {
        _stopping.Dispose();
        _timer?.Dispose();
        _cut.Dispose();
    }

    private sealed class Scope(CancellationTokenRegistration registration, CancellationTokenSource watched) : IDisposable
    {
        public void Dispose()
        {
            registration.Dispose();
            watched.Dispose();
        }
    }
}
