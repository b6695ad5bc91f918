using System.Text;
using System.Text.Json;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// An alias's reason (<c>x-sovereign-route-reason</c>, the audit entry's <c>route_reason</c>) says why it passed a model
/// over: a model no node serves is "not served now", never "not allowed by policy". Found by unloading a Thai model
/// `auto` preferred: every Thai request's audit entry then said the tenant's policy refused it, for a tenant whose
/// policy allows every model, and an alias whose fallback no node serves said the same beside its 503.
/// </summary>
public sealed class AliasRouteReasonTests(LocalLanguageFixture fixture) : IClassFixture<LocalLanguageFixture>
{
    private const string Thai = "สวัสดีครับ ช่วยอธิบายเรื่องภาษีเงินได้บุคคลธรรมดาให้หน่อย";

    [Fact]
    public async Task ACandidateNoNodeServes_IsPassedOverAsNotServed_NotAsRefusedByPolicy()
    {
        var (status, body, reason, auditReason) = await SendAsync(LocalLanguageFixture.ThaiFirst, Thai);

        Assert.Equal(200, status);
        Assert.Equal(LocalLanguageFixture.Model, JsonDocument.Parse(body).RootElement.GetProperty("model").GetString());
        Assert.Equal($"{LocalLanguageFixture.ThaiFirst}: {LocalLanguageFixture.Model} serves 'th' (preference 2); not served now: {LocalLanguageFixture.Unserved}", reason);
        Assert.Equal(reason, auditReason);
    }

    [Fact]
    public async Task AFallbackNoNodeServes_Is503_AndItsReasonSaysNotServed()
    {
        var (status, body, reason, auditReason) = await SendAsync(LocalLanguageFixture.UnservedDefault, Thai);

        Assert.Equal(503, status);
        Assert.Equal("no_compliant_capacity", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal($"{LocalLanguageFixture.UnservedDefault}: no candidate serves 'th'; alias default {LocalLanguageFixture.Unserved} not served now", reason);
        Assert.Equal(reason, auditReason);
    }

    private async Task<(int Status, string Body, string Reason, string AuditReason)> SendAsync(string alias, string text)
    {
        using var client = fixture.TenantClient(await fixture.NewTenantAsync());
        using var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            JsonSerializer.Serialize(new { model = alias, messages = new[] { new { role = "user", content = text } }, max_tokens = 2 }), Encoding.UTF8, "application/json"));
        var reason = Uri.UnescapeDataString(response.Headers.GetValues(LanguageRouting.RouteReasonHeader).Single());
        var auditId = response.Headers.GetValues(InferenceRouter.AuditIdHeader).Single();
        var entry = JsonDocument.Parse(await fixture.Admin.GetStringAsync("/admin/v1/audit")).RootElement.GetProperty("data").EnumerateArray()
            .First(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == auditId);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(), reason, entry.GetProperty("details").GetProperty("route_reason").GetString()!);
    }
}
