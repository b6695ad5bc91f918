using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Gateway.ControlPlane;

/// <summary>The operator credential that authenticated an admin request.</summary>
/// <param name="Id">
/// The credential's id: <c>opk_…</c> for an operator key issued through the API, else the actor of a configured token
/// (<c>operator</c>, <c>operator:NAME</c>). Never the secret.
/// </param>
/// <param name="Actor">
/// What the audit log records as who acted: <c>operator</c>, <c>operator:NAME</c> for a named configured token, and
/// <c>operator:NAME/opk_…</c> for an issued key (names of configured tokens hold no '/', so the two never meet).
/// </param>
/// <param name="Hash">The SHA-256 of the presented secret, lowercase hex (the row it would be revoked under).</param>
public sealed record OperatorCredential(string Id, string Actor, string Hash);

/// <summary>
/// Operator keys issued and revoked through the admin API (<c>/admin/v1/operator-keys</c>), beside the tokens set in
/// configuration, so the operator credential rotates with overlap and without a restart: issue a new key, move the CLI,
/// the console and the scrapers to it, revoke the old one (a configured token included). The keys live in the shared
/// database as SHA-256 hashes only; every member reads the presented key's row on each operator request (one indexed
/// read), so a revocation made at one gateway is refused at every gateway from its answer on, with no cache to expire.
/// </summary>
public sealed partial class AdminToken
{
    /// <summary>Every operator key issued through the API starts with this (tenant keys start with <c>sk-sov-</c>).</summary>
    public const string KeyPrefix = "sov-op-";

    // Configured tokens this member last read as revoked (by hash), to decide on while the database cannot be read: a
    // revocation cannot be written then, so the last answer read stays the latest this member can know.
    private readonly ConcurrentDictionary<string, bool> _configuredRevoked = new(StringComparer.Ordinal);

    /// <summary>Makes an operator key: its id, the secret (shown once), the visible prefix and the hash to store.</summary>
    public static (string Id, string Secret, string VisiblePrefix, string Hash) CreateKey()
    {
        var id = "opk_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var secret = KeyPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return (id, secret, secret[..(KeyPrefix.Length + 6)], HashOf(secret));
    }

