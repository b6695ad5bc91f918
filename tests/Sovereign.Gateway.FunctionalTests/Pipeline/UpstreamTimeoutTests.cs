using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>A TH gateway whose engines must answer with their headers within a second.</summary>
public sealed class ImpatientGatewayFixture() : AdminServerFixture(AdminToken, "sovereign-upstream-timeout-")
{
    public const string AdminToken = "timeout-admin-token";

    protected override IDictionary<string, string?> Overrides => new Dictionary<string, string?>
    {
        ["Sovereign:Jurisdiction"] = "TH",
        ["Sovereign:BuiltInEmbeddings"] = "false",
        ["Sovereign:Limits:UpstreamIdleTimeoutSeconds"] = "1",
    };
}

/// <summary>
/// An engine that takes the connection and never answers held its client, and a slot of the route, for good (the
/// upstream client had no timeout): now the request ends as 504 upstream_timeout when the headers do not come within
/// <c>Sovereign:Limits:UpstreamIdleTimeoutSeconds</c>, recorded as failed at no cost, nothing left reserved, and
/// the slot free for the next request.
/// </summary>
public sealed class UpstreamTimeoutTests(ImpatientGatewayFixture fixture) : IClassFixture<ImpatientGatewayFixture>
{
    [Fact]
    public async Task AnEngineThatNeverAnswers_Is504UpstreamTimeout_BilledNothing_AndItsSlotIsFreed()
    {
        using var silent = new CancellationTokenSource();
        await using var engine = await FakeUpstreamEngine.StartAsync(context => Task.Delay(Timeout.Infinite, CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, silent.Token).Token));
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "silent-node", jurisdiction = "TH", base_url = engine.Url, models = new[] { new { id = "silent", upstream = "upstream", capacity = 1 } } }, 201);
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/timeouts", new { currency = "EUR" }, 200);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/timeouts/prices", new { model = "silent", input_per_million = 1m, output_per_million = 1m }, 201);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "waiting", plan = "timeouts", policy = new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true } }, 201);
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/tenants/waiting/limits", new { budgets = new[] { new { period = "day", amount = 10m } } }, 200);
        var key = (await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants/waiting/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        using var client = fixture.TenantClient(key);

        // Twice on a route of capacity 1: the first timed-out request gave its slot back.
        for (var i = 0; i < 2; i++)
        {
            using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                """{"model":"silent","messages":[{"role":"user","content":"hello?"}],"max_tokens":4,"stream":true}""", Encoding.UTF8, "application/json"));
            var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal(504, (int)response.StatusCode);
            Assert.Equal(("server_error", "upstream_timeout"), (error.GetProperty("type").GetString(), error.GetProperty("code").GetString()));
            var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
            Assert.Equal(0m, record?.Cost);
        }

        var budget = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/tenants/waiting/limits", null, 200)).GetProperty("budgets")[0];
        Assert.Equal((0m, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
        await silent.CancelAsync();
    }

    /// <summary>
    /// An engine that stops sending in the middle of a stream: the stream ends with an upstream_timeout error event
    /// (no [DONE]) once nothing came for the idle limit, billed for the chunks relayed, nothing left reserved.
    /// </summary>
    [Fact]
    public async Task AnEngineThatStallsMidStream_EndsTheStreamWithUpstreamTimeout_BilledForWhatWasRelayed()
    {
        using var stalled = new CancellationTokenSource();
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            foreach (var word in new[] { "Once", " upon" })
            {
                await context.Response.WriteAsync(
                    $$"""data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"upstream","choices":[{"index":0,"delta":{"content":"{{word}}"},"finish_reason":null}]}""" + "\n\n");
                await context.Response.Body.FlushAsync();
            }

            await Task.Delay(Timeout.Infinite, CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stalled.Token).Token);
        });
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "stalling-node", jurisdiction = "TH", base_url = engine.Url, models = new[] { new { id = "stalling", upstream = "upstream", capacity = 1 } } }, 201);
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/stalls", new { currency = "EUR" }, 200);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/stalls/prices", new { model = "stalling", input_per_million = 0m, output_per_million = 1_000_000m }, 201);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "stalled", plan = "stalls", policy = new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true } }, 201);
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/tenants/stalled/limits", new { budgets = new[] { new { period = "day", amount = 100m } } }, 200);
        var key = (await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants/stalled/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        using var client = fixture.TenantClient(key);

        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            """{"model":"stalling","messages":[{"role":"user","content":"tell me"}],"max_tokens":8,"stream":true}""", Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Contains("\"content\":\" upon\"", text, StringComparison.Ordinal);
        Assert.Contains("upstream_timeout", text, StringComparison.Ordinal);
        Assert.DoesNotContain("[DONE]", text, StringComparison.Ordinal);

        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((2, 2m), (record?.CompletionTokens, record?.Cost));
        var budget = (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/tenants/stalled/limits", null, 200)).GetProperty("budgets")[0];
        Assert.Equal((2m, 0m), (budget.GetProperty("settled").GetDecimal(), budget.GetProperty("reserved").GetDecimal()));
        await stalled.CancelAsync();
    }

    /// <summary>A whole JSON answer that stops arriving after its headers is a 502 upstream_timeout, billed nothing.</summary>
    [Fact]
    public async Task AJsonAnswerThatStallsAfterItsHeaders_Is502UpstreamTimeout_BilledNothing()
    {
        using var stalled = new CancellationTokenSource();
        await using var engine = await FakeUpstreamEngine.StartAsync(async context =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"id":"chatcmpl-fake","object":"chat.completion","created":1,"model":"upstream","choices":[{"index":0,""");
            await context.Response.Body.FlushAsync();
            await Task.Delay(Timeout.Infinite, CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stalled.Token).Token);
        });
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/nodes",
            new { id = "half-node", jurisdiction = "TH", base_url = engine.Url, models = new[] { new { id = "half", upstream = "upstream", capacity = 1 } } }, 201);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "halfway", plan = "default", policy = new { allowed_jurisdictions = new[] { "TH" }, allow_external_providers = true } }, 201);
        var key = (await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants/halfway/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        using var client = fixture.TenantClient(key);

        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            """{"model":"half","messages":[{"role":"user","content":"tell me"}],"max_tokens":8}""", Encoding.UTF8, "application/json"));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal(502, (int)response.StatusCode);
        Assert.Equal("upstream_timeout", error.GetProperty("code").GetString());
        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues("x-sovereign-audit-id").Single());
        Assert.Equal((0, 0m), (record?.CompletionTokens, record?.Cost));
        await stalled.CancelAsync();
    }
}
