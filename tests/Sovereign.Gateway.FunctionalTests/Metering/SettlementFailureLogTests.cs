using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans;
using Sovereign.Cli.Commands;
using Sovereign.Cluster.Grains;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// Event 4114 ("the tenant's grain did not answer") was logged for any exception of the settle call, so a grain that
/// refused the settlement's arguments (a defect on one side) read as a member going away. The grain here throws
/// inside its settle (an incoming call filter, in the grain's own turn, so the caller sees what the grain threw): the
/// request is still answered and billed, and the log names what happened, event 4123, not 4114.
/// </summary>
public sealed class SettlementFailureLogTests : IAsyncLifetime
{
    private const string AdminToken = "settlement-log-admin-token";
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-settlement-log-").FullName;
    private readonly RefusingSettlement _grain = new();
    private readonly ConcurrentQueue<(string Category, LogLevel Level, EventId Event, string Message)> _logged = new();
    private WebApplication _app = null!;
    private HttpClient _admin = null!;

    public async Task InitializeAsync()
    {
        _app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, ContextLength = 256, Parallel = 2, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _data,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Jurisdiction"] = "TH",
                ["Sovereign:NodeId"] = "th-settle",
                ["Sovereign:AdminToken"] = AdminToken,
                ["Sovereign:BuiltInEmbeddings"] = "false",
            },
            Services = services => services.AddSingleton<IIncomingGrainCallFilter>(_grain),
        }, []);
        await _app.StartAsync();
        _app.Services.GetRequiredService<ILoggerFactory>().AddProvider(new CapturingLoggerProvider(_logged));
        _admin = new HttpClient { BaseAddress = new Uri(_app.Urls.First()) };
        _admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
    }

    public async Task DisposeAsync()
    {
        _admin.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task SettleThatTheGrainRefuses_IsLoggedAsRefused_NotAsAGrainThatDidNotAnswer()
    {
        using var client = await TenantAsync("settle-refused");
        _grain.Refuse = true;

        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            JsonSerializer.Serialize(new { model = "stories", messages = new[] { new { role = "user", content = "Hello" } }, max_tokens = 4 }), Encoding.UTF8, "application/json"));

        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        var requestId = response.Headers.GetValues("x-request-id").Single();
        Assert.True(_grain.Refused > 0, "the settle call never reached the grain");
        var entry = Assert.Single(_logged, l => l.Message.Contains(requestId, StringComparison.Ordinal) && l.Event.Id is 4114 or 4123);
        Assert.Equal((4123, "SettlementRefused", LogLevel.Error), (entry.Event.Id, entry.Event.Name, entry.Level));
        Assert.Contains("answered its settlement with ArgumentOutOfRangeException", entry.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(typeof(TimeoutException), true)]
    [InlineData(typeof(Orleans.Runtime.SiloUnavailableException), true)]
    [InlineData(typeof(Orleans.Runtime.OrleansException), true)]
    [InlineData(typeof(ArgumentOutOfRangeException), false)]
    [InlineData(typeof(InvalidOperationException), false)]
    public void GrainDidNotAnswer_TellsOrleansFailuresFromWhatTheGrainThrew(Type type, bool didNotAnswer) =>
        Assert.Equal(didNotAnswer, Sovereign.Gateway.Metering.RequestMetering.GrainDidNotAnswer((Exception)Activator.CreateInstance(type, "x")!));

    private async Task<HttpClient> TenantAsync(string id)
    {
        var policy = new { allowed_jurisdictions = new[] { "TH" } };
        await AdminAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, name = id, policy }, HttpStatusCode.Created);
        var key = await AdminAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "test" }, HttpStatusCode.Created);
        var client = new HttpClient { BaseAddress = _admin.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key.GetProperty("secret").GetString());
        return client;
    }

    private async Task<JsonElement> AdminAsync(HttpMethod method, string path, object body, HttpStatusCode expected)
    {
        using var request = new HttpRequestMessage(method, path) { Content = JsonContent.Create(body) };
        using var response = await _admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{method} {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Throws inside the tenant grain's settle, once <see cref="Refuse"/> is set, as a grain refusing its arguments would.</summary>
    private sealed class RefusingSettlement : IIncomingGrainCallFilter
    {
        private int _refused;

        public volatile bool Refuse;

        public int Refused => Volatile.Read(ref _refused);

        public Task Invoke(IIncomingGrainCallContext context)
        {
            if (Refuse && context.InterfaceMethod?.DeclaringType == typeof(ITenantGrain) && context.MethodName == nameof(ITenantGrain.SettleAsync))
            {
                Interlocked.Increment(ref _refused);
                throw new ArgumentOutOfRangeException("settlement", "the settlement's cost is out of range");
            }

            return context.Invoke();
        }
    }
}
