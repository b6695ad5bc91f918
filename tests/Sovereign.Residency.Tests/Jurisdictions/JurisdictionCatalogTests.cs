using Sovereign.Residency.Jurisdictions;

namespace Sovereign.Residency.Tests.Jurisdictions;

public sealed class JurisdictionCatalogTests
{
    private static readonly JurisdictionCatalog Catalog = JurisdictionCatalog.Default;

    [Fact]
    public void CountryCodes_Default_HasAll249AssignedCodesSortedAndUpperCase()
    {
        Assert.Equal(249, Catalog.CountryCodes.Count);
        Assert.Equal(249, Catalog.CountryCodes.Distinct(StringComparer.Ordinal).Count());
        Assert.All(Catalog.CountryCodes, c => Assert.Matches("^[A-Z]{2}$", c));
        Assert.Equal(Catalog.CountryCodes.Order(StringComparer.Ordinal), Catalog.CountryCodes);
    }

    [Theory]
    [InlineData("DE", "Germany")]
    [InlineData("gb", "United Kingdom")]
    [InlineData("TH", "Thailand")]
    [InlineData("ax", "Åland Islands")]
    [InlineData("CI", "Côte d'Ivoire")]
    [InlineData("TR", "Türkiye")]
    public void TryGetCountryName_AssignedCode_ReturnsEnglishShortName(string code, string expected)
    {
        Assert.True(Catalog.TryGetCountryName(code, out var name));
        Assert.Equal(expected, name);
    }

    [Theory]
    [InlineData("UK")]
    [InlineData("EL")]
    [InlineData("XK")]
    [InlineData("ZZ")]
    [InlineData("DEU")]
    [InlineData("")]
    [InlineData(null)]
    public void IsCountry_UnassignedOrMalformed_ReturnsFalse(string? code)
    {
        Assert.False(Catalog.IsCountry(code));
        Assert.False(Catalog.TryGetCountryName(code, out _));
    }

    [Fact]
    public void Resolve_Eu_Has27MemberStates()
    {
        var eu = Catalog.Resolve("EU");
        Assert.Equal(27, eu.Count);
        Assert.Equal(
            ["AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"],
            eu);
    }

