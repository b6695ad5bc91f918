using System.Globalization;
using Sovereign.Storage;

namespace Sovereign.Residency.Audit;

/// <summary>
/// Finds the audit entries of one request from an id a client holds: the <c>id</c> of a response's body
/// (<c>chatcmpl-...</c>, <c>cmpl-...</c>, <c>resp_...</c>, or an engine's own, which its outcome entry states as
/// <c>response_id</c>) or the request's id (<c>x-request-id</c> / <c>x-sovereign-audit-id</c>, <c>req_...</c>, its entries'
/// <c>request_id</c>). The answer is every entry of that request on every chain: its decisions, its outcome, a
/// correction, and where it was relayed to a cluster node the node's own entries (their decision names it as
/// <c>relay_of</c>), in time order.
/// </summary>
/// <remarks>
/// Details are not indexed (an index would cost every append pages, as the dropped time index did): a response id is
/// matched by scanning the log's details (<c>LIKE</c>, then compared exactly). Given a <c>from</c> (the response's
/// <c>created</c> less a margin), every entry since is scanned at once. Without one, the log is scanned newest first in
/// windows that double (<see cref="FirstWindow"/> before the newest entry, then the two before that, ...), and the
/// search stops at the first window holding a match: a recent response costs a day's entries, not the whole log (it
/// scanned the whole log before session 56), and one that is not there costs one scan of the log, as before, in a
/// few dozen queries at most. An id that several requests carried (an engine that repeats its ids) names those of the
/// newest window it occurs in; a <c>from</c> finds every one since. A request id carries its time (<c>req_</c> and the
/// arrival's Unix milliseconds in its first 12 hex digits), so its entries are read from shortly before it on. Only
/// reads: nothing here is evidence, the chain is.
/// </remarks>
public static class AuditRequestLookup
{
    /// <summary>The detail an outcome entry names the response's body id under.</summary>
    public const string ResponseIdDetail = "response_id";

    /// <summary>The detail a cluster node's decision names the gateway's request under.</summary>
    public const string RelayOfDetail = "relay_of";

    /// <summary>Most entries one lookup returns (a request has a handful: decisions, an outcome, a correction).</summary>
    public const int MaxEntries = 200;

    /// <summary>The newest window a response id is searched in when no start is given; each older one is twice as long.</summary>
    public static readonly TimeSpan FirstWindow = TimeSpan.FromDays(1);

    /// <summary>How long before a request id's own time its entries are looked for: another member's clock may run behind.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Whether <paramref name="id"/> can name a request or response: 1 to 128 ASCII letters, digits, '-', '_', '.',
    /// ':' (what Sovereign and engines make; anything else is refused, never searched for).
    /// </summary>
    public static bool IsValidId(string? id) =>
        id is { Length: > 0 and <= 128 } && id.AsSpan().IndexOfAnyExcept(IdCharacters) < 0;

    private static readonly System.Buffers.SearchValues<char> IdCharacters =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:");

    /// <summary>
    /// The time a Sovereign request id was made (<c>req_</c>, 12 hex digits of Unix milliseconds, 20 random), or null for
    /// any other id.
    /// </summary>
    public static DateTimeOffset? TimeOfRequestId(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        if (id.Length != 36 || !id.StartsWith("req_", StringComparison.Ordinal)
            || !long.TryParse(id.AsSpan(4, 12), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var ms))
        {
            return null;
        }

        return DateTimeOffset.FromUnixTimeMilliseconds(ms);
    }

