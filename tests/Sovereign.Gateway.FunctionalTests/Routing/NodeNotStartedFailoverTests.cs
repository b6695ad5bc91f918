using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.FunctionalTests.Pipeline;
using Sovereign.Gateway.Routing;
using Sovereign.Metering.Ledger;

namespace Sovereign.Gateway.FunctionalTests.Routing;

/// <summary>
/// A cluster node that refuses a relayed request before any engine had it (its model unloaded or still loading there,
/// its queue full) says so (<c>RelayNotStarted</c>), and the gateway routes the request to another node the
/// policy allows, under the same request id and reservation: billed once, where it ran, and never outside the policy.
/// Before, every 503 of a node reached the client (issue 9, item 6: requests a node has not started go to another
/// compliant node). A node's 503 without that word (work it had started) is still passed on.
/// </summary>
public sealed class NodeNotStartedFailoverTests(TokenizerRelayFixture fixture) : IClassFixture<TokenizerRelayFixture>
{
    /// <summary>What a node sends (<c>RelayNotStarted.Header</c>), written out so the test also builds against the code before it.</summary>
    private const string NotStartedHeader = "x-sovereign-not-started";

    private const string Usage = """{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}""";

    private static StringContent Chat(string model) =>
        new($$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8}""", Encoding.UTF8, "application/json");

    /// <summary>A node's 503 as the node writes it, stating (or not) that it started nothing.</summary>
    private static Func<HttpContext, Task> Refusing(string code, bool notStarted) => async context =>
    {
        context.Response.StatusCode = 503;
        context.Response.Headers.RetryAfter = "1";
        if (notStarted)
        {
            context.Response.Headers[NotStartedHeader] = "1";
        }

        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync($$$"""{"error":{"message":"The model is not loaded on this server now; try again shortly.","type":"server_error","param":null,"code":"{{{code}}}"}}""");
    };

    private async Task<List<JsonElement>> EntriesOfAsync(string requestId) =>
        [.. (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/audit?order=desc&limit=100", null, 200)).GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == requestId)
            .OrderBy(e => e.GetProperty("sequence").GetInt64())];

    [Fact]
    public async Task ANodeThatDidNotStartTheRequest_IsFailedOver_ToAnotherCompliantNode_BilledOnceThere()
    {
        await using var unloaded = await FakeUpstreamEngine.StartAsync(Refusing("no_compliant_capacity", notStarted: true));
        await using var live = await FakeUpstreamEngine.StartAsync(context => FakeUpstreamEngine.AnswerAsync(context, Usage));
        await using var abroad = await FakeUpstreamEngine.StartAsync(context => FakeUpstreamEngine.AnswerAsync(context, Usage));
        await fixture.AddClusterNodeAsync("ns-a", "TH", unloaded.Url, "ns-model");
        await fixture.AddClusterNodeAsync("ns-b", "TH", live.Url, "ns-model");
        await fixture.AddClusterNodeAsync("ns-sg", "SG", abroad.Url, "ns-model");
        using var client = await fixture.NewTenantAsync(["TH"]);

        using var response = await client.PostAsync("/v1/chat/completions", Chat("ns-model"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {body}");
        Assert.Equal(("ns-b", "TH"), (response.Headers.GetValues(InferenceRouter.NodeHeader).Single(), response.Headers.GetValues(InferenceRouter.JurisdictionHeader).Single()));
        Assert.Equal((1, 1, 0), (unloaded.Requests, live.Requests, abroad.Requests));
        Assert.False(response.Headers.Contains(NotStartedHeader));

        // One record, where it ran; both decisions are evidence under the request's id, the second saying why.
        var requestId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(requestId) ?? throw new Xunit.Sdk.XunitException("no usage record");
        Assert.Equal(("ns-b", UsageOutcome.Completed, 5, 3), (record.Node, record.Outcome, record.PromptTokens, record.CompletionTokens));
        var decisions = (await EntriesOfAsync(requestId)).Where(e => e.GetProperty("action").GetString() == "inference.allowed").ToList();
        Assert.Equal(["ns-a", "ns-b"], decisions.Select(e => e.GetProperty("node").GetString()));
        Assert.Contains(decisions[1].GetProperty("reasons").EnumerateArray(), r => r.GetString() == "failover: ns-a did not start it (no_compliant_capacity)");
    }

    [Fact]
    public async Task NoOtherCompliantNode_TheClientGetsTheNodesOwn503_NeverSentAcrossTheBorder()
    {
        await using var unloaded = await FakeUpstreamEngine.StartAsync(Refusing("no_compliant_capacity", notStarted: true));
        await using var abroad = await FakeUpstreamEngine.StartAsync(context => FakeUpstreamEngine.AnswerAsync(context, Usage));
        await fixture.AddClusterNodeAsync("nx-a", "TH", unloaded.Url, "nx-model");
        await fixture.AddClusterNodeAsync("nx-sg", "SG", abroad.Url, "nx-model");
        using var client = await fixture.NewTenantAsync(["TH"]);

        using var response = await client.PostAsync("/v1/chat/completions", Chat("nx-model"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("no_compliant_capacity", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal((1, 0), (unloaded.Requests, abroad.Requests));
        var record = await fixture.App.Services.GetRequiredService<UsageLedger>().GetAsync(response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single());
        Assert.Equal((UsageOutcome.Refused, 0m), (record?.Outcome, record?.Cost));
    }

    [Fact]
    public async Task ANodes503WithoutSayingItStartedNothing_IsPassedOn_NotFailedOver()
    {
        await using var started = await FakeUpstreamEngine.StartAsync(Refusing("audit_unavailable", notStarted: false));
        await using var live = await FakeUpstreamEngine.StartAsync(context => FakeUpstreamEngine.AnswerAsync(context, Usage));
        await fixture.AddClusterNodeAsync("np-a", "TH", started.Url, "np-model");
        await fixture.AddClusterNodeAsync("np-b", "TH", live.Url, "np-model");
        using var client = await fixture.NewTenantAsync(["TH"]);

        using var response = await client.PostAsync("/v1/chat/completions", Chat("np-model"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("audit_unavailable", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal((1, 0), (started.Requests, live.Requests));
    }
}
