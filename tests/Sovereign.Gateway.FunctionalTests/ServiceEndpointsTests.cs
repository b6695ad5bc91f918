namespace Sovereign.Gateway.FunctionalTests;

/// <summary>/v1/models, /health, /ready and /metrics.</summary>
[Collection(ServerCollection.Name)]
public sealed class ServiceEndpointsTests(ServerFixture server)
{
    /// <summary>
    /// The list names the aliases requests may use after the models (their cards as <c>GET /v1/models/{alias}</c>
    /// answers them): it named the models only, so an SDK user listing models never learnt that <c>auto</c> exists.
    /// </summary>
    [Fact]
    public async Task Models_ListsEveryServedModelAndTheAliasesThroughTheSdk()
    {
        var client = server.OpenAI.GetOpenAIModelClient();
        var models = (await client.GetModelsAsync()).Value;

        Assert.Equal([ServerFixture.Stories, ServerFixture.TinyRandom, ServerFixture.StoriesEmbedding, "all-MiniLM-L6-v2", "auto", ServerFixture.ThaiOnlyAlias], models.Select(m => m.Id));
        foreach (var alias in models.Where(m => m.Id is "auto" or ServerFixture.ThaiOnlyAlias))
        {
            var card = (await client.GetModelAsync(alias.Id)).Value;
            Assert.Equal((alias.Id, alias.OwnedBy, alias.CreatedAt), (card.Id, card.OwnedBy, card.CreatedAt));
        }
    }

    [Fact]
    public async Task Models_GetOne_KnownAndUnknown()
    {
        Assert.Equal(ServerFixture.TinyRandom, (await server.OpenAI.GetOpenAIModelClient().GetModelAsync(ServerFixture.TinyRandom)).Value.Id);
        var response = await server.Http.GetAsync("/v1/models/nope");
        Assert.Equal(404, (int)response.StatusCode);
    }

    [Fact]
    public async Task HealthAndReady_AreOk()
    {
        Assert.Equal(200, (int)(await server.Http.GetAsync("/health")).StatusCode);
        using var admin = server.AdminClient();
        var ready = await admin.GetAsync("/ready");
        Assert.Equal(200, (int)ready.StatusCode);
        Assert.Contains(ServerFixture.Stories, await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    /// <summary>
    /// A load balancer needs the status alone: /ready told anyone who reached the port the ids of the models loaded
    /// (and, in an outage, where the database is). Without the operator token it is <c>{"status":"ready"}</c>; a
    /// wrong token is anonymous too (a probe is never refused, and the answer says nothing more).
    /// </summary>
    [Theory]
    [InlineData(null)]
    [InlineData("Bearer not-the-operator-token")]
    public async Task Ready_WithoutTheOperatorToken_IsTheStatusAlone(string? authorization)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/ready");
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        using var response = await server.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("""{"status":"ready"}""", body);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Bearer not-the-operator-token")]
    [InlineData("Basic b3BlcmF0b3I6eA==")]
    public async Task Metrics_WithoutTheOperatorToken_Is401(string? authorization)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        using var response = await server.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(401, (int)response.StatusCode);
        Assert.DoesNotContain("sovereign_", body, StringComparison.Ordinal);
        // As OpenAI answers a bad key: type invalid_request_error, code invalid_api_key (it said authentication_error).
        var error = System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
    }
}
