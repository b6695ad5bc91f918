namespace Sovereign.Residency.Policies;

/// <summary>What the registry knows about the requested model; null licence or origin means "unknown".</summary>
public sealed record ModelFacts(string Id, string? License = null, string? Origin = null);
