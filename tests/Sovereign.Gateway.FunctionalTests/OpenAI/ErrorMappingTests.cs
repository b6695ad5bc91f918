using System.Net.Sockets;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.FunctionalTests.OpenAI;

/// <summary>How failures become what a client sees: a cluster that is healing is a retryable 503, never a 500.</summary>
public sealed class ErrorMappingTests
{
    public static TheoryData<Exception> UnreachableClusterMembers() =>
    [
        new Orleans.Runtime.SiloUnavailableException("silo gone"),
        new Orleans.Runtime.Messaging.ConnectionFailedException("connection refused"),
        new Orleans.Runtime.GatewayTooBusyException(),
        new TimeoutException("response timed out"),
        new StackExchange.Redis.RedisConnectionException(StackExchange.Redis.ConnectionFailureType.SocketClosed, "SocketClosed on 127.0.0.1:6379"),
        // A grain's first activation while Redis (the grain directory) is down, as Orleans' Redis directory throws it
        // (logged by a gateway with Redis killed): the Redis error is in the message, there is no inner exception.
        new Orleans.Runtime.OrleansException(
            "Lookup failed for apikey/dd0fcce2 : StackExchange.Redis.RedisConnectionException: The message timed out in the backlog attempting to send because no connection became available (5000ms)"),
        new Orleans.Runtime.OrleansException("Lookup failed for apikey/3a22",
            new StackExchange.Redis.RedisConnectionException(StackExchange.Redis.ConnectionFailureType.SocketClosed, "SocketClosed on 127.0.0.1:6379")),
    ];

    [Theory]
    [MemberData(nameof(UnreachableClusterMembers))]
    public void Map_AGrainCallToAMemberThatCannotBeReached_IsA503WithRetryAfter(Exception failure)
    {
        var error = OpenAIErrorResults.Map(failure, maxBodyBytes: 1 << 20);

        Assert.Equal(503, error.Status);
        Assert.Equal("cluster_unavailable", error.Code);
        Assert.NotNull(error.RetryAfter);
    }

    /// <summary>
    /// PostgreSQL down mid-run: a key or tenant grain that cannot load, or a ledger commit on a broken connection, was
    /// a 500 without Retry-After on every request until the database came back.
    /// </summary>
    [Fact]
    public void Map_TheDatabaseUnreachable_IsA503WithRetryAfter()
    {
        var refused = new Npgsql.NpgsqlException("Failed to connect to 127.0.0.1:5432", new SocketException((int)SocketError.ConnectionRefused));
        var broken = new Npgsql.NpgsqlException("Exception while reading from stream", new EndOfStreamException());

        // The same failure in a grain on another cluster member arrives as the grain's translation (StorageFailures).
        var elsewhere = new Sovereign.Cluster.Grains.StorageUnavailableException("The database is not reachable right now (NpgsqlException: Failed to connect to 127.0.0.1:5432).");

        foreach (var failure in new Exception[] { refused, broken, elsewhere })
        {
            var error = OpenAIErrorResults.Map(failure, maxBodyBytes: 1 << 20);
            Assert.Equal((503, OpenAIErrorResults.StorageUnavailableCode), (error.Status, error.Code));
            Assert.NotNull(error.RetryAfter);
            Assert.DoesNotContain("127.0.0.1", error.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Map_AnUnexpectedFault_IsA500WithoutItsMessage()
    {
        var error = OpenAIErrorResults.Map(new InvalidOperationException("secret internals"), maxBodyBytes: 1 << 20);

        Assert.Equal(500, error.Status);
        Assert.DoesNotContain("secret", error.Message, StringComparison.Ordinal);
    }
}
