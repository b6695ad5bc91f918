using Sovereign.Residency.Jurisdictions;
using Sovereign.Residency.Policies;

namespace Sovereign.Residency.Tests.Policies;

public sealed class PolicyNarrowingTests
{
    private static readonly JurisdictionCatalog Catalog = JurisdictionCatalog.Default;

    private static readonly ResidencyPolicy Tenant = new()
    {
        AllowedJurisdictions = ["ASEAN"],
        AllowedModels = ["llama-3.1-8b", "qwen2.5-7b"],
        AllowedLicenses = ["Apache-2.0", "llama3.1"],
        AllowedOrigins = ["US", "CN"],
        AllowExternalProviders = true,
        Retention = RetentionPolicy.Store(30),
    };

    [Fact]
    public void NarrowWith_NoNarrowing_ReturnsTenantPolicy()
    {
        var result = Tenant.NarrowWith(PolicyNarrowing.None, Catalog);

        Assert.True(result.IsValid);
        Assert.Equal(Tenant, result.Effective);
    }

    [Fact]
    public void NarrowWith_SubsetOfEveryField_ReturnsIntersection()
    {
        var key = new PolicyNarrowing
        {
            AllowedJurisdictions = ["th", "SG"],
            AllowedModels = ["qwen2.5-7b"],
            AllowedLicenses = ["apache-2.0"],
            AllowedOrigins = ["CN"],
            AllowExternalProviders = false,
            Retention = RetentionPolicy.None,
        };

        var effective = Tenant.NarrowWith(key, Catalog).Effective;

        Assert.NotNull(effective);
        Assert.Equal(["SG", "TH"], effective.AllowedJurisdictions);
        Assert.Equal(["qwen2.5-7b"], effective.AllowedModels);
        Assert.Equal(["Apache-2.0"], effective.AllowedLicenses);
        Assert.Equal(["CN"], effective.AllowedOrigins);
        Assert.False(effective.AllowExternalProviders);
        Assert.Equal(RetentionPolicy.None, effective.Retention);
        Assert.Empty(ResidencyPolicyValidator.Validate(effective, Catalog));
    }

    [Fact]
    public void NarrowWith_KeyPinnedToThailand_NeverRoutesToSingapore()
    {
        var effective = Tenant.NarrowWith(new PolicyNarrowing { AllowedJurisdictions = ["TH"] }, Catalog).Effective!;

        var tenantDecision = Routing.Decide("TH", Tenant, "th-1:TH:down:0/10, sg-1:SG:up:0/10");
        var keyDecision = Routing.Decide("TH", effective, "th-1:TH:down:0/10, sg-1:SG:up:0/10");

        Assert.Equal("sg-1", tenantDecision.SelectedReplica?.NodeId);
        Assert.Equal(503, keyDecision.HttpStatus);
        Assert.Equal(RoutingCodes.NoCompliantCapacity, keyDecision.Code);
    }

    [Fact]
    public void NarrowWith_GroupInsideTenant_ResolvesToCodes()
    {
        var tenant = Routing.Policy("EEA");

        var effective = tenant.NarrowWith(new PolicyNarrowing { AllowedJurisdictions = ["EU"] }, Catalog).Effective!;

        Assert.Equal(27, effective.AllowedJurisdictions.Count);
        Assert.DoesNotContain("NO", effective.AllowedJurisdictions);
    }

