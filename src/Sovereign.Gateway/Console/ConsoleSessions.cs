using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Sovereign.Gateway.Console;

/// <summary>Who is signed in to the console: an operator (with the admin token) or a tenant (with one of its keys).</summary>
internal enum ConsoleRole
{
    Operator,
    Tenant,
}

/// <summary>A signed-in browser: its role, the credential the console sends to the API for it, and the tenant, if any.</summary>
internal sealed record ConsoleSession(ConsoleRole Role, string Credential, string? Tenant, DateTimeOffset Expires);

/// <summary>
/// Console sign-ins, held in memory: the browser keeps only a random session id in an HttpOnly, SameSite=Strict
/// cookie, never the token or key itself. A restart signs everyone out.
/// </summary>
internal sealed class ConsoleSessions(TimeProvider time)
{
    public const string CookieName = "sovereign_console";
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(8);

    private readonly ConcurrentDictionary<string, ConsoleSession> _sessions = new(StringComparer.Ordinal);

    public string Create(ConsoleRole role, string credential, string? tenant)
    {
        var now = time.GetUtcNow();
        foreach (var expired in _sessions.Where(s => s.Value.Expires <= now).Select(s => s.Key).ToList())
        {
            _sessions.TryRemove(expired, out _);
        }

        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        _sessions[id] = new ConsoleSession(role, credential, tenant, now + Lifetime);
        return id;
    }

    public ConsoleSession? Find(HttpContext context) =>
        context.Request.Cookies.TryGetValue(CookieName, out var id) && id is not null && _sessions.TryGetValue(id, out var session) && session.Expires > time.GetUtcNow()
            ? session
            : null;

    public void Remove(HttpContext context)
    {
        if (context.Request.Cookies.TryGetValue(CookieName, out var id) && id is not null)
        {
            _sessions.TryRemove(id, out _);
        }
    }
}
