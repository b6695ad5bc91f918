using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// The operator's API reads bodies strictly: a field it does not know is a 400 <c>unknown_parameter</c> naming it,
/// and nothing changes. Its PUTs replace, so a misspelt field used to change things: <c>{"budget": [...]}</c> was read
/// as "no budgets" and removed the tenant's budget; <c>allow_external_provider</c> was dropped without a word.
/// OpenAI's surface stays lenient (SDKs and proxies add fields of their own).
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class AdminBodyTests(ConsoleFixture fixture)
{
    /// <summary>
    /// A policy with two problems: their sentences ran together ("... not allowed by the tenant policy.allowed_jurisdictions:
    /// the key would allow no jurisdiction"), reading as one garbled rule.
    /// </summary>
    [Fact]
    public async Task APolicyWithSeveralProblems_NamesEachInItsOwnSentence()
    {
        var (tenant, _) = await fixture.NewTenantAsync();

        using var response = await fixture.Admin.PostAsync($"/admin/v1/tenants/{tenant}/keys",
            new StringContent("""{"name":"wide","policy":{"allowed_jurisdictions":["SG"]}}""", Encoding.UTF8, "application/json"));

        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal("policy.allowed_jurisdictions", error.GetProperty("param").GetString());
        Assert.Equal(
            "The policy is invalid. policy.allowed_jurisdictions: a key cannot widen the tenant policy: {SG} not allowed by the tenant; policy.allowed_jurisdictions: the key would allow no jurisdiction.",
            error.GetProperty("message").GetString());
    }

    /// <summary>
    /// Revoking a key twice (a retried script, two operators) answered "revoked" both times and wrote a second
    /// key.revoke entry: the audit log said the key was revoked at a time it was not, while the key kept its first
    /// revoked_at. The second revoke now says when it was revoked and records nothing.
    /// </summary>
    [Fact]
    public async Task RevokingARevokedKey_ChangesNothing_AndIsNotAuditedAgain()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        var keys = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/keys", null);
        var keyId = keys.GetProperty("data")[0].GetProperty("id").GetString()!;

        var first = await fixture.SendAsync(HttpMethod.Delete, $"/admin/v1/tenants/{tenant}/keys/{keyId}", null);
        var second = await fixture.SendAsync(HttpMethod.Delete, $"/admin/v1/tenants/{tenant}/keys/{keyId}", null);

        Assert.True(first.GetProperty("revoked").GetBoolean());
        Assert.True(second.GetProperty("revoked").GetBoolean());
        var revokedAt = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/keys", null)).GetProperty("data")[0].GetProperty("revoked_at").GetInt64();
        Assert.Equal(revokedAt, second.GetProperty("revoked_at").GetInt64());
        var audit = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={tenant}", null);
        Assert.Single(audit.GetProperty("data").EnumerateArray(), e => e.GetProperty("action").GetString() == "key.revoke");
    }

    /// <summary>
    /// A PATCH that changes nothing (an empty one, the tenant sent back as GET shows it, its own name, policy, plan or
    /// state) answers the tenant as it is and records nothing: it wrote a tenant.update (or policy.update) entry each
    /// time, and a new updated_at, so the log said the tenant was changed when it was not. A real change still is.
    /// </summary>
    [Fact]
    public async Task TenantPatch_ThatChangesNothing_AnswersTheTenantUnchanged_AndIsNotAudited()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        using var got = await fixture.Admin.GetAsync($"/admin/v1/tenants/{tenant}");
        var before = await got.Content.ReadAsStringAsync();
        var etag = got.Headers.ETag?.Tag;
        var current = JsonDocument.Parse(before).RootElement;
        async Task<int> ChangesAsync() => (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/audit?tenant={tenant}", null)).GetProperty("data").EnumerateArray()
            .Count(e => e.GetProperty("action").GetString() is "tenant.update" or "policy.update");
        var changesBefore = await ChangesAsync();

        foreach (var unchanged in new[]
        {
            "{}",
            before,
            JsonSerializer.Serialize(new { name = current.GetProperty("name").GetString() }),
            JsonSerializer.Serialize(new { policy = current.GetProperty("policy"), plan = current.GetProperty("plan").GetString(), disabled = false }),
        })
        {
            using var patched = await fixture.Admin.PatchAsync($"/admin/v1/tenants/{tenant}", new StringContent(unchanged, Encoding.UTF8, "application/json"));
            var text = await patched.Content.ReadAsStringAsync();
            Assert.True(patched.IsSuccessStatusCode, text);
            Assert.Equal(before, text);
            Assert.Equal(etag, patched.Headers.ETag?.Tag);
        }

        Assert.Equal(changesBefore, await ChangesAsync());
        var renamed = await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { name = "Renamed" });
        Assert.Equal("Renamed", renamed.GetProperty("name").GetString());
        Assert.Equal(changesBefore + 1, await ChangesAsync());
    }

    /// <summary>PowerShell and some .NET clients start a UTF-8 body with a byte order mark; it used to be a 400.</summary>
    [Fact]
    public async Task ByteOrderMark_BeforeTheJson_IsServed()
    {
        var id = "bom-" + Guid.NewGuid().ToString("N")[..8];
        using var content = new ByteArrayContent([0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes($$$"""{"id":"{{{id}}}","name":"BOM","policy":{"allowed_jurisdictions":["TH"]}}""")]);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");

        using var response = await fixture.Admin.PostAsync("/admin/v1/tenants", content);

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        Assert.Equal(id, JsonDocument.Parse(text).RootElement.GetProperty("id").GetString());
    }

    /// <summary>
    /// GET's answer, PUT back as it is, is accepted: its settings under <c>limits</c> are applied, the read-only status
    /// beside them (settled, reserved, leased, remaining) and the plan's currency are not settings. It used to be a 400
    /// (unknown parameter 'limits'), and, when the budgets' status gained 'leased', 'budgets[0].leased'.
    /// </summary>
    [Fact]
    public async Task LimitsAsGetShowsThem_PutBack_AreAccepted()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new
        {
            budgets = new[] { new { period = "day", amount = 2.5m } },
            rate_limits = new[] { new { requests_per_minute = 60 } },
        });
        using var got = await fixture.Admin.GetAsync($"/admin/v1/tenants/{tenant}/limits");
        var document = await got.Content.ReadAsStringAsync();
        Assert.Contains("\"remaining\"", document);
        Assert.Contains("\"leased\"", document);

        using var put = await fixture.Admin.PutAsync($"/admin/v1/tenants/{tenant}/limits", new StringContent(document, Encoding.UTF8, "application/json"));

        var text = await put.Content.ReadAsStringAsync();
        Assert.True(put.IsSuccessStatusCode, text);
        var limits = JsonDocument.Parse(text).RootElement.GetProperty("limits");
        Assert.Equal(2.5m, limits.GetProperty("budgets")[0].GetProperty("amount").GetDecimal());
        Assert.Equal(60, limits.GetProperty("rate_limits")[0].GetProperty("requests_per_minute").GetInt32());

        // Edited under 'limits', the change applies; a field 'limits' does not have is named with its path.
        var edited = document.Replace("\"amount\":2.5", "\"amount\":4", StringComparison.Ordinal);
        var changed = await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", JsonDocument.Parse(edited).RootElement);
        Assert.Equal(4m, changed.GetProperty("limits").GetProperty("budgets")[0].GetProperty("amount").GetDecimal());

        var misspelt = await RefusedAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", """{"limits":{"budgets":[{"period":"day","amout":3}]}}""");
        Assert.Equal("limits.budgets[0].amout", misspelt.GetProperty("param").GetString());
    }

    /// <summary>A tenant as GET shows it, PATCHed back edited, is accepted; it was a 400 (unknown parameter 'id').</summary>
    [Fact]
    public async Task TenantAsGetShowsIt_PatchedBack_IsAccepted()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        using var got = await fixture.Admin.GetAsync($"/admin/v1/tenants/{tenant}");
        var document = (System.Text.Json.Nodes.JsonObject)System.Text.Json.Nodes.JsonNode.Parse(await got.Content.ReadAsStringAsync())!;
        document["name"] = "Renamed";

        var patched = await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", document);
        Assert.Equal("Renamed", patched.GetProperty("name").GetString());
        Assert.Equal(tenant, patched.GetProperty("id").GetString());

        document["id"] = "someone-else";
        using var refused = await fixture.Admin.PatchAsync($"/admin/v1/tenants/{tenant}", new StringContent(document.ToJsonString(), Encoding.UTF8, "application/json"));
        var text = await refused.Content.ReadAsStringAsync();
        Assert.True((int)refused.StatusCode == 400, text);
        Assert.Equal("id", JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task LimitsCurrency_OtherThanThePlans_Is400()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        var current = await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "day", amount = 1m } } });
        var currency = current.GetProperty("limits").GetProperty("currency").GetString();
        Assert.False(string.IsNullOrEmpty(currency));
        var other = currency == "XTS" ? "XXX" : "XTS";

        using var refused = await fixture.Admin.PutAsync($"/admin/v1/tenants/{tenant}/limits", new StringContent(
            """{"limits":{"currency":"OTHER","budgets":[{"period":"day","amount":1}]}}""".Replace("OTHER", other, StringComparison.Ordinal), Encoding.UTF8, "application/json"));

        var text = await refused.Content.ReadAsStringAsync();
        Assert.True((int)refused.StatusCode == 400, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("limits.currency", error.GetProperty("param").GetString());
        Assert.Equal("invalid_value", error.GetProperty("code").GetString());
        var same = await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits",
            JsonDocument.Parse($$"""{"currency":"{{currency}}","budgets":[{"period":"day","amount":1}]}""").RootElement);
        Assert.Equal(currency, same.GetProperty("limits").GetProperty("currency").GetString());
    }

    /// <summary>
    /// A currency other than the plan's is refused on a tenant that has no budgets yet too, and on a budget itself. Both
    /// were a 200 that took the amount in the plan's currency: a budget sent as 1 XTS became 1 EUR.
    /// </summary>
    [Theory]
    [InlineData("""{"currency":"XTS","budgets":[{"period":"day","amount":1}]}""", "currency")]
    [InlineData("""{"budgets":[{"period":"day","amount":1,"currency":"XTS"}]}""", "budgets[0].currency")]
    [InlineData("""{"limits":{"currency":"XTS","budgets":[{"period":"day","amount":1}]}}""", "limits.currency")]
    public async Task LimitsCurrency_OtherThanThePlans_OnATenantWithoutBudgets_Is400_AndNothingIsSet(string body, string param)
    {
        var (tenant, _) = await fixture.NewTenantAsync();

        using var refused = await fixture.Admin.PutAsync($"/admin/v1/tenants/{tenant}/limits", new StringContent(body, Encoding.UTF8, "application/json"));

        var text = await refused.Content.ReadAsStringAsync();
        Assert.True((int)refused.StatusCode == 400, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal("invalid_value", error.GetProperty("code").GetString());
        Assert.Contains("(EUR)", error.GetProperty("message").GetString());
        var after = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null);
        Assert.Equal(0, after.GetProperty("limits").GetProperty("budgets").GetArrayLength());

        // The plan's own currency, in either place, is accepted.
        var same = await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits",
            JsonDocument.Parse(body.Replace("XTS", "eur", StringComparison.Ordinal)).RootElement);
        Assert.Equal("EUR", same.GetProperty("limits").GetProperty("currency").GetString());
    }

    [Fact]
    public async Task AdminUrl_WithAMethodItDoesNotTake_Is405WithAllow()
    {
        using var request = new HttpRequestMessage(HttpMethod.Trace, "/admin/v1/tenants");
        using var response = await fixture.Admin.SendAsync(request);

        Assert.Equal(405, (int)response.StatusCode);
        Assert.Equal("GET, HEAD, POST", string.Join(", ", response.Content.Headers.Allow));
        Assert.Equal("method_not_allowed", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task MisspeltLimitsField_Is400NamingIt_AndTheBudgetStays()
    {
        var (tenant, _) = await fixture.NewTenantAsync();
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "day", amount = 2.5m } } });

        var error = await RefusedAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", """{"budget":[{"period":"day","amount":100}]}""");
        Assert.Equal("budget", error.GetProperty("param").GetString());
        Assert.DoesNotContain("Sovereign", error.GetProperty("message").GetString()); // not our class name

        var nested = await RefusedAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", """{"budgets":[{"period":"day","amount":100,"amout":1}]}""");
        Assert.Equal("budgets[0].amout", nested.GetProperty("param").GetString());

        var limits = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null);
        Assert.Equal(2.5m, limits.GetProperty("limits").GetProperty("budgets")[0].GetProperty("amount").GetDecimal());
    }

    [Theory]
    [InlineData("PATCH", "/admin/v1/tenants/th-hospital", """{"policy":{"allowed_jurisdictions":["TH"],"allow_external_provider":true}}""", "policy.allow_external_provider")]
    [InlineData("PATCH", "/admin/v1/tenants/th-hospital", """{"nmae":"x"}""", "nmae")]
    [InlineData("POST", "/admin/v1/tenants", """{"id":"strict-new","policy":{"allowed_jurisdictions":["TH"]},"plna":"standard"}""", "plna")]
    [InlineData("POST", "/admin/v1/tenants/th-hospital/keys", """{"name":"k","policy":{"allowed_jurisdictions":["TH"],"retention":{"mode":"none","dayz":3}}}""", "policy.retention.dayz")]
    [InlineData("PUT", "/admin/v1/plans/standard", """{"currency":"EUR","wieght":5}""", "wieght")]
    [InlineData("POST", "/admin/v1/plans/standard/prices", """{"model":"stories","input_per_milion":1}""", "input_per_milion")]
    [InlineData("POST", "/admin/v1/nodes/join-tokens", """{"jurisdiction":"TH","ttl":60}""", "ttl")]
    public async Task UnknownAdminField_Is400NamingIt(string method, string path, string body, string param)
    {
        var error = await RefusedAsync(new HttpMethod(method), path, body);
        Assert.Equal(param, error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task OpenAISurface_RefusesFieldsItDoesNotKnowToo()
    {
        using var client = new HttpClient { BaseAddress = fixture.Address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", fixture.HospitalKey);
        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            $$$"""{"model":"{{{ConsoleFixture.Model}}}","messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"x_vendor_extension":{"a":1}}""",
            Encoding.UTF8, "application/json"));
        Assert.Equal(400, (int)response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("x_vendor_extension", error.GetProperty("param").GetString());
        Assert.Equal("unknown_parameter", error.GetProperty("code").GetString());
    }

    private async Task<JsonElement> RefusedAsync(HttpMethod method, string path, string body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await fixture.Admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, $"{method} {path}: {(int)response.StatusCode} {text}");
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("unknown_parameter", error.GetProperty("code").GetString());
        return error;
    }
}
