using System.Text;
using System.Text.Json;
using Sovereign.Gateway.FunctionalTests.Console;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// The pool a join token names. Found by hand: <c>nodes join-token --pool th.h100</c> was a 400 ("pool must be 1-63
/// letters, digits, '-' or '_'", the plan-name rule), while the same pool was accepted everywhere else a pool is named:
/// <c>Sovereign:Cluster:Pool</c>, <c>nodes add --pool</c>, <c>plans compute-price --pool</c>, <c>--reserve</c>. A pool
/// priced and reserved could not be joined. A token's pool now follows the pools' rule (1-64 letters, digits, '.',
/// '_' or '-'); the body is checked before the single machine says it is no cluster gateway (409).
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class JoinTokenPoolTests(ConsoleFixture fixture)
{
    [Theory]
    [InlineData("th.h100")]
    [InlineData("a123456789a123456789a123456789a123456789a123456789a123456789abcd")] // 64 characters
    public async Task AJoinToken_ForAPoolThePriceBookAccepts_PassesTheBodyCheck(string pool)
    {
        var (status, error) = await IssueAsync($$"""{"jurisdiction":"TH","pool":"{{pool}}"}""");

        Assert.True(status == 409, $"{status} {error}");
        Assert.Equal("not_a_cluster_gateway", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task AJoinToken_ForAPoolNoPriceCouldName_Is400NamingPool()
    {
        var (status, error) = await IssueAsync("""{"jurisdiction":"TH","pool":"th h100"}""");

        Assert.Equal(400, status);
        Assert.Equal("pool", error.GetProperty("param").GetString());
        Assert.Equal("pool 'th h100' must be 1 to 64 letters, digits, '.', '_' or '-'.", error.GetProperty("message").GetString());
    }

    private async Task<(int Status, JsonElement Error)> IssueAsync(string body)
    {
        using var response = await fixture.Admin.PostAsync("/admin/v1/nodes/join-tokens", new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, JsonDocument.Parse(text).RootElement.GetProperty("error"));
    }
}
