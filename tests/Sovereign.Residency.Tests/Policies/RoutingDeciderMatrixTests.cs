using Sovereign.Residency.Policies;

namespace Sovereign.Residency.Tests.Policies;

/// <summary>The policy matrix: who may serve whom, and what a refusal says.</summary>
public sealed class RoutingDeciderMatrixTests
{
    [Theory]
    // Tenant pinned to Thailand, replicas in Thailand and Singapore.
    [InlineData("pinned TH, TH has room", "TH", "TH", false, "th-1:TH:up:2/10, sg-1:SG:up:0/10", 200, null, "th-1")]
    [InlineData("pinned TH, TH full: 503, not SG", "TH", "TH", false, "th-1:TH:up:10/10, sg-1:SG:up:0/10", 503, "no_compliant_capacity", null)]
    [InlineData("pinned TH, TH down: 503, not SG", "TH", "TH", false, "th-1:TH:down:0/10, sg-1:SG:up:0/10", 503, "no_compliant_capacity", null)]
    [InlineData("pinned TH, only SG replicas", "TH", "TH", false, "sg-1:SG:up:0/10", 403, "residency_violation", null)]
    [InlineData("pinned TH, gateway in SG", "SG", "TH", false, "th-1:TH:up:0/10", 403, "residency_violation", null)]
    [InlineData("pinned TH, gateway code lower case", "th", "TH", false, "th-1:th:up:0/10", 200, null, "th-1")]
    // ASEAN tenants may use any member state.
    [InlineData("ASEAN, TH down: SG", "TH", "ASEAN", false, "th-1:TH:down:0/10, sg-1:SG:up:5/10", 200, null, "sg-1")]
    [InlineData("ASEAN, TH full: SG", "SG", "asean", false, "th-1:TH:up:4/4, sg-1:SG:up:5/10", 200, null, "sg-1")]
    [InlineData("ASEAN, both down", "TH", "ASEAN", false, "th-1:TH:down:0/10, sg-1:SG:down:0/10", 503, "no_compliant_capacity", null)]
    [InlineData("ASEAN excludes JP", "TH", "ASEAN", false, "jp-1:JP:up:0/10", 403, "residency_violation", null)]
    [InlineData("TH and SG listed as codes", "SG", "TH,SG", false, "th-1:TH:up:3/10, sg-1:SG:up:1/10", 200, null, "sg-1")]
    // EU tenants.
    [InlineData("EU, DE gateway, DE replica", "DE", "EU", false, "de-1:DE:up:1/8, us-1:US:up:0/8", 200, null, "de-1")]
    [InlineData("EU, US gateway", "US", "EU", false, "de-1:DE:up:1/8", 403, "residency_violation", null)]
    [InlineData("EU, only US replicas", "DE", "EU", false, "us-1:US:up:0/8", 403, "residency_violation", null)]
    [InlineData("EU, DE beside the gateway before a less loaded FR", "DE", "EU", false, "de-1:DE:up:4/8, fr-1:FR:up:1/8", 200, null, "de-1")]
    [InlineData("EU, DE full: the less loaded FR", "DE", "EU", false, "de-1:DE:up:8/8, fr-1:FR:up:1/8, it-1:IT:up:2/8", 200, null, "fr-1")]
    [InlineData("EU excludes NO", "DE", "EU", false, "no-1:NO:up:0/8", 403, "residency_violation", null)]
    [InlineData("EU excludes CH", "DE", "EU", false, "ch-1:CH:up:0/8", 403, "residency_violation", null)]
    [InlineData("EU excludes GB", "DE", "EU", false, "gb-1:GB:up:0/8", 403, "residency_violation", null)]
    [InlineData("EU gateway in NO refused", "NO", "EU", false, "de-1:DE:up:0/8", 403, "residency_violation", null)]
    [InlineData("EEA includes NO", "NO", "EEA", false, "no-1:NO:up:0/8", 200, null, "no-1")]
    [InlineData("EEA excludes CH", "NO", "EEA", false, "ch-1:CH:up:0/8", 403, "residency_violation", null)]
    [InlineData("EU plus a code", "DE", "EU,TH", false, "th-1:TH:up:0/8", 200, null, "th-1")]
    // External providers.
    [InlineData("external only, not allowed", "TH", "TH", false, "ext-1:TH:up:0/10:ext", 403, "residency_violation", null)]
    [InlineData("external only, allowed", "TH", "TH", true, "ext-1:TH:up:0/10:ext", 200, null, "ext-1")]
    [InlineData("local busier than external, external not allowed", "TH", "TH", false, "th-1:TH:up:9/10, ext-1:TH:up:0/10:ext", 200, null, "th-1")]
    [InlineData("local full, external not allowed: 503", "TH", "TH", false, "th-1:TH:up:10/10, ext-1:TH:up:0/10:ext", 503, "no_compliant_capacity", null)]
    [InlineData("external allowed and less loaded", "TH", "TH", true, "th-1:TH:up:9/10, ext-1:TH:up:0/10:ext", 200, null, "ext-1")]
    [InlineData("external allowed but abroad", "TH", "TH", true, "ext-1:SG:up:0/10:ext", 403, "residency_violation", null)]
    // Selection.
    [InlineData("lowest ratio, not lowest load", "TH", "TH", false, "th-1:TH:up:2/4, th-2:TH:up:3/10", 200, null, "th-2")]
    [InlineData("equal ratio: lowest node id", "TH", "TH", false, "th-b:TH:up:1/2, th-a:TH:up:2/4", 200, null, "th-a")]
    [InlineData("zero capacity never has room", "TH", "TH", false, "th-1:TH:up:0/0", 503, "no_compliant_capacity", null)]
    [InlineData("no replicas at all", "TH", "TH", false, "", 403, "residency_violation", null)]
    [InlineData("empty policy allows nothing", "TH", "", true, "th-1:TH:up:0/10", 403, "residency_violation", null)]
    [InlineData("unknown group allows nothing", "TH", "NOWHERE", false, "th-1:TH:up:0/10", 403, "residency_violation", null)]
    public void Decide_PolicyMatrix_RoutesOrRefusesAsDefined(
        string scenario,
        string gateway,
        string jurisdictions,
        bool external,
        string replicas,
        int status,
        string? code,
        string? selected)
    {
        var decision = Routing.Decide(gateway, Routing.Policy(jurisdictions, external), replicas);

        Assert.True(status == decision.HttpStatus, $"{scenario}: {decision.HttpStatus} {decision.Message} [{string.Join(" | ", decision.Reasons)}]");
        Assert.Equal(code, decision.Code);
        Assert.Equal(selected, decision.SelectedReplica?.NodeId);
        Assert.Equal(status == 200, decision.Allowed);
        Assert.NotEmpty(decision.Reasons);
        Assert.False(string.IsNullOrWhiteSpace(decision.Message));
    }

