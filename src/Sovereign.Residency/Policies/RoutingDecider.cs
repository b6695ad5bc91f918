using Sovereign.Residency.Jurisdictions;
using static Sovereign.Residency.Policies.RoutingReasons;

namespace Sovereign.Residency.Policies;

/// <summary>
/// The routing decision: pure and deterministic (no I/O, clock or randomness; the order of the replicas in the request
/// does not matter). It fails closed: a request is served only by a compliant replica, and when no compliant replica
/// has room the answer is 503, never a replica across a border.
/// </summary>
public static class RoutingDecider
{
    /// <summary>
    /// Applies, in order: the gateway's jurisdiction must be allowed (else 403 <c>residency_violation</c>); the model's
    /// id, licence and origin must be allowed, unknown facts failing a restricted policy (else 403
    /// <c>model_not_allowed</c>); replicas outside the allowed countries, or external when external providers are not
    /// allowed, are excluded, and if none is left 403 <c>residency_violation</c>; if none of those left is healthy with
    /// free capacity, 503 <c>no_compliant_capacity</c>; otherwise locality first (a replica in the gateway's own
    /// jurisdiction before one elsewhere that the policy also allows), then the lowest load/capacity ratio, ties broken
    /// by node id (ordinal).
    /// </summary>
    public static RoutingDecision Decide(RoutingRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);

        // A request without a policy or catalog gets the empty policy, which allows nothing.
        var policy = request.Policy ?? new ResidencyPolicy();
        var catalog = request.Catalog ?? JurisdictionCatalog.Default;
        var reasons = new List<string>();

        var allowed = catalog.ResolveMany(policy.AllowedJurisdictions, out var unknownJurisdictions);
        Ignored(PolicyFields.AllowedJurisdictions, unknownJurisdictions, reasons);

        var gateway = JurisdictionCatalog.Normalize(request.GatewayJurisdiction);
        if (gateway is null || !allowed.Contains(gateway))
        {
            var shown = gateway ?? "(none)";
            reasons.Add($"{GatewayJurisdictionNotAllowed}: gateway {shown} not in allowed {Format(allowed)}");
            return Refuse(
                403,
                RoutingCodes.ResidencyViolation,
                reasons,
                $"Refused by allowed_jurisdictions: this gateway is in {shown}, which is not in the allowed {Format(allowed)}.",
                allowed);
        }

        var modelId = request.Model?.Id ?? string.Empty;
        var modelProblems = CheckModel(policy, request.Model, modelId, catalog, reasons);
        if (modelProblems.Count > 0)
        {
            return Refuse(
                403,
                RoutingCodes.ModelNotAllowed,
                reasons,
                $"Refused: model {modelId} is not allowed by the policy ({string.Join("; ", modelProblems)}).",
                allowed);
        }

        // One pass, no sort (this runs per request over every replica of the model, a thousand in a large pool): the
        // best replica is the minimum of a total order, so the input order cannot change it, and only the replicas
        // that need a reason are put in node order for it.
        var total = 0;
        var compliantCount = 0;
        var readyCount = 0;
        var localReady = 0;
        ModelReplica? chosen = null;
        var chosenLocal = false;
        var explained = new List<(ModelReplica Replica, string? Place, bool InAllowedPlace, bool KindAllowed)>();
        foreach (var replica in request.Replicas ?? [])
        {
            if (replica is null)
            {
                continue;
            }

            total++;
            var place = JurisdictionCatalog.Normalize(replica.Jurisdiction);
            var inAllowedPlace = place is not null && allowed.Contains(place);
            var kindAllowed = replica.Kind == NodeKind.Local || policy.AllowExternalProviders;
            if (!inAllowedPlace || !kindAllowed)
            {
                explained.Add((replica, place, inAllowedPlace, kindAllowed));
                continue;
            }

            compliantCount++;
            if (!replica.HasCapacity)
            {
                explained.Add((replica, place, true, true));
                continue;
            }

            readyCount++;
            var isLocal = place == gateway;
            localReady += isLocal ? 1 : 0;
            if (chosen is null || CapacityOrder.Compare(replica, isLocal, chosen, chosenLocal) < 0)
            {
                (chosen, chosenLocal) = (replica, isLocal);
            }
        }

        explained.Sort(static (x, y) => ReplicaOrder.Instance.Compare(x.Replica, y.Replica));
        foreach (var (replica, place, inAllowedPlace, kindAllowed) in explained)
        {
            var node = replica.NodeId ?? string.Empty;
            if (!inAllowedPlace)
            {
                reasons.Add($"{ReplicaExcluded}:{node}:jurisdiction {place ?? "(none)"} not allowed");
            }

            if (!kindAllowed)
            {
                reasons.Add($"{ReplicaExcluded}:{node}:external providers not allowed");
            }

            if (inAllowedPlace && kindAllowed)
            {
                var why = replica.Healthy ? $"full (load {replica.Load}/{replica.Capacity})" : "unhealthy";
                reasons.Add($"{ReplicaUnavailable}:{node}:{why}");
            }
        }

        if (compliantCount == 0)
        {
            reasons.Add($"{NoCompliantReplica}: none of {total} replicas of {modelId} satisfies the policy");
            return Refuse(
                403,
                RoutingCodes.ResidencyViolation,
                reasons,
                $"Refused: no replica of {modelId} runs where the policy allows {Format(allowed)}"
                    + (policy.AllowExternalProviders ? "" : " on the operator's own nodes")
                    + "; the policy cannot be met for this model here.",
                allowed);
        }

