namespace Sovereign.Residency.Jurisdictions;

/// <summary>Thrown when operator-defined groups are invalid; carries every error, not just the first.</summary>
public sealed class JurisdictionCatalogException : Exception
{
    /// <summary>Creates the exception from the validation errors.</summary>
    public JurisdictionCatalogException(IReadOnlyList<JurisdictionGroupError> errors)
        : base("Invalid jurisdiction groups: " + string.Join("; ", errors))
    {
        Errors = errors;
    }

    /// <summary>Every error found, in a stable order.</summary>
    public IReadOnlyList<JurisdictionGroupError> Errors { get; }
}
