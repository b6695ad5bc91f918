using System.Net;
using System.Net.Sockets;
using Sovereign.Gateway.ControlPlane;

namespace Sovereign.Gateway.FunctionalTests.Hostile;

/// <summary>
/// <see cref="EngineAddressRule"/> on names, with a resolver the test answers: a name that resolves to a link-local or
/// metadata address is refused as the address itself is (a DNS record of one's own pointing at 169.254.169.254 reached
/// the metadata service as the literal did), a name that does not resolve yet is taken, and the operator's setting
/// lifts the rule.
/// </summary>
public sealed class EngineAddressRuleTests
{
    [Theory]
    [InlineData("169.254.169.254")]
    [InlineData("fe80::1")]
    [InlineData("::ffff:169.254.169.254")]
    public async Task AName_ThatResolvesToALinkLocalAddress_IsRefused(string address)
    {
        var problem = await EngineAddressRule.ProblemAsync(new Uri("http://engine.example.net:8000"), allowed: false, Answer("10.0.0.7", address), CancellationToken.None);

        Assert.NotNull(problem);
        Assert.Contains("engine.example.net, which resolves to", problem, StringComparison.Ordinal);
        Assert.Contains(EngineAddressRule.Setting, problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AName_ThatResolvesToPrivateOrLoopbackAddresses_IsTaken() =>
        Assert.Null(await EngineAddressRule.ProblemAsync(new Uri("http://engine.example.net:8000"), allowed: false, Answer("10.0.0.7", "127.0.0.1", "fd12::3"), CancellationToken.None));

    [Fact]
    public async Task AName_ThatDoesNotResolve_IsTaken() =>
        Assert.Null(await EngineAddressRule.ProblemAsync(new Uri("http://not-yet.example.net:8000"), allowed: false,
            (_, _) => Task.FromException<IPAddress[]>(new SocketException((int)SocketError.HostNotFound)), CancellationToken.None));

    [Theory]
    [InlineData("http://169.254.169.254")]
    [InlineData("http://metadata.google.internal")]
    [InlineData("http://engine.example.net")]
    public async Task TheSetting_LiftsTheRule(string url) =>
        Assert.Null(await EngineAddressRule.ProblemAsync(new Uri(url), allowed: true, Answer("169.254.169.254"), CancellationToken.None));

    [Theory]
    [InlineData("http://169.254.169.254", "169.254.169.254, a link-local address")]
    [InlineData("http://2852039166", "169.254.169.254, a link-local address")] // the same address as one number
    [InlineData("http://[fe80::1%25eth0]:8000", "a link-local address (fe80::/10)")]
    [InlineData("http://[fd00:ec2::254]", "a cloud's instance metadata service")]
    public async Task AnAddress_IsRefusedWithoutAskingDns(string url, string said)
    {
        var problem = await EngineAddressRule.ProblemAsync(new Uri(url), allowed: false,
            (_, _) => throw new InvalidOperationException("an address is not resolved"), CancellationToken.None);

        Assert.NotNull(problem);
        Assert.Contains(said, problem, StringComparison.Ordinal);
    }

    private static EngineAddressRule.Resolver Answer(params string[] addresses) =>
        (_, _) => Task.FromResult(addresses.Select(IPAddress.Parse).ToArray());
}
