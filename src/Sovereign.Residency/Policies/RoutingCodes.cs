namespace Sovereign.Residency.Policies;

/// <summary>The error codes a refusal carries (<see cref="RoutingDecision.Code"/>), as the API returns them.</summary>
public static class RoutingCodes
{
    /// <summary>403: the gateway, or every replica of the model, is outside what the policy allows.</summary>
    public const string ResidencyViolation = "residency_violation";

    /// <summary>403: the model's id, licence or origin is not allowed (or unknown while the policy restricts it).</summary>
    public const string ModelNotAllowed = "model_not_allowed";

    /// <summary>503: compliant replicas exist but none is healthy with free capacity; nothing else is tried.</summary>
    public const string NoCompliantCapacity = "no_compliant_capacity";
}

/// <summary>
/// The first token of each <see cref="RoutingDecision.Reasons"/> entry. Entries read <c>reason: detail</c> for the
/// request as a whole and <c>reason:subject:detail</c> for one replica, model or policy entry.
/// </summary>
public static class RoutingReasons
{
    /// <summary>A policy entry that names no known code or group; it contributes nothing (it can only narrow).</summary>
    public const string PolicyEntryIgnored = "policy_entry_ignored";

    /// <summary>The gateway's own jurisdiction is not allowed.</summary>
    public const string GatewayJurisdictionNotAllowed = "gateway_jurisdiction_not_allowed";

    /// <summary>The model id is not in the allowed models.</summary>
    public const string ModelIdNotAllowed = "model_id_not_allowed";

    /// <summary>The model has no known licence while the policy restricts licences.</summary>
    public const string ModelLicenseUnknown = "model_license_unknown";

    /// <summary>The model's licence is not in the allowed licences.</summary>
    public const string ModelLicenseNotAllowed = "model_license_not_allowed";

    /// <summary>The model has no known origin while the policy restricts origins.</summary>
    public const string ModelOriginUnknown = "model_origin_unknown";

    /// <summary>The model's origin is not in the allowed origins.</summary>
    public const string ModelOriginNotAllowed = "model_origin_not_allowed";

    /// <summary>A replica the policy rules out (jurisdiction, or external provider).</summary>
    public const string ReplicaExcluded = "replica_excluded";

    /// <summary>A compliant replica that cannot take the request now (unhealthy or full).</summary>
    public const string ReplicaUnavailable = "replica_unavailable";

    /// <summary>No replica satisfies the policy.</summary>
    public const string NoCompliantReplica = "no_compliant_replica";

    /// <summary>Compliant replicas exist, none with capacity.</summary>
    public const string NoCompliantCapacity = "no_compliant_capacity";

    /// <summary>The replica chosen.</summary>
    public const string Selected = "selected";
}
