using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests.Routing;

/// <summary>
/// The <c>auto</c> alias routes by the languages of every model a request may reach, not only this process's: the
/// languages a registered engine's or a cluster node's models declare travel with them in the registry. Before, a
/// gateway built <c>auto</c> from its own models only, so a gateway without models had no <c>auto</c> at all, and a
/// model made for a language on another node was never chosen for it.
/// </summary>
[Collection(ResidencyCollection.Name)]
public sealed class AutoAcrossNodesTests(ResidencyFixture fixture)
{
    private const string MalayText = "Saya nak pergi ke kedai runcit sekejap untuk beli susu dan roti, awak nak kirim apa-apa tak?";

    [Fact]
    public async Task Auto_ChoosesAModelAnotherNodeDeclaresForTheLanguage()
    {
        await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/nodes", new
        {
            id = "sg-malay-node",
            jurisdiction = "SG",
            base_url = fixture.Sg.Urls.First(),
            models = new[] { new { id = "sg-malay-model", upstream = ResidencyFixture.Model, capacity = 4, languages = new[] { "ms", "MS", "id" } } },
        }, 201);
        var listed = (await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/nodes", null, 200)).GetProperty("data").EnumerateArray()
            .Single(n => n.GetProperty("id").GetString() == "sg-malay-node").GetProperty("models")[0].GetProperty("languages");
        Assert.Equal(["ms", "id"], listed.EnumerateArray().Select(l => l.GetString()));
        var key = await fixture.CreateTenantWithKeyAsync("auto-across-nodes", new { allowed_jurisdictions = new[] { "ASEAN" }, allow_external_providers = true });
        using var client = fixture.TenantClient(key);

        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            JsonSerializer.Serialize(new { model = "auto", messages = new[] { new { role = "user", content = MalayText } }, max_tokens = 2 }), Encoding.UTF8, "application/json"));

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("sg-malay-node", response.Headers.GetValues("x-sovereign-node").Single());
        Assert.Equal("ms", response.Headers.GetValues(LanguageRouting.LanguageHeader).Single().Split(';')[0]);
        Assert.Contains("sg-malay-model serves 'ms'", Uri.UnescapeDataString(response.Headers.GetValues(LanguageRouting.RouteReasonHeader).Single()), StringComparison.Ordinal);
        Assert.Equal("sg-malay-model", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("model").GetString());
    }

    [Fact]
    public async Task Auto_WhoseFallbackThePolicyRefuses_IsRefusedUnderTheExactRule_AndAudited()
    {
        // English text: no candidate declares it, and the fallback (this gateway's first chat model) is outside the
        // tenant's allowed models. Before, a bare 403 model_not_allowed, with no audit entry and no usage record.
        var key = await fixture.CreateTenantWithKeyAsync("auto-fallback-refused", new { allowed_jurisdictions = new[] { "TH" }, allowed_models = new[] { "some-other-model" } });
        using var client = fixture.TenantClient(key);

        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            """{"model":"auto","messages":[{"role":"user","content":"Once upon a time there was a little girl who loved to play in the park."}],"max_tokens":2}""", Encoding.UTF8, "application/json"));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(403, (int)response.StatusCode);
        Assert.Equal("model_not_allowed", error.GetProperty("code").GetString());
        Assert.Contains("can serve 'auto' for this request", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        var auditId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
        var entry = (await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/audit?tenant=auto-fallback-refused", null, 200)).GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == auditId);
        Assert.Equal(("refused", ResidencyFixture.Model, "auto"), (entry.GetProperty("decision").GetString(), entry.GetProperty("model").GetString(), entry.GetProperty("details").GetProperty("alias").GetString()));
        var usage = (await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/usage?tenant=auto-fallback-refused", null, 200)).GetProperty("data")[0];
        Assert.Equal((1, 1), (usage.GetProperty("requests").GetInt32(), usage.GetProperty("refused").GetInt32()));
    }

    /// <summary>
    /// A model made for the language that only a cluster node in a jurisdiction the tenant may not use serves is not
    /// chosen: `auto` falls back to its default, which the tenant may use. Before, the gateway judged a cluster node's
    /// model as if it ran in the gateway's own jurisdiction: the TH-only tenant saw the SG model in /v1/models, and
    /// `auto` chose it for Filipino text, to be refused 403 by residency.
    /// </summary>
    [Fact]
    public async Task Auto_NeverChoosesAModelServedOnlyByAClusterNodeOutsideThePolicysJurisdictions()
    {
        var services = fixture.Th.Services;
        var nodes = services.GetRequiredService<NodeDirectory>();
        const string url = "https://127.0.0.1:9";
        var credential = Sovereign.Residency.ControlPlane.NodeCredentials.Issue(
            new Sovereign.Residency.ControlPlane.NodeClaims("sg-cluster-node", "SG", "Local", url, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()),
            services.GetRequiredService<Sovereign.Residency.Audit.OperatorSigningKey>());
        await nodes.Registry.UpsertAsync(new Sovereign.Cluster.Grains.NodeView("sg-cluster-node", "SG", "Local", url,
            [new Sovereign.Cluster.Grains.NodeModel("sg-tagalog", "sg-tagalog", 2, Languages: ["fil"])], "Active", credential, null, 0));
        nodes.Invalidate();
        try
        {
            using var client = fixture.TenantClient(fixture.ThOnlyKey);
            var visible = JsonDocument.Parse(await client.GetStringAsync("/v1/models")).RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString());
            Assert.DoesNotContain("sg-tagalog", visible);

            using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
                JsonSerializer.Serialize(new { model = "auto", messages = new[] { new { role = "user", content = "Magandang umaga po, pupunta ako sa palengke mamaya para bumili ng isda at gulay." } }, max_tokens = 2 }),
                Encoding.UTF8, "application/json"));

            Assert.True(response.StatusCode == System.Net.HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            Assert.Equal(("TH", ResidencyFixture.Model), (response.Headers.GetValues(InferenceRouter.JurisdictionHeader).Single(),
                JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("model").GetString()));
            Assert.StartsWith("fil;", response.Headers.GetValues(LanguageRouting.LanguageHeader).Single(), StringComparison.Ordinal);

            // A tenant that may use SG does see it.
            using var asean = fixture.TenantClient(fixture.AseanKey);
            Assert.Contains("sg-tagalog", JsonDocument.Parse(await asean.GetStringAsync("/v1/models")).RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
        }
        finally
        {
            await nodes.Registry.DeleteAsync("sg-cluster-node");
            nodes.Invalidate();
        }
    }

    [Theory]
    [InlineData("""["ms","malay"]""")]
    [InlineData("""["ms",null]""")]
    [InlineData("""["ms",5]""")]
    [InlineData("\"ms\"")]
    public async Task RegisteringAModel_WithALanguageTheDetectorDoesNotKnow_Is400NamingIt(string languages)
    {
        using var response = await fixture.Admin.PostAsync("/admin/v1/nodes", new StringContent(
            $$"""{"id":"bad-languages","jurisdiction":"SG","base_url":"http://127.0.0.1:1","models":[{"id":"m","languages":{{languages}}}]}""", Encoding.UTF8, "application/json"));
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");

        Assert.Equal(400, (int)response.StatusCode);
        Assert.StartsWith("models[0].languages", error.GetProperty("param").GetString(), StringComparison.Ordinal);
    }
}
