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
            return new FairAdmissionGate($"{key.Model} on {key.Node}", key.Slots, state.Queue);
        }, (Gates: this, Queue: options.Value.Limits.RouteQueue));

    /// <summary>Requests running or waiting on a route (0 before its first request).</summary>
    public int LoadOf(string node, string model, int slots) =>
        Volatile.Read(ref _count) > 0 && _gates.TryGetValue((node, model, Math.Max(1, slots)), out var gate) ? gate.Load : 0;

    /// <summary>How many requests a route holds before it refuses: its slots and its queue.</summary>
    public int CapacityOf(int slots) => Math.Max(1, slots) + options.Value.Limits.RouteQueue;
}
