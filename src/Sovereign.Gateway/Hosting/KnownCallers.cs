namespace Sovereign.Gateway.Hosting;

/// <summary>
/// Whether a request's caller was authenticated (a tenant's key, the operator's token, or anonymous access where it is
/// open), so the error log can tell a caller's refusals, which the operator wants to see, from what anyone who reaches
/// the port can send (unknown URLs, wrong methods, guessed keys), which must not decide the log's volume.
/// </summary>
internal static class KnownCallers
{
    private static readonly object Key = new();

    /// <summary>Notes that the request's caller was authenticated.</summary>
    public static void MarkKnown(HttpContext context) => context.Items[Key] = Key;

    /// <summary>Forgets the mark: the caller, authorized provisionally from a cache, turned out not to be one (a revoked key).</summary>
    public static void Forget(HttpContext context) => context.Items.Remove(Key);

    /// <summary>Whether <see cref="MarkKnown"/> was called for the request.</summary>
    public static bool IsKnown(HttpContext context) => context.Items.ContainsKey(Key);
}
