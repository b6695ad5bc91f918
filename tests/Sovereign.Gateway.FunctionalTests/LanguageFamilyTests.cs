using System.Globalization;
using System.Text;
using System.Text.Json;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// <c>Sovereign:LanguageMatch</c> through HTTP: a plan set to <c>family</c> routes text whose Bosnian/Croatian/Serbian
/// member the detector did not decide to a model declared for any member (here Croatian), where an <c>exact</c> plan
/// falls back as before; both say the group (<c>x-sovereign-language</c>'s <c>group</c>, the audit entry's
/// <c>language_group</c>). Round 33 measured such text right by member 70.7%, by group 97.8% (docs/benchmarks.md).
/// </summary>
public sealed class LanguageFamilyTests(LocalLanguageFixture fixture) : IClassFixture<LocalLanguageFixture>
{
    // Written for this test (no evaluation set's line): read as Bosnian or Serbian, well below hbs's 0.9, never as
    // Croatian (LanguageGroupsTests and this test's first assertion check what the detector makes of it).
    internal const string Undecided = "Komšija nam je donio punu korpu jabuka iz svoje bašte.";

    [Fact]
    public async Task FamilyPlan_UndecidedMember_RoutesToTheModelDeclaredForAnotherMember_AndSaysTheGroup()
    {
        var (status, body, header, details) = await SendAsync(LocalLanguageFixture.FamilyPlan, LocalLanguageFixture.CroatianOnly, Undecided);

        var language = header.Split(';')[0];
        Assert.Contains(language, new[] { "bs", "sr" });
        Assert.Equal(200, status);
        Assert.Equal(LocalLanguageFixture.Model, JsonDocument.Parse(body).RootElement.GetProperty("model").GetString());
        Assert.EndsWith(";group=hbs", header, StringComparison.Ordinal);
        Assert.True(double.Parse(header.Split(";confidence=")[1].Split(';')[0], CultureInfo.InvariantCulture) < 0.9, header);
        Assert.Equal("hbs", details.GetProperty("language_group").GetString());
        Assert.Equal(language, details.GetProperty("language").GetString());
        Assert.Equal($"{LocalLanguageFixture.CroatianOnly}: {LocalLanguageFixture.Model} serves 'hbs' (member '{language}' undecided) (preference 1)",
            details.GetProperty("route_reason").GetString());
    }

