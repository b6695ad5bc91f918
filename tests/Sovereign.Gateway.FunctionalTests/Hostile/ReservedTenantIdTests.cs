using System.Net.Http.Json;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// The tenant ids the gateway records its own work under cannot be taken by a tenant. A tenant created as "anonymous"
/// was served as an anonymous caller: its keys' requests skipped its budget and rate limits (a 0.01 EUR total budget
/// and 1 request a minute let 3 requests costing 75 EUR through), and its own /v1/usage and /v1/limits answered 403.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ReservedTenantIdTests(ConsoleFixture fixture)
{
    [Theory]
    [InlineData("anonymous")]
    [InlineData("cluster-relay")]
    public async Task CreatingATenantWithAReservedId_Is400NamingTheId_AndCreatesNothing(string id)
    {
        using var response = await fixture.Admin.PostAsJsonAsync("/admin/v1/tenants", new { id, policy = new { allowed_jurisdictions = new[] { "TH" } } });
        var text = await response.Content.ReadAsStringAsync();

        Assert.True((int)response.StatusCode == 400, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("id", error.GetProperty("param").GetString());
        Assert.Equal("reserved_id", error.GetProperty("code").GetString());
        Assert.Contains($"'{id}' is reserved", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        using var get = await fixture.Admin.GetAsync($"/admin/v1/tenants/{id}");
        Assert.Equal(404, (int)get.StatusCode);
    }

    [Fact]
    public async Task TheCliSaysWhy_WithExitCode1()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync("tenants", "create", "anonymous", "-j", "TH", "--url", fixture.Url, "--admin-token", ConsoleFixture.AdminToken);

        Assert.Equal(1, exit);
        Assert.Contains("'anonymous' is reserved", stderr, StringComparison.Ordinal);
    }
}
