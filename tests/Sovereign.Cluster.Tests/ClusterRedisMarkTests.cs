using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
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
        _port = Sovereign.Tests.LoopbackPorts.Unused();

        _redis = Sovereign.Tests.RedisServerProcess.Start(_port, _directory, Password);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                using var probe = new TcpClient();
                probe.Connect(IPAddress.Loopback, _port);
                return;
            }
            catch (SocketException) when (attempt < 1200) // two minutes, a bound for a hang: a loaded machine can take 10 s to start redis-server
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

    /// <summary>
    /// A <c>--role node</c> reads no mark: with a wrong password it printed Orleans' own RedisConnectionException and
    /// stack. Now the host's start stops before the silo with the same line (serve answers it with exit 2, as a CA of
    /// another cluster).
    /// </summary>
    [Fact]
    public async Task NodeHost_WithAWrongPassword_StopsBeforeTheSilo_WithTheLineNamingTheSetting()
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Sovereign:DataDirectory"] = _directory,
            ["Sovereign:NodeId"] = "node-wrong-password",
            ["Sovereign:Cluster:Role"] = "Node",
            ["Sovereign:Cluster:Redis"] = $"127.0.0.1:{_port},password=not-the-password",
            ["Sovereign:Cluster:ClusterId"] = "mark-test",
            ["Sovereign:Cluster:Secret"] = "mark-test-secret",
            ["Sovereign:Cluster:InsecureTransport"] = "true",
            ["Sovereign:Cluster:NodeUrl"] = "http://127.0.0.1:1",
        });
        // What the control plane registers beside the cluster in serve (read by certificate revocation): never opened here.
        builder.Services.AddSingleton(new Sovereign.Residency.ControlPlane.ControlPlaneStore(Sovereign.Storage.SqlDatabase.Sqlite(Path.Combine(_directory, "unused.db"))));
        builder.AddSovereignCluster();
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => host.StartAsync());

        Assert.True(
            ex.Message == $"Redis (127.0.0.1:{_port}) refused the password (or user) this member gave it: set the password Redis expects (password=...) in Sovereign:Cluster:Redis.",
            ex.ToString());
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
