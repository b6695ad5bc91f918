using System.Diagnostics.Metrics;
using System.Globalization;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// Counts the connections Kestrel ended on one port (its <c>kestrel.connection.duration</c> measurements), so a test
/// knows the server is done with connections whose client left without an answer to wait for, and the requests the
/// process started (<c>http.server.active_requests</c> going up; any server of the process).
/// </summary>
internal sealed class ConnectionEnds : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly string _port;
    private int _count;
    private int _started;

    public ConnectionEnds(int port)
    {
        _port = port.ToString(CultureInfo.InvariantCulture);
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if ((instrument.Meter.Name, instrument.Name) is ("Microsoft.AspNetCore.Server.Kestrel", "kestrel.connection.duration")
                or ("Microsoft.AspNetCore.Hosting", "http.server.active_requests"))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, change, _, _) =>
        {
            if (change > 0)
            {
                Interlocked.Increment(ref _started);
            }
        });
        _listener.SetMeasurementEventCallback<double>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "server.port" && Convert.ToString(tag.Value, CultureInfo.InvariantCulture) == _port)
                {
                    Interlocked.Increment(ref _count);
                }
            }
        });
        _listener.Start();
    }

    /// <summary>Requests started in this process since this was made.</summary>
    public int RequestsStarted => Volatile.Read(ref _started);

    /// <summary>Waits until at least <paramref name="count"/> connections ended since this was made.</summary>
    public Task WaitForAsync(int count, TimeSpan timeout) => WaitUntilAsync(() => Volatile.Read(ref _count) >= count, timeout,
        () => $"{Volatile.Read(ref _count)} of {count} connections ended.");

    /// <summary>Waits until at least <paramref name="count"/> requests started since this was made.</summary>
    public Task WaitForStartsAsync(int count, TimeSpan timeout) => WaitUntilAsync(() => RequestsStarted >= count, timeout,
        () => $"{RequestsStarted} of {count} requests started.");

    private static async Task WaitUntilAsync(Func<bool> done, TimeSpan timeout, Func<string> report)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!done())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException(report());
            }

            await Task.Delay(10);
        }
    }

    public void Dispose() => _listener.Dispose();
}
