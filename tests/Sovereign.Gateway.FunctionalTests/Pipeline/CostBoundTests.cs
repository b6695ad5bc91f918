using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// One request is billed at most <see cref="Sovereign.Metering.Pricing.CostCalculator.MaxRequestCost"/>, the ledger's
/// largest amount. A request that could cost more is refused before any work: it used to run, and its record, over the
/// ledger's range, failed to commit, so the client got a 500 after the work was done and nothing was billed.
/// </summary>
public sealed class CostBoundTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    [Fact]
    public async Task ARequestThatCouldCostMoreThanTheLedgerRecords_Is400BeforeItRuns_NotA500AfterIt()
    {
        // 9,500 prompt tokens at a million rupiah each: 9.5e9, above the 9e9 one record holds.
        await using var engine = await FakeUpstreamEngine.StartAsync(context =>
            FakeUpstreamEngine.AnswerAsync(context, """{"prompt_tokens":9500,"completion_tokens":1,"total_tokens":9501}"""));
        const string Model = "cb-model";
        await fixture.RegisterEngineAsync("cb-engine", engine.Url, Model);
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/cb-plan", new { currency = "IDR" }, 200);
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/plans/cb-plan/prices", new { model = Model, input_per_million = 1_000_000_000_000m, output_per_million = 1m }, 201);
        var (_, client) = await fixture.NewTenantAsync("cb-plan");
        using var _ = client;
        var prompt = new string('a', 10_000);

        using var response = await client.PostAsync("/v1/chat/completions",
            new StringContent($$"""{"model":"{{Model}}","messages":[{"role":"user","content":"{{prompt}}"}],"max_tokens":1}""", Encoding.UTF8, "application/json"));

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(400 == (int)response.StatusCode, body);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal("request_cost_out_of_range", error.GetProperty("code").GetString());
        Assert.Contains("9000000000 IDR", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, engine.Requests);
    }
}