    [Theory]
    [InlineData("no restrictions", "", "", "", "m", null, null, true, null)]
    [InlineData("listed model", "m,n", "", "", "m", null, null, true, null)]
    [InlineData("unlisted model", "n", "", "", "m", null, null, false, "model_id_not_allowed")]
    [InlineData("model ids are case-sensitive", "M", "", "", "m", null, null, false, "model_id_not_allowed")]
    [InlineData("licence allowed, any case", "", "Apache-2.0,MIT", "", "m", "apache-2.0", null, true, null)]
    [InlineData("licence not allowed", "", "Apache-2.0", "", "m", "llama3", null, false, "model_license_not_allowed")]
    [InlineData("licence unknown fails closed", "", "Apache-2.0", "", "m", null, null, false, "model_license_unknown")]
    [InlineData("licence unknown, unrestricted", "", "", "", "m", null, null, true, null)]
    [InlineData("origin in allowed group", "", "", "EU", "m", null, "fr", true, null)]
    [InlineData("origin outside allowed group", "", "", "EU", "m", null, "CN", false, "model_origin_not_allowed")]
    [InlineData("origin unknown fails closed", "", "", "EU,US", "m", null, null, false, "model_origin_unknown")]
    [InlineData("origin unknown, unrestricted", "", "", "", "m", "MIT", null, true, null)]
    [InlineData("all three allowed", "m", "llama3.1", "US", "m", "Llama3.1", "us", true, null)]
    public void Decide_ModelRestrictions_RefuseWithModelNotAllowed(
        string scenario,
        string models,
        string licenses,
        string origins,
        string modelId,
        string? license,
        string? origin,
        bool allowed,
        string? reason)
    {
        var policy = Routing.Policy("TH") with
        {
            AllowedModels = Routing.Split(models),
            AllowedLicenses = Routing.Split(licenses),
            AllowedOrigins = Routing.Split(origins),
        };

        var decision = Routing.Decide("TH", policy, "th-1:TH:up:0/10", new ModelFacts(modelId, license, origin));

        Assert.True(allowed == decision.Allowed, $"{scenario}: {decision.Message}");
        if (allowed)
        {
            Assert.Equal("th-1", decision.SelectedReplica?.NodeId);
        }
        else
        {
            Assert.Equal(403, decision.HttpStatus);
            Assert.Equal(RoutingCodes.ModelNotAllowed, decision.Code);
            Assert.StartsWith(reason + ":m:", Assert.Single(decision.Reasons), StringComparison.Ordinal);
        }
    }
}
