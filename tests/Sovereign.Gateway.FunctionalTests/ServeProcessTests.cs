using System.Net;
using System.Net.Sockets;
using Microsoft.Data.Sqlite;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// How the tests start <c>sovereign serve</c>: on port 0, the port read from serve's own ready line, so no two tests
/// can race for a port chosen beforehand (a <see cref="ServeProcess.FreePort"/> port is free when chosen, not when
/// bound); and a server that exits during start-up fails the test with its last output, which says why. Session 50
/// saw such a start fail as only "the server exited during start-up", its cause unknown.
/// </summary>
public sealed class ServeProcessTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-serveprocess-").FullName;
    private readonly FakeChatEngine _engine = new();

    public Task InitializeAsync() => _engine.InitializeAsync();

    public async Task DisposeAsync()
    {
        await _engine.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task OnPortZero_TheReadyLineNamesThePortBound_AndTheServerAnswersThere()
    {
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var server = await ServeProcess.StartAsync(["--engine", _engine.BaseUrl, "--engine-model", "fake", "--data-dir", _data], output: lines.Enqueue);
        try
        {
            Assert.InRange(server.Port, 1, 65535);
            Assert.Contains($"sovereign serve: ready on http://127.0.0.1:{server.Port} (console: http://127.0.0.1:{server.Port}/console).", lines);
            using var client = new HttpClient { BaseAddress = server.BaseAddress };
            using var response = await client.GetAsync("/ready");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        finally
        {
            await ServeProcess.StopAsync(server);
        }
    }

    /// <summary>The race a chosen port loses, played out: another process holds it. The failure says so.</summary>
    [Fact]
    public async Task OnAPortAnotherProcessHolds_TheStartFails_WithTheServersOwnReason()
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        var taken = ((IPEndPoint)holder.LocalEndpoint).Port;

        var failed = await Assert.ThrowsAsync<Xunit.Sdk.XunitException>(() =>
            ServeProcess.StartAsync(taken, ["--engine", _engine.BaseUrl, "--engine-model", "fake", "--data-dir", _data]));

        Assert.Contains("the server exited during start-up (exit 2)", failed.Message, StringComparison.Ordinal);
        Assert.Contains("sovereign serve: cannot start:", failed.Message, StringComparison.Ordinal);
        Assert.Contains(taken.ToString(System.Globalization.CultureInfo.InvariantCulture), failed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ASettingServeRefuses_FailsTheStart_NamingIt()
    {
        var failed = await Assert.ThrowsAsync<Xunit.Sdk.XunitException>(() =>
            ServeProcess.StartAsync(["--engine", _engine.BaseUrl, "--engine-model", "fake", "--data-dir", _data],
                new Dictionary<string, string> { ["Sovereign__RelayProxy"] = "proxy.example:3128" }));

        Assert.Contains("the server exited during start-up (exit 2)", failed.Message, StringComparison.Ordinal);
        Assert.Contains("Sovereign:RelayProxy", failed.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("sovereign serve: ready on http://127.0.0.1:41234 (console: http://127.0.0.1:41234/console).", 41234)]
    [InlineData("sovereign serve: ready on http://127.0.0.1:8080, http://[::1]:8080 (console: http://127.0.0.1:8080/console).", 8080)]
    [InlineData("sovereign serve: loading 1 model(s): stories (1 MiB)...", null)]
    [InlineData("sovereign serve: ready on http://127.0.0.1:0 (console: http://127.0.0.1:0/console).", null)]
    public void ReadyPort_IsThePortOfTheFirstAddress(string line, int? port) => Assert.Equal(port, ServeProcess.ReadyPort(line));
}