    /// <summary>Lowercase hex SHA-256 of a secret (a fast hash is right: issued keys carry 256 random bits).</summary>
    public static string HashOf(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>The audit actor of an issued operator key.</summary>
    public static string ActorForKey(string name, string id) => DefaultActor + ":" + name + "/" + id;

    /// <summary>The configured tokens of this member, by id (their actor), with the hash each would be revoked under.</summary>
    public IReadOnlyList<(string Id, string Hash)> ConfiguredTokens() =>
        [.. _tokens.Select(t => (t.Actor, Convert.ToHexStringLower(t.Hash)))];

    /// <summary>
    /// The operator credential a presented bearer token is, or null: a configured token (compared with each in constant
    /// time) not revoked, or an operator key issued through the API, neither revoked nor expired. A token that is
    /// neither a configured one nor shaped as an issued key is refused without reading the database. While the database
    /// cannot be read, a configured token is decided on what this member last read of it and an issued key is refused
    /// (fail closed; event 4164).
    /// </summary>
    public async ValueTask<OperatorCredential?> IdentifyAsync(string? presented, CancellationToken cancellationToken = default) =>
        (await AuthenticateAsync(presented, cancellationToken)).Credential;

    /// <summary>
    /// As <see cref="IdentifyAsync"/>, with the refusal to answer a credential this server knows but no longer accepts:
    /// revoked (a configured token or an issued key) or expired (an issued key), naming it and when, as a tenant's revoked
    /// or expired key is named. The holder of the secret learns only what happened to it; any other token is refused as
    /// before, without a reason. An operator whose token was revoked was told the admin API "needs the operator token", and
    /// the CLI added to send the one in the data directory: the very token refused.
    /// </summary>
    internal async ValueTask<(OperatorCredential? Credential, OpenAI.OpenAIException? Refused)> AuthenticateAsync(string? presented, CancellationToken cancellationToken = default)
    {
        if (presented is null)
        {
            return (null, null);
        }

        var configured = Identify(presented);
        var issuedShape = presented.StartsWith(KeyPrefix, StringComparison.Ordinal);
        if (configured is null && !issuedShape)
        {
            return (null, null);
        }

        var hash = HashOf(presented);
        if (_store.Value is not { } store)
        {
            return (configured is null ? null : new OperatorCredential(configured, configured, hash), null);
        }

        OperatorKeyRecord? row;
        try
        {
            row = await store.FindOperatorKeyByHashAsync(hash, cancellationToken);
        }
        catch (Exception ex) when (ex is System.Data.Common.DbException or TimeoutException || DatabaseHealth.StorageFault(ex) is not null)
        {
            LogOperatorKeysUnreadable(_logger, ex.GetType().Name);
            return (configured is not null && !_configuredRevoked.ContainsKey(hash) ? new OperatorCredential(configured, configured, hash) : null, null);
        }

        if (configured is not null)
        {
            if (row?.RevokedAt is not null)
            {
                _configuredRevoked[hash] = true;
                LogOperatorKeyRefused(_logger, row.Id, "revoked");
                return (null, Revoked(configured, row.RevokedAt.Value));
            }

            _configuredRevoked.TryRemove(hash, out _);
            return (new OperatorCredential(configured, configured, hash), null);
        }

        if (row is null || row.Prefix is null)
        {
            return (null, null);
        }

        if (row.RevokedAt is not null)
        {
            LogOperatorKeyRefused(_logger, row.Id, "revoked");
            return (null, Revoked(row.Id, row.RevokedAt.Value));
        }

        if (row.ExpiresAt is { } expires && _time.GetUtcNow().ToUnixTimeMilliseconds() >= expires)
        {
            LogOperatorKeyRefused(_logger, row.Id, "expired");
            return (null, new OpenAI.OpenAIException(Microsoft.AspNetCore.Http.StatusCodes.Status401Unauthorized,
                $"The operator credential {row.Id} expired at {Time(expires)}: use another operator key or token (sovereign admin-keys list, run with one, shows them all).",
                "invalid_request_error", null, "key_expired"));
        }

        return (new OperatorCredential(row.Id, ActorForKey(row.Name, row.Id), hash), null);
    }

    /// <summary>The refusal of a revoked operator credential, named by its id (<c>operator</c>, <c>operator:NAME</c>, <c>opk_...</c>).</summary>
    private static OpenAI.OpenAIException Revoked(string id, long revokedAt) => OpenAI.OpenAIException.Unauthorized(
        $"The operator credential {id} was revoked at {Time(revokedAt)}: use another operator key or token (sovereign admin-keys list, run with one, "
        + "shows them all; with none left, see \"Locked out\" in the operator guide).");

    private static string Time(long unixMilliseconds) =>
        DateTimeOffset.FromUnixTimeMilliseconds(unixMilliseconds).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Whether a presented bearer token is an operator credential now (<see cref="IdentifyAsync"/>).</summary>
    public async ValueTask<bool> MatchesAsync(string? presented, CancellationToken cancellationToken = default) =>
        await IdentifyAsync(presented, cancellationToken) is not null;

    [LoggerMessage(EventId = 4163, EventName = "OperatorKeyRefused", Level = LogLevel.Warning,
        Message = "An operator credential that is {State} was presented: {KeyId} (a leaked one still in use, or a client not moved to the new one yet)")]
    private static partial void LogOperatorKeyRefused(ILogger logger, string keyId, string state);

    [LoggerMessage(EventId = 4164, EventName = "OperatorKeysUnreadable", Level = LogLevel.Warning,
        Message = "The database could not be read to check an operator credential ({Error}): configured operator tokens are decided on what this member last read, operator keys issued through the API are refused until it can be read")]
    private static partial void LogOperatorKeysUnreadable(ILogger logger, string error);
}