    /// <summary>
    /// The entries of the request <paramref name="id"/> names (a response's body id or a request id), oldest first
    /// (then by chain and sequence); empty when no entry names it.
    /// </summary>
    /// <param name="database">The log's database.</param>
    /// <param name="id">The id, as <see cref="IsValidId"/> allows.</param>
    /// <param name="from">Entries before this time are not searched for a response id (the response's <c>created</c>, less a margin); null: the whole log.</param>
    /// <param name="tenant">Only this tenant's entries (read by the tenant's index: a tenant's search costs its own entries); null: every entry.</param>
    /// <param name="cancellationToken">Cancels the reads.</param>
    /// <exception cref="ArgumentException"><paramref name="id"/> is not an id.</exception>
    public static async Task<IReadOnlyList<AuditEntry>> FindAsync(
        SqlDatabase database, string id, DateTimeOffset? from = null, string? tenant = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(database);
        if (!IsValidId(id))
        {
            throw new ArgumentException("An id is 1 to 128 ASCII letters, digits, '-', '_', '.' or ':'.", nameof(id));
        }

        var found = new Dictionary<(string, long), AuditEntry>();
        var requests = new Queue<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Request(string? requestId)
        {
            if (requestId is not null && IsValidId(requestId) && seen.Add(requestId))
            {
                requests.Enqueue(requestId);
            }
        }

        if (TimeOfRequestId(id) is not null)
        {
            Request(id);
        }

        // A response id: the outcome entries that name it (and, where a request id was made as a response id, none).
        var named = from is { } start
            ? await MatchAsync(database, [ResponseIdDetail], id, Math.Max(0, start.ToUnixTimeMilliseconds()), null, tenant, cancellationToken)
            : await MatchNewestAsync(database, id, tenant, cancellationToken);
        foreach (var entry in named)
        {
            found.TryAdd((entry.Chain ?? "", entry.Sequence), entry);
            Request(entry.Details.GetValueOrDefault("request_id"));
        }

        if (TimeOfRequestId(id) is null && found.Count == 0)
        {
            Request(id); // an id of another form may still be a request id (made by an earlier release)
        }

        // Each request's own entries and the cluster nodes' that ran it (relay_of); a node's entry leads to the gateway's
        // request it was part of. Few rounds: a gateway's request and its nodes'.
        for (var rounds = 0; rounds < 8 && requests.TryDequeue(out var requestId) && found.Count < MaxEntries; rounds++)
        {
            var since = TimeOfRequestId(requestId) is { } made ? Math.Max(0, (made - ClockSkew).ToUnixTimeMilliseconds()) : 0;
            foreach (var entry in await MatchAsync(database, ["request_id", RelayOfDetail], requestId, since, null, tenant, cancellationToken))
            {
                found.TryAdd((entry.Chain ?? "", entry.Sequence), entry);
                Request(entry.Details.GetValueOrDefault("request_id"));
                Request(entry.Details.GetValueOrDefault(RelayOfDetail));
            }
        }

        return [.. found.Values.OrderBy(e => e.Timestamp).ThenBy(e => e.Chain ?? "", StringComparer.Ordinal).ThenBy(e => e.Sequence).Take(MaxEntries)];
    }

    /// <summary>
    /// The entries that name response <paramref name="id"/> in the newest window of the log that holds any (see the
    /// remarks): windows before the newest entry's time, each twice as long as the one after it, down to the log's start.
    /// </summary>
    private static async Task<List<AuditEntry>> MatchNewestAsync(SqlDatabase database, string id, string? tenant, CancellationToken cancellationToken)
    {
        if (await NewestTimeAsync(database, cancellationToken) is not { } newest)
        {
            return [];
        }

        long? toMs = null;
        for (var span = (long)FirstWindow.TotalMilliseconds; ; span = span > long.MaxValue / 2 ? long.MaxValue : span * 2)
        {
            var fromMs = Math.Max(0, newest - span);
            var found = await MatchAsync(database, [ResponseIdDetail], id, fromMs, toMs, tenant, cancellationToken);
            if (found.Count > 0 || fromMs == 0)
            {
                return found;
            }

            toMs = fromMs;
        }
    }

