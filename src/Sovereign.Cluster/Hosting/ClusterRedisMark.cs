using System.Net;
using StackExchange.Redis;

namespace Sovereign.Cluster.Hosting;

/// <summary>
/// Tells apart clusters that share a <see cref="SovereignClusterOptions.ClusterId"/> but not a Redis. Their members
/// claimed a PostgreSQL database under one name (<c>cluster:&lt;ClusterId&gt;</c>), so a second cluster named alike on
/// another Redis started on the first one's database, each with grains of its own: a tenant's budget admitted twice, a
/// key revoked in one still accepted by the other. The mark is a random value kept in the cluster's Redis, set once by
/// whichever member comes first (SET NX), which every member then adds to the claim's name.
/// </summary>
public static class ClusterRedisMark
{
    /// <summary>Reads the mark of the cluster <paramref name="options"/> names, creating it if its Redis has none yet.</summary>
    /// <returns>The mark, and the Redis endpoints to name in messages (never its password).</returns>
    /// <exception cref="InvalidOperationException">Redis cannot be reached or refuses this member's password; the message names the setting.</exception>
    public static async Task<(string Mark, string Redis)> GetOrCreateAsync(SovereignClusterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var configuration = ConfigurationOptions.Parse(options.Redis ?? throw new ArgumentException("A cluster mark needs Sovereign:Cluster:Redis.", nameof(options)));
        var endpoints = string.Join(", ", configuration.EndPoints.Select(Describe));
        try
        {
            await using var redis = await ConnectionMultiplexer.ConnectAsync(configuration);
            var database = redis.GetDatabase();
            var key = new RedisKey($"{options.ClusterId}/sovereign-database-mark");

            // Members starting together on an empty Redis all read the first one's mark.
            await database.StringSetAsync(key, Guid.NewGuid().ToString("N"), when: When.NotExists);
            var mark = (string?)await database.StringGetAsync(key);
            return (mark ?? throw new InvalidOperationException($"The cluster's mark in Redis ({endpoints}) vanished as it was read; start again."), endpoints);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new InvalidOperationException(
                RefusedCredentials(ex, endpoints) ?? $"Redis ({endpoints}, Sovereign:Cluster:Redis) could not be reached to learn which cluster this member belongs to: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Records <paramref name="identity"/> (the identity of this member's database, <c>DatabaseIdentity</c>) as the
    /// cluster's database in its Redis (<c>{ClusterId}/sovereign-database-identity</c>) unless one is recorded already
    /// (SET NX), and returns the one recorded: a member whose database is another than the one its cluster recorded is
    /// on another database than the other members (a restore beside the original, a member left pointing at the old
    /// one, a fresh database by mistake), and must not start. <paramref name="replace"/>: the operator rebinds the
    /// cluster to this database (SET).
    /// </summary>
    /// <returns>The identity the cluster's Redis records, and the Redis endpoints to name in messages (never its password).</returns>
    /// <exception cref="InvalidOperationException">Redis cannot be reached or refuses this member's password; the message names the setting.</exception>
    public static async Task<(string Recorded, string Redis)> BindDatabaseAsync(SovereignClusterOptions options, string identity, bool replace)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(identity);
        var configuration = ConfigurationOptions.Parse(options.Redis ?? throw new ArgumentException("A cluster's database identity needs Sovereign:Cluster:Redis.", nameof(options)));
        var endpoints = string.Join(", ", configuration.EndPoints.Select(Describe));
        try
        {
            await using var redis = await ConnectionMultiplexer.ConnectAsync(configuration);
            var database = redis.GetDatabase();
            var key = new RedisKey($"{options.ClusterId}/sovereign-database-identity");
            await database.StringSetAsync(key, identity, when: replace ? When.Always : When.NotExists);
            var recorded = (string?)await database.StringGetAsync(key);
            return (recorded ?? throw new InvalidOperationException($"The cluster's database identity in Redis ({endpoints}) vanished as it was read; start again."), endpoints);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new InvalidOperationException(
                RefusedCredentials(ex, endpoints) ?? $"Redis ({endpoints}, Sovereign:Cluster:Redis) could not be reached to learn which database this cluster uses: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Before the silo connects to the cluster's Redis with this member's credentials: throws when Redis refuses them,
    /// with the line <see cref="GetOrCreateAsync"/> says for a gateway. A <c>--role node</c>, which reads no mark,
    /// printed Orleans' own RedisConnectionException and stack instead. A Redis that cannot be reached is left to the
    /// silo's start, which reports it as before.
    /// </summary>
    /// <exception cref="InvalidOperationException">Redis refused the password (or required one); the message names the setting.</exception>
    public static async Task CheckCredentialsAsync(SovereignClusterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var configuration = ConfigurationOptions.Parse(options.Redis ?? throw new ArgumentException("A cluster needs Sovereign:Cluster:Redis.", nameof(options)));
        var endpoints = string.Join(", ", configuration.EndPoints.Select(Describe));
        try
        {
            await using var redis = await ConnectionMultiplexer.ConnectAsync(configuration);
            await redis.GetDatabase().PingAsync();
        }
        catch (Exception ex) when ((ex is RedisException or TimeoutException) && RefusedCredentials(ex, endpoints) is { } refused)
        {
            throw new InvalidOperationException(refused, ex);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Not reached: the silo's own start tries, and says so.
        }
    }

    /// <summary>The line for a Redis that refused this member's credentials, or null when it did not refuse them.</summary>
    private static string? RefusedCredentials(Exception ex, string endpoints) => RefusalOf(ex) switch
    {
        // It was reached, and said no: "could not be reached" sent the operator to the network.
        AuthenticationRefusal.WrongPassword =>
            $"Redis ({endpoints}) refused the password (or user) this member gave it: set the password Redis expects (password=...) in Sovereign:Cluster:Redis.",
        AuthenticationRefusal.PasswordRequired =>
            $"Redis ({endpoints}) requires a password, and Sovereign:Cluster:Redis gives none: add password=... to it.",
        _ => null,
    };

    private enum AuthenticationRefusal
    {
        None,
        WrongPassword,
        PasswordRequired,
    }

    /// <summary>
    /// Whether Redis refused this member's credentials: WRONGPASS (a wrong password, or an unknown ACL user) or NOAUTH
    /// (none given). StackExchange.Redis reports either as a connection failure whose message, or an inner one's,
    /// carries Redis' own error.
    /// </summary>
    private static AuthenticationRefusal RefusalOf(Exception ex)
    {
        for (var error = (Exception?)ex; error is not null; error = error.InnerException)
        {
            if (error.Message.Contains("WRONGPASS", StringComparison.Ordinal))
            {
                return AuthenticationRefusal.WrongPassword;
            }

            if (error.Message.Contains("NOAUTH", StringComparison.Ordinal))
            {
                return AuthenticationRefusal.PasswordRequired;
            }
        }

        return ex is RedisConnectionException { FailureType: ConnectionFailureType.AuthenticationFailure } ? AuthenticationRefusal.WrongPassword : AuthenticationRefusal.None;
    }

    private static string Describe(EndPoint endpoint) => endpoint switch
    {
        DnsEndPoint dns => $"{dns.Host}:{dns.Port}",
        _ => endpoint.ToString() ?? "?",
    };
}
