namespace Sovereign.Cluster.Tests;

/// <summary>
/// A key is revoked once: the tenant's single activation decides which of several revocations made it, so the admin
/// API audits one <c>key.revoke</c> however many operators or retries ask at once.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class KeyRevocationTests(ClusterFixture fixture)
{
    [Fact]
    public async Task RevocationsAtOnce_ExactlyOneRevokes_AllAnswerTheSameTime()
    {
        var tenant = await fixture.NewTenantAsync("euro");
        var key = await tenant.CreateKeyAsync("k", null);

        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => tenant.RevokeKeyOnceAsync(key.Key.Id)));

        Assert.Single(answers, a => a!.Newly);
        Assert.Single(answers.Select(a => a!.RevokedAt).Distinct());
        Assert.Equal(answers[0]!.RevokedAt, (await tenant.ListKeysAsync()).Single(k => k.Id == key.Key.Id).RevokedAt);
        Assert.Null(await tenant.RevokeKeyOnceAsync("no-such-key"));
    }
}
