namespace Sovereign.Residency.Jurisdictions;

/// <summary>
/// An operator-defined group of jurisdictions, e.g. <c>NORDICS = [DK, FI, IS, NO, SE]</c>. Members are country codes or
/// the names of other groups (built-in or operator-defined), in any case.
/// </summary>
public sealed record JurisdictionGroup
{
    /// <summary>The group's name; matched case-insensitively and reported in upper case.</summary>
    public required string Name { get; init; }

    /// <summary>Country codes or group names.</summary>
    public IReadOnlyList<string> Members { get; init; } = [];
}
