using Microsoft.Extensions.Options;
using Orleans.Runtime;
using Sovereign.Cluster.Grains;
using Sovereign.Cluster.Hosting;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>
/// <c>GET /admin/v1/cluster</c>: the whole pool as this gateway sees it. Orleans members (every gateway and node
/// process, with its membership status), each node's health for routing and its load, and capacity per
/// jurisdiction and per pool (with its device classes and the slots plans reserve there), so an operator can tell
/// from any gateway what can serve where.
/// </summary>
internal static class ClusterStatusApi
{
    public static async Task<IResult> GetAsync(
        IGrainFactory grains, NodeDirectory nodes, IOptions<SovereignOptions> options, IOptions<SovereignClusterOptions> cluster,
        Sovereign.Metering.Pricing.PriceBookProvider prices, IClusterMembershipService membership, Pipeline.RouteGates gates,
        Cluster.Security.ClusterTlsCredentials tls, Cluster.Security.ClusterCertificateExpiry expiry, TimeProvider time)
    {
        List<MemberStatus> members;
        string? membershipError = null;
        try
        {
            var hosts = await grains.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: false);
            members = [.. hosts
                .Where(h => h.Status != SiloStatus.Dead || DateTime.UtcNow - h.IAmAliveTime < TimeSpan.FromMinutes(10))
                .OrderBy(h => h.SiloName, StringComparer.Ordinal)
                .Select(h => new MemberStatus(h.SiloName, h.SiloAddress.ToParsableString(), h.Status.ToString().ToLowerInvariant(), h.HostName,
                    new DateTimeOffset(h.StartTime, TimeSpan.Zero).ToUnixTimeMilliseconds(), new DateTimeOffset(h.IAmAliveTime, TimeSpan.Zero).ToUnixTimeMilliseconds()))];
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException or OrleansException or Orleans.Clustering.Redis.RedisClusteringException)
        {
            // The membership table (Redis) cannot be read: say so and show the members as this gateway last saw them.
            // The whole status was a 500 then, just when the operator needed it to see what still runs. A Redis back but
            // empty (restarted without persistence) has no table at all, which Orleans reports with its own exception.
            var cause = ex is Orleans.Clustering.Redis.RedisClusteringException ? ex.Message.TrimEnd('.') : ex.GetType().Name;
            membershipError = ex is Orleans.Clustering.Redis.RedisClusteringException lost && MembershipTableWatch.IsLost(lost)
                ? $"The cluster's membership table (Sovereign:Cluster:Redis) is gone: {cause}. Redis restarted empty, or the key was deleted; "
                    + "Orleans creates the table again only when a member starts, and every request is answered 503 until then: "
                    + (cluster.Value.MembershipLostExitSeconds > 0
                        ? $"each member stops {cluster.Value.MembershipLostExitSeconds:0.#} s after it sees this (exit 75) for its supervisor to start it again."
                        : "restart every member, gateways first.")
                    + " Members are shown as this gateway last saw them."
                : $"The cluster's membership table (Sovereign:Cluster:Redis) could not be read: {cause}. Members are shown as this gateway last saw them.";
            members = [.. membership.CurrentSnapshot.Members.Values
                .Where(m => m.Status != SiloStatus.Dead)
                .OrderBy(m => m.Name, StringComparer.Ordinal)
                .Select(m => new MemberStatus(m.Name, m.SiloAddress.ToParsableString(), m.Status.ToString().ToLowerInvariant(), null, null, null))];
        }

        // Each member's certificate as this gateway knows it: its own, and the ones its peers presented on the
        // connections it holds open with them (the latest per member, if it rotated).
        var own = expiry.Check();
        var certificates = tls.Connections.PeerCertificates().Concat(own is null ? [] : [own])
            .GroupBy(c => c.Member, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.MaxBy(c => c.NotAfter)!, StringComparer.Ordinal);
        var warnFrom = time.GetUtcNow().AddDays(cluster.Value.CertificateExpiryWarningDays);

        var registry = await nodes.Registry.GetAsync();
        await nodes.GetNodesAsync(); // the verified claims that place each node

        // The pool is a claim of the node's operator-signed credential (from its join token), not a label in the row;
        // a node whose credential does not verify is in no pool.
        var views = registry.Nodes
            .Select(n => (Node: n, Health: nodes.HealthOf(n)))
            .Select(v => (v.Node, v.Health, Placement: v.Health != NodeHealth.Untrusted ? nodes.PlacementOf(v.Node) : (Sovereign.Metering.Pricing.Placement?)null))
            .Select(v => (v.Node, v.Health, Pool: v.Placement?.Pool, DeviceClass: v.Placement?.DeviceClass, Load: LoadOf(v.Node, gates)))
            .ToList();
        var book = prices.Current;
        var jurisdictions = views
            .GroupBy(v => v.Node.Jurisdiction, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new
            {
                jurisdiction = g.Key,
                nodes = g.Count(),
                nodes_up = g.Count(v => v.Health == NodeHealth.Up),
                free_slots = g.Where(v => v.Health == NodeHealth.Up).Sum(v => v.Load.Models.Sum(m => m.FreeSlots)),
                running = g.Sum(v => v.Load.Models.Sum(m => m.Running)),
                queued = g.Sum(v => v.Load.Models.Sum(m => m.QueueDepth)),
            });

