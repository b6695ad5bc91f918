using System.Net;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.Models;
using Sovereign.Inference.Engine;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>A server whose one model runs one sequence at a time, so a second request waits in the model's own queue.</summary>
public sealed class QueuedCancellationFixture() : AdminServerFixture(AdminToken, "sovereign-queued-cancel-")
{
    public const string AdminToken = "queued-cancel-admin-token";
    public const string Model = "stories";

    private int _tenants;

    protected override IReadOnlyList<ModelOptions> Models =>
        [new ModelOptions { Id = Model, Path = TestModels.Stories260K, ContextLength = 256, Parallel = 1, MaxQueue = 16, Threads = 1 }];

    protected override IDictionary<string, string?> Overrides => new Dictionary<string, string?>
    {
        ["Sovereign:Jurisdiction"] = "DE",
        ["Sovereign:BuiltInEmbeddings"] = "false",
    };

    protected override async Task SetUpAsync()
    {
        await SendAsync(HttpMethod.Put, "/admin/v1/plans/standard", new { currency = "EUR", weight = 1 }, 200);
        await SendAsync(HttpMethod.Post, "/admin/v1/plans/standard/prices", new { model = Model, input_per_million = 1000m, output_per_million = 2000m }, 201);
    }

    /// <summary>A new tenant on the priced plan, with a client holding its key.</summary>
    public async Task<HttpClient> NewTenantAsync()
    {
        var id = "q" + Interlocked.Increment(ref _tenants);
        await SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, plan = "standard", policy = new { allowed_jurisdictions = new[] { "EU" } } }, 201);
        var key = (await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        return TenantClient(key);
    }
}

/// <summary>
/// A local request its client leaves while it still waits in the model's own queue (the engine never read its prompt)
/// is billed nothing, as one that leaves while it waits for a relayed route is: what was abandoned before any work is
/// not billed (issue 8). It was billed its prompt (the engine's cancelled result carried the prompt's count).
/// </summary>
public sealed class QueuedCancellationTests(QueuedCancellationFixture fixture) : IClassFixture<QueuedCancellationFixture>
{
    private const string Story = """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":200,"temperature":0,"stream":true}""";

    private UsageLedger Ledger => fixture.App.Services.GetRequiredService<UsageLedger>();

    [Fact]
    public async Task ARequestLeftWhileItWaitsInTheModelsQueue_IsBilledNothing_ItsPromptIncluded()
    {
        var batcher = fixture.App.Services.GetRequiredService<ModelCatalog>().TryGet(QueuedCancellationFixture.Model, out var served)
            ? served.Batcher! : throw new InvalidOperationException();

        // The engine takes 3 steps (prefill and two tokens), then holds until it is woken (a request, a cancellation),
        // so the first request keeps the model's one slot while the second waits behind it. The hook says when the loop
        // holds with the first request running, and when it holds with the second waiting in the queue too.
        var steps = 0;
        var firstRunning = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var secondWaiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        batcher.BeforeStep = async woken =>
        {
            if (Interlocked.Increment(ref steps) > 3)
            {
                if (batcher.RunningCount == 1)
                {
                    firstRunning.TrySetResult();
                    if (batcher.WaitingCount == 1)
                    {
                        secondWaiting.TrySetResult();
                    }
                }

                await woken;
            }
        };
        using var books = new BooksClosedListener();
        using var first = await fixture.NewTenantAsync();
        using var second = await fixture.NewTenantAsync();
        HttpResponseMessage? running = null;
        try
        {
            // The bounds only turn a hang into a failure.
            running = await StartStreamAsync(first);
            await firstRunning.Task.WaitAsync(TimeSpan.FromMinutes(2));

            // The second stream's headers and role chunk leave before the engine takes it; it waits in the queue.
            using var waiting = await StartStreamAsync(second);
            var requestId = waiting.Headers.GetValues("x-sovereign-audit-id").Single();
            await secondWaiting.Task.WaitAsync(TimeSpan.FromMinutes(2));

            // Its client leaves before the engine ever took it; its books close (record committed, reservation settled).
            waiting.Dispose();
            await books.ClosedForRequestAsync(requestId);
            var record = await Ledger.GetAsync(requestId);

            Assert.NotNull(record);
            Assert.Equal(UsageOutcome.Cancelled, record.Outcome);
            Assert.True(record is { PromptTokens: 0, CompletionTokens: 0, CachedTokens: 0 }, record.ToString());
            Assert.Equal((0m, 0m), (record.Cost, record.ComputeSeconds));
            Assert.Equal(1, batcher.RunningCount);
        }
        finally
        {
            batcher.BeforeStep = null;
            running?.Dispose();
        }
    }

    private static async Task<HttpResponseMessage> StartStreamAsync(HttpClient client)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Story, Encoding.UTF8, "application/json") };
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return response;
    }
}
