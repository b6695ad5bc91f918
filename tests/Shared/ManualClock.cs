namespace Sovereign.Tests;

/// <summary>
/// A clock the test moves by hand; its timers fire (synchronously, in <see cref="Advance"/>) when it passes their due
/// time, never in <see cref="Set"/>, which may also move it back. Shared by the test projects (linked, see their csproj):
/// Microsoft's FakeTimeProvider cannot go back and fires timers on every set, which the audit tests rely on not doing.
/// Its timestamps (<see cref="TimeProvider.GetTimestamp"/>, what durations are measured with) are the system's unless
/// <paramref name="timestamps"/> is set: then they follow the clock too, so a timeout measured on it (an audit log's
/// <c>DeadlineClock</c>) passes only when the test moves it.
/// </summary>
internal sealed class ManualClock(DateTimeOffset start, bool timestamps = false) : TimeProvider
{
    private readonly Lock _gate = new();
    private readonly List<Timer> _timers = [];
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow()
    {
        lock (_gate)
        {
            return _now;
        }
    }

    public override long GetTimestamp() => timestamps ? GetUtcNow().UtcTicks : base.GetTimestamp();

    public override long TimestampFrequency => timestamps ? TimeSpan.TicksPerSecond : base.TimestampFrequency;

    public void Set(DateTimeOffset now)
    {
        lock (_gate)
        {
            _now = now;
        }
    }

    public void Advance(TimeSpan by)
    {
        Timer[] timers;
        DateTimeOffset now;
        lock (_gate)
        {
            _now += by;
            now = _now;
            timers = [.. _timers];
        }

        foreach (var timer in timers)
        {
            timer.FireIfDue(now);
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new Timer(this, callback, state);
        timer.Change(dueTime, period);
        lock (_gate)
        {
            _timers.Add(timer);
        }

        return timer;
    }

    private sealed class Timer(ManualClock clock, TimerCallback callback, object? state) : ITimer
    {
        private DateTimeOffset? _due;
        private TimeSpan _period;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            _due = dueTime == Timeout.InfiniteTimeSpan ? null : clock.GetUtcNow() + dueTime;
            _period = period;
            return true;
        }

        public void FireIfDue(DateTimeOffset now)
        {
            if (_due is { } due && due <= now)
            {
                _due = _period == Timeout.InfiniteTimeSpan || _period == TimeSpan.Zero ? null : now + _period;
                callback(state);
            }
        }

        public void Dispose()
        {
            lock (clock._gate)
            {
                clock._timers.Remove(this);
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
