namespace Sovereign.Residency.Policies;

/// <summary>The outcome of <see cref="ResidencyPolicy.NarrowWith"/>: the effective policy, or the errors and no policy.</summary>
public sealed record NarrowingResult(ResidencyPolicy? Effective, IReadOnlyList<PolicyError> Errors)
{
    /// <summary>True when the key's narrowing is valid and <see cref="Effective"/> is set.</summary>
    public bool IsValid => Effective is not null && Errors.Count == 0;
}
