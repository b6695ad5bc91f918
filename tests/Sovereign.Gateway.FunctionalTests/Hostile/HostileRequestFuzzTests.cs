using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;
using Xunit.Abstractions;

using static Sovereign.Gateway.FunctionalTests.Hostile.HostileAnswers;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// A server of its own for the fuzzer: generated admin requests create tenants and plans, which must not leak into
/// other tests. Anonymous access stays on so the health check after the run does not depend on what was created.
/// </summary>
public sealed class HostileServerFixture : IAsyncLifetime
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("sovereign-fuzz-").FullName;

    public WebApplication App { get; private set; } = null!;

    public Uri BaseAddress { get; private set; } = null!;

    public string AdminToken => File.ReadAllText(Path.Combine(_dataDirectory, Sovereign.Gateway.ControlPlane.AdminToken.FileName)).Trim();

    public async Task InitializeAsync()
    {
        App = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = ServerFixture.Stories, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 4, Threads = 1, Languages = ["en"] }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _dataDirectory,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Limits:MaxRequestBodyBytes"] = (64 * 1024).ToString(CultureInfo.InvariantCulture),
                ["Sovereign:AnonymousAccess"] = "true",

                // Thousands of refusals at Information would make the console, not the server, the bottleneck.
                ["Logging:LogLevel:Default"] = "Warning",
            },
        }, []);
        await App.StartAsync();
        BaseAddress = new Uri(App.Urls.First());
    }

    public async Task DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Directory.Delete(_dataDirectory, recursive: true);
    }
}

/// <summary>
/// Thousands of generated hostile requests against a real server on loopback: no 5xx, an OpenAI error object on every
/// 4xx, and a server that still answers a valid request afterwards. Set SOVEREIGN_FUZZ_SEED and SOVEREIGN_FUZZ_CASES
/// to explore further; a failure prints the seed and the case to repeat it.
/// </summary>
public sealed class HostileRequestFuzzTests(HostileServerFixture server, ITestOutputHelper output) : IClassFixture<HostileServerFixture>
{
    private const int DefaultSeed = 20261202;
    private const int DefaultCases = 2500;
    private const int Workers = 4;

    [Fact]
    public async Task GeneratedHostileRequests_AreAnsweredWithoutA5xx_AndTheServerStaysHealthy()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("SOVEREIGN_FUZZ_SEED"), CultureInfo.InvariantCulture, out var s) ? s : DefaultSeed;
        var cases = int.TryParse(Environment.GetEnvironmentVariable("SOVEREIGN_FUZZ_CASES"), CultureInfo.InvariantCulture, out var c) ? c : DefaultCases;
        var generator = new HostileRequests(seed, server.AdminToken);
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var statuses = new System.Collections.Concurrent.ConcurrentDictionary<int, int>();
        var next = -1;

        await Task.WhenAll(Enumerable.Range(0, Workers).Select(_ => Task.Run(async () =>
        {
            int index;
            while ((index = Interlocked.Increment(ref next)) < cases && failures.Count < 5)
            {
                var hostile = generator.Create(index);
                // A hang is a failure too; the limit is far above any answer's time, so it only catches a server that stopped.
                using var hang = new CancellationTokenSource(TimeSpan.FromMinutes(1));
                var problem = await CheckAsync(hostile, hang.Token);
                if (problem is not null)
                {
                    failures.Add($"seed {seed}, case {index}: {hostile.Description}\n  {problem}\n  request: {Show(hostile.Bytes)}");
                }
            }
        })));

        output.WriteLine($"seed {seed}, {cases} cases; statuses: {string.Join(", ", statuses.OrderBy(p => p.Key).Select(p => $"{p.Key}x{p.Value}"))}");
        Assert.True(failures.IsEmpty, $"Hostile requests broke the contract (repeat with SOVEREIGN_FUZZ_SEED={seed}):\n" + string.Join("\n", failures));

        // Healthy afterwards: a valid request is still served.
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        var health = await http.GetAsync("/health");
        Assert.Equal(200, (int)health.StatusCode);
        var valid = await http.PostAsync("/v1/chat/completions", new StringContent(
            """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"temperature":0}""", Encoding.UTF8, "application/json"));
        Assert.Equal(200, (int)valid.StatusCode);

        async Task<string?> CheckAsync(HostileCase hostile, CancellationToken cancellationToken)
        {
            RawResponse response;
            try
            {
                response = await RawHttp.SendAsync(server.BaseAddress, hostile.Bytes, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return "no answer: the server hung";
            }

            statuses.AddOrUpdate(response.Status, 1, (_, n) => n + 1);
            if (response.Status == 0)
            {
                return hostile.MayGoUnanswered ? null : "the connection closed without an answer";
            }

            if (response.Status >= 500 && response.Status != hostile.Rightful5xx)
            {
                return $"{response.Status}: {Shorten(response.Text)}";
            }

            if (response.Status >= 400)
            {
                return ErrorObjectProblem(response);
            }

            return null;
        }
    }
}
