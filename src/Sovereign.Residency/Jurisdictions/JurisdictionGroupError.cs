namespace Sovereign.Residency.Jurisdictions;

/// <summary>Why an operator-defined group was rejected; <paramref name="Group"/> names it as the operator wrote it.</summary>
public sealed record JurisdictionGroupError(string Group, string Message)
{
    /// <inheritdoc />
    public override string ToString() => $"group {Group}: {Message}";
}
