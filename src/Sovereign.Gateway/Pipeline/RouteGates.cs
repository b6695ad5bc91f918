using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;

namespace Sovereign.Gateway.Pipeline;

/// <summary>
/// One <see cref="FairAdmissionGate"/> per route that has no engine queue of its own: an external engine's model
/// (its registered capacity in slots) or an embedding model. The router reads their load to compare replicas.
/// </summary>
public sealed class RouteGates(IOptions<SovereignOptions> options)
{
    private readonly ConcurrentDictionary<(string Node, string Model, int Slots), FairAdmissionGate> _gates = new();

    // Gates are never removed; until the first exists, the router's per-replica load reads need no lookup.
    private int _count;

    /// <summary>The gate of a model on a node with <paramref name="slots"/> concurrent requests.</summary>
    internal FairAdmissionGate For(string node, string model, int slots) =>
        _gates.GetOrAdd((node, model, Math.Max(1, slots)), static (key, state) =>
        {
            Interlocked.Increment(ref state.Gates._count);
            var gates = state.Gates;
            return new FairAdmissionGate($"{key.Model} on {key.Node}", key.Slots, state.Queue, (_, isBusy) =>
            {
                if (isBusy ? gates._busy.TryAdd(key, 0) : gates._busy.TryRemove(key, out byte _))
                {
                    Interlocked.Add(ref gates._busyCount, isBusy ? 1 : -1);

                    // After the set changed, never before: a reader that saw this version saw the set without the change
                    // or with it, and sees another version the next time it looks.
                    Interlocked.Increment(ref gates._busyVersion);
                }
            });
        }, (Gates: this, Queue: options.Value.Limits.RouteQueue));

    // The routes whose load is not zero (running or waiting), kept by the gates themselves as their load changes: a
    // routing decision reads these and takes every other route as idle, instead of reading a thousand gates.
    private readonly ConcurrentDictionary<(string Node, string Model, int Slots), byte> _busy = new();

    private int _busyCount;

    private long _busyVersion;

    /// <summary>How many routes hold a request now (read without the dictionary's locks).</summary>
    internal int BusyCount => Volatile.Read(ref _busyCount);

    /// <summary>
    /// Changes with every route that becomes busy or idle (after the change): <see cref="Busy"/> enumerated after reading
    /// a version is still the busy set for as long as the version reads the same.
    /// </summary>
    internal long BusyVersion => Interlocked.Read(ref _busyVersion);

    /// <summary>The routes (node, model, slots) that hold a request now; enumerating it takes no lock.</summary>
    internal IEnumerable<KeyValuePair<(string Node, string Model, int Slots), byte>> Busy => _busy;

    /// <summary>
    /// The load of the <paramref name="index"/>th route of a list whose gates found so far are kept in
    /// <paramref name="found"/> (one slot per route, owned by the list's reader): a gate is looked up only until it
    /// exists, and once found stays the route's gate.
    /// </summary>
    internal int LoadOf(FairAdmissionGate?[] found, int index, string node, string model, int slots)
    {
        if (found[index] is { } gate)
        {
            return gate.Load;
        }

        if (Volatile.Read(ref _count) == 0 || !_gates.TryGetValue((node, model, Math.Max(1, slots)), out gate))
        {
            return 0;
        }

        found[index] = gate;
        return gate.Load;
    }

    /// <summary>
    /// Requests running and waiting on a route now, as this gateway holds them (none before its first request): the
    /// load of an engine that reports none itself (an external engine), for the operator's views.
    /// </summary>
    internal (int Running, int Waiting) OccupancyOf(string node, string model, int slots) =>
        _gates.TryGetValue((node, model, Math.Max(1, slots)), out var gate) ? gate.Occupancy : (0, 0);

    /// <summary>How many requests a route holds before it refuses: its slots and its queue.</summary>
    public int CapacityOf(int slots) => Math.Max(1, slots) + options.Value.Limits.RouteQueue;
}
