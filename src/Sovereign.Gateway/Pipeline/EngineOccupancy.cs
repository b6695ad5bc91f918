using System.Collections.Concurrent;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// Compute seconds for engines this process does not schedule itself (an external or fronted engine, a local embedding
/// model): each request is billed its share of the time the engine was busy with this process's requests, the time
/// divided evenly among the requests in it at each moment. Two requests in an engine for the same second are billed half
/// a second each; the shares add up to the engine's busy time, as the local engine's share of each batched decode step
/// does, so a per-compute-second price sells the accelerator's time once, however many requests share it.
/// </summary>
/// <remarks>
/// What one process sees: gateways that relay to the same external engine each divide only their own requests (a
/// cluster node fronting an engine sees all of them, which is why nodes measure and report it).
/// </remarks>
public sealed class EngineOccupancy(TimeProvider time)
{
    private readonly ConcurrentDictionary<string, Clock> _engines = new(StringComparer.Ordinal);

    /// <summary>A request enters the engine; disposing (or <see cref="Stay.Leave"/>) ends its stay.</summary>
    public Stay Enter(string engine)
    {
        var clock = _engines.GetOrAdd(engine, static (_, time) => new Clock(time), time);
        return new Stay(clock, clock.Enter());
    }

    /// <summary>One request's time in an engine.</summary>
    public sealed class Stay : IDisposable
    {
        private readonly Clock _clock;
        private readonly double _entered;
        private double? _share;

        internal Stay(Clock clock, double entered) => (_clock, _entered) = (clock, entered);

        /// <summary>Ends the stay (once) and returns the request's share of the engine's busy time, in seconds.</summary>
        public double Leave()
        {
            lock (this)
            {
                return _share ??= _clock.Leave(_entered);
            }
        }

        public void Dispose() => Leave();
    }

    /// <summary>
    /// The engine's shared clock: the seconds each of its requests has accrued since it started, advancing by 1/n per
    /// second while n requests are in it. A request's share is the clock's advance over its stay.
    /// </summary>
    internal sealed class Clock(TimeProvider time)
    {
        private readonly Lock _gate = new();
        private int _inside;
        private long _last;
        private double _perRequest;

        public double Enter()
        {
            lock (_gate)
            {
                Advance();
                _inside++;
                return _perRequest;
            }
        }

        public double Leave(double entered)
        {
            lock (_gate)
            {
                Advance();
                _inside--;
                return Math.Max(0, _perRequest - entered);
            }
        }

        private void Advance()
        {
            var now = time.GetTimestamp();
            if (_inside > 0)
            {
                _perRequest += time.GetElapsedTime(_last, now).TotalSeconds / _inside;
            }

            _last = now;
        }
    }
}
