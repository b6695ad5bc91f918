using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sovereign.Cli.Commands;
using Sovereign.Inference.Engine;
using Xunit.Abstractions;

using static Sovereign.Gateway.FunctionalTests.Hostile.HostileAnswers;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// A server of its own for <see cref="HostileSurfaceFuzzTests"/>, logging at Trace in every category an operator can
/// turn up (the gateway's, ASP.NET Core's and Kestrel's) into a sink that keeps each line and its exception's text, so
/// the test can look for request content in all of it. A tenant with a key exists for the generated requests to use, and another for them to change.
/// </summary>
public sealed class HostileSurfaceServerFixture : IAsyncLifetime
{
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("sovereign-surface-").FullName;

    public WebApplication App { get; private set; } = null!;

    public Uri BaseAddress { get; private set; } = null!;

    public string AdminToken => File.ReadAllText(Path.Combine(_dataDirectory, Sovereign.Gateway.ControlPlane.AdminToken.FileName)).Trim();

    public const string TenantId = "fuzz-owner";

    public string TenantKey { get; private set; } = "";

    /// <summary>The tenant the generated admin requests change, disable, rotate and revoke: never the one whose key they use.</summary>
    public const string VictimTenant = "fuzz-victim";

    public string VictimKeyId { get; private set; } = "";

    /// <summary>Every line logged since the server was built: category, level, event id, message and exception text.</summary>
    public ConcurrentQueue<(string Category, LogLevel Level, int EventId, string Text)> Logged { get; } = new();

    public async Task InitializeAsync()
    {
        var sink = new SinkProvider(Logged);
        App = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = ServerFixture.Stories, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 4, Threads = 1, Languages = ["en"] }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _dataDirectory,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Limits:MaxRequestBodyBytes"] = (64 * 1024).ToString(CultureInfo.InvariantCulture),
                ["Sovereign:Jurisdiction"] = "DE",
                ["Logging:LogLevel:Default"] = "Trace",
                ["Logging:LogLevel:Sovereign"] = "Trace",
                ["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace",
                ["Logging:LogLevel:System.Net.Http.HttpClient"] = "Trace",

                // The console stays at Warning: thousands of Trace lines written to it would make it the bottleneck.
                ["Logging:Console:LogLevel:Default"] = "Warning",
            },
            Services = services => services.AddSingleton<ILoggerProvider>(sink),
        }, []);
        await App.StartAsync();
        BaseAddress = new Uri(App.Urls.First());

        using var admin = new HttpClient { BaseAddress = BaseAddress };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        (TenantKey, _) = await CreateTenantAsync(admin, TenantId);
        (_, VictimKeyId) = await CreateTenantAsync(admin, VictimTenant);
    }

    private static async Task<(string Secret, string KeyId)> CreateTenantAsync(HttpClient admin, string id)
    {
        var created = await admin.PostAsync("/admin/v1/tenants", new StringContent(
            $$$"""{"id":"{{{id}}}","name":"Fuzz","policy":{"allowed_jurisdictions":["EU","DE"]}}""", Encoding.UTF8, "application/json"));
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        var key = await admin.PostAsync($"/admin/v1/tenants/{id}/keys", new StringContent("""{"name":"fuzz"}""", Encoding.UTF8, "application/json"));
        var json = JsonDocument.Parse(await key.Content.ReadAsStringAsync()).RootElement;
        Assert.True(key.IsSuccessStatusCode, json.ToString());
        return (json.GetProperty("secret").GetString()!, json.GetProperty("key").GetProperty("id").GetString()!);
    }

    public async Task DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        Directory.Delete(_dataDirectory, recursive: true);
    }

    /// <summary>Keeps every line at every level, with its exception's full text (a message can hide in an exception).</summary>
    private sealed class SinkProvider(ConcurrentQueue<(string Category, LogLevel Level, int EventId, string Text)> sink) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(sink, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(ConcurrentQueue<(string Category, LogLevel Level, int EventId, string Text)> sink, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                sink.Enqueue((category, logLevel, eventId.Id, formatter(state, exception) + (exception is null ? "" : "\n" + exception)));
        }
    }
}

/// <summary>
/// Thousands of generated hostile requests against every route, declared query parameter and read header of a real
/// server on loopback (<see cref="HostileSurfaceRequests"/>): no 5xx, an OpenAI error object with a type and a code on
/// every 4xx outside the console's HTML pages, every request answered, a server that still serves afterwards, and no
/// request content (prompt text, keys, tokens) in anything logged, at any level. Set SOVEREIGN_FUZZ_SEED and
/// SOVEREIGN_FUZZ_CASES to explore further; a failure prints the seed and the case to repeat it.
/// </summary>
public sealed class HostileSurfaceFuzzTests(HostileSurfaceServerFixture server, ITestOutputHelper output) : IClassFixture<HostileSurfaceServerFixture>
{
    private const int DefaultSeed = 20261208;
    private const int DefaultCases = 3000;
    private const int Workers = 4;

