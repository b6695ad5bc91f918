using Sovereign.Residency.Jurisdictions;
using Sovereign.Residency.Policies;

namespace Sovereign.Residency.Tests.Policies;

public sealed class ResidencyPolicyValidatorTests
{
    private static readonly JurisdictionCatalog Catalog = JurisdictionCatalog.Default;

    private static readonly ResidencyPolicy Valid = new()
    {
        AllowedJurisdictions = ["eu", "TH"],
        AllowedModels = ["llama-3.1-8b"],
        AllowedLicenses = ["Apache-2.0", "llama3.1", "LicenseRef-acme-internal"],
        AllowedOrigins = ["US", "EU"],
        Retention = RetentionPolicy.Store(30),
    };

    [Fact]
    public void Validate_ValidPolicy_ReturnsNoErrors()
    {
        Assert.Empty(ResidencyPolicyValidator.Validate(Valid, Catalog));
    }

    [Fact]
    public void Validate_DefaultPolicy_MustAllowAJurisdiction()
    {
        var errors = ResidencyPolicyValidator.Validate(new ResidencyPolicy(), Catalog);

        Assert.Equal([new PolicyError("allowed_jurisdictions", "a policy must allow at least one jurisdiction")], errors);
    }

    [Theory]
    [InlineData("UK", "GB")]
    [InlineData("EL", "GR")]
    [InlineData("EUROPE", "not an ISO 3166-1 alpha-2 code or a known group")]
    [InlineData(" ", "empty")]
    public void Validate_UnknownJurisdiction_ErrorNamesFieldAndValue(string entry, string expected)
    {
        var errors = ResidencyPolicyValidator.Validate(Valid with { AllowedJurisdictions = ["DE", entry] }, Catalog);

        var error = Assert.Single(errors);
        Assert.Equal(PolicyFields.AllowedJurisdictions, error.Field);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Apache-2.0")]
    [InlineData("apache-2.0")]
    [InlineData("MIT")]
    [InlineData("BSD-3-Clause")]
    [InlineData("CC-BY-4.0")]
    [InlineData("CC-BY-SA-4.0")]
    [InlineData("CC-BY-NC-4.0")]
    [InlineData("openrail")]
    [InlineData("llama2")]
    [InlineData("llama3")]
    [InlineData("llama3.1")]
    [InlineData("llama3.2")]
    [InlineData("llama3.3")]
    [InlineData("gemma")]
    [InlineData("qwen")]
    [InlineData("mrl")]
    [InlineData("LicenseRef-mistral-research")]
    [InlineData("licenseref-Acme.v2")]
    public void Validate_KnownLicense_IsAccepted(string license)
    {
        Assert.Empty(ResidencyPolicyValidator.Validate(Valid with { AllowedLicenses = [license] }, Catalog));
    }

    [Theory]
    [InlineData("Apache 2.0")]
    [InlineData("GPL")]
    [InlineData("LicenseRef-")]
    [InlineData("LicenseRef-has space")]
    [InlineData("")]
    public void Validate_UnknownLicense_ErrorNamesField(string license)
    {
        var error = Assert.Single(ResidencyPolicyValidator.Validate(Valid with { AllowedLicenses = [license] }, Catalog));

        Assert.Equal(PolicyFields.AllowedLicenses, error.Field);
    }

    [Fact]
    public void Validate_KnownLicensesGiven_ReplacesTheBuiltInList()
    {
        var policy = Valid with { AllowedLicenses = ["acme-1.0", "Apache-2.0", "LicenseRef-x"] };

        var errors = ResidencyPolicyValidator.Validate(policy, Catalog, knownLicenses: ["ACME-1.0"]);

        Assert.Equal([new PolicyError("allowed_licenses", "'Apache-2.0' is not a known SPDX license id (write others as LicenseRef-<name>)")], errors);
    }

    [Fact]
    public void Validate_UnknownOrigin_ErrorNamesField()
    {
        var error = Assert.Single(ResidencyPolicyValidator.Validate(Valid with { AllowedOrigins = ["USA"] }, Catalog));

        Assert.Equal(PolicyFields.AllowedOrigins, error.Field);
        Assert.Contains("'USA'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_BlankModel_ErrorNamesField()
    {
        var error = Assert.Single(ResidencyPolicyValidator.Validate(Valid with { AllowedModels = ["m", ""] }, Catalog));

        Assert.Equal(PolicyFields.AllowedModels, error.Field);
    }

    [Theory]
    [InlineData(RetentionMode.Store, -5, "retention.days", "must not be negative")]
    [InlineData(RetentionMode.Store, 0, "retention.days", "at least 1 day")]
    [InlineData(RetentionMode.Store, RetentionPolicy.MaxDays + 1, "retention.days", "at most 3650")]
    [InlineData(RetentionMode.None, 7, "retention.days", "days apply only to store")]
    [InlineData((RetentionMode)9, 0, "retention", "unknown retention mode")]
    public void Validate_BadRetention_ErrorNamesField(RetentionMode mode, int days, string field, string expected)
    {
        var policy = Valid with { Retention = new RetentionPolicy { Mode = mode, Days = days } };

        var error = Assert.Single(ResidencyPolicyValidator.Validate(policy, Catalog));

        Assert.Equal(field, error.Field);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_SeveralProblems_ReportsEveryOneInFieldOrder()
    {
        var policy = new ResidencyPolicy
        {
            AllowedJurisdictions = ["XX"],
            AllowedLicenses = ["nope"],
            AllowedOrigins = ["YY"],
            Retention = RetentionPolicy.Store(-1),
        };

        var errors = ResidencyPolicyValidator.Validate(policy, Catalog);

        Assert.Equal(["allowed_jurisdictions", "allowed_licenses", "allowed_origins", "retention.days"], errors.Select(e => e.Field));
    }

    [Fact]
    public void Validate_CustomGroup_KnownOnlyToItsCatalog()
    {
        var catalog = JurisdictionCatalog.Create([new JurisdictionGroup { Name = "NORDICS", Members = ["DK", "SE"] }]);
        var policy = Valid with { AllowedJurisdictions = ["nordics"] };

        Assert.Empty(ResidencyPolicyValidator.Validate(policy, catalog));
        Assert.Single(ResidencyPolicyValidator.Validate(policy, Catalog));
    }

    [Fact]
    public void Equals_SameContentsInDifferentLists_AreEqual()
    {
        var a = new ResidencyPolicy { AllowedJurisdictions = ["TH"], AllowedModels = new List<string> { "m" } };
        var b = new ResidencyPolicy { AllowedJurisdictions = new[] { "TH" }, AllowedModels = ["m"] };

        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, b with { AllowedModels = ["n"] });
    }

    [Fact]
    public void KnownLicenses_Canonicalize_ReturnsSpdxSpelling()
    {
        Assert.Equal("Apache-2.0", KnownLicenses.Canonicalize("APACHE-2.0"));
        Assert.Equal("LicenseRef-x", KnownLicenses.Canonicalize("LicenseRef-x"));
        Assert.True(KnownLicenses.IsKnown("cc-by-nc-4.0"));
        Assert.False(KnownLicenses.IsKnown(null));
    }
}