    /// <summary>The time of the newest entry on any chain (unix ms), or null when the log is empty.</summary>
    private static async Task<long?> NewestTimeAsync(SqlDatabase database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT at_ms FROM audit_entries ORDER BY seq DESC LIMIT 1";
        var newest = await command.ExecuteScalarAsync(cancellationToken) is { } shared and not DBNull ? AuditStore.ToInt64(shared) : (long?)null;
        if (await AuditChainScope.TablesExistAsync(connection, null, cancellationToken))
        {
            // Member chains' rows have an index on time.
            command.CommandText = "SELECT MAX(at_ms) FROM audit_chain_entries";
            if (await command.ExecuteScalarAsync(cancellationToken) is { } member and not DBNull)
            {
                newest = Math.Max(newest ?? long.MinValue, AuditStore.ToInt64(member));
            }
        }

        return newest;
    }

    /// <summary>
    /// Entries at or after <paramref name="fromMs"/> (and before <paramref name="toMs"/>, when given) with one of
    /// <paramref name="keys"/>' details equal to <paramref name="value"/>, on every chain.
    /// </summary>
    private static async Task<List<AuditEntry>> MatchAsync(SqlDatabase database, string[] keys, string value, long fromMs, long? toMs, string? tenant, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var fromSequence = await AuditStore.FirstSequenceAtOrAfterAsync(connection, null, fromMs, cancellationToken);
        var toSequence = toMs is { } end && fromSequence is not null && tenant is null ? await AuditStore.FirstSequenceAtOrAfterAsync(connection, null, end, cancellationToken) : null;
        var members = await AuditChainScope.TablesExistAsync(connection, null, cancellationToken);

        // The details column is JSON written by AuditStore.WriteDetails: "key":"value", no spaces; an id's characters
        // are written as they are. LIKE narrows (its '_' escaped), the exact comparison below decides.
        var like = string.Join(" OR ", keys.Select((_, i) => $"details LIKE @p{i} ESCAPE '\\'"));
        var before = toMs is null ? "" : " AND at_ms < @to";
        var shared = tenant is not null ? "tenant = @tenant AND at_ms >= @from" + before
            : fromSequence is null ? "1 = 0"
            : "seq >= @fromSeq" + (toSequence is null ? "" : " AND seq < @toSeq");
        var sql = $"SELECT {AuditStore.EntryColumns}, '' AS chain FROM audit_entries WHERE {shared} AND ({like})";
        if (members)
        {
            sql += $" UNION ALL SELECT {AuditStore.EntryColumns}, chain FROM audit_chain_entries WHERE {(tenant is null ? "" : "tenant = @tenant AND ")}at_ms >= @from{before} AND ({like})";
        }

        using var command = connection.CreateCommand();
        command.CommandText = sql + " LIMIT @limit";
        for (var i = 0; i < keys.Length; i++)
        {
            SqlDatabase.AddParameter(command, $"@p{i}", $"%\"{Escape(keys[i])}\":\"{Escape(value)}\"%");
        }

        if (tenant is not null)
        {
            SqlDatabase.AddParameter(command, "@tenant", tenant);
        }
        else if (fromSequence is { } first)
        {
            SqlDatabase.AddParameter(command, "@fromSeq", first);
        }

        if (members || tenant is not null)
        {
            SqlDatabase.AddParameter(command, "@from", fromMs);
            if (toMs is { } to)
            {
                SqlDatabase.AddParameter(command, "@to", to);
            }
        }

        if (toSequence is { } last)
        {
            SqlDatabase.AddParameter(command, "@toSeq", last);
        }

        SqlDatabase.AddParameter(command, "@limit", (long)MaxEntries * 4);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        return await AuditStore.ReadAcrossChainsAsync(reader,
            entry => keys.Any(k => entry.Details.TryGetValue(k, out var v) && string.Equals(v, value, StringComparison.Ordinal)), cancellationToken);
    }

    private static string Escape(string text) => text.Replace("\\", "\\\\", StringComparison.Ordinal)
        .Replace("%", "\\%", StringComparison.Ordinal).Replace("_", "\\_", StringComparison.Ordinal);
}
