using System.Net.Http.Json;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// Budgets and rate limits are money and admission: what cannot be counted exactly, or caps nothing, is refused with a
/// 400 naming the field, and nothing changes. Found as an operator: a budget of 0.0000001 or 10.1234567 (finer than the
/// ledger's millionths) was stored and shown; 7.9e28 was stored and its "remaining" stopped moving; a budget for a
/// misspelt key id was stored, capping nothing; and requests_per_minute = 2^63-1 was stored, after which every request
/// of the tenant failed with a 500.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class LimitsValidationTests(ConsoleFixture fixture)
{
    public static TheoryData<string, string, string> Refused => new()
    {
        // limits body, param, code
        { """{"budgets":[{"period":"day","amount":0.0000001}]}""", "budgets[0].amount", "invalid_value" },
        { """{"budgets":[{"period":"day","amount":5},{"period":"month","amount":10.1234567}]}""", "budgets[1].amount", "invalid_value" },
        { """{"budgets":[{"period":"day","amount":79228162514264337593543950335}]}""", "budgets[0].amount", "invalid_value" },
        { """{"budgets":[{"period":"day","amount":9000000000.000001}]}""", "budgets[0].amount", "invalid_value" },
        { """{"budgets":[{"period":"day","amount":5,"key_id":"key_does_not_exist"}]}""", "budgets[0].key_id", "key_not_found" },
        { """{"rate_limits":[{"requests_per_minute":9223372036854775807}]}""", "rate_limits[0].requests_per_minute", "invalid_value" },
        { """{"rate_limits":[{"tokens_per_minute":38430716820229}]}""", "rate_limits[0].tokens_per_minute", "invalid_value" },
        { """{"rate_limits":[{"requests_per_minute":5,"key_id":""}]}""", "rate_limits[0].key_id", "key_not_found" },
        // Two tenant-wide limits: the first counted, the second was stored and shown but capped nothing.
        { """{"rate_limits":[{"requests_per_minute":3},{"tokens_per_minute":500}]}""", "rate_limits[1]", "invalid_value" },
    };

    /// <summary>
    /// Two rate limits for one key were a 500 after they had been stored: the tenant's rate limiter could not be built
    /// from them, so after its next activation (a restart) every request of the tenant failed with a 500 too.
    /// </summary>
    [Fact]
    public async Task TwoRateLimitsForOneKey_Are400NamingTheSecond_AndNothingChanges()
    {
        var (tenant, key) = await fixture.NewTenantAsync();
        var keyId = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/keys", null)).GetProperty("data")[0].GetProperty("id").GetString();
        var before = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null);

        var body = JsonSerializer.Serialize(new
        {
            rate_limits = new object[] { new { key_id = keyId, requests_per_minute = 3 }, new { requests_per_minute = 100 }, new { key_id = keyId, tokens_per_minute = 500 } },
        });
        using var request = new HttpRequestMessage(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits") { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
        using var response = await fixture.Admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("rate_limits[2]", error.GetProperty("param").GetString());
        Assert.Contains("one entry per key", error.GetProperty("message").GetString(), StringComparison.Ordinal);

        var after = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null);
        Assert.Equal(before.GetProperty("limits").GetRawText(), after.GetProperty("limits").GetRawText());
        Assert.Equal(200, await fixture.ChatAsync(key));
    }

    [Theory]
    [MemberData(nameof(Refused))]
    public async Task UncountableOrAimlessLimits_Are400NamingTheField_AndNothingChanges(string body, string param, string code)
    {
        var (tenant, key) = await fixture.NewTenantAsync();
        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { budgets = new[] { new { period = "day", amount = 1.5m } } });
        var before = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null);

        using var request = new HttpRequestMessage(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits") { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
        using var response = await fixture.Admin.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 400, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());

        var after = await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/limits", null);
        Assert.Equal(before.GetProperty("limits").GetRawText(), after.GetProperty("limits").GetRawText());
        Assert.Equal(200, await fixture.ChatAsync(key));
    }

    [Fact]
    public async Task ExactMicroBudgets_LargestLimits_AndTheTenantsOwnKeys_AreAccepted_AndServe()
    {
        var (tenant, key) = await fixture.NewTenantAsync();
        var keyId = (await fixture.SendAsync(HttpMethod.Get, $"/admin/v1/tenants/{tenant}/keys", null)).GetProperty("data")[0].GetProperty("id").GetString();
        var limits = await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new
        {
            budgets = new object[] { new { period = "day", amount = 9_000_000_000m }, new { period = "month", amount = 0.000001m, key_id = keyId } },
            rate_limits = new[] { new { requests_per_minute = 38_430_716_820_228L, tokens_per_minute = 38_430_716_820_228L } },
        });
        Assert.Equal(0.000001m, limits.GetProperty("limits").GetProperty("budgets")[1].GetProperty("amount").GetDecimal());

        // The key's budget of one millionth is spent by the first token: the answer is a 429, never a 500.
        Assert.Equal(429, await fixture.ChatAsync(key));

        await fixture.SendAsync(HttpMethod.Put, $"/admin/v1/tenants/{tenant}/limits", new { rate_limits = new[] { new { requests_per_minute = 38_430_716_820_228L } } });
        Assert.Equal(200, await fixture.ChatAsync(key));
    }
}
