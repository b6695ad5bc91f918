using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Gateway.FunctionalTests.Pipeline;
using Sovereign.Residency.ControlPlane;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// A node join token could not be withdrawn: one issued by mistake, or pasted where it should not have been, admitted a
/// node until it expired (up to 7 days). <c>DELETE /admin/v1/nodes/join-tokens/{id}</c> (<c>sovereign nodes
/// withdraw-join-token ID</c>) withdraws it in the database every gateway reads at each join, so no gateway admits a node
/// with it from the answer on; audited; a used token is a 409 naming its node, an unknown id a 404. The token is put in
/// the store directly: issuing one needs a cluster's gateway, and the refusal is the store's (every gateway asks it).
/// </summary>
public sealed class JoinTokenWithdrawalTests(ExternalEnginesFixture fixture) : IClassFixture<ExternalEnginesFixture>
{
    private ControlPlaneStore Store => fixture.App.Services.GetRequiredService<ControlPlaneStore>();

    private async Task<(string Id, string Hash)> NewTokenAsync()
    {
        var id = "jt_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes("sjt_" + id)));
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await Store.InsertJoinTokenAsync(new JoinTokenRecord(id, hash, "TH", null, now, now + 3_600_000));
        return (id, hash);
    }

    [Fact]
    public async Task AWithdrawnToken_IsRefusedAtOnce_AndTheWithdrawalIsAudited()
    {
        var (id, hash) = await NewTokenAsync();
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        Assert.NotNull(await Store.FindUsableJoinTokenAsync(hash, now));

        var withdrawn = await fixture.SendAsync(HttpMethod.Delete, $"/admin/v1/nodes/join-tokens/{id}", null, 200);

        Assert.True(withdrawn.GetProperty("withdrawn").GetBoolean());
        Assert.Null(await Store.FindUsableJoinTokenAsync(hash, now));
        Assert.Null(await Store.ConsumeJoinTokenAsync(hash, "node-x", now));
        var audit = await fixture.SendAsync(HttpMethod.Get, "/admin/v1/audit?order=desc&limit=50", null, 200);
        Assert.Contains(audit.GetProperty("data").EnumerateArray(), e => e.GetProperty("action").GetString() == "node.join_token_withdrawn"
            && e.GetProperty("details").TryGetProperty("token_id", out var token) && token.GetString() == id);

        // Again: the first withdrawal's time, nothing audited twice.
        var again = await fixture.SendAsync(HttpMethod.Delete, $"/admin/v1/nodes/join-tokens/{id}", null, 200);
        Assert.Equal(withdrawn.GetProperty("withdrawn_at").GetInt64(), again.GetProperty("withdrawn_at").GetInt64());
    }

    [Fact]
    public async Task AUsedToken_Is409NamingItsNode_AndAnUnknownOneIs404()
    {
        var (id, hash) = await NewTokenAsync();
        Assert.NotNull(await Store.ConsumeJoinTokenAsync(hash, "node-joined", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));

        var used = await fixture.SendAsync(HttpMethod.Delete, $"/admin/v1/nodes/join-tokens/{id}", null, 409);
        Assert.Equal("join_token_used", used.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("node-joined", used.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);

        var unknown = await fixture.SendAsync(HttpMethod.Delete, "/admin/v1/nodes/join-tokens/jt_0000000000000000", null, 404);
        Assert.Equal("join_token_not_found", unknown.GetProperty("error").GetProperty("code").GetString());
    }
}
