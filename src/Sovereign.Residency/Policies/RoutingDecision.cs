namespace Sovereign.Residency.Policies;

/// <summary>
/// The outcome of <see cref="RoutingDecider.Decide"/>. Equality compares contents (reasons in order, the allowed set as
/// a set), so two decisions for the same input compare equal.
/// </summary>
public sealed record RoutingDecision
{
    /// <summary>True when <see cref="SelectedReplica"/> may serve the request.</summary>
    public required bool Allowed { get; init; }

    /// <summary>The chosen replica; null when refused.</summary>
    public ModelReplica? SelectedReplica { get; init; }

    /// <summary>Null when allowed; else one of <see cref="RoutingCodes"/>.</summary>
    public string? Code { get; init; }

    /// <summary>200, 403 or 503.</summary>
    public required int HttpStatus { get; init; }

    /// <summary>Machine-readable reasons in evaluation order; see <see cref="RoutingReasons"/>.</summary>
    public required IReadOnlyList<string> Reasons { get; init; }

    /// <summary>
    /// One sentence for a human: what happened and which rule decided it. An allowed decision's ("Routed to NODE in
    /// JURISDICTION.") is made when read: only refusals are answered with theirs, and every request is decided.
    /// </summary>
    [System.Diagnostics.CodeAnalysis.AllowNull]
    public string Message
    {
        get => _message ?? (SelectedReplica is { } chosen ? $"Routed to {chosen.NodeId} in {Jurisdictions.JurisdictionCatalog.Normalize(chosen.Jurisdiction)}." : string.Empty);
        init => _message = value;
    }

    private readonly string? _message;

    /// <summary>The countries the policy allows, resolved (upper case, ordinal order).</summary>
    public required IReadOnlySet<string> AllowedJurisdictions { get; init; }

    /// <inheritdoc />
    public bool Equals(RoutingDecision? other) =>
        other is not null
        && Allowed == other.Allowed
        && Equals(SelectedReplica, other.SelectedReplica)
        && string.Equals(Code, other.Code, StringComparison.Ordinal)
        && HttpStatus == other.HttpStatus
        && Reasons.SequenceEqual(other.Reasons, StringComparer.Ordinal)
        && string.Equals(Message, other.Message, StringComparison.Ordinal)
        && AllowedJurisdictions.SetEquals(other.AllowedJurisdictions);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Allowed, SelectedReplica, Code, HttpStatus, Reasons.Count, Message);
}
