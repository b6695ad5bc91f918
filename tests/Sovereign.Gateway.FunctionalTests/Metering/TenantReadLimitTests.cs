using System.Globalization;
using System.Text.Json;

namespace Sovereign.Gateway.FunctionalTests.Metering;

/// <summary>
/// A tenant's reads of its own records are counted per key (<c>Sovereign:Limits:TenantReadsPerMinute</c>, 3 here):
/// found by an explorer (session 38), any valid key could repeat <c>/v1/usage</c>, <c>/v1/audit</c>, <c>/v1/keys</c>
/// and <c>/v1/limits</c> without bound, each a database or grain read.
/// </summary>
public sealed class TenantReadLimitTests(RateLimitAuditTests.Server fixture) : IClassFixture<RateLimitAuditTests.Server>
{
    [Fact]
    public async Task TenantReads_AreCountedPerKey_AndAnswer429LikeOpenAI()
    {
        var (tenant, key) = await fixture.NewTenantAsync(new { rate_limits = new[] { new { requests_per_minute = 1000 } } });
        var other = (await fixture.SendAsync(HttpMethod.Post, $"/admin/v1/tenants/{tenant}/keys", new { name = "other" }, 201)).GetProperty("secret").GetString()!;
        using var client = fixture.TenantClient(key);

        string[] reads = ["/v1/usage", "/v1/audit", "/v1/keys"];
        for (var i = 0; i < reads.Length; i++)
        {
            using var read = await client.GetAsync(reads[i]);
            Assert.Equal(200, (int)read.StatusCode);
            Assert.Equal("3", read.Headers.GetValues("x-ratelimit-limit-requests").Single());
            Assert.Equal((2 - i).ToString(CultureInfo.InvariantCulture), read.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }

        foreach (var path in (string[])["/v1/limits", "/v1/usage", "/v1/audit", "/v1/keys", "/v1/usage/req_missing"])
        {
            using var limited = await client.GetAsync(path);
            Assert.Equal(429, (int)limited.StatusCode);
            var error = JsonDocument.Parse(await limited.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal("requests", error.GetProperty("type").GetString());
            Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());
            Assert.True(int.Parse(limited.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture) >= 1, path);
            Assert.Equal("0", limited.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }

        // Another key of the tenant reads on its own count.
        using var otherClient = fixture.TenantClient(other);
        using var otherRead = await otherClient.GetAsync("/v1/limits");
        Assert.Equal(200, (int)otherRead.StatusCode);
    }
}
