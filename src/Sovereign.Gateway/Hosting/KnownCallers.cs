namespace Sovereign.Gateway.Hosting;

/// <summary>
/// Whether a request's caller was authenticated (a tenant's key, the operator's token, or anonymous access where it is
/// open), so the error log can tell a caller's refusals, which the operator wants to see, from what anyone who reaches
/// the port can send (unknown URLs, wrong methods, guessed keys), which must not decide the log's volume.
/// </summary>
internal static class KnownCallers
{
    private static readonly object Key = new();

    /// <summary>Notes that the request's caller was authenticated, and who it is where that can be named (a tenant's <see cref="ControlPlane.Caller"/>, an operator token).</summary>
    public static void MarkKnown(HttpContext context, object? who = null) => context.Items[Key] = who ?? Key;

    /// <summary>
    /// The authenticated caller by its ids (never a secret), for <see cref="Observability.RefusalLogSummary"/>; null for
    /// an anonymous caller or one not named.
    /// </summary>
    public static string? Who(HttpContext context) =>
        context.Items.TryGetValue(Key, out var who) ? who switch
        {
            ControlPlane.Caller { IsAnonymous: false } caller => $"Key {caller.KeyId} of tenant {caller.TenantId}",
            string named => named,
            _ => null,
        } : null;

    /// <summary>Forgets the mark: the caller, authorized provisionally from a cache, turned out not to be one (a revoked key).</summary>
    public static void Forget(HttpContext context) => context.Items.Remove(Key);

    /// <summary>Whether <see cref="MarkKnown"/> was called for the request.</summary>
    public static bool IsKnown(HttpContext context) => context.Items.ContainsKey(Key);
}