    [Fact]
    public async Task ExactPlan_UndecidedMember_FallsBackAsBefore_ButStillSaysTheGroup()
    {
        var (status, body, header, details) = await SendAsync("fair", LocalLanguageFixture.CroatianOnly, Undecided);

        // The default plan matches exactly: the Croatian model is passed over for text guessed Bosnian or Serbian, and
        // the fallback runs nowhere.
        Assert.Equal(503, status);
        Assert.Equal("no_compliant_capacity", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.EndsWith(";group=hbs", header, StringComparison.Ordinal);
        Assert.Equal("hbs", details.GetProperty("language_group").GetString());
    }

    // Round 35: under exact matching a candidate declared for the group (hbs) serves text whose member is undecided,
    // whichever member was guessed, and one declared for a member serves it only once decided (fail closed): the
    // candidate declared for bs alone is not tried. Before, hbs was refused at start as an unknown language code.
    [Fact]
    public async Task ExactPlan_CandidateDeclaredForTheGroup_ServesTheUndecidedMember()
    {
        var (status, body, header, details) = await SendAsync("fair", LocalLanguageFixture.GroupDeclared, Undecided);

        var language = header.Split(';')[0];
        Assert.Equal(200, status);
        Assert.Equal(LocalLanguageFixture.Model, JsonDocument.Parse(body).RootElement.GetProperty("model").GetString());
        Assert.EndsWith(";group=hbs", header, StringComparison.Ordinal);
        Assert.Equal($"{LocalLanguageFixture.GroupDeclared}: {LocalLanguageFixture.Model} serves 'hbs' (member '{language}' undecided) (preference 2)",
            details.GetProperty("route_reason").GetString());
    }

    // Round 36: text the group's members split among themselves (und, none of them at the minimum confidence, the group
    // near all of it) says the group in the header and the audit entry, and is still und for routing: even the family
    // plan routes nothing on it (no member was named), as before. A tuning-corpus sentence (Sovereign.Languages'
    // LanguageGroupsTests reads it und with the group). Failed on the old code: the header said und without the group.
    [Fact]
    public async Task FamilyPlan_MembersSplitTheText_UndSaysTheGroup_AndRoutesAsUndetermined()
    {
        var (status, _, header, details) = await SendAsync(LocalLanguageFixture.FamilyPlan, LocalLanguageFixture.CroatianOnly, "Pošalji mi poruku kad stigneš kući.");

        Assert.StartsWith("und;confidence=", header, StringComparison.Ordinal);
        Assert.EndsWith(";group=hbs", header, StringComparison.Ordinal);
        Assert.Equal("und", details.GetProperty("language").GetString());
        Assert.Equal("hbs", details.GetProperty("language_group").GetString());
        Assert.Contains("language undetermined", details.GetProperty("route_reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(503, status);
    }

    [Fact]
    public async Task FamilyPlan_LanguageOutsideAGroup_NoGroupAnywhere_AndExactAsBefore()
    {
        var (status, _, header, details) = await SendAsync(LocalLanguageFixture.FamilyPlan, LocalLanguageFixture.CroatianOnly, "Once upon a time there was a little girl who loved to play in the park.");

        Assert.Equal(503, status);
        Assert.StartsWith("en;confidence=", header, StringComparison.Ordinal);
        Assert.DoesNotContain("group", header, StringComparison.Ordinal);
        Assert.False(details.TryGetProperty("language_group", out _));
    }

    // Round 36 (session 54): an alias route's RoutedRequest takes its language and confidence from the alias's choice,
    // and its LanguageGroup stays unset (the plain route's accounting fills it); the outcome entry, which an auditor
    // reads for what was served, must still name the group, as the decision entry does.
    [Fact]
    public async Task FamilyPlan_AliasRoute_OutcomeEntryNamesTheGroup()
    {
        using var client = fixture.TenantClient(await fixture.NewTenantAsync(LocalLanguageFixture.FamilyPlan));
        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            JsonSerializer.Serialize(new { model = LocalLanguageFixture.CroatianOnly, messages = new[] { new { role = "user", content = Undecided } }, max_tokens = 2 }), Encoding.UTF8, "application/json"));
        Assert.Equal(200, (int)response.StatusCode);
        var language = response.Headers.GetValues(LanguageRouting.LanguageHeader).Single().Split(';')[0];

        var allowed = await AuditDetailsAsync(response, "inference.allowed");
        var completed = await AuditDetailsAsync(response, "inference.completed");
        foreach (var details in new[] { allowed, completed })
        {
            Assert.Equal(language, details.GetProperty("language").GetString());
            Assert.Equal("hbs", details.GetProperty("language_group").GetString());
            Assert.Equal(LocalLanguageFixture.CroatianOnly, details.GetProperty("alias").GetString());
        }
    }

    [Fact]
    public async Task PlainModelRequest_UndecidedMember_AuditsTheGroup()
    {
        using var client = fixture.TenantClient(await fixture.NewTenantAsync());
        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            JsonSerializer.Serialize(new { model = LocalLanguageFixture.Model, messages = new[] { new { role = "user", content = Undecided } }, max_tokens = 2 }), Encoding.UTF8, "application/json"));
        Assert.Equal(200, (int)response.StatusCode);

        var details = await AuditDetailsAsync(response, "inference.completed");
        Assert.Contains(details.GetProperty("language").GetString(), new[] { "bs", "sr" });
        Assert.Equal("hbs", details.GetProperty("language_group").GetString());
    }

    private async Task<(int Status, string Body, string Header, JsonElement Details)> SendAsync(string plan, string alias, string text)
    {
        using var client = fixture.TenantClient(await fixture.NewTenantAsync(plan));
        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            JsonSerializer.Serialize(new { model = alias, messages = new[] { new { role = "user", content = text } }, max_tokens = 2 }), Encoding.UTF8, "application/json"));
        var header = response.Headers.GetValues(LanguageRouting.LanguageHeader).Single();
        var details = await AuditDetailsAsync(response, null);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(), header, details);
    }

    // The request's decision entry: the allowed one (when it ran) or its refusal.
    private async Task<JsonElement> AuditDetailsAsync(HttpResponseMessage response, string? action)
    {
        var auditId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
        var entries = JsonDocument.Parse(await fixture.Admin.GetStringAsync("/admin/v1/audit")).RootElement.GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == auditId
                && (action is null || e.GetProperty("action").GetString() == action))
            .ToList();
        return entries.First().GetProperty("details").Clone();
    }
}
