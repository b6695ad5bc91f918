using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
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
                }
            });
        }, (Gates: this, Queue: options.Value.Limits.RouteQueue));

    // The routes whose load is not zero (running or waiting), kept by the gates themselves as their load changes: a
    // routing decision reads these and takes every other route as idle, instead of reading a thousand gates.
    private readonly ConcurrentDictionary<(string Node, string Model, int Slots), byte> _busy = new();

    private int _busyCount;

    /// <summary>How many routes hold a request now (read without the dictionary's locks).</summary>
    internal int BusyCount => Volatile.Read(ref _busyCount);

    /// <summary>The routes (node, model, slots) that hold a request now; enumerating it takes no lock.</summary>
    internal IEnumerable<KeyValuePair<(string Node, string Model, int Slots), byte>> Busy => _busy;

    // Per list of routes (one registry snapshot's replicas of a model), the gates found so far, in the list's order:
    // the router reads every replica's load on every request, and a gate once found stays the route's gate.
    private readonly ConditionalWeakTable<object, FairAdmissionGate?[]> _found = new();

    /// <summary>Requests running or waiting on a route (0 before its first request).</summary>
    public int LoadOf(string node, string model, int slots) =>
        Volatile.Read(ref _count) > 0 && _gates.TryGetValue((node, model, Math.Max(1, slots)), out var gate) ? gate.Load : 0;

    /// <summary>
    /// The gates of <paramref name="routes"/> found so far, for <see cref="LoadOf(FairAdmissionGate[], int, string, string, int)"/>;
    /// <paramref name="routes"/> must not change (a registry snapshot's list).
    /// </summary>
    internal FairAdmissionGate?[] FoundFor<T>(IReadOnlyList<T> routes) =>
        _found.GetValue(routes, static r => new FairAdmissionGate?[((IReadOnlyList<T>)r).Count]);

    /// <summary>The load of the <paramref name="index"/>th route of a list, its gate looked up only until it exists.</summary>
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

    /// <summary>How many requests a route holds before it refuses: its slots and its queue.</summary>
    public int CapacityOf(int slots) => Math.Max(1, slots) + options.Value.Limits.RouteQueue;
}