        var pools = views
            .Where(v => v.Pool is not null)
            .GroupBy(v => v.Pool!, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new
            {
                pool = g.Key,
                jurisdictions = g.Select(v => v.Node.Jurisdiction).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal),
                nodes = g.Count(),
                nodes_up = g.Count(v => v.Health == NodeHealth.Up),
                free_slots = g.Where(v => v.Health == NodeHealth.Up).Sum(v => v.Load.Models.Sum(m => m.FreeSlots)),
                accelerators = g.SelectMany(v => v.Node.Load?.Accelerators ?? []).Select(a => a.Name).Distinct(StringComparer.Ordinal),
                device_classes = g.Select(v => v.DeviceClass).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal),
                reserved_slots = book.Plans.Sum(p => p.ReservedSlotsIn(g.Key)),
                reservations = book.Plans.Where(p => p.ReservedSlotsIn(g.Key) > 0).Select(p => new { plan = p.Name, slots = p.ReservedSlotsIn(g.Key) }),
            });

        return Results.Json(new
        {
            cluster_id = cluster.Value.IsDistributed ? cluster.Value.ClusterId : null,
            distributed = cluster.Value.IsDistributed,
            gateway = options.Value.NodeId,
            role = cluster.Value.Role.ToString().ToLowerInvariant(),
            membership_error = membershipError,
            members = members.Select(m => new
            {
                name = m.Name, address = m.Address, status = m.Status, host = m.Host, started_at = m.StartedAt, alive_at = m.AliveAt,
                certificate_expires_at = certificates.TryGetValue(m.Name, out var certificate) ? certificate.NotAfter.ToUnixTimeMilliseconds() : (long?)null,
                certificate_expiring = certificates.TryGetValue(m.Name, out certificate) ? certificate.NotAfter <= warnFrom : (bool?)null,
            }),
            certificate = own is null ? null : new
            {
                member = own.Member,
                serial = own.Serial,
                expires_at = own.NotAfter.ToUnixTimeMilliseconds(),
                expires_in_seconds = (long)Math.Floor((own.NotAfter - time.GetUtcNow()).TotalSeconds),
                expiring = own.NotAfter <= warnFrom,
                warning_days = cluster.Value.CertificateExpiryWarningDays,
                ca_serial = own.AuthoritySerial,
                ca_expires_at = own.AuthorityNotAfter?.ToUnixTimeMilliseconds(),
                ca_expiring = own.AuthorityNotAfter is { } caEnd ? caEnd <= time.GetUtcNow().AddDays(cluster.Value.CaExpiryWarningDays) : (bool?)null,
                ca_warning_days = cluster.Value.CaExpiryWarningDays,
            },
            jurisdictions,
            pools,
            nodes = views.OrderBy(v => v.Node.Id, StringComparer.Ordinal).Select(v => new
            {
                id = v.Node.Id,
                jurisdiction = v.Node.Jurisdiction,
                pool = v.Pool,
                device_class = v.DeviceClass,
                kind = v.Node.Kind.ToLowerInvariant(),
                state = v.Node.State.ToLowerInvariant(),
                health = v.Health.ToString().ToLowerInvariant(),
                in_flight = nodes.InFlight(v.Node.Id),
                reported_at = v.Node.Load?.ReportedAt,
                load_source = v.Load.Source,
                models = v.Load.Models.Select(m => new { id = m.Model, running = m.Running, free_slots = m.FreeSlots, queue_depth = m.QueueDepth, kv_cache_use = m.KvCacheUse }),
                accelerators = (v.Node.Load?.Accelerators ?? []).Select(a => new { kind = a.Kind, name = a.Name, memory_total_mib = a.MemoryTotalMiB, memory_used_mib = a.MemoryUsedMiB }),
            }),
        }, OpenAI.OpenAIJson.Options);
    }

    /// <summary>
    /// A node's load: what it reports (a cluster node), or for an engine that reports none (an external engine) its
    /// registered models with what this gateway runs and queues there now, against their registered capacity; the
    /// other gateways' requests to it are not in that view. It showed no models and no free slots.
    /// </summary>
    private static (string? Source, IReadOnlyList<ModelLoad> Models) LoadOf(NodeView node, Pipeline.RouteGates gates)
    {
        if (node.Load is { } reported)
        {
            return ("reported", reported.Models);
        }

        if (node.Kind != nameof(Residency.Policies.NodeKind.External))
        {
            return (null, []);
        }

        return ("this_gateway", [.. node.Models.Select(m =>
        {
            var (running, waiting) = gates.OccupancyOf(node.Id, m.Id, m.Capacity);
            return new ModelLoad(m.Id, running, Math.Max(0, Math.Max(1, m.Capacity) - running), waiting, 0);
        })]);
    }

    private sealed record MemberStatus(string Name, string Address, string Status, string? Host, long? StartedAt, long? AliveAt);
}
