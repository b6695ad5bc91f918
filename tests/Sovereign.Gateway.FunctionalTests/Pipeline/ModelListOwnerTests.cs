using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// /v1/models names a model's owner: for a model of external engines, the engine's node. It named the first node
/// registered with the model, wherever it was: a TH-only tenant saw "owned_by": "a-sg-engine", the id of an SG
/// engine its policy can never reach, for a model it may use only on a TH engine.
/// </summary>
public sealed class ModelListOwnerTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    [Fact]
    public async Task AModelServedInTwoJurisdictions_IsOwnedByTheNodeTheCallerMayUse()
    {
        const string Model = "owned-model";
        await fixture.RegisterEngineAsync("a-sg-engine", FakeUpstreamEngine.RefusingUrl(), Model, jurisdiction: "SG");
        await fixture.RegisterEngineAsync("b-th-engine", FakeUpstreamEngine.RefusingUrl(), Model);
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/owners", new { currency = "THB" }, 200);
        var (_, client) = await fixture.NewTenantAsync("owners");
        using var _ = client;

        var models = JsonDocument.Parse(await client.GetStringAsync("/v1/models")).RootElement.GetProperty("data").EnumerateArray();
        var card = Assert.Single(models, m => m.GetProperty("id").GetString() == Model);
        Assert.Equal("b-th-engine", card.GetProperty("owned_by").GetString());

        var one = JsonDocument.Parse(await client.GetStringAsync($"/v1/models/{Model}")).RootElement;
        Assert.Equal("b-th-engine", one.GetProperty("owned_by").GetString());
    }
}
