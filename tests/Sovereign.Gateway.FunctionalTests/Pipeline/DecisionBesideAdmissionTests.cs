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
using Sovereign.Residency.Audit;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// The allowed decision's audit entry commits on the request's own thread once the admission call is in the tenant
/// grain (<c>InferenceRouter.RecordPendingDecisionBesideAdmission</c>), not on a pool thread from the decision on.
/// What must hold either way: the entry never waits for admission, it is in the chain before the outcome, and a
/// request refused after its decision but before admission still has both entries.
/// </summary>
public sealed class DecisionBesideAdmissionTests : IAsyncLifetime
{
    private const string AdminToken = "beside-admission-admin-token";
    private readonly string _data = Directory.CreateTempSubdirectory("sovereign-beside-admission-").FullName;
    private readonly HeldAdmission _admission = new();
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
                ["Sovereign:NodeId"] = "th-beside",
                ["Sovereign:AdminToken"] = AdminToken,
                ["Sovereign:BuiltInEmbeddings"] = "false",
            },
            Services = services => services.AddSingleton<IOutgoingGrainCallFilter>(_admission),
        }, []);
        await _app.StartAsync();
        _admin = new HttpClient { BaseAddress = new Uri(_app.Urls.First()) };
        _admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminToken);
    }

    public async Task DisposeAsync()
    {
        _admission.Release();
        _admin.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_data, recursive: true);
    }

    [Fact]
    public async Task DecisionEntry_IsDurableWhileAdmissionIsHeldInTheGrain_AndPrecedesTheOutcome()
    {
        using var client = await TenantAsync("beside-held");
        using (var first = await PostAsync(client, "Hello"))
        {
            await AssertStatusAsync(HttpStatusCode.OK, first); // the gateway now knows the tenant: one admission call
        }

        _admission.Hold();
        var pending = PostAsync(client, "Hello again");
        var admitting = await _admission.Entered.WaitAsync(TimeSpan.FromSeconds(30));

        // Admission is still in the grain (held): the decision's entry is already in the chain, or it will be
        // without admission ever answering.
        var decision = await WaitForEntryAsync("beside-held", AuditActions.InferenceAllowed, skip: 1);
        Assert.False(pending.IsCompleted, "the request answered while its admission was held");
        Assert.Equal("AdmitAuthorizedAsync", admitting);

        _admission.Release();
        using var answered = await pending;
        await AssertStatusAsync(HttpStatusCode.OK, answered);
        var requestId = answered.Headers.GetValues("x-request-id").Single();
        Assert.Equal(requestId, decision.Details["request_id"]);
        var entries = await EntriesOfAsync("beside-held", requestId);
        Assert.Equal([AuditActions.InferenceAllowed, AuditActions.InferenceCompleted], entries.Select(e => e.Action));
        Assert.True(entries[0].Sequence < entries[1].Sequence);
        Assert.Equal("completed", entries[1].Details["outcome"]);
    }

    [Fact]
    public async Task RequestRefusedAfterItsDecision_BeforeAdmission_HasItsDecisionThenItsRejectedOutcome()
    {
        using var client = await TenantAsync("beside-refused");

        // Longer than the model's context (256 tokens): refused once measured, before the admission call is made.
        using var refused = await PostAsync(client, string.Join(' ', Enumerable.Repeat("once upon a time there was a cat", 200)));

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        var requestId = refused.Headers.GetValues("x-request-id").Single();
        var entries = await EntriesOfAsync("beside-refused", requestId);
        Assert.Equal([AuditActions.InferenceAllowed, AuditActions.InferenceCompleted], entries.Select(e => e.Action));
        Assert.True(entries[0].Sequence < entries[1].Sequence);
        Assert.Equal("rejected", entries[1].Details["outcome"]);
    }

    private async Task<List<AuditEntry>> EntriesOfAsync(string tenant, string requestId)
    {
        var log = _app.Services.GetRequiredService<AuditLog>();
        var entries = await log.ReadAsync(tenant, DateTimeOffset.UnixEpoch, DateTimeOffset.MaxValue);
        return [.. entries.Where(e => e.Details.TryGetValue("request_id", out var id) && id == requestId).OrderBy(e => e.Sequence)];
    }

    private async Task<AuditEntry> WaitForEntryAsync(string tenant, string action, int skip)
    {
        var log = _app.Services.GetRequiredService<AuditLog>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            var entries = await log.ReadAsync(tenant, DateTimeOffset.UnixEpoch, DateTimeOffset.MaxValue);
            if (entries.Where(e => e.Action == action).Skip(skip).FirstOrDefault() is { } entry)
            {
                return entry;
            }

            Assert.False(timeout.IsCancellationRequested, $"no {action} entry of {tenant} beyond the first {skip} within 30 s while admission was held");
            await Task.Delay(20);
        }
    }

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

    private static async Task AssertStatusAsync(HttpStatusCode expected, HttpResponseMessage response) =>
        Assert.True(response.StatusCode == expected, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");

    private static Task<HttpResponseMessage> PostAsync(HttpClient client, string prompt) =>
        client.PostAsync("/v1/chat/completions", new StringContent(
            JsonSerializer.Serialize(new { model = "stories", messages = new[] { new { role = "user", content = prompt } }, max_tokens = 4 }), Encoding.UTF8, "application/json"));

    /// <summary>Holds the tenant grain's admission calls, once <see cref="Hold"/> is called, until <see cref="Release"/>.</summary>
    private sealed class HeldAdmission : IOutgoingGrainCallFilter
    {
        private volatile TaskCompletionSource? _gate;
        private TaskCompletionSource<string> _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The name of the first admission call held since <see cref="Hold"/>.</summary>
        public Task<string> Entered => _entered.Task;

        public void Hold()
        {
            _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
            _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        public void Release() => _gate?.TrySetResult();

        public async Task Invoke(IOutgoingGrainCallContext context)
        {
            if (context.InterfaceMethod?.DeclaringType == typeof(ITenantGrain)
                && context.MethodName is nameof(ITenantGrain.AdmitAsync) or nameof(ITenantGrain.AdmitAuthorizedAsync)
                && _gate is { } gate)
            {
                _entered.TrySetResult(context.MethodName);
                await gate.Task;
            }

            await context.Invoke();
        }
    }
}
