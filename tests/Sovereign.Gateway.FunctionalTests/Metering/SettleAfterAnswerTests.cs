using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Orleans;
using Sovereign.Cli.Commands;
using Sovereign.Cluster.Grains;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// The client has its whole answer once the usage record and the outcome's entry are durable: the tenant grain's turn
/// that settles the reservation follows the answer's last bytes, off the client's path, and still happens exactly once
/// before the request ends. Here the grain's settlement is held (an outgoing grain-call filter) until the test has the
/// answer: before, the answer waited for it.
/// </summary>
public sealed class SettleAfterAnswerTests : IAsyncLifetime
{
    private const string AdminToken = "settle-after-admin-token";
    private const string RelayedModel = "settle-after-relayed";

    /// <summary>Long enough for any machine to answer; an answer that waits for the held settlement never comes.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-settle-after-").FullName;
    private readonly HeldSettlements _settlements = new();
    private readonly FakeChatEngine _engine = new();
    private WebApplication _app = null!;
    private HttpClient _admin = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        await _engine.InitializeAsync();
        _app = ServeCommand.Build(new ServeSettings
        {
            Models = [new ModelOptions { Id = "stories", Path = TestModels.Stories260K, ContextLength = 256, Parallel = 2, Threads = 1 }],
            Urls = "http://127.0.0.1:0",
            DataDirectory = _data,
            Overrides = new Dictionary<string, string?>
            {
                ["Sovereign:Jurisdiction"] = "TH",
                ["Sovereign:NodeId"] = "th-settle-after",
                ["Sovereign:AdminToken"] = AdminToken,
                ["Sovereign:BuiltInEmbeddings"] = "false",
            },
            Services = services => services.AddSingleton<IOutgoingGrainCallFilter>(_settlements),
        }, []);
        await _app.StartAsync();
        _admin = new HttpClient { BaseAddress = new Uri(_app.Urls.First()) };
        _admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
        await AdminAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "settle-after-node", jurisdiction = "TH", base_url = _engine.BaseUrl, models = new[] { new { id = RelayedModel, upstream = "upstream-model", capacity = 4 } } });
        await AdminAsync(HttpMethod.Post, "/admin/v1/tenants",
            new { id = "settle-after", name = "settle-after", policy = new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true } });
        var key = await AdminAsync(HttpMethod.Post, "/admin/v1/tenants/settle-after/keys", new { name = "test" });
        _client = new HttpClient { BaseAddress = _admin.BaseAddress };
        _client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key.GetProperty("secret").GetString());
    }

    public async Task DisposeAsync()
    {
        _settlements.ReleaseAll();
        _client.Dispose();
        _admin.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        await _engine.DisposeAsync();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task RelayedAnswer_ReachesTheClientWhole_WhileItsSettlementIsHeld_ThenIsSettledOnce()
    {
        await WarmAsync(RelayedModel);
        var held = _settlements.HoldNext();

        using var response = await _client.PostAsync("/v1/chat/completions", Chat(RelayedModel, stream: false)).WaitAsync(Patience);
        var body = await response.Content.ReadAsStringAsync().WaitAsync(Patience);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(FakeChatEngine.PromptTokens, JsonDocument.Parse(body).RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        // The settlement was asked for (so the record and the outcome's entry had committed) and has not happened yet.
        Assert.False(held.Released.IsCompleted);
        Assert.Equal(0, _settlements.Settled(response));

        held.Release();
        await _settlements.SettledAsync(response).WaitAsync(Patience);
        Assert.Equal(1, _settlements.Settled(response));
    }

    [Fact]
    public async Task LocalStream_EndsWithDone_WhileItsSettlementIsHeld_ThenIsSettledOnce()
    {
        await WarmAsync("stories");
        var held = _settlements.HoldNext();

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Chat("stories", stream: true) };
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead).WaitAsync(Patience);
        var events = await response.Content.ReadAsStringAsync().WaitAsync(Patience);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.EndsWith("data: [DONE]\n\n", events, StringComparison.Ordinal);
        Assert.Contains("\"usage\":", events, StringComparison.Ordinal);
        Assert.False(held.Released.IsCompleted);
        Assert.Equal(0, _settlements.Settled(response));

        held.Release();
        await _settlements.SettledAsync(response).WaitAsync(Patience);
        Assert.Equal(1, _settlements.Settled(response));
    }

    /// <summary>One request first, unheld: the tenant, key and route are known to this gateway.</summary>
    private async Task WarmAsync(string model)
    {
        using var response = await _client.PostAsync("/v1/chat/completions", Chat(model, stream: false));
        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        await _settlements.SettledAsync(response).WaitAsync(Patience);
    }

    private static StringContent Chat(string model, bool stream) => new(
        $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Hello"}],"max_tokens":4,"stream":{{(stream ? "true" : "false")}}{{(stream ? ""","stream_options":{"include_usage":true}""" : "")}}}""",
        Encoding.UTF8, "application/json");

    private async Task<JsonElement> AdminAsync(HttpMethod method, string path, object body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = JsonContent.Create(body) };
        using var response = await _admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{method} {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>The tenant grain's settlements: the next one can be held until released; each one done is counted by request id.</summary>
    private sealed class HeldSettlements : IOutgoingGrainCallFilter
    {
        private readonly ConcurrentDictionary<string, int> _settled = new(StringComparer.Ordinal);
        private readonly ConcurrentDictionary<string, TaskCompletionSource> _waiting = new(StringComparer.Ordinal);
        private readonly ConcurrentQueue<Hold> _holds = new();
        private Hold? _next;

        public Hold HoldNext()
        {
            var hold = new Hold();
            _holds.Enqueue(hold);
            Volatile.Write(ref _next, hold);
            return hold;
        }

        public void ReleaseAll()
        {
            foreach (var hold in _holds)
            {
                hold.Release();
            }
        }

        public int Settled(HttpResponseMessage response) => _settled.GetValueOrDefault(RequestId(response));

        public Task SettledAsync(HttpResponseMessage response) =>
            _waiting.GetOrAdd(RequestId(response), id => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)) is var done
            && _settled.ContainsKey(RequestId(response)) ? Task.CompletedTask : done.Task;

        public async Task Invoke(IOutgoingGrainCallContext context)
        {
            if (context.InterfaceMethod?.DeclaringType != typeof(ITenantGrain) || context.MethodName != nameof(ITenantGrain.SettleAsync)
                || context.Request.GetArgument(0) is not SettlementRequest settlement)
            {
                await context.Invoke();
                return;
            }

            if (Interlocked.Exchange(ref _next, null) is { } hold)
            {
                await hold.Released;
            }

            await context.Invoke();
            _settled.AddOrUpdate(settlement.RequestId, 1, (_, n) => n + 1);
            _waiting.GetOrAdd(settlement.RequestId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }

        private static string RequestId(HttpResponseMessage response) => response.Headers.GetValues("x-sovereign-audit-id").Single();
    }

    private sealed class Hold
    {
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Released => _released.Task;

        public void Release() => _released.TrySetResult();
    }
}
