using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Sovereign.Cluster.Hosting;

namespace Sovereign.Cluster.Tests;

/// <summary>
/// The first thing a gateway asks its cluster's Redis is the cluster's mark (<see cref="ClusterRedisMark"/>); a Redis
/// that refuses the member's password was reported as one that "could not be reached", which sends the operator to the
/// network instead of the password. A redis-server of the test's own, with a password.
/// </summary>
public sealed class ClusterRedisMarkTests : IDisposable
{
    private const string Password = "the-right-password";
    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-redis-mark-").FullName;
    private readonly Process _redis;
    private readonly int _port;

    public ClusterRedisMarkTests()
    {
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            _port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        _redis = Sovereign.Tests.RedisServerProcess.Start(_port, _directory, Password);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                using var probe = new TcpClient();
                probe.Connect(IPAddress.Loopback, _port);
                return;
            }
            catch (SocketException) when (attempt < 100)
            {
                Thread.Sleep(100);
            }
        }
    }

    private SovereignClusterOptions Options(string? password) => new()
    {
        Redis = $"127.0.0.1:{_port}" + (password is null ? "" : ",password=" + password),
        ClusterId = "mark-test",
    };

    [Fact]
    public async Task WrongPassword_IsSaidToBeRefused_NamingTheSetting_NotUnreachable()
    {
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => ClusterRedisMark.GetOrCreateAsync(Options("not-the-password")));

        Assert.Equal(
            $"Redis (127.0.0.1:{_port}) refused the password (or user) this member gave it: set the password Redis expects (password=...) in Sovereign:Cluster:Redis.",
            ex.Message);
    }

    [Fact]
    public async Task NoPassword_ForARedisThatRequiresOne_IsSaidSo_NamingTheSetting()
    {
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => ClusterRedisMark.GetOrCreateAsync(Options(null)));

        Assert.Equal($"Redis (127.0.0.1:{_port}) requires a password, and Sovereign:Cluster:Redis gives none: add password=... to it.", ex.Message);
    }

    [Fact]
    public async Task RightPassword_ReadsTheMark()
    {
        var (mark, redis) = await ClusterRedisMark.GetOrCreateAsync(Options(Password));

        Assert.Equal(32, mark.Length);
        Assert.Equal($"127.0.0.1:{_port}", redis);
    }

    public void Dispose()
    {
        _redis.Kill();
        _redis.WaitForExit();
        _redis.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}
