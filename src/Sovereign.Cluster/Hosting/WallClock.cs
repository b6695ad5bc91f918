namespace Sovereign.Cluster.Hosting;

/// <summary>
/// Waits measured on the wall clock (<see cref="TimeProvider.GetUtcNow"/>), which an NTP correction, a virtual
/// machine's resume or an operator can step back or forward at any moment.
/// </summary>
/// <remarks>
/// A wait written as <c>now - since &gt;= wait</c> stalls for as long as the clock stepped back: its stamp is in the
/// future until the clock catches up. A gateway whose clock went back an hour kept its view of the cluster for the hour
/// (a node drained, added or dead was not seen), kept an engine it had marked down for the hour (503), and stopped
/// renewing its long requests' budget reservations for the hour (the tenant's grain, elsewhere, released them while
/// they still spent). Work that is harmless to do early (a refresh, a retry, a renewal) asks <see cref="HasPassed(DateTimeOffset, DateTimeOffset, TimeSpan)"/>,
/// which counts a stamp in the future as due; its new stamp is then on the clock as it reads now. (A wait before a
/// drastic step, such as closing another process's requests or stopping this one, must not end early so: it starts
/// again from now instead (<see cref="WaitStart"/>).)
/// </remarks>
internal static class WallClock
{
    /// <summary>
    /// Whether <paramref name="wait"/> has passed since <paramref name="since"/>; also when the clock now reads before
    /// <paramref name="since"/>, which means it stepped back.
    /// </summary>
    public static bool HasPassed(DateTimeOffset now, DateTimeOffset since, TimeSpan wait) =>
        now < since || now - since >= wait;

    /// <summary>
    /// When a wait before a drastic step began: <paramref name="since"/>, or <paramref name="now"/> when the clock reads
    /// before it (it stepped back), so the wait starts again from now, neither ending early nor stalling for the step.
    /// </summary>
    public static DateTimeOffset WaitStart(DateTimeOffset now, DateTimeOffset since) => now < since ? now : since;

    /// <inheritdoc cref="HasPassed(DateTimeOffset, DateTimeOffset, TimeSpan)"/>
    public static bool HasPassed(long nowMs, long sinceMs, long waitMs) =>
        nowMs < sinceMs || nowMs - sinceMs >= waitMs;
}