    [Fact]
    public async Task GeneratedHostileRequests_OnEverySurface_Get4xxWithAnErrorObject_AndLogNoContent()
    {
        var seed = int.TryParse(Environment.GetEnvironmentVariable("SOVEREIGN_FUZZ_SEED"), CultureInfo.InvariantCulture, out var s) ? s : DefaultSeed;
        var cases = int.TryParse(Environment.GetEnvironmentVariable("SOVEREIGN_FUZZ_CASES"), CultureInfo.InvariantCulture, out var c) ? c : DefaultCases;
        var generator = new HostileSurfaceRequests(seed, server.AdminToken, server.TenantKey, HostileSurfaceServerFixture.VictimTenant, server.VictimKeyId);
        var failures = new ConcurrentBag<string>();
        var statuses = new ConcurrentDictionary<string, int>();
        var next = -1;
        var started = System.Diagnostics.Stopwatch.StartNew();

        await Task.WhenAll(Enumerable.Range(0, Workers).Select(_ => Task.Run(async () =>
        {
            int index;
            while ((index = Interlocked.Increment(ref next)) < cases && failures.Count < 8)
            {
                var hostile = generator.Create(index);
                // A hang is a failure: the request must complete; the limit only catches a server that stopped answering.
                using var hang = new CancellationTokenSource(TimeSpan.FromMinutes(1));
                var problem = await CheckAsync(hostile, hang.Token);
                if (problem is not null)
                {
                    failures.Add($"seed {seed}, case {index}: {hostile.Description}\n  {problem}\n  request: {Show(hostile.Bytes)}");
                }
            }
        })));

        output.WriteLine($"seed {seed}, {cases} cases in {started.Elapsed.TotalSeconds:F1} s; statuses: {string.Join(", ", statuses.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} x{p.Value}"))}");
        Assert.True(failures.IsEmpty, $"Hostile requests broke the contract (repeat with SOVEREIGN_FUZZ_SEED={seed}):\n" + string.Join("\n", failures));

        // Healthy afterwards: the tenant's key still serves a completion, and the operator still reads its tenant.
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        Assert.Equal(200, (int)(await http.GetAsync("/health")).StatusCode);
        using var chat = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"temperature":0}""", Encoding.UTF8, "application/json"),
        };
        chat.Headers.Authorization = new AuthenticationHeaderValue("Bearer", server.TenantKey);
        var valid = await http.SendAsync(chat);
        Assert.True(valid.StatusCode == System.Net.HttpStatusCode.OK, await valid.Content.ReadAsStringAsync());
        using var read = new HttpRequestMessage(HttpMethod.Get, "/admin/v1/tenants/" + HostileSurfaceServerFixture.TenantId);
        read.Headers.Authorization = new AuthenticationHeaderValue("Bearer", server.AdminToken);
        Assert.Equal(200, (int)(await http.SendAsync(read)).StatusCode);

        // No content at any level: no prompt or input text, no key or token, sent in a body, a header, a path or a query.
        output.WriteLine($"logged: {string.Join(", ", server.Logged.GroupBy(l => l.Level).OrderBy(g => g.Key).Select(g => $"{g.Key} x{g.Count()}"))}");
        foreach (var line in server.Logged.Where(l => l.Category.Contains("Kestrel", StringComparison.Ordinal)).GroupBy(l => l.EventId).Select(g => g.First()))
        {
            output.WriteLine($"  {line.Level} {line.Category} ({line.EventId}): {Shorten(line.Text)}");
        }

        string[] secrets = [HostileSurfaceRequests.Marker, server.TenantKey, server.AdminToken];
        var leaks = server.Logged.Where(l => secrets.Any(secret => l.Text.Contains(secret, StringComparison.Ordinal)))
            .GroupBy(l => (l.Category, l.EventId)).Select(g => g.First()).Take(10).ToList();
        Assert.True(leaks.Count == 0, "Request content reached the log:\n" + string.Join("\n", leaks.Select(l => $"{l.Level} {l.Category} ({l.EventId}): {Shorten(l.Text)}")));

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

            var console = hostile.Description.Contains(" /console", StringComparison.Ordinal);
            statuses.AddOrUpdate(response.Status.ToString(CultureInfo.InvariantCulture), 1, (_, n) => n + 1);
            if (response.Status == 0)
            {
                return "the connection closed without an answer";
            }

            if (response.Status >= 500 && response.Status != hostile.Rightful5xx)
            {
                return $"{response.Status}: {Shorten(response.Text)}";
            }

            if (response.Status >= 400 && !(console && response.Headers.TryGetValue("Content-Type", out var type) && type.StartsWith("text/html", StringComparison.Ordinal)))
            {
                var problem = ErrorObjectProblem(response);
                if (problem is null)
                {
                    using var document = JsonDocument.Parse(response.Body);
                    var error = document.RootElement.GetProperty("error");
                    statuses.AddOrUpdate($"{response.Status} {error.GetProperty("type").GetString()}/{error.GetProperty("code")}", 1, (_, n) => n + 1);
                }

                return problem;
            }

            return null;
        }
    }

    /// <summary>
    /// Kestrel refuses a malformed request target or header before the application sees it, and with its category at
    /// Debug its <c>BadRequests</c> line quoted what it refused: the target, query string included (a key sent as
    /// <c>?api_key=</c>), or the header line (an <c>Authorization</c> value with a stray byte). Nothing of it is logged now.
    /// </summary>
    [Theory]
    [InlineData("GET /v1/models/%00?api_key={0} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")]
    [InlineData("GET /v1/models?api_key={0}#frag HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")]
    [InlineData("GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {0}\u0000\r\n\r\n")]
    [InlineData("GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-api-key {0}\r\n\r\n")]
    public async Task KestrelRefusals_QuoteNothingOfTheRequest_AtAnyLevel(string template)
    {
        var secret = HostileSurfaceRequests.Marker + "-" + Guid.NewGuid().ToString("N");
        var request = Encoding.Latin1.GetBytes(string.Format(CultureInfo.InvariantCulture, template, secret));

        var response = await RawHttp.SendAsync(server.BaseAddress, request);

        Assert.Equal(400, response.Status);
        Assert.Null(ErrorObjectProblem(response));
        Assert.DoesNotContain(secret, response.Text, StringComparison.Ordinal);
        // The refusal was logged (at Debug) before the answer was written: the sink already holds every line of it.
        Assert.DoesNotContain(server.Logged, l => l.Text.Contains(secret, StringComparison.Ordinal));
    }
}
