using System.Text;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>Usage per API key, through HTTP: the operator's view of any tenant's keys, and a tenant's of its own.</summary>
[Collection(MeteringCollection.Name)]
public sealed class KeyUsageTests(MeteringFixture fixture)
{
    private static StringContent Chat() =>
        new("""{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":3,"temperature":0}""", Encoding.UTF8, "application/json");

    [Fact]
    public async Task UsageGroupedByKey_SplitsTheTenantsRequestsAndCostPerKey_ForTheOperatorAndTheTenant()
    {
        var (tenant, firstSecret) = await fixture.NewTenantAsync();
        var second = await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{tenant}/keys", new { name = "batch" }, 201);
        var secondId = second.GetProperty("key").GetProperty("id").GetString()!;
        var keys = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/keys", null, 200)).GetProperty("data").EnumerateArray()
            .Select(k => k.GetProperty("id").GetString()!).ToList();
        var firstId = Assert.Single(keys, k => k != secondId);
        using var first = fixture.TenantClient(firstSecret);
        using var batch = fixture.TenantClient(second.GetProperty("secret").GetString()!);
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(200, (int)(await first.PostAsync("/v1/chat/completions", Chat())).StatusCode);
        }

        Assert.Equal(200, (int)(await batch.PostAsync("/v1/chat/completions", Chat())).StatusCode);

        var operatorView = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?tenant={tenant}&group_by=key", null, 200)).GetProperty("data")
            .EnumerateArray().ToDictionary(r => r.GetProperty("key_id").GetString()!, r => (Requests: r.GetProperty("requests").GetInt64(), Cost: r.GetProperty("cost").GetDecimal()));
        var all = Assert.Single((await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?tenant={tenant}&group_by=tenant", null, 200)).GetProperty("data").EnumerateArray());
        var oneKey = Assert.Single((await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/usage?tenant={tenant}&key_id={secondId}&group_by=tenant", null, 200)).GetProperty("data").EnumerateArray());
        var tenantView = JsonDocument.Parse(await batch.GetStringAsync("/v1/usage?group_by=key,day")).RootElement.GetProperty("data").EnumerateArray().ToList();

        Assert.Equal(new[] { firstId, secondId }.Order(StringComparer.Ordinal), operatorView.Keys.Order(StringComparer.Ordinal));
        Assert.Equal((2L, 1L), (operatorView[firstId].Requests, operatorView[secondId].Requests));
        Assert.True(operatorView[firstId].Cost > 0m);
        Assert.Equal(all.GetProperty("cost").GetDecimal(), operatorView[firstId].Cost + operatorView[secondId].Cost);
        Assert.Equal((1L, operatorView[secondId].Cost), (oneKey.GetProperty("requests").GetInt64(), oneKey.GetProperty("cost").GetDecimal()));
        Assert.Equal(2, tenantView.Count);
        Assert.All(tenantView, r => Assert.False(string.IsNullOrEmpty(r.GetProperty("day").GetString())));
    }

    [Fact]
    public async Task UsageGroupedByAnUnknownDimension_Is400NamingTheKeyDimension()
    {
        using var response = await fixture.Admin.GetAsync("/admin/v1/usage?group_by=apikey");

        Assert.Equal(400, (int)response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("group_by", error.GetProperty("param").GetString());
        Assert.Contains("key", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }
}
