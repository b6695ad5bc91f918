using Sovereign.Gateway.ControlPlane;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>A node's count of relayed requests per gateway and model, which its load report carries.</summary>
public sealed class RelayLoadsTests
{
    [Fact]
    public void CountsEachGatewaysRequestsPerModel_UntilTheyEnd_AndForgetsIdleRoutes()
    {
        var loads = new RelayLoads();
        Assert.Null(loads.Of("m"));

        var a1 = loads.Track("gw-th", "m");
        var a2 = loads.Track("gw-th", "m");
        var b1 = loads.Track("gw-sg", "m");
        using var other = loads.Track("gw-th", "other-model");
        Assert.Equal(new Dictionary<string, int> { ["gw-th"] = 2, ["gw-sg"] = 1 }, loads.Of("m"));

        a1.Dispose();
        a1.Dispose(); // once only
        b1.Dispose();
        Assert.Equal(new Dictionary<string, int> { ["gw-th"] = 1 }, loads.Of("m"));
        a2.Dispose();
        Assert.Null(loads.Of("m"));
        Assert.Equal(new Dictionary<string, int> { ["gw-th"] = 1 }, loads.Of("other-model"));
    }
}
