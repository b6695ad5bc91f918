namespace Sovereign.Gateway.Routing;

/// <summary>
/// The bytes every relay of this process may hold read ahead of its client, together
/// (<c>Sovereign:Limits:RelayReadAheadTotalBytes</c>). A relay's own bound stops one slow client from growing without
/// end; this one stops many: read-ahead gives the engine's slot back early, so without it a tenant could open stream
/// after stream, read none of them, and hold 8 MiB each of the gateway's memory. A relay refused here reads only when
/// its client has taken what it holds, keeping its slot as it did before read-ahead.
/// </summary>
internal sealed class ReadAheadBudget(long bytes)
{
    private readonly TaskCompletionSource _refused = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _available = bytes;

    /// <summary>Bytes not held by any relay now.</summary>
    public long Available => Volatile.Read(ref _available);

    /// <summary>Completes the first time a relay is refused (tests wait on it rather than on time).</summary>
    internal Task Refused => _refused.Task;

    public bool TryTake(int count)
    {
        var available = Volatile.Read(ref _available);
        while (available >= count)
        {
            var seen = Interlocked.CompareExchange(ref _available, available - count, available);
            if (seen == available)
            {
                return true;
            }

            available = seen;
        }

        _refused.TrySetResult();
        return false;
    }

    public void Return(long count)
    {
        if (count > 0)
        {
            Interlocked.Add(ref _available, count);
        }
    }
}