        if (chosen is null)
        {
            reasons.Add($"{NoCompliantCapacity}: {compliantCount} compliant replicas, none healthy with free capacity");
            return Refuse(
                503,
                RoutingCodes.NoCompliantCapacity,
                reasons,
                $"Unavailable: every compliant replica of {modelId} is down or full; replicas outside the policy are never tried. Retry later.",
                allowed);
        }

        var prefix = chosen.HoldsPrefix ? ", holds the prompt's prefix" : "";
        reasons.Add(chosenLocal
            ? $"{Selected}:{chosen.NodeId}:in the gateway's jurisdiction {gateway}, least loaded ({chosen.Load}/{chosen.Capacity}) of {localReady} local of {readyCount} compliant with capacity{prefix}"
            : $"{Selected}:{chosen.NodeId}:least loaded ({chosen.Load}/{chosen.Capacity}) of {readyCount} compliant with capacity, none in the gateway's jurisdiction {gateway}{prefix}");
        return new RoutingDecision
        {
            Allowed = true,
            SelectedReplica = chosen,
            Code = null,
            HttpStatus = 200,
            Reasons = reasons,
            Message = $"Routed to {chosen.NodeId} in {JurisdictionCatalog.Normalize(chosen.Jurisdiction)}.",
            AllowedJurisdictions = allowed,
        };
    }

    private static List<string> CheckModel(
        ResidencyPolicy policy,
        ModelFacts? model,
        string modelId,
        JurisdictionCatalog catalog,
        List<string> reasons)
    {
        var problems = new List<string>();

        if (policy.AllowedModels is { Count: > 0 } models && !models.Contains(modelId, StringComparer.Ordinal))
        {
            Add(ModelIdNotAllowed, $"model id not in allowed_models {Format(models)}");
        }

        if (policy.AllowedLicenses is { Count: > 0 } licenses)
        {
            var license = model?.License?.Trim();
            if (string.IsNullOrEmpty(license))
            {
                Add(ModelLicenseUnknown, $"license unknown; allowed_licenses restricts to {Format(licenses)}");
            }
            else if (!licenses.Contains(license, StringComparer.OrdinalIgnoreCase))
            {
                Add(ModelLicenseNotAllowed, $"license {license} not in allowed_licenses {Format(licenses)}");
            }
        }

        if (policy.AllowedOrigins is { Count: > 0 })
        {
            var origins = catalog.ResolveMany(policy.AllowedOrigins, out var unknownOrigins);
            Ignored(PolicyFields.AllowedOrigins, unknownOrigins, reasons);
            var origin = JurisdictionCatalog.Normalize(model?.Origin);
            if (origin is null)
            {
                Add(ModelOriginUnknown, $"origin unknown; allowed_origins restricts to {Format(origins)}");
            }
            else if (!origins.Contains(origin))
            {
                Add(ModelOriginNotAllowed, $"origin {origin} not in allowed_origins {Format(origins)}");
            }
        }

        return problems;

        void Add(string reason, string detail)
        {
            reasons.Add($"{reason}:{modelId}:{detail}");
            problems.Add(detail);
        }
    }

    private static void Ignored(string field, IReadOnlyList<string> entries, List<string> reasons)
    {
        foreach (var entry in entries)
        {
            reasons.Add($"{PolicyEntryIgnored}:{entry}:{field} entry is not a known code or group");
        }
    }

    private static RoutingDecision Refuse(int status, string code, List<string> reasons, string message, IReadOnlySet<string> allowed) =>
        new()
        {
            Allowed = false,
            SelectedReplica = null,
            Code = code,
            HttpStatus = status,
            Reasons = reasons,
            Message = message,
            AllowedJurisdictions = allowed,
        };

    private static string Format(IEnumerable<string> items) => ResidencyPolicyValidator.Format(items);

    /// <summary>A total order on replicas, so reasons and tie-breaks never depend on input order.</summary>
    private sealed class ReplicaOrder : IComparer<ModelReplica>
    {
        public static readonly ReplicaOrder Instance = new();

        public int Compare(ModelReplica? x, ModelReplica? y)
        {
            if (ReferenceEquals(x, y))
            {
                return 0;
            }

            if (x is null || y is null)
            {
                return x is null ? -1 : 1;
            }

            var c = string.CompareOrdinal(x.NodeId, y.NodeId);
            if (c == 0) c = string.CompareOrdinal(x.Jurisdiction, y.Jurisdiction);
            if (c == 0) c = x.Kind.CompareTo(y.Kind);
            if (c == 0) c = x.Healthy.CompareTo(y.Healthy);
            if (c == 0) c = x.Load.CompareTo(y.Load);
            if (c == 0) c = x.Capacity.CompareTo(y.Capacity);
            return c;
        }
    }

    /// <summary>
    /// Replicas in the gateway's jurisdiction first (locality: no border crossed, shortest path), then lowest
    /// load/capacity, compared exactly (no floating point), then <see cref="ReplicaOrder"/>.
    /// </summary>
    private static class CapacityOrder
    {
        /// <summary>Orders two ready replicas whose locality the caller worked out once.</summary>
        public static int Compare(ModelReplica x, bool xLocal, ModelReplica y, bool yLocal)
        {
            var locality = yLocal.CompareTo(xLocal);
            if (locality != 0)
            {
                return locality;
            }

            // Both capacities are positive here (HasCapacity), so cross-multiplying keeps the order of the fractions.
            var c = ((long)x.Load * y.Capacity).CompareTo((long)y.Load * x.Capacity);
            if (c != 0)
            {
                return c;
            }

            // Prefix affinity breaks a tie in load: the replica that holds the prompt's prefix saves its prefill.
            var affinity = y.HoldsPrefix.CompareTo(x.HoldsPrefix);
            return affinity != 0 ? affinity : ReplicaOrder.Instance.Compare(x, y);
        }
    }
}
