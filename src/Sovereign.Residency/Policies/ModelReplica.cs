namespace Sovereign.Residency.Policies;

/// <summary>Who runs a replica.</summary>
public enum NodeKind
{
    /// <summary>A node the operator runs.</summary>
    Local = 0,

    /// <summary>A third-party provider. Any value other than <see cref="Local"/> is treated as external (fail closed).</summary>
    External = 1,
}

/// <summary>
/// Why a replica takes no requests though it is not draining, in the words of <c>sovereign nodes list</c>'s health: a
/// decision's reasons said "unhealthy" for all of them, so an auditor could not tell an operator's <c>down</c> from a
/// node that had stopped reporting.
/// </summary>
public enum ReplicaOutage
{
    /// <summary>Not said (a caller that does not know): "unhealthy".</summary>
    Unknown = 0,

    /// <summary>Taken out of rotation by the operator (<c>nodes state ID down</c>).</summary>
    Down = 1,

    /// <summary>Its last connection failed, or its engine does not answer.</summary>
    Unreachable = 2,

    /// <summary>A cluster node whose last load report is too old: stopped, or cut off.</summary>
    Stale = 3,

    /// <summary>Registered there, but the model is not loaded now.</summary>
    NotLoaded = 4,
}

/// <summary>
/// One place the requested model can run. <paramref name="Jurisdiction"/> is the node's country code (case-insensitive).
/// </summary>
public sealed record ModelReplica(string NodeId, string Jurisdiction, NodeKind Kind, bool Healthy, int Load, int Capacity)
{
    /// <summary>
    /// Whether the replica likely holds the request's prompt prefix in its KV cache (it served the same prefix last):
    /// between equally loaded replicas it is preferred, so the prefix is not prefilled again elsewhere.
    /// </summary>
    public bool HoldsPrefix { get; init; }

    /// <summary>
    /// Taken out of rotation by a drain (its node finishes what it has and takes nothing new): not healthy, and the
    /// decision's reasons say so, rather than calling the operator's drain a fault.
    /// </summary>
    public bool Draining { get; init; }

    /// <summary>Why a replica that is neither healthy nor draining takes nothing, for the decision's reasons.</summary>
    public ReplicaOutage Outage { get; init; }

    /// <summary>Healthy with a free slot. A non-positive capacity never has room.</summary>
    public bool HasCapacity => Healthy && Capacity > 0 && Load < Capacity;
}
