using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.FunctionalTests.Pipeline;
using Sovereign.Gateway.Routing;
using Sovereign.Residency.Audit;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Gateway.FunctionalTests.Routing;

/// <summary>
/// A TH server with no model of its own, as a cluster's gateway is: each test places cluster nodes (kind Local, their
/// credentials signed by the server's operator key) in its registry, some on addresses nothing listens on, the others
/// answering a node's <c>/tokenize</c> and <c>/detokenize</c> as a node does.
/// </summary>
public sealed class TokenizerRelayFixture() : AdminServerFixture(AdminToken, "sovereign-tokenizer-relay-")
{
    public const string AdminToken = "tokenizer-relay-admin-token";

    private int _tenants;

    protected override IDictionary<string, string?> Overrides => new Dictionary<string, string?>
    {
        ["Sovereign:Jurisdiction"] = "TH",
        ["Sovereign:BuiltInEmbeddings"] = "false",

        // A node placed by a test reports once; its report counts for an hour, so no test depends on timing.
        ["Sovereign:Cluster:NodeStaleSeconds"] = "3600",
    };

    /// <summary>A tenant that may use <paramref name="jurisdictions"/>, with a client holding its key.</summary>
    public async Task<HttpClient> NewTenantAsync(string[] jurisdictions, int? requestsPerMinute = null)
    {
        var id = "tr" + Interlocked.Increment(ref _tenants);
        await SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id, policy = new { allowed_jurisdictions = jurisdictions } }, 201);
        if (requestsPerMinute is { } rpm)
        {
            await SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{id}/limits", new { rate_limits = new[] { new { requests_per_minute = rpm } } }, 200);
        }

        var key = (await SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{id}/keys", new { name = "k" }, 201)).GetProperty("secret").GetString()!;
        return TenantClient(key);
    }

    /// <summary>A cluster node at <paramref name="url"/> serving <paramref name="model"/>, registered and reporting as one that joined does.</summary>
    public async Task AddClusterNodeAsync(string id, string jurisdiction, string url, string model, string? kind = null)
    {
        var nodes = App.Services.GetRequiredService<NodeDirectory>();
        var credential = NodeCredentials.Issue(
            new NodeClaims(id, jurisdiction, nameof(Residency.Policies.NodeKind.Local), url, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()),
            App.Services.GetRequiredService<OperatorSigningKey>());
        NodeModel[] models = [new NodeModel(model, model, 4, Kind: kind)];
        await nodes.Registry.UpsertAsync(new NodeView(id, jurisdiction, nameof(Residency.Policies.NodeKind.Local), url, models, "Active", credential, null, 0));
        Assert.True(await nodes.Registry.ReportAsync(id, models, new NodeLoad(0, [new ModelLoad(model, 0, 4, 0, 0)], [])));
        nodes.Invalidate();
    }
}

/// <summary>
/// <c>/tokenize</c> and <c>/detokenize</c> relayed to a cluster node: <see cref="OpenAI.TokenizerRelay"/> routes around a
/// node it cannot reach with its own loop (mark it unreachable, fail over, wait for the new decision), which no test
/// covered; and a relayed request is counted against the tenant's requests per minute as a local one is.
/// </summary>
public sealed class TokenizerRelayTests(TokenizerRelayFixture fixture) : IClassFixture<TokenizerRelayFixture>
{
    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    /// <summary>A node's tokenizer: <c>/tokenize</c> answers three ids; <c>/detokenize</c> refuses an id of 1,000 or more as a node refuses one outside its vocabulary.</summary>
    private static async Task NodeTokenizer(HttpContext context)
    {
        context.Response.ContentType = "application/json";
        if (context.Request.Path == "/tokenize")
        {
            await context.Response.WriteAsync("""{"tokens":[1,2,3],"count":3,"max_model_len":256}""");
            return;
        }

        var tokens = (await JsonDocument.ParseAsync(context.Request.Body)).RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToList();
        if (tokens.FindIndex(t => t >= 1000) is var outside and >= 0)
        {
            context.Response.StatusCode = 400;
            await context.Response.WriteAsync($$$"""{"error":{"message":"tokens[{{{outside}}}] must be a token id between 0 and 999.","type":"invalid_request_error","param":"tokens[{{{outside}}}]","code":"invalid_value"}}""");
            return;
        }

        await context.Response.WriteAsync("""{"content":"Once","prompt":"Once"}""");
    }

