using System.Net.Http.Json;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// Jurisdictions are matched case-insensitively, so a policy is stored in one canonical form: upper-case codes and
/// group names, licences in their SPDX spelling, no repeats. They used to be stored as sent ("th", "TH", " TH"), which
/// the tenant list, the audit entry and the CLI showed as three jurisdictions. The gateway is in TH.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class PolicyCanonicalFormTests(ConsoleFixture fixture)
{
    [Fact]
    public async Task TenantPolicy_IsStoredUpperCase_WithoutRepeats_OnCreateAndUpdate_AndAudited_AsStored()
    {
        var created = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new
        {
            id = "canon-create",
            policy = new
            {
                allowed_jurisdictions = new[] { "th", "TH", " Th ", "asean", "ASEAN" },
                allowed_origins = new[] { "fr", "FR", "eu" },
                allowed_licenses = new[] { "apache-2.0", "Apache-2.0", "mit" },
                allowed_models = new[] { ConsoleFixture.Model, ConsoleFixture.Model },
            },
        });
        var policy = created.GetProperty("policy");
        Assert.Equal(["TH", "ASEAN"], Strings(policy, "allowed_jurisdictions"));
        Assert.Equal(["FR", "EU"], Strings(policy, "allowed_origins"));
        Assert.Equal(["Apache-2.0", "MIT"], Strings(policy, "allowed_licenses"));
        Assert.Equal([ConsoleFixture.Model], Strings(policy, "allowed_models"));

        var read = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/tenants/canon-create", null);
        Assert.Equal(["TH", "ASEAN"], Strings(read.GetProperty("policy"), "allowed_jurisdictions"));

        var updated = await fixture.SendAsync(HttpMethod.Patch, "/admin/v1/tenants/canon-create", new { policy = new { allowed_jurisdictions = new[] { "sg", "Sg", "th" } } });
        Assert.Equal(["SG", "TH"], Strings(updated.GetProperty("policy"), "allowed_jurisdictions"));

        var audit = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/audit?tenant=canon-create&order=desc&limit=1", null);
        var details = audit.GetProperty("data")[0].GetProperty("details");
        Assert.Equal(["SG", "TH"], Strings(JsonDocument.Parse(details.GetProperty("policy").GetString()!).RootElement, "allowed_jurisdictions"));
    }

    [Fact]
    public async Task KeyNarrowing_IsStoredUpperCase_WithoutRepeats()
    {
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "canon-key", policy = new { allowed_jurisdictions = new[] { "TH", "SG" } } });
        var key = await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants/canon-key/keys", new { name = "narrow", policy = new { allowed_jurisdictions = new[] { "th", "TH" } } });
        Assert.Equal(["TH"], Strings(key.GetProperty("key").GetProperty("policy"), "allowed_jurisdictions"));
    }

    [Fact]
    public async Task LowerCaseJurisdictions_MatchExactlyAsUpperCase_InRouting()
    {
        // Allowed here (TH) in lower case: served. Allowed only elsewhere (sg) in lower case: refused, never served.
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "canon-th", policy = new { allowed_jurisdictions = new[] { "th" } } });
        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = "canon-sg", policy = new { allowed_jurisdictions = new[] { "sg", "Sg" } } });
        var thKey = (await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants/canon-th/keys", new { name = "k" })).GetProperty("secret").GetString()!;
        var sgKey = (await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants/canon-sg/keys", new { name = "k" })).GetProperty("secret").GetString()!;

        Assert.Equal(200, await fixture.ChatAsync(thKey));
        Assert.Equal(403, await fixture.ChatAsync(sgKey));
    }

    [Theory]
    [InlineData("tha")]
    [InlineData("uk")]
    [InlineData("")]
    [InlineData("t h")]
    public async Task UnknownJurisdiction_Is400NamingTheField_AsWritten(string entry)
    {
        using var response = await fixture.Admin.PostAsJsonAsync("/admin/v1/tenants", new { id = "canon-bad", policy = new { allowed_jurisdictions = new[] { "TH", entry } } });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("policy.allowed_jurisdictions", error.GetProperty("param").GetString());
        Assert.Equal("invalid_policy", error.GetProperty("code").GetString());
        Assert.Contains($"'{entry}'", error.GetProperty("message").GetString());
    }

    /// <summary>
    /// A model id in allowed_models holding an invisible character (a pasted "stories\u200B") was stored as written: the
    /// tenant list, the CLI and the audit entry showed the model the tenant is allowed, and every request for it was
    /// refused 403 as not allowed, since the request path refuses such ids. Now each write of a policy (tenant create,
    /// update, a key's narrowing) is a 400 invalid_policy naming the field, the character and the rule, and nothing is
    /// stored. Stored policies are not checked again at request time (the narrowing check runs there too).
    /// </summary>
    [Theory]
    [InlineData("\u200B")]
    [InlineData("\uFEFF")]
    [InlineData("\u00AD")]
    [InlineData("\u2060")]
    public async Task InvisibleCharacterInAllowedModels_Is400NamingTheRule_OnEveryPolicyWrite_AndNothingIsStored(string invisible)
    {
        var model = ConsoleFixture.Model + invisible;
        var code = $"U+{(int)invisible[0]:X4}";
        var tenant = "canon-invisible-" + ((int)invisible[0]).ToString("x4", System.Globalization.CultureInfo.InvariantCulture);
        await AssertRefusedAsync(fixture.Admin.PostAsJsonAsync("/admin/v1/tenants",
            new { id = tenant, policy = new { allowed_jurisdictions = new[] { "TH" }, allowed_models = new[] { ConsoleFixture.Model, model } } }));
        using (var absent = await fixture.Admin.GetAsync($"/admin/v1/tenants/{tenant}"))
        {
            Assert.Equal(404, (int)absent.StatusCode);
        }

        await fixture.SendAsync(HttpMethod.Post, "/admin/v1/tenants", new { id = tenant, policy = new { allowed_jurisdictions = new[] { "TH" } } });
        await AssertRefusedAsync(fixture.Admin.PatchAsJsonAsync($"/admin/v1/tenants/{tenant}",
            new { policy = new { allowed_jurisdictions = new[] { "TH" }, allowed_models = new[] { model } } }));
        await AssertRefusedAsync(fixture.Admin.PostAsJsonAsync($"/admin/v1/tenants/{tenant}/keys", new { name = "k", policy = new { allowed_models = new[] { model } } }));

        var stored = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}", null);
        Assert.False(stored.GetProperty("policy").TryGetProperty("allowed_models", out var models) && models.ValueKind == JsonValueKind.Array && models.GetArrayLength() > 0, stored.ToString());
        var keys = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/keys", null);
        Assert.Equal(0, keys.GetProperty("data").GetArrayLength());

        async Task AssertRefusedAsync(Task<HttpResponseMessage> sending)
        {
            using var response = await sending;
            var text = await response.Content.ReadAsStringAsync();
            Assert.True((int)response.StatusCode == 400, text);
            var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal("policy.allowed_models", error.GetProperty("param").GetString());
            Assert.Equal("invalid_policy", error.GetProperty("code").GetString());
            var message = error.GetProperty("message").GetString()!;
            Assert.Contains(code, message, StringComparison.Ordinal);
            Assert.Contains("invisible characters", message, StringComparison.Ordinal);
            Assert.DoesNotContain(invisible, message, StringComparison.Ordinal); // shown as '?', never echoed
        }
    }

    private static string[] Strings(JsonElement policy, string field) =>
        [.. policy.GetProperty(field).EnumerateArray().Select(e => e.GetString()!)];
}
