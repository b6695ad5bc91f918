using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>A decision over many replicas is still audited (the reasons are capped) and answered precisely.</summary>
[Collection(ResidencyCollection.Name)]
public sealed class ResidencyManyNodesTests(ResidencyFixture fixture)
{
    [Fact]
    public async Task SeventyNonCompliantReplicas_Is403ResidencyViolation_AndAudited()
    {
        for (var i = 0; i < 70; i++)
        {
            await fixture.AdminAsync(HttpMethod.Post, "/admin/v1/nodes",
                new { id = $"sg-many-{i}", jurisdiction = "SG", base_url = $"http://127.0.0.1:9/{i}", models = new[] { new { id = "many-replicas" } } }, 201);
        }

        using var client = fixture.TenantClient(fixture.ThOnlyKey);
        var response = await client.PostAsync("/v1/chat/completions", new StringContent(
            """{"model":"many-replicas","messages":[{"role":"user","content":"hi"}]}""", System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(403, (int)response.StatusCode);
        Assert.Equal("residency_violation", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        var auditId = response.Headers.GetValues("x-sovereign-audit-id").Single();
        var entry = (await fixture.AdminAsync(HttpMethod.Get, "/admin/v1/audit?tenant=th-hospital", null, 200)).GetProperty("data").EnumerateArray()
            .Single(e => e.GetProperty("details").TryGetProperty("request_id", out var id) && id.GetString() == auditId);
        Assert.InRange(entry.GetProperty("reasons").GetArrayLength(), 2, 64);

        for (var i = 0; i < 70; i++)
        {
            await fixture.AdminAsync(HttpMethod.Delete, $"/admin/v1/nodes/sg-many-{i}", null, 200);
        }
    }
}
