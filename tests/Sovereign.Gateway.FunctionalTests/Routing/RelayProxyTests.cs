using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Data.Sqlite;

namespace Sovereign.Gateway.FunctionalTests.Routing;

/// <summary>
/// The relay to an engine honoured the environment's HTTP_PROXY / HTTPS_PROXY / ALL_PROXY (.NET's default proxy): a
/// proxy set machine-wide, or inherited from a shell, carried every prompt and answer, wherever it ran, past the
/// residency decision. A real <c>serve</c> process is started with all of them pointing at a listener that counts
/// connections: the relay goes to the engine directly, the start says the environment's proxy is not used (event
/// 4124), and only <c>Sovereign:RelayProxy</c> sends relays through a proxy.
/// </summary>
public sealed class RelayProxyTests : IAsyncLifetime
{
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-relay-proxy-").FullName;
    private readonly FakeChatEngine _engine = new();
    private readonly TcpListener _proxy = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private int _proxyConnections;
    private Task _accepting = Task.CompletedTask;

    private string ProxyUrl => $"http://127.0.0.1:{((IPEndPoint)_proxy.LocalEndpoint).Port}";

    public async Task InitializeAsync()
    {
        await _engine.InitializeAsync();
        _proxy.Start();
        _accepting = AcceptAsync();
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        _proxy.Stop();
        await _accepting;
        await _engine.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task ProxyInTheEnvironment_IsNotUsed_TheRelayGoesToTheEngineDirectly()
    {
        var environment = new Dictionary<string, string> { ["NO_PROXY"] = "", ["no_proxy"] = "" };
        foreach (var name in new[] { "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy" })
        {
            environment[name] = ProxyUrl;
        }

        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var server = await ServeProcess.StartAsync(["--engine", _engine.BaseUrl, "--engine-model", "fake", "--data-dir", _data], environment, output.Enqueue);
        try
        {
            using var client = new HttpClient { BaseAddress = server.BaseAddress };
            using var response = await client.PostAsync("/v1/chat/completions", Chat());

            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, body);
            Assert.Contains(string.Concat(FakeChatEngine.Words), body, StringComparison.Ordinal);
            Assert.Single(_engine.Received);
            Assert.Equal(0, Volatile.Read(ref _proxyConnections));
        }
        finally
        {
            await ServeProcess.StopAsync(server);
        }

        // Said once at start, naming the variables (never their values, which may hold a password) and the setting.
        var log = string.Join('\n', output);
        Assert.Contains("[4124]", log, StringComparison.Ordinal);
        Assert.Contains("The environment sets HTTPS_PROXY, https_proxy, HTTP_PROXY, http_proxy, ALL_PROXY, all_proxy; relays to engines and cluster nodes do not use it", log, StringComparison.Ordinal);
        Assert.Contains("Sovereign:RelayProxy", log, StringComparison.Ordinal);
    }

    /// <summary>The proxy the operator names is the one relays go through (here it refuses, so the engine is not reached).</summary>
    [Fact]
    public async Task RelayProxySetting_IsUsed()
    {
        var server = await ServeProcess.StartAsync(["--engine", _engine.BaseUrl, "--engine-model", "fake", "--data-dir", _data],
            new Dictionary<string, string> { ["Sovereign__RelayProxy"] = ProxyUrl });
        try
        {
            using var client = new HttpClient { BaseAddress = server.BaseAddress };
            using var response = await client.PostAsync("/v1/chat/completions", Chat());

            Assert.NotEqual(HttpStatusCode.OK, response.StatusCode);
            Assert.True(Volatile.Read(ref _proxyConnections) > 0);
            Assert.Empty(_engine.Received);
        }
        finally
        {
            await ServeProcess.StopAsync(server);
        }
    }

    /// <summary>A setting that names no usable proxy stops the start, naming it.</summary>
    [Theory]
    [InlineData("proxy.example:3128")]
    [InlineData("ftp://proxy.example")]
    [InlineData("http://proxy.example:3128/path")]
    public async Task RelayProxySetting_ThatIsNotAProxyUrl_StopsTheStart(string value)
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(
            new Dictionary<string, string?> { ["Sovereign__RelayProxy"] = value, ["Sovereign__Jurisdiction"] = "DE", ["Sovereign__BuiltInEmbeddings"] = "false" },
            "serve", "--urls", "http://127.0.0.1:0", "--engine", _engine.BaseUrl, "--engine-model", "fake", "--data-dir", _data);

        Assert.True(exit == 2, $"{exit}: {stdout}{stderr}");
        Assert.Contains("Sovereign:RelayProxy", stdout + stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://proxy.example:3128", true)]
    [InlineData("https://proxy.example", true)]
    [InlineData("socks5://127.0.0.1:1080", true)]
    [InlineData("http://user:p%40ss@proxy.example:3128", true)]
    [InlineData("", true)]
    [InlineData("proxy.example:3128", false)]
    [InlineData("ftp://proxy.example", false)]
    [InlineData("http://proxy.example:3128/path", false)]
    [InlineData("http://proxy.example:3128/?x=1", false)]
    public void RelayProxySetting_IsCheckedAsAProxyUrl(string value, bool usable) =>
        Assert.Equal(usable, Sovereign.Gateway.ControlPlane.RelayProxy.Problem(value) is null);

    /// <summary>A refused value is quoted without its password: the refusal goes to the console and the log.</summary>
    [Theory]
    [InlineData("ftp://user:s3cret-pw@proxy.example")]
    [InlineData("user:s3cret-pw@proxy.example:3128")]
    [InlineData("http://user:s3cret-pw@proxy.example:3128/path")]
    public void RelayProxySetting_Refused_NeverQuotesItsPassword(string value)
    {
        var problem = Sovereign.Gateway.ControlPlane.RelayProxy.Problem(value);
        Assert.NotNull(problem);
        Assert.DoesNotContain("s3cret-pw", problem, StringComparison.Ordinal);
        Assert.Contains("proxy.example", problem, StringComparison.Ordinal);
    }

    private static StringContent Chat() => new("""{"model":"fake","messages":[{"role":"user","content":"Hello"}]}""", Encoding.UTF8, "application/json");

    /// <summary>Counts each connection and refuses it as a proxy that cannot reach the target would.</summary>
    private async Task AcceptAsync()
    {
        var refusal = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray();
        while (!_stop.IsCancellationRequested)
        {
            TcpClient connection;
            try
            {
                connection = await _proxy.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            Interlocked.Increment(ref _proxyConnections);
            using (connection)
            {
                try
                {
                    await connection.GetStream().WriteAsync(refusal, _stop.Token);
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException)
                {
                }
            }
        }
    }
}
