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
/// <remarks>
/// Bounded: a credential holds at most <see cref="MaxPerCredential"/> live sessions (a new sign-in ends its oldest),
/// and all credentials together at most <see cref="MaxSessions"/> (the oldest session overall ends). Every sign-in
/// used to add a session that lived its full 8 hours, so a script signing in again and again with one key grew the
/// server's memory without limit.
/// </remarks>
internal sealed class ConsoleSessions
{
    public const string CookieName = "sovereign_console";

    /// <summary>Live sessions per credential: more browsers than one person uses at once.</summary>
    public const int MaxPerCredential = 16;

    /// <summary>Live sessions in all.</summary>
    public const int MaxSessions = 4096;

    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(8);

    private readonly TimeProvider _time;
    private readonly int _maxPerCredential;
    private readonly int _maxSessions;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Entry> _sessions = new(StringComparer.Ordinal);

    // Session ids oldest first, all of them and per credential: every session has the same lifetime, so the oldest
    // is also the first to expire.
    private readonly LinkedList<string> _order = new();
    private readonly Dictionary<string, LinkedList<string>> _byCredential = new(StringComparer.Ordinal);

    public ConsoleSessions(TimeProvider time)
        : this(time, MaxPerCredential, MaxSessions)
    {
    }

    internal ConsoleSessions(TimeProvider time, int maxPerCredential, int maxSessions)
    {
        _time = time;
        _maxPerCredential = maxPerCredential;
        _maxSessions = maxSessions;
    }

    /// <summary>Live sessions in all (for tests).</summary>
    internal int Count
    {
        get
        {
            lock (_lock)
            {
                return _sessions.Count;
            }
        }
    }

    /// <summary>Live sessions of one credential (for tests).</summary>
    internal int CountFor(string credential)
    {
        lock (_lock)
        {
            return _byCredential.TryGetValue(credential, out var ids) ? ids.Count : 0;
        }
    }

    public string Create(ConsoleRole role, string credential, string? tenant)
    {
        var now = _time.GetUtcNow();
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        lock (_lock)
        {
            while (_order.First is { } oldest && _sessions[oldest.Value].Session.Expires <= now)
            {
                RemoveLocked(oldest.Value);
            }

            if (!_byCredential.TryGetValue(credential, out var ids))
            {
                ids = new LinkedList<string>();
                _byCredential[credential] = ids;
            }

            while (ids.Count >= _maxPerCredential)
            {
                RemoveLocked(ids.First!.Value);
            }

            while (_sessions.Count >= _maxSessions)
            {
                RemoveLocked(_order.First!.Value);
            }

            // The credential's list may have been dropped with its last session just above.
            if (!_byCredential.TryGetValue(credential, out ids))
            {
                ids = new LinkedList<string>();
                _byCredential[credential] = ids;
            }

            _sessions[id] = new Entry(new ConsoleSession(role, credential, tenant, now + Lifetime), _order.AddLast(id), ids.AddLast(id));
        }

        return id;
    }

    public ConsoleSession? Find(HttpContext context)
    {
        if (!context.Request.Cookies.TryGetValue(CookieName, out var id) || id is null)
        {
            return null;
        }

        ConsoleSession? session;
        lock (_lock)
        {
            session = _sessions.TryGetValue(id, out var entry) && entry.Session.Expires > _time.GetUtcNow() ? entry.Session : null;
        }

        if (session is not null)
        {
            // A signed-in operator or tenant: its refusals are logged at Information like a key's.
            Hosting.KnownCallers.MarkKnown(context);
        }

        return session;
    }

    public void Remove(HttpContext context)
    {
        if (context.Request.Cookies.TryGetValue(CookieName, out var id) && id is not null)
        {
            lock (_lock)
            {
                RemoveLocked(id);
            }
        }
    }

    private void RemoveLocked(string id)
    {
        if (!_sessions.Remove(id, out var entry))
        {
            return;
        }

        _order.Remove(entry.InOrder);
        var ids = entry.InCredential.List!;
        ids.Remove(entry.InCredential);
        if (ids.Count == 0)
        {
            _byCredential.Remove(entry.Session.Credential);
        }
    }

    private sealed record Entry(ConsoleSession Session, LinkedListNode<string> InOrder, LinkedListNode<string> InCredential);
}