    private static Task NoChat(HttpContext context)
    {
        context.Response.StatusCode = 404;
        return Task.CompletedTask;
    }

    private async Task<List<JsonElement>> EntriesOfAsync(string requestId) =>
        [.. (await fixture.SendAsync(HttpMethod.Get, "/admin/v1/audit?order=desc&limit=100", null, 200)).GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == requestId)
            .OrderBy(e => e.GetProperty("sequence").GetInt64())];

    [Fact]
    public async Task Tokenize_WhoseNodeCannotBeReached_IsAnsweredByTheNextNodeInTheAllowedJurisdiction_Audited()
    {
        await using var live = await FakeUpstreamEngine.StartAsync(NoChat, tokenizer: NodeTokenizer);
        await fixture.AddClusterNodeAsync("tf-a", "TH", FakeUpstreamEngine.RefusingUrl(), "tf-model");
        await fixture.AddClusterNodeAsync("tf-b", "TH", live.Url, "tf-model");
        using var client = await fixture.NewTenantAsync(["TH"]);

        using var response = await client.PostAsync("/tokenize", Json("""{"model":"tf-model","content":"Once upon a time"}"""));
        var body = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {body}");
        Assert.Equal([1, 2, 3], JsonDocument.Parse(body).RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()));
        Assert.Equal(("tf-b", "TH"), (response.Headers.GetValues(InferenceRouter.NodeHeader).Single(), response.Headers.GetValues(InferenceRouter.JurisdictionHeader).Single()));
        Assert.Equal(1, live.Requests);

        // Both decisions are evidence under the request's id: tf-a first, then the failover to tf-b.
        var decisions = (await EntriesOfAsync(response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single()))
            .Where(e => e.GetProperty("action").GetString() == "inference.allowed").Select(e => e.GetProperty("node").GetString());
        Assert.Equal(["tf-a", "tf-b"], decisions);
    }

    [Fact]
    public async Task Tokenize_WithNoReachableNodeInTheAllowedJurisdiction_Is503_NeverSentAcrossTheBorder()
    {
        await using var abroad = await FakeUpstreamEngine.StartAsync(NoChat, tokenizer: NodeTokenizer);
        await fixture.AddClusterNodeAsync("tn-a", "TH", FakeUpstreamEngine.RefusingUrl(), "tn-model");
        await fixture.AddClusterNodeAsync("tn-b", "TH", FakeUpstreamEngine.RefusingUrl(), "tn-model");
        await fixture.AddClusterNodeAsync("tn-sg", "SG", abroad.Url, "tn-model");
        using var client = await fixture.NewTenantAsync(["TH"]);

        using var response = await client.PostAsync("/tokenize", Json("""{"model":"tn-model","content":"Once upon a time"}"""));
        var body = await response.Content.ReadAsStringAsync();
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");

        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("no_compliant_capacity", error.GetProperty("code").GetString());
        Assert.Equal(0, abroad.Requests);
        var refusal = (await EntriesOfAsync(response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single())).Last();
        Assert.Equal("inference.refused", refusal.GetProperty("action").GetString());
        Assert.Contains("failover: tn-b could not be reached", refusal.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// A local <c>/detokenize</c> refuses an id outside the vocabulary before the request is counted; relayed, the
    /// node refuses it, and the gateway had counted it already: the same mistake cost a tenant one of its minute's
    /// requests only through a gateway. Now a relayed request counts once the node has taken it.
    /// </summary>
    [Fact]
    public async Task RelayedDetokenize_RefusedByTheNodeForItsIds_IsNotCounted_AsALocalOneIsNot()
    {
        await using var live = await FakeUpstreamEngine.StartAsync(NoChat, tokenizer: NodeTokenizer);
        await fixture.AddClusterNodeAsync("tc-a", "TH", live.Url, "tc-model");
        using var client = await fixture.NewTenantAsync(["TH"], requestsPerMinute: 2);

        using var invalid = await client.PostAsync("/detokenize", Json("""{"model":"tc-model","tokens":[1,5000]}"""));
        var refused = JsonDocument.Parse(await invalid.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal((HttpStatusCode.BadRequest, "tokens[1]"), (invalid.StatusCode, refused.GetProperty("param").GetString()));

        using var first = await client.PostAsync("/detokenize", Json("""{"model":"tc-model","tokens":[1,2]}"""));
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal("1", first.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        using var second = await client.PostAsync("/detokenize", Json("""{"model":"tc-model","tokens":[1,2]}"""));
        Assert.Equal("0", second.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        using var limited = await client.PostAsync("/detokenize", Json("""{"model":"tc-model","tokens":[1,2]}"""));
        Assert.Equal((HttpStatusCode)429, limited.StatusCode);
        Assert.Equal(3, live.Requests);
    }

    /// <summary>
    /// A node's /v1/completions and /v1/embeddings: token ids of 1,000 or more are refused as a node refuses ids outside
    /// its model's vocabulary (400 naming the id), others answered with one token of usage.
    /// </summary>
    private static async Task NodeRefusingIdsOutsideItsVocabulary(HttpContext context)
    {
        var body = (await JsonDocument.ParseAsync(context.Request.Body)).RootElement;
        var param = body.TryGetProperty("prompt", out var prompt) ? "prompt" : "input";
        var ids = (param == "prompt" ? prompt : body.GetProperty("input")).EnumerateArray().Select(t => t.GetInt32()).ToList();
        context.Response.ContentType = "application/json";
        if (ids.FindIndex(t => t >= 1000) is var outside and >= 0)
        {
            context.Response.StatusCode = 400;
            await context.Response.WriteAsync($$$"""{"error":{"message":"{{{param}}}[{{{outside}}}] is {{{ids[outside]}}}, which is not a token id of model 'tv-model' (0 to 999).","type":"invalid_request_error","param":"{{{param}}}[{{{outside}}}]","code":"invalid_value"}}""");
            return;
        }

        await context.Response.WriteAsync(param == "prompt"
            ? """{"id":"cmpl-node","object":"text_completion","created":1,"model":"tv-model","choices":[{"index":0,"text":" upon","finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}"""
            : """{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1.25]}],"model":"tv-model","usage":{"prompt_tokens":2,"total_tokens":2}}""");
    }

    /// <summary>
    /// Token ids on a local route are checked against the model's vocabulary before the request is counted; relayed, only
    /// the node can check them, after the gateway admitted the request: its refusal (the client's 400) cost the tenant
    /// one of its minute's requests, which a relayed /detokenize already gave back. Now it is given back too.
    /// </summary>
    [Theory]
    [InlineData("/v1/completions", """{"model":"MODEL","prompt":[1,5000],"max_tokens":1}""", """{"model":"MODEL","prompt":[1,2],"max_tokens":1}""", "prompt[1]", null)]
    [InlineData("/v1/embeddings", """{"model":"MODEL","input":[1,5000]}""", """{"model":"MODEL","input":[1,2]}""", "input[1]", NodeModelKinds.Embedding)]
    public async Task RelayedTokenIds_RefusedByTheNodeOutsideItsVocabulary_AreNotCounted(string path, string invalidBody, string validBody, string param, string? kind)
    {
        var model = "tv-" + (kind ?? "chat");
        await using var node = await FakeUpstreamEngine.StartAsync(NoChat, embeddings: NodeRefusingIdsOutsideItsVocabulary, completions: NodeRefusingIdsOutsideItsVocabulary);
        await fixture.AddClusterNodeAsync(model + "-node", "TH", node.Url, model, kind);
        using var client = await fixture.NewTenantAsync(["TH"], requestsPerMinute: 2);

        using var invalid = await client.PostAsync(path, Json(invalidBody.Replace("MODEL", model, StringComparison.Ordinal)));
        var refused = JsonDocument.Parse(await invalid.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal((HttpStatusCode.BadRequest, param), (invalid.StatusCode, refused.GetProperty("param").GetString()));

        using var first = await client.PostAsync(path, Json(validBody.Replace("MODEL", model, StringComparison.Ordinal)));
        Assert.True(first.StatusCode == HttpStatusCode.OK, await first.Content.ReadAsStringAsync());
        Assert.Equal("1", first.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        using var second = await client.PostAsync(path, Json(validBody.Replace("MODEL", model, StringComparison.Ordinal)));
        Assert.Equal("0", second.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        using var limited = await client.PostAsync(path, Json(validBody.Replace("MODEL", model, StringComparison.Ordinal)));
        Assert.Equal((HttpStatusCode)429, limited.StatusCode);
        Assert.Equal(3, node.Requests);
    }
}
