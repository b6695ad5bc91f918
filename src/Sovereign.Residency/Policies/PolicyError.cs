namespace Sovereign.Residency.Policies;

/// <summary>One reason a policy is invalid; <paramref name="Field"/> is the snake_case API field (see <see cref="PolicyFields"/>).</summary>
public sealed record PolicyError(string Field, string Message)
{
    /// <inheritdoc />
    public override string ToString() => $"{Field}: {Message}";
}