    [Fact]
    public void Resolve_Eea_IsEuPlusIcelandLiechtensteinNorway()
    {
        var eea = Catalog.Resolve("EEA");
        Assert.Equal(30, eea.Count);
        Assert.True(Catalog.Resolve("EU").IsSubsetOf(eea));
        Assert.Equal(["IS", "LI", "NO"], eea.Except(Catalog.Resolve("EU")).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Resolve_Asean_HasTenMembers()
    {
        Assert.Equal(["BN", "ID", "KH", "LA", "MM", "MY", "PH", "SG", "TH", "VN"], Catalog.Resolve("ASEAN"));
    }

    [Theory]
    [InlineData("NO")]
    [InlineData("CH")]
    [InlineData("GB")]
    [InlineData("IS")]
    public void Resolve_Eu_ExcludesNonMembers(string country)
    {
        Assert.DoesNotContain(country, Catalog.Resolve("EU"));
    }

    [Fact]
    public void Resolve_Eea_ExcludesSwitzerlandAndUnitedKingdom()
    {
        Assert.Contains("NO", Catalog.Resolve("EEA"));
        Assert.DoesNotContain("CH", Catalog.Resolve("EEA"));
        Assert.DoesNotContain("GB", Catalog.Resolve("EEA"));
    }

    [Theory]
    [InlineData("eu", 27)]
    [InlineData(" Eea ", 30)]
    [InlineData("asean", 10)]
    [InlineData("de", 1)]
    public void Resolve_AnyCase_ReturnsUpperCaseCountries(string input, int count)
    {
        var set = Catalog.Resolve(input);
        Assert.Equal(count, set.Count);
        Assert.All(set, c => Assert.Matches("^[A-Z]{2}$", c));
    }

    [Fact]
    public void Resolve_Unknown_ThrowsNamingTheValueWithHint()
    {
        var ex = Assert.Throws<ArgumentException>(() => Catalog.Resolve("UK"));
        Assert.Contains("'UK'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("GB", ex.Message, StringComparison.Ordinal);
        Assert.False(Catalog.TryResolve("UK", out _));
        Assert.False(Catalog.IsKnown("UK"));
    }

    [Fact]
    public void ResolveMany_MixedKnownAndUnknown_UnionsKnownAndReportsUnknown()
    {
        var set = Catalog.ResolveMany(["th", "ASEAN", "NOPE", "", "ch"], out var unknown);

        Assert.Equal(11, set.Count);
        Assert.Contains("CH", set);
        Assert.Equal(["NOPE", ""], unknown);
    }

    [Theory]
    [InlineData("th")]
    [InlineData("ASEAN")]
    [InlineData(" eu ")]
    [InlineData("EEA")]
    public void ResolveMany_OneEntry_SameSetAsTheUnion(string entry)
    {
        // One entry takes a shortcut (the entry's own resolved set); it must read as the union of several does.
        var one = Catalog.ResolveMany([entry], out var unknown);
        var union = Catalog.ResolveMany([entry, entry], out var unknownOfUnion);

        Assert.Equal(union, one);
        Assert.Empty(unknown);
        Assert.Empty(unknownOfUnion);
        Assert.Equal([.. one.Order(StringComparer.Ordinal)], one);
    }

    [Theory]
    [InlineData("NOPE")]
    [InlineData("")]
    [InlineData(null)]
    public void ResolveMany_OneUnknownEntry_ReportsItAndResolvesNothing(string? entry)
    {
        var set = Catalog.ResolveMany([entry], out var unknown);

        Assert.Empty(set);
        Assert.Equal([entry ?? string.Empty], unknown);
    }

    [Fact]
    public void Create_NestedCustomGroups_ResolvesTransitively()
    {
        var catalog = JurisdictionCatalog.Create(
        [
            new JurisdictionGroup { Name = "north-europe", Members = ["nordics", "EE", "LV", "LT"] },
            new JurisdictionGroup { Name = "Nordics", Members = ["DK", "FI", "IS", "NO", "SE"] },
            new JurisdictionGroup { Name = "EUROPE_PLUS", Members = ["EEA", "CH", "GB", "North-Europe"] },
        ]);

        Assert.Equal(["DK", "EE", "FI", "IS", "LT", "LV", "NO", "SE"], catalog.Resolve("NORTH-EUROPE"));
        Assert.Equal(32, catalog.Resolve("europe_plus").Count);
        Assert.True(catalog.IsGroup("nordics"));
        Assert.False(catalog.IsCountry("nordics"));
        Assert.Equal(["ASEAN", "EEA", "EU", "EUROPE_PLUS", "NORDICS", "NORTH-EUROPE"], catalog.GroupNames);
        Assert.Equal(["DK", "FI", "IS", "NO", "SE"], catalog.GetGroupMembers("Nordics"));
    }

    [Fact]
    public void Create_CustomGroups_LeavesDefaultCatalogUnchanged()
    {
        _ = JurisdictionCatalog.Create([new JurisdictionGroup { Name = "NORDICS", Members = ["DK"] }]);

        Assert.False(JurisdictionCatalog.Default.IsKnown("NORDICS"));
    }

    [Theory]
    [InlineData("DE", "country code DE (Germany)")]
    [InlineData("th", "country code TH (Thailand)")]
    [InlineData("eu", "built-in group EU")]
    [InlineData("UK", "two-letter names are reserved")]
    [InlineData("9lives", "a group name is a letter")]
    [InlineData("has space", "a group name is a letter")]
    public void ValidateGroups_BadName_ErrorNamesTheGroup(string name, string expected)
    {
        var errors = JurisdictionCatalog.ValidateGroups([new JurisdictionGroup { Name = name, Members = ["FR"] }]);

        var error = Assert.Single(errors);
        Assert.Equal(name, error.Group);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ValidateGroups_UnknownMember_ErrorNamesGroupAndMember()
    {
        var errors = JurisdictionCatalog.ValidateGroups([new JurisdictionGroup { Name = "BRITISH_ISLES", Members = ["IE", "UK"] }]);

        var error = Assert.Single(errors);
        Assert.Equal("BRITISH_ISLES", error.Group);
        Assert.Contains("'UK'", error.Message, StringComparison.Ordinal);
        Assert.Contains("GB", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ValidateGroups_EmptyGroup_ErrorNamesTheGroup()
    {
        var errors = JurisdictionCatalog.ValidateGroups([new JurisdictionGroup { Name = "NOTHING", Members = [] }]);

        Assert.Equal(new JurisdictionGroupError("NOTHING", "the group has no members"), Assert.Single(errors));
    }

    [Fact]
    public void ValidateGroups_Cycle_ErrorShowsThePath()
    {
        var errors = JurisdictionCatalog.ValidateGroups(
        [
            new JurisdictionGroup { Name = "ALPHA", Members = ["BETA", "FR"] },
            new JurisdictionGroup { Name = "BETA", Members = ["GAMMA"] },
            new JurisdictionGroup { Name = "GAMMA", Members = ["alpha"] },
        ]);

        var error = Assert.Single(errors);
        Assert.Equal("ALPHA", error.Group);
        Assert.Contains("ALPHA -> BETA -> GAMMA -> ALPHA", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ValidateGroups_SelfReference_IsACycle()
    {
        var errors = JurisdictionCatalog.ValidateGroups([new JurisdictionGroup { Name = "LOOP", Members = ["DE", "loop"] }]);

        Assert.Contains("LOOP -> LOOP", Assert.Single(errors).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ValidateGroups_DuplicateNameInAnotherCase_IsAnError()
    {
        var errors = JurisdictionCatalog.ValidateGroups(
        [
            new JurisdictionGroup { Name = "NORDICS", Members = ["DK"] },
            new JurisdictionGroup { Name = "nordics", Members = ["SE"] },
        ]);

        var error = Assert.Single(errors);
        Assert.Equal("nordics", error.Group);
        Assert.Contains("more than once", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_InvalidGroups_ThrowsWithEveryError()
    {
        var ex = Assert.Throws<JurisdictionCatalogException>(() => JurisdictionCatalog.Create(
        [
            new JurisdictionGroup { Name = "DE", Members = ["FR"] },
            new JurisdictionGroup { Name = "EMPTY", Members = [] },
            new JurisdictionGroup { Name = "BAD", Members = ["XX"] },
        ]));

        Assert.Equal(["DE", "EMPTY", "BAD"], ex.Errors.Select(e => e.Group));
        Assert.False(JurisdictionCatalog.TryCreate([new JurisdictionGroup { Name = "EMPTY" }], out var catalog, out var errors));
        Assert.Null(catalog);
        Assert.Single(errors);
    }
}
