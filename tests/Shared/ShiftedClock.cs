namespace Sovereign.Tests;

/// <summary>
/// The system clock moved forward by <see cref="Offset"/>: only the wall-clock time the grains read shifts, while
/// timers and timestamps Orleans itself relies on run as usual. <see cref="Hold"/> stops the system clock's part for a
/// test whose assertion sits on a boundary (a reservation one second short of its lifetime, a lease at its term, a
/// rate counter read to the unit): on a loaded machine a second of real time can pass between two grain calls.
/// Shared by the test projects (linked, see their csproj): the cluster tests' silos and the functional tests' in-process
/// servers (<c>AdminServerFixture.Clock</c>) read it as their <see cref="TimeProvider"/>.
/// </summary>
public sealed class ShiftedClock : TimeProvider
{
    private long _offsetTicks;

    // 0 while the system clock runs; else the UTC ticks it was held at.
    private long _heldTicks;

    public TimeSpan Offset => TimeSpan.FromTicks(Interlocked.Read(ref _offsetTicks));

    public override DateTimeOffset GetUtcNow() =>
        (Interlocked.Read(ref _heldTicks) is var held && held != 0 ? new DateTimeOffset(held, TimeSpan.Zero) : base.GetUtcNow()) + Offset;

    public void Advance(TimeSpan by) => Interlocked.Add(ref _offsetTicks, by.Ticks);

    /// <summary>
    /// Stops the system clock's part until disposed, so only <see cref="Advance"/> moves the time the grains read;
    /// disposed, the clock runs on from the system clock again (forward: real time passed meanwhile).
    /// </summary>
    public IDisposable Hold()
    {
        if (Interlocked.CompareExchange(ref _heldTicks, base.GetUtcNow().UtcTicks, 0) != 0)
        {
            throw new InvalidOperationException("the clock is already held");
        }

        return new Release(this);
    }

    private sealed class Release(ShiftedClock clock) : IDisposable
    {
        public void Dispose() => Interlocked.Exchange(ref clock._heldTicks, 0);
    }
}
