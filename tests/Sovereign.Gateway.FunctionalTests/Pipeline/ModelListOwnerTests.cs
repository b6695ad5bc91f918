using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// /v1/models names a model's owner as the operator configured it (<c>Sovereign:ModelOwner</c>, default
/// <c>sovereign</c>), never a node's id: it named the external engine serving the model (<c>"owned_by":
/// "b-th-engine"</c>, the operator's registry id for it), and before that the first engine registered with the model
/// wherever it was (an SG engine's id shown to a TH-only tenant).
/// </summary>
public sealed class ModelListOwnerTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    [Fact]
    public async Task AModelOfExternalEngines_IsOwnedByTheOperator_NeverByAnEngineId()
    {
        const string Model = "owned-model";
        await fixture.RegisterEngineAsync("a-sg-engine", FakeUpstreamEngine.RefusingUrl(), Model, jurisdiction: "SG");
        await fixture.RegisterEngineAsync("b-th-engine", FakeUpstreamEngine.RefusingUrl(), Model);
        await fixture.SendAsync(HttpMethod.Put, "/admin/v1/plans/owners", new { currency = "THB" }, 200);
        var (_, client) = await fixture.NewTenantAsync("owners");
        using var _ = client;

        var list = await client.GetStringAsync("/v1/models");
        var models = JsonDocument.Parse(list).RootElement.GetProperty("data").EnumerateArray().ToList();
        var card = Assert.Single(models, m => m.GetProperty("id").GetString() == Model);
        Assert.Equal(ExternalEnginesFixture.ModelOwner, card.GetProperty("owned_by").GetString());
        // Every card, aliases included, is the operator's; no engine id appears anywhere in the list.
        Assert.All(models, m => Assert.Equal(ExternalEnginesFixture.ModelOwner, m.GetProperty("owned_by").GetString()));
        Assert.DoesNotContain("-engine", list, StringComparison.Ordinal);

        var one = await client.GetStringAsync($"/v1/models/{Model}");
        Assert.Equal(ExternalEnginesFixture.ModelOwner, JsonDocument.Parse(one).RootElement.GetProperty("owned_by").GetString());
        Assert.DoesNotContain("-engine", one, StringComparison.Ordinal);
    }

    /// <summary>What <c>Sovereign:ModelOwner</c> takes: what a tenant can read on one line (the server refuses to start otherwise).</summary>
    [Theory]
    [InlineData("sovereign", true)]
    [InlineData("Acme Cloud TH", true)]
    [InlineData("", false)]
    [InlineData(" acme", false)]
    [InlineData("acme\n", false)]
    [InlineData("acme\u202e", false)]
    public void ModelOwner_IsOneLineOfVisibleAscii(string owner, bool valid) =>
        Assert.Equal(valid, Sovereign.Gateway.Hosting.SovereignOptionsValidator.IsModelOwner(owner));
}
