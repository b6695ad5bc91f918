using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>The authenticator's cache of effective policies does not grow with a tenant's updates.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class PolicyCacheTests(ConsoleFixture fixture)
{
    [Fact]
    public async Task ManyUpdatesOfOneTenant_LeaveOneCachedPolicy_AndEachTakesEffect()
    {
        const int Updates = 20;
        var authenticator = fixture.App.Services.GetRequiredService<CallerAuthenticator>();
        var (tenant, key) = await fixture.NewTenantAsync();
        using var client = new HttpClient { BaseAddress = fixture.Address };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        for (var i = 0; i < Updates; i++)
        {
            var here = i % 2 == 1;
            await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { policy = new { allowed_jurisdictions = new[] { here ? "TH" : "SG" } } });
            var text = await client.GetStringAsync("/v1/models");
            var models = JsonDocument.Parse(text).RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
            Assert.True(models.Contains(ConsoleFixture.Model) == here, $"update {i}: {text}");

            // A rename changes the tenant's version, not its policy.
            await fixture.SendAsync(HttpMethod.Patch, $"/admin/v1/tenants/{tenant}", new { name = "renamed " + i });
            Assert.Equal(200, (int)(await client.GetAsync("/v1/models")).StatusCode);
        }

        // Every update (a new version) used to add an entry that was never removed: 40 here.
        Assert.Equal(1, authenticator.CachedPolicyCount(tenant));
    }
}