    [Fact]
    public void NarrowWith_WiderJurisdictions_ErrorNamesFieldAndCountries()
    {
        var result = Routing.Policy("EU").NarrowWith(new PolicyNarrowing { AllowedJurisdictions = ["EEA"] }, Catalog);

        Assert.False(result.IsValid);
        Assert.Null(result.Effective);
        var error = Assert.Single(result.Errors);
        Assert.Equal(PolicyFields.AllowedJurisdictions, error.Field);
        Assert.Contains("{IS,LI,NO}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NarrowWith_DisjointJurisdictions_KeyWouldAllowNoJurisdiction()
    {
        var result = Routing.Policy("TH").NarrowWith(new PolicyNarrowing { AllowedJurisdictions = ["SG"] }, Catalog);

        Assert.Contains(new PolicyError(PolicyFields.AllowedJurisdictions, "the key would allow no jurisdiction"), result.Errors);
    }

    [Fact]
    public void NarrowWith_EmptyJurisdictionList_KeyWouldAllowNoJurisdiction()
    {
        var result = Routing.Policy("TH").NarrowWith(new PolicyNarrowing { AllowedJurisdictions = [] }, Catalog);

        Assert.Equal([new PolicyError(PolicyFields.AllowedJurisdictions, "the key would allow no jurisdiction")], result.Errors);
    }

    [Fact]
    public void NarrowWith_UnknownKeyJurisdiction_IsReported()
    {
        var result = Routing.Policy("TH").NarrowWith(new PolicyNarrowing { AllowedJurisdictions = ["TH", "XX"] }, Catalog);

        var error = Assert.Single(result.Errors);
        Assert.Equal(PolicyFields.AllowedJurisdictions, error.Field);
        Assert.Contains("'XX'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NarrowWith_WiderModels_ErrorNamesModel()
    {
        var result = Tenant.NarrowWith(new PolicyNarrowing { AllowedModels = ["qwen2.5-7b", "mistral-7b"] }, Catalog);

        var error = Assert.Single(result.Errors);
        Assert.Equal(PolicyFields.AllowedModels, error.Field);
        Assert.Contains("mistral-7b", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NarrowWith_TenantAllowsAnyModel_KeyListBecomesTheList()
    {
        var effective = Routing.Policy("TH").NarrowWith(new PolicyNarrowing { AllowedModels = ["m1", "m1", "m2"] }, Catalog).Effective!;

        Assert.Equal(["m1", "m2"], effective.AllowedModels);
    }

    [Fact]
    public void NarrowWith_DisjointLicenses_KeyWouldAllowNoLicense()
    {
        var result = Tenant.NarrowWith(new PolicyNarrowing { AllowedLicenses = ["MIT"] }, Catalog);

        Assert.Equal(
            [
                new PolicyError(PolicyFields.AllowedLicenses, "a key cannot widen the tenant policy: {MIT} not allowed by the tenant"),
                new PolicyError(PolicyFields.AllowedLicenses, "the key would allow no license"),
            ],
            result.Errors);
    }

    [Fact]
    public void NarrowWith_WiderOrigins_ErrorNamesField()
    {
        var result = Tenant.NarrowWith(new PolicyNarrowing { AllowedOrigins = ["FR"] }, Catalog);

        Assert.All(result.Errors, e => Assert.Equal(PolicyFields.AllowedOrigins, e.Field));
        Assert.Contains(result.Errors, e => e.Message == "the key would allow no origin");
    }

    [Fact]
    public void NarrowWith_ExternalWhenTenantForbids_ErrorNamesField()
    {
        var result = Routing.Policy("TH").NarrowWith(new PolicyNarrowing { AllowExternalProviders = true }, Catalog);

        Assert.Equal(PolicyFields.AllowExternalProviders, Assert.Single(result.Errors).Field);
    }

    [Theory]
    [InlineData(7, true)]
    [InlineData(30, true)]
    [InlineData(31, false)]
    [InlineData(null, true)]
    public void NarrowWith_Retention_OnlyShorterOrNone(int? keyDays, bool valid)
    {
        var retention = keyDays is { } days ? RetentionPolicy.Store(days) : RetentionPolicy.None;

        var result = Tenant.NarrowWith(new PolicyNarrowing { Retention = retention }, Catalog);

        Assert.Equal(valid, result.IsValid);
        if (valid)
        {
            Assert.Equal(retention, result.Effective!.Retention);
        }
        else
        {
            Assert.Equal(PolicyFields.Retention, Assert.Single(result.Errors).Field);
        }
    }

    [Fact]
    public void NarrowWith_StoreWhenTenantStoresNothing_IsWidening()
    {
        var result = Routing.Policy("TH").NarrowWith(new PolicyNarrowing { Retention = RetentionPolicy.Store(1) }, Catalog);

        var error = Assert.Single(result.Errors);
        Assert.Equal(PolicyFields.Retention, error.Field);
        Assert.Contains("store 1 days exceeds the tenant's none", error.Message, StringComparison.Ordinal);
    }
}
