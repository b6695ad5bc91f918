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
    /// <exception cref="InvalidOperationException">Redis cannot be reached; the message names the setting.</exception>
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
                $"Redis ({endpoints}, Sovereign:Cluster:Redis) could not be reached to learn which cluster this member belongs to: {ex.Message}", ex);
        }
    }

    private static string Describe(EndPoint endpoint) => endpoint switch
    {
        DnsEndPoint dns => $"{dns.Host}:{dns.Port}",
        _ => endpoint.ToString() ?? "?",
    };
}
