using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Sovereign.Gateway.ControlPlane;

namespace Sovereign.Gateway.FunctionalTests.Cluster;

/// <summary>
/// A node's join is bounded as a whole by <c>Sovereign:Cluster:JoinTimeoutSeconds</c>: a gateway URL that refuses
/// connections, or accepts them and never answers, stops the node's start with a message naming the setting, and each
/// failed attempt is logged (event 3005). Nothing here asserts a duration.
/// </summary>
public sealed class ClusterJoinTimeoutTests : IDisposable
{
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-join-timeout-").FullName;

    public void Dispose() => Directory.Delete(_data, recursive: true);

    [Fact]
    public void Prepare_AGatewayThatRefusesConnections_FailsNamingTheSettingAndLogsEachAttempt()
    {
        var joinUrl = $"http://127.0.0.1:{Sovereign.Tests.LoopbackPorts.Unused()}";
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Sovereign:NodeId"] = "node-unjoined",
            ["Sovereign:DataDirectory"] = _data,
            ["Sovereign:Cluster:Role"] = "node",
            ["Sovereign:Cluster:JoinToken"] = "sov-join-never-used",
            ["Sovereign:Cluster:JoinUrl"] = joinUrl,
            ["Sovereign:Cluster:JoinTimeoutSeconds"] = "2",
            ["Sovereign:Cluster:InsecureTransport"] = "true",
        });
        var logged = new ConcurrentQueue<(EventId Id, LogLevel Level, string Message)>();
        using var loggers = LoggerFactory.Create(logging => logging.AddProvider(new CapturingProvider(logged)));

        var failure = Assert.Throws<InvalidOperationException>(() => ClusterJoiner.Prepare(builder, loggers));

        Assert.Contains("Sovereign:Cluster:JoinTimeoutSeconds", failure.Message, StringComparison.Ordinal);
        Assert.Contains(joinUrl, failure.Message, StringComparison.Ordinal);
        Assert.Contains("could not join the cluster", failure.Message, StringComparison.Ordinal);
        var attempts = logged.Where(entry => entry.Id.Id == 3005).ToList();
        Assert.NotEmpty(attempts);
        Assert.All(attempts, attempt => Assert.Equal(LogLevel.Warning, attempt.Level));
        Assert.StartsWith("Join attempt 1 through " + joinUrl, attempts[0].Message, StringComparison.Ordinal);

        // Nothing was kept: the next start joins again instead of running with half a join.
        Assert.Empty(Directory.EnumerateFiles(_data));
        Assert.False(File.Exists(Path.Combine(_data, JoinResponse.FileName)));
    }

    [Fact]
    public async Task Serve_AGatewayThatAcceptsButNeverAnswers_StopsTheStartWithTheSettingsName()
    {
        // A listener that never accepts: the kernel completes the handshake, and the join request waits for an answer
        // that never comes, as with a black-holed gateway.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var joinUrl = $"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}";

        var (exitCode, _, stderr) = await CliProcess.RunAsync(
            new Dictionary<string, string?> { ["Sovereign__Cluster__JoinTimeoutSeconds"] = "2", ["Sovereign__Cluster__InsecureTransport"] = "true" },
            "serve", "--role", "node", "--node-id", "node-silent", "--join-token", "sov-join-never-used", "--join-url", joinUrl,
            "--urls", "http://127.0.0.1:0", "--data-dir", _data);

        Assert.Equal(2, exitCode);
        Assert.Contains("sovereign serve: cannot start: This node could not join the cluster through " + joinUrl, stderr, StringComparison.Ordinal);
        Assert.Contains("Sovereign:Cluster:JoinTimeoutSeconds", stderr, StringComparison.Ordinal);
        Assert.Contains("no answer before the join timeout", stderr, StringComparison.Ordinal);
    }

    private sealed class CapturingProvider(ConcurrentQueue<(EventId, LogLevel, string)> sink) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(sink);

        public void Dispose()
        {
        }

        private sealed class Logger(ConcurrentQueue<(EventId, LogLevel, string)> sink) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                sink.Enqueue((eventId, logLevel, formatter(state, exception)));
        }
    }
}
