using Sovereign.Residency.Policies;

namespace Sovereign.Residency.Tests.Policies;

/// <summary>Compact builders for routing tests.</summary>
internal static class Routing
{
    public static readonly ModelFacts Model = new("llama-3.1-8b", "llama3.1", "US");

    public static ResidencyPolicy Policy(string jurisdictions, bool external = false) => new()
    {
        AllowedJurisdictions = Split(jurisdictions),
        AllowExternalProviders = external,
    };

    /// <summary>
    /// "th-1:TH:up:2/10[:ext], sg-1:SG:down:0/10, th-2:TH:draining:0/10" -> replicas; also stale, unreachable, unloaded
    /// (not loaded) and sick (not healthy, no outage said).
    /// </summary>
    public static ModelReplica[] Replicas(string spec) =>
    [
        .. Split(spec).Select(item =>
        {
            var parts = item.Split(':');
            var load = parts[3].Split('/');
            return new ModelReplica(
                parts[0],
                parts[1],
                parts.Length > 4 && parts[4] == "ext" ? NodeKind.External : NodeKind.Local,
                parts[2] == "up",
                int.Parse(load[0], System.Globalization.CultureInfo.InvariantCulture),
                int.Parse(load[1], System.Globalization.CultureInfo.InvariantCulture))
            {
                Draining = parts[2] == "draining",
                Outage = parts[2] switch
                {
                    "down" => ReplicaOutage.Down,
                    "stale" => ReplicaOutage.Stale,
                    "unreachable" => ReplicaOutage.Unreachable,
                    "unloaded" => ReplicaOutage.NotLoaded,
                    _ => ReplicaOutage.Unknown,
                },
            };
        }),
    ];

    public static RoutingDecision Decide(string gateway, ResidencyPolicy policy, string replicas, ModelFacts? model = null) =>
        RoutingDecider.Decide(new RoutingRequest(gateway, policy, model ?? Model, Replicas(replicas)));

    public static string[] Split(string csv) =>
        csv.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
