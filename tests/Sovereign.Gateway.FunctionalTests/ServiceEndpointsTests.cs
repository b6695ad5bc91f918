namespace Sovereign.Gateway.FunctionalTests;

/// <summary>/v1/models, /health, /ready and /metrics.</summary>
[Collection(ServerCollection.Name)]
public sealed class ServiceEndpointsTests(ServerFixture server)
{
    [Fact]
    public async Task Models_ListsEveryServedModelThroughTheSdk()
    {
        var models = (await server.OpenAI.GetOpenAIModelClient().GetModelsAsync()).Value.Select(m => m.Id).ToArray();

        Assert.Equal([ServerFixture.Stories, ServerFixture.TinyRandom, ServerFixture.StoriesEmbedding, "all-MiniLM-L6-v2"], models);
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
        var ready = await server.Http.GetAsync("/ready");
        Assert.Equal(200, (int)ready.StatusCode);
        Assert.Contains(ServerFixture.Stories, await ready.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_ExposeServingMetricsInPrometheusFormat()
    {
        var (status, _, _) = await server.PostJsonAsync("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":4}""");
        Assert.Equal(200, status);

        using var admin = server.AdminClient();
        string[] names =
        [
            "sovereign_num_requests_running", "sovereign_num_requests_waiting", "sovereign_kv_cache_usage",
            "sovereign_prompt_tokens_total", "sovereign_generation_tokens_total", "sovereign_time_to_first_token_seconds_bucket",
            "sovereign_inter_token_latency_seconds_bucket", "sovereign_e2e_request_latency_seconds_bucket", "sovereign_request_queue_time_seconds_bucket",
        ];

        // CI once got a scrape without this meter's series (cause not found; the exporter is a beta with open reports
        // of partial pages, open-telemetry/opentelemetry-dotnet#5515). Prometheus tolerates one missed sample, so a
        // series must show within three scrapes; one that is never exported still fails.
        var text = string.Empty;
        for (var scrape = 0; scrape < 3 && (scrape == 0 || !names.All(name => text.Contains(name, StringComparison.Ordinal))); scrape++)
        {
            text = await admin.GetStringAsync("/metrics");
        }

        foreach (var name in names)
        {
            // On failure, show every Sovereign series the scrape did hold, not just the first bytes of the page.
            Assert.True(text.Contains(name, StringComparison.Ordinal),
                $"{name} missing from /metrics ({text.Length} chars); Sovereign lines: "
                + string.Join(" | ", text.Split('\n').Where(l => l.StartsWith("sovereign_", StringComparison.Ordinal)).Take(40)));
        }

        Assert.Contains("model=\"stories\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_FollowTheGenAiConventions_PerTenant()
    {
        var (status, _, _) = await server.PostJsonAsync("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":4,"temperature":0}""");
        Assert.Equal(200, status);

        using var admin = server.AdminClient();
        var lines = (await admin.GetStringAsync("/metrics")).Split('\n');

        bool Has(string name, params string[] labels) =>
            lines.Any(l => l.StartsWith(name, StringComparison.Ordinal) && labels.All(label => l.Contains(label, StringComparison.Ordinal)));

        Assert.True(Has("gen_ai_client_token_usage_bucket", "gen_ai_token_type=\"input\"", "gen_ai_operation_name=\"chat\"", "gen_ai_request_model=\"stories\"", "tenant="));
        Assert.True(Has("gen_ai_client_token_usage_bucket", "gen_ai_token_type=\"output\""));
        Assert.True(Has("gen_ai_server_request_duration_seconds_bucket", "gen_ai_request_model=\"stories\""));
        Assert.True(Has("gen_ai_server_time_to_first_token_seconds_bucket", "gen_ai_request_model=\"stories\""));
    }

    [Fact]
    public async Task Metrics_NameTheLegacyCompletionsOperation_TextCompletion()
    {
        var (status, _, _) = await server.PostJsonAsync("/v1/completions", """{"model":"stories","prompt":"Once upon a time","max_tokens":4,"temperature":0}""");
        Assert.Equal(200, status);

        using var admin = server.AdminClient();
        var lines = (await admin.GetStringAsync("/metrics")).Split('\n');
        Assert.Contains(lines, l => l.StartsWith("gen_ai_client_token_usage_bucket", StringComparison.Ordinal)
            && l.Contains("gen_ai_operation_name=\"text_completion\"", StringComparison.Ordinal));
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
        Assert.Equal("authentication_error", System.Text.Json.JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("type").GetString());
    }
}
