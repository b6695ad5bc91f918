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
    private CapturingLoggerProvider _logs = null!;

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
        _logs = new CapturingLoggerProvider(_logged);
        _app.Services.GetRequiredService<ILoggerFactory>().AddProvider(_logs);
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
        // The settlement is not awaited before the answer (RequestMetering.FinishAsync): its failure is logged after it.
        await _logs.WaitForAsync(l => l.Message.Contains(requestId, StringComparison.Ordinal) && l.Event.Id is 4114 or 4123, TimeSpan.FromSeconds(30));
        Assert.True(_grain.Refused > 0, "the settle call never reached the grain");
        var entry = Assert.Single(_logged, l => l.Message.Contains(requestId, StringComparison.Ordinal) && l.Event.Id is 4114 or 4123);
        Assert.Equal((4123, "SettlementRefused", LogLevel.Error), (entry.Event.Id, entry.Event.Name, entry.Level));
        Assert.Contains("answered its settlement with ArgumentOutOfRangeException", entry.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// On one machine the answer does not wait for the settlement (session 51: its grain turn and reply were about 20 us
    /// of every request): with the tenant's grain holding the settle call, the request is still answered and its record
    /// is in the ledger; once the grain takes the call, the budget counts the cost exactly once (nothing left reserved),
    /// and an operator's read made after the answer sees it (the activation takes its calls in order, and the settlement
    /// was delivered before the answer).
    /// On the old code the answer waited for the held settle until Orleans' response timeout failed the call (4114).
    /// </summary>
    [Fact]
    public async Task Answer_DoesNotWaitForTheSettlement_WhichTheBudgetCountsOnce()
    {
        await AdminAsync(HttpMethod.Put, "/admin/v1/plans/settle-priced", new { currency = "EUR" }, HttpStatusCode.OK);
        await AdminAsync(HttpMethod.Post, "/admin/v1/plans/settle-priced/prices", new { model = "stories", input_per_million = 1000, output_per_million = 3000 }, HttpStatusCode.Created);
        using var client = await TenantAsync("settle-held", "settle-priced");
        await AdminAsync(HttpMethod.Put, "/admin/v1/tenants/settle-held/limits", new { budgets = new[] { new { period = "month", amount = 100m } } }, HttpStatusCode.OK);
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _grain.Hold = held.Task;
        try
        {
            using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                JsonSerializer.Serialize(new { model = "stories", messages = new[] { new { role = "user", content = "Hello" } }, max_tokens = 4 }), Encoding.UTF8, "application/json"))
                .WaitAsync(TimeSpan.FromSeconds(60));
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            Assert.Equal(1, _grain.Held);
            var requestId = response.Headers.GetValues("x-request-id").Single();

            // Answered while the grain still held the settlement: nothing gave up on it. Awaited, the answer came only once
            // Orleans' response timeout (30 s) failed the call, which was logged (4114) before the answer.
            Assert.DoesNotContain(_logged, l => l.Message.Contains(requestId, StringComparison.Ordinal) && l.Event.Id is 4114 or 4123);

            // The bill is durable before the answer: the ledger has it while the settlement is still held.
            var cost = (await AdminAsync(HttpMethod.Get, $"/admin/v1/usage/{requestId}", null, HttpStatusCode.OK)).GetProperty("cost").GetDecimal();
            Assert.True(cost > 0, $"the request is billed: {cost}");

            _grain.Hold = null;
            held.SetResult();
            var budget = (await AdminAsync(HttpMethod.Get, "/admin/v1/tenants/settle-held/limits", null, HttpStatusCode.OK)).GetProperty("budgets")[0];
            Assert.Equal((cost, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
        }
        finally
        {
            _grain.Hold = null;
            held.TrySetResult();
        }
    }

    [Theory]
    [InlineData(typeof(TimeoutException), true)]
    [InlineData(typeof(Orleans.Runtime.SiloUnavailableException), true)]
    [InlineData(typeof(Orleans.Runtime.OrleansException), true)]
    [InlineData(typeof(ArgumentOutOfRangeException), false)]
    [InlineData(typeof(InvalidOperationException), false)]
    public void GrainDidNotAnswer_TellsOrleansFailuresFromWhatTheGrainThrew(Type type, bool didNotAnswer) =>
        Assert.Equal(didNotAnswer, Sovereign.Gateway.Metering.RequestMetering.GrainDidNotAnswer((Exception)Activator.CreateInstance(type, "x")!));

    private async Task<HttpClient> TenantAsync(string id, string? plan = null)
    {
        var policy = new { allowed_jurisdictions = new[] { "TH" } };
        await AdminAsync(HttpMethod.Post, "/admin/v1/tenants", plan is null ? (object)new { id, name = id, policy } : new { id, name = id, policy, plan }, HttpStatusCode.Created);
        var key = await AdminAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "test" }, HttpStatusCode.Created);
        var client = new HttpClient { BaseAddress = _admin.BaseAddress };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key.GetProperty("secret").GetString());
        return client;
    }

    private async Task<JsonElement> AdminAsync(HttpMethod method, string path, object? body, HttpStatusCode expected)
    {
        using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
        using var response = await _admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{method} {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>Throws inside the tenant grain's settle, once <see cref="Refuse"/> is set, as a grain refusing its arguments would.</summary>
    private sealed class RefusingSettlement : IIncomingGrainCallFilter
    {
        private int _refused;
        private int _held;

        public volatile bool Refuse;

        /// <summary>While set, the grain's settle waits for it before it runs (the answer must not wait with it).</summary>
        public volatile Task? Hold;

        public int Refused => Volatile.Read(ref _refused);

        public int Held => Volatile.Read(ref _held);

        public async Task Invoke(IIncomingGrainCallContext context)
        {
            if (context.InterfaceMethod?.DeclaringType == typeof(ITenantGrain) && context.MethodName == nameof(ITenantGrain.SettleAsync))
            {
                if (Refuse)
                {
                    Interlocked.Increment(ref _refused);
                    throw new ArgumentOutOfRangeException("settlement", "the settlement's cost is out of range");
                }

                if (Hold is { } hold)
                {
                    Interlocked.Increment(ref _held);
                    await hold;
                }
            }

            await context.Invoke();
        }
    }
}
