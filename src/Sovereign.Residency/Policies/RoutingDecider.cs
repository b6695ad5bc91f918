using Sovereign.Residency.Jurisdictions;
using static Sovereign.Residency.Policies.RoutingReasons;

namespace Sovereign.Residency.Policies;

/// <summary>
/// The routing decision: pure and deterministic (no I/O, clock or randomness; the order of the replicas in the request
/// does not matter). It fails closed: a request is served only by a compliant replica, and when no compliant replica
/// has room the answer is 503, never a replica across a border.
/// </summary>
public static partial class RoutingDecider
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
        if (Admit(request, out var admitted) is { } refused)
        {
            return refused;
        }

        var (policy, allowed, gateway, modelId, reasons) = admitted;

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
            Explain(reasons, replica.NodeId, place, inAllowedPlace, kindAllowed, new ReplicaState(replica.Healthy, replica.Load, replica.Capacity, replica.Draining, replica.Outage));
        }

        var outcome = Conclude(policy, allowed, gateway, modelId, total, compliantCount, readyCount, localReady, chosen, chosenLocal);
        reasons.Add(outcome.FinalReason);
        return outcome.With(reasons);
    }

    /// <summary>What the decider knows once the policy's own rules passed (the gateway's jurisdiction, the model).</summary>
    private readonly record struct Admitted(ResidencyPolicy Policy, IReadOnlySet<string> Allowed, string Gateway, string ModelId, List<string> Reasons);

    /// <summary>The rules that do not depend on replicas: a refusal, or null and what the replica pass needs.</summary>
    private static RoutingDecision? Admit(RoutingRequest request, out Admitted admitted)
    {
        // A request without a policy or catalog gets the empty policy, which allows nothing.
        var policy = request.Policy ?? new ResidencyPolicy();
        var catalog = request.Catalog ?? JurisdictionCatalog.Default;
        var reasons = new List<string>();

        var allowed = catalog.ResolveMany(policy.AllowedJurisdictions, out var unknownJurisdictions);
        Ignored(PolicyFields.AllowedJurisdictions, unknownJurisdictions, reasons);

        var gateway = JurisdictionCatalog.Normalize(request.GatewayJurisdiction);
        var modelId = request.Model?.Id ?? string.Empty;
        admitted = new Admitted(policy, allowed, gateway ?? string.Empty, modelId, reasons);
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

        return null;
    }

    /// <summary>The decision once the replicas are counted: its last reason, and the decision given all reasons.</summary>
    private readonly record struct Outcome(bool Allowed, int Status, string? Code, string FinalReason, string? Message, ModelReplica? Chosen, IReadOnlySet<string> AllowedSet)
    {
        public RoutingDecision With(IReadOnlyList<string> reasons) => new()
        {
            Allowed = Allowed,
            SelectedReplica = Chosen,
            Code = Code,
            HttpStatus = Status,
            Reasons = reasons,
            Message = Message,
            AllowedJurisdictions = AllowedSet,
        };
    }

    private static Outcome Conclude(
        ResidencyPolicy policy, IReadOnlySet<string> allowed, string gateway, string modelId, int total, int compliantCount, int readyCount, int localReady, ModelReplica? chosen, bool chosenLocal)
    {
        if (compliantCount == 0)
        {
            return new Outcome(
                false,
                403,
                RoutingCodes.ResidencyViolation,
                $"{NoCompliantReplica}: none of {total} replicas of {modelId} satisfies the policy",
                $"Refused: no replica of {modelId} runs where the policy allows {Format(allowed)}"
                    + (policy.AllowExternalProviders ? "" : " on the operator's own nodes")
                    + "; the policy cannot be met for this model here.",
                null,
                allowed);
        }

        if (chosen is null)
        {
            return new Outcome(
                false,
                503,
                RoutingCodes.NoCompliantCapacity,
                $"{NoCompliantCapacity}: {compliantCount} compliant replicas, none healthy with free capacity",
                $"Unavailable: every compliant replica of {modelId} is down or full; replicas outside the policy are never tried. Retry later.",
                null,
                allowed);
        }

        var prefix = chosen.HoldsPrefix ? ", holds the prompt's prefix" : "";
        return new Outcome(
            true,
            200,
            null,
            chosenLocal
                ? $"{Selected}:{chosen.NodeId}:in the gateway's jurisdiction {gateway}, least loaded ({chosen.Load}/{chosen.Capacity}) of {localReady} local of {readyCount} compliant with capacity{prefix}"
                : $"{Selected}:{chosen.NodeId}:least loaded ({chosen.Load}/{chosen.Capacity}) of {readyCount} compliant with capacity, none in the gateway's jurisdiction {gateway}{prefix}",
            null, // RoutingDecision.Message says where, when it is read
            chosen,
            allowed);
    }

    /// <summary>Why a replica was not chosen: excluded by the policy (one reason per rule it breaks), or unavailable.</summary>
    private static void Explain(List<string> reasons, string? nodeId, string? place, bool inAllowedPlace, bool kindAllowed, ReplicaState state)
    {
        var node = nodeId ?? string.Empty;
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
            var why = state.Healthy ? $"full (load {state.Load}/{state.Capacity})" : state.Draining ? "draining" : state.Outage switch
            {
                ReplicaOutage.Down => "down",
                ReplicaOutage.Unreachable => "unreachable",
                ReplicaOutage.Stale => "stale",
                ReplicaOutage.NotLoaded => "not loaded",
                _ => "unhealthy",
            };
            reasons.Add($"{ReplicaUnavailable}:{node}:{why}");
        }
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
