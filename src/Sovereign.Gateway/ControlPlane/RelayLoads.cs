using System.Collections.Concurrent;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// The requests each gateway has relayed to this node that are still running or queued, per model. The node's load
/// report carries them (<see cref="Cluster.Grains.ModelLoad.FromGateways"/>), so a gateway routes on its own exact
/// count plus what the other gateways had sent at the report, rather than on a report up to a second old that also
/// counts its own requests (which kept it off a node that had freed its slots, and piled requests on the others).
/// </summary>
internal sealed class RelayLoads
{
    /// <summary>Request header: the relaying gateway's node id (on relays, which the cluster secret authenticates).</summary>
    public const string GatewayHeader = "x-sovereign-gateway";

    // Gateways are members of the cluster; the bound only keeps a misbehaving member from growing the map without end.
    private const int MaxRoutes = 4096;

    private readonly ConcurrentDictionary<(string Gateway, string Model), int> _counts = new();

    /// <summary>Counts one relayed request of <paramref name="gateway"/> on <paramref name="model"/> until the handle is disposed.</summary>
    public IDisposable Track(string gateway, string model)
    {
        if (_counts.Count >= MaxRoutes && !_counts.ContainsKey((gateway, model)))
        {
            return Untracked.Instance;
        }

        _counts.AddOrUpdate((gateway, model), 1, static (_, n) => n + 1);
        return new Handle(this, (gateway, model));
    }

    /// <summary>The gateways with requests on <paramref name="model"/> now, and how many each; null when none.</summary>
    public IReadOnlyDictionary<string, int>? Of(string model)
    {
        Dictionary<string, int>? counts = null;
        foreach (var ((gateway, onModel), count) in _counts)
        {
            if (count > 0 && onModel == model)
            {
                (counts ??= new Dictionary<string, int>(StringComparer.Ordinal))[gateway] = count;
            }
        }

        return counts;
    }

    private void Release((string, string) route)
    {
        // Removed at zero (only if still zero), so the map holds only routes with requests.
        if (_counts.AddOrUpdate(route, 0, static (_, n) => Math.Max(0, n - 1)) == 0)
        {
            _counts.TryRemove(new KeyValuePair<(string, string), int>(route, 0));
        }
    }

    private sealed class Handle(RelayLoads owner, (string, string) route) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Release(route);
            }
        }
    }

    private sealed class Untracked : IDisposable
    {
        public static readonly Untracked Instance = new();

        public void Dispose()
        {
        }
    }
}
