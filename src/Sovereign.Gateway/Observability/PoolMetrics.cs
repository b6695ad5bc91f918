using System.Diagnostics;
using System.Diagnostics.Metrics;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.Observability;

/// <summary>
/// The pool as <c>sovereign cluster status</c> shows it, for an alert rather than a person:
/// <c>sovereign_cluster_nodes{health, jurisdiction}</c> counts the registered nodes by health (up, draining, down,
/// unreachable, stale, untrusted) in each jurisdiction, every health stated (0 included) for every jurisdiction that
/// has a node, so <c>sovereign_cluster_nodes{health="up"} == 0</c> fires for a jurisdiction whose last node went.
/// </summary>
/// <remarks>
/// Read at each scrape from the registry (as the status command reads it), within <see cref="ReadTimeout"/>: the
/// gateway's own view refreshes only when requests route, so an idle gateway's would call every node stale. A registry
/// that does not answer in time gives no node series at all (rather than last minute's) and
/// <c>sovereign_cluster_registry_available</c> 0. A single server whose registry holds no node (its own is implicit)
/// has no node series, and the availability gauge 1.
/// </remarks>
internal sealed class PoolMetrics
{
    /// <summary>The instrument (<c>sovereign_cluster_nodes</c> on /metrics).</summary>
    public const string NodesMetric = "sovereign.cluster.nodes";

    /// <summary>The instrument saying whether the registry was read (<c>sovereign_cluster_registry_available</c>).</summary>
    public const string RegistryAvailableMetric = "sovereign.cluster.registry.available";

    /// <summary>How long a scrape waits for the registry.</summary>
    internal static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(2);

    private static readonly NodeHealth[] Healths = Enum.GetValues<NodeHealth>();

    private readonly NodeDirectory _nodes;
    private readonly ILogger<PoolMetrics> _logger;
    private readonly Lock _gate = new();
    private int _unread; // 1 while the registry could not be read: logged once, not at every scrape
    private (long At, Dictionary<(string Jurisdiction, NodeHealth Health), int>? Counts) _last = (long.MinValue, null);

    public PoolMetrics(NodeDirectory nodes, IMeterFactory meters, ILogger<PoolMetrics> logger)
    {
        _nodes = nodes;
        _logger = logger;
        var meter = meters.Create(GenAiMetrics.MeterName);
        meter.CreateObservableGauge(NodesMetric, ObserveNodes, "{node}",
            "Registered nodes by health (up, draining, down, unreachable, stale, untrusted) and jurisdiction.");
        meter.CreateObservableGauge(RegistryAvailableMetric, () => Read() is null ? 0 : 1, null,
            "1 when this scrape read the node registry, 0 when it did not answer in time (sovereign_cluster_nodes is then left out).");
    }

    private IEnumerable<Measurement<int>> ObserveNodes()
    {
        if (Read() is not { } counts)
        {
            return [];
        }

        return counts.Keys.Select(k => k.Jurisdiction).Distinct(StringComparer.Ordinal)
            .SelectMany(jurisdiction => Healths.Select(health => new Measurement<int>(
                counts.GetValueOrDefault((jurisdiction, health)),
                new KeyValuePair<string, object?>("health", health.ToString().ToLowerInvariant()),
                new KeyValuePair<string, object?>("jurisdiction", jurisdiction))))
            .ToList();
    }

    /// <summary>The registry's nodes counted by jurisdiction and health, read once per scrape (both gauges share it); null when unread.</summary>
    private Dictionary<(string Jurisdiction, NodeHealth Health), int>? Read()
    {
        lock (_gate)
        {
            // Real time, not the injected clock: this only lets the two gauges of one scrape share one read.
            var now = Stopwatch.GetTimestamp();
            if (_last.At != long.MinValue && Stopwatch.GetElapsedTime(_last.At, now) < TimeSpan.FromSeconds(1))
            {
                return _last.Counts;
            }

            Dictionary<(string, NodeHealth), int>? counts = null;
            try
            {
                // On the thread pool, never on a grain's turn: the scrape's thread waits, the registry call does not need it.
                var read = Task.Run(ReadAsync);
                if (read.Wait(ReadTimeout))
                {
                    counts = read.Result;
                    Volatile.Write(ref _unread, 0);
                }
                else
                {
                    Unread(null);
                }
            }
            catch (Exception ex)
            {
                Unread(ex is AggregateException { InnerException: { } inner } ? inner : ex);
            }

            _last = (now, counts);
            return counts;
        }
    }

    private void Unread(Exception? exception)
    {
        if (Interlocked.Exchange(ref _unread, 1) == 0)
        {
            GatewayLog.PoolMetricsUnread(_logger, exception, ReadTimeout.TotalSeconds);
        }
    }

    private async Task<Dictionary<(string, NodeHealth), int>> ReadAsync()
    {
        var registry = await _nodes.Registry.GetAsync();
        await _nodes.GetNodesAsync(); // the verified view HealthOf reads (trust, the registry's clock)
        return registry.Nodes
            .GroupBy(n => (string.IsNullOrEmpty(n.Jurisdiction) ? "none" : n.Jurisdiction, _nodes.HealthOf(n)))
            .ToDictionary(g => g.Key, g => g.Count());
    }
}
