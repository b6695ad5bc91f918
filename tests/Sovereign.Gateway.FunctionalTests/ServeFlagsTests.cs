using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Sovereign.Cli.Commands;
using Sovereign.Cli.Output;
using Sovereign.Gateway.Models;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>sovereign serve</c> on embedded defaults (the README's first command) with the flags its help lists. Found by
/// hand: without <c>--model</c>, <c>--threads</c>, <c>--parallel</c>, <c>--ctx-size</c> and <c>--chat-template</c> were
/// silently ignored (the test model ran with 8 sequences and a 2,048-token context whatever they said; <c>--parallel
/// -1</c> started the server), and a port already taken was "cannot reach the server ... Is `sovereign serve`
/// running?" with exit 4.
/// </summary>
public sealed class ServeFlagsTests : IDisposable
{
    private static readonly Dictionary<string, string?> Quiet = new() { ["Sovereign__BuiltInEmbeddings"] = "false", ["OMP_WAIT_POLICY"] = "PASSIVE" };

    private readonly string _directory = Directory.CreateTempSubdirectory("sovereign-serve-flags-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task WithoutAModel_TheModelFlags_RunTheBuiltInTestModel()
    {
        await using var app = Build(new ServeSettings { Urls = "http://127.0.0.1:0", DataDirectory = _directory, Parallel = 3, Threads = 1, ContextLength = 256 });
        await app.StartAsync();

        Assert.True(app.Services.GetRequiredService<ModelCatalog>().TryGet(BuiltInTestModel.Id, out var served));
        var options = served.Batcher!.Model.Options;
        Assert.Equal(3, options.Parallel);
        Assert.Equal(1, options.Threads);
        Assert.Equal(256, options.ContextLength);
    }

    [Theory]
    [InlineData(-1, null, "Sovereign:TestModel:Parallel")]
    [InlineData(null, -2, "Sovereign:TestModel:Threads")]
    public async Task WithoutAModel_AnInvalidModelFlag_StopsTheStart_NamingIt(int? parallel, int? threads, string setting)
    {
        await using var app = Build(new ServeSettings { Urls = "http://127.0.0.1:0", DataDirectory = _directory, Parallel = parallel, Threads = threads });

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains(setting, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task APortAlreadyTaken_IsAStartFailure_NotAnUnreachableServer()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var url = $"http://127.0.0.1:{((IPEndPoint)taken.LocalEndpoint).Port}";

        var (exit, _, stderr) = await CliProcess.RunAsync(Quiet, "serve", "--urls", url, "--data-dir", _directory, "--threads", "1");

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains("cannot start: ", stderr, StringComparison.Ordinal);
        Assert.Contains("address already in use", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("cannot reach", stderr, StringComparison.Ordinal);

        // Said before any model loads (it was said after, when Kestrel bound: a minute into a large model's start),
        // naming the flag and the port.
        Assert.DoesNotContain("loading", stderr, StringComparison.Ordinal);
        Assert.Contains("--urls", stderr, StringComparison.Ordinal);
        Assert.Contains($"port {((IPEndPoint)taken.LocalEndpoint).Port}", stderr, StringComparison.Ordinal);
    }

    /// <summary>A config file that is not JSON stopped the start with "Failed to load configuration from file '...'" and no more.</summary>
    [Fact]
    public async Task AConfigFileThatIsNotJson_StopsTheStart_SayingWhereItBreaks()
    {
        var config = Path.Combine(_directory, "sovereign.json");
        await File.WriteAllTextAsync(config, "{\"Sovereign\": {\"Jurisdiction\": \"TH\"\n");

        var (exit, _, stderr) = await CliProcess.RunAsync(Quiet, "serve", "--config", config, "--urls", "http://127.0.0.1:0", "--data-dir", _directory);

        Assert.Equal(ExitCodes.Usage, exit);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"sovereign serve: cannot start: Failed to load configuration from file '{config}'. Could not parse the JSON file.", line, StringComparison.Ordinal);
        Assert.Contains("LineNumber: 1", line, StringComparison.Ordinal);
    }

    /// <summary>A --data-dir that names a file stopped the start with the runtime's "The file '...' already exists.", exit 1.</summary>
    [Fact]
    public async Task ADataDirectoryThatIsAFile_StopsTheStart_NamingTheSetting()
    {
        var file = Path.Combine(_directory, "not-a-folder");
        await File.WriteAllTextAsync(file, "x");

        var (exit, _, stderr) = await CliProcess.RunAsync(Quiet, "serve", "--urls", "http://127.0.0.1:0", "--data-dir", file, "--threads", "1");

        Assert.Equal(ExitCodes.Usage, exit);
        Assert.Contains($"sovereign serve: cannot start: Sovereign:DataDirectory '{file}' is a file, not a folder", stderr, StringComparison.Ordinal);
        Assert.Equal("x", await File.ReadAllTextAsync(file));
    }

    /// <summary>
    /// A named operator token (<c>Sovereign:OperatorTokens:NAME</c>) names its operator in the audit log: a name an
    /// auditor cannot read, a weak token, or one token shared by two operators (who could then not be told apart)
    /// stops the start naming the setting, never echoing the token.
    /// </summary>
    [Theory]
    [InlineData("Sovereign__OperatorTokens__Alice", "alice-operator-token-1", "the name 'Alice' must be")]
    [InlineData("Sovereign__OperatorTokens__alice", "short", "Sovereign:OperatorTokens:alice must be at least 16 characters")]
    [InlineData("Sovereign__OperatorTokens__alice", "the-operators-own-token-1", "two operators share a token")]
    public async Task ANamedOperatorTokenBadlyNamedWeakOrShared_StopsTheStart_NamingTheSetting(string variable, string token, string expected)
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(
            new Dictionary<string, string?>(Quiet) { ["Sovereign__AdminToken"] = "the-operators-own-token-1", [variable] = token },
            "serve", "--urls", "http://127.0.0.1:0", "--data-dir", _directory, "--threads", "1");

        Assert.Equal(ExitCodes.Usage, exit);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("cannot start", StringComparison.Ordinal));
        Assert.Contains(expected, line, StringComparison.Ordinal);
        Assert.DoesNotContain(token, line.Replace(expected, "", StringComparison.Ordinal), StringComparison.Ordinal);
    }

    /// <summary>
    /// The operator's token guards every tenant, key and budget: a 1-character one started the server. A short one, or
    /// one no Authorization header can carry, stops the start naming the setting, without echoing the token.
    /// </summary>
    [Theory]
    [InlineData("Z")]
    [InlineData("fifteen-chars-!")]
    [InlineData("sixteen chars ok")]
    public async Task AnAdminTokenTooShortOrUnsendable_StopsTheStart_NamingTheSetting(string token)
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(new Dictionary<string, string?>(Quiet) { ["Sovereign__AdminToken"] = token },
            "serve", "--urls", "http://127.0.0.1:0", "--data-dir", _directory, "--threads", "1");

        Assert.Equal(ExitCodes.Usage, exit);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("cannot start", StringComparison.Ordinal));
        Assert.Contains("Sovereign:AdminToken must be at least 16 characters", line, StringComparison.Ordinal);
        Assert.DoesNotContain(token, line, StringComparison.Ordinal);
    }

    /// <summary>
    /// The token file the server reads when the setting is unset is held to the setting's rule: a hand-written
    /// one-character file started the server, and an empty one started it with a token no client sends.
    /// </summary>
    [Theory]
    [InlineData("%%\n")]
    [InlineData("")]
    [InlineData("sixteen chars ok")]
    public async Task AnAdminTokenFileTooShortOrUnsendable_StopsTheStart_NamingTheFile(string token)
    {
        var file = Path.Combine(_directory, ControlPlane.AdminToken.FileName);
        await File.WriteAllTextAsync(file, token);

        var (exit, _, stderr) = await CliProcess.RunAsync(Quiet, "serve", "--urls", "http://127.0.0.1:0", "--data-dir", _directory, "--threads", "1");

        Assert.Equal(ExitCodes.Usage, exit);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("cannot start", StringComparison.Ordinal));
        Assert.Contains($"the admin token file '{file}' holds {token.Trim().Length} character(s); an admin token must be at least 16 characters", line, StringComparison.Ordinal);
        if (token.Trim().Length > 0)
        {
            Assert.DoesNotContain(token.Trim(), line, StringComparison.Ordinal);
        }

        Assert.Equal(token, await File.ReadAllTextAsync(file));
    }

    /// <summary>
    /// The line that says where the generated operator token was written is found by its event id, as every other
    /// start line is; it had event id 0 (a plain LogInformation).
    /// </summary>
    [Fact]
    public async Task TheAdminTokenFilesLine_HasAStableEventId()
    {
        await using var app = Build(new ServeSettings { Urls = "http://127.0.0.1:0", DataDirectory = _directory, Threads = 1, ContextLength = 256 });
        var captured = new System.Collections.Concurrent.ConcurrentQueue<(string Category, Microsoft.Extensions.Logging.LogLevel Level, Microsoft.Extensions.Logging.EventId Event, string Message)>();
        using var capture = new CapturingLoggerProvider(captured);
        app.Services.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().AddProvider(capture);

        await app.StartAsync();
        capture.Stop();

        var line = Assert.Single(captured, l => l.Message.Contains(Path.Combine(_directory, ControlPlane.AdminToken.FileName), StringComparison.Ordinal));
        Assert.Equal((3007, "AdminTokenFile", Microsoft.Extensions.Logging.LogLevel.Information), (line.Event.Id, line.Event.Name, line.Level));
    }

    /// <summary>A cluster gateway (role gateway, no model) said "loading the built-in test model..." at start.</summary>
    [Fact]
    public void AGateway_SaysItServesNoModel_NotThatItLoadsTheTestModel()
    {
        var options = new Hosting.SovereignOptions();

        Assert.Equal("sovereign serve: a gateway serves no model itself: it relays to the cluster's nodes.", ServeCommand.LoadingLine(options, servesModels: false));
        Assert.Equal("sovereign serve: loading the built-in test model...", ServeCommand.LoadingLine(options, servesModels: true));
    }

    /// <summary>
    /// The operator guide's <c>serve --model llama-3.1-8b</c> (a registered model by its id, no path) said "loading 1
    /// model(s): llama-3.1-8b (missing)..." and then loaded it: the line looked for a file at the empty path.
    /// </summary>
    [Fact]
    public void AModelFromTheRegistry_IsSaidToComeFromIt_NotMissing()
    {
        var options = new Hosting.SovereignOptions { Models = [new Sovereign.Inference.Engine.ModelOptions { Id = "llama-3.1-8b" }] };

        Assert.Equal("sovereign serve: loading 1 model(s): llama-3.1-8b (from the registry)...", ServeCommand.LoadingLine(options, servesModels: true));
    }

    private static Microsoft.AspNetCore.Builder.WebApplication Build(ServeSettings settings) =>
        ServeCommand.Build(settings with
        {
            Overrides = new Dictionary<string, string?> { ["Sovereign:BuiltInEmbeddings"] = "false" },
        }, []);
}
