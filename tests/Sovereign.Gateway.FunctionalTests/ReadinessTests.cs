using Sovereign.Gateway.Hosting;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>
/// What /ready says on a node (role <c>node</c>) once it is loaded and its database answers: a node that serves no model,
/// or that the operator drained or took down, answered 200, so a load balancer kept sending it requests it could not
/// serve. The whole path, a drained node's 503 and its /health 200, is in ClusterTests.DrainedNode_FinishesItsWork_AndNoRequestFails.
/// </summary>
public sealed class ReadinessTests
{
    [Theory]
    [InlineData(0, null, "no_models")]
    [InlineData(0, "Active", "no_models")]
    [InlineData(2, "Draining", "draining")]
    [InlineData(0, "Draining", "draining")]
    [InlineData(1, "Down", "down")]
    public void NodeNotReady_NoModelsDrainedOrDown_IsNotReady_WithAReason(int models, string? state, string status)
    {
        var notReady = SovereignGateway.NodeNotReady(models, state);
        Assert.NotNull(notReady);
        Assert.Equal(status, notReady.Value.Status);
        Assert.False(string.IsNullOrWhiteSpace(notReady.Value.Reason));
    }

    [Theory]
    [InlineData(1, null)] // not registered yet (or untrusted): its models decide
    [InlineData(3, "Active")]
    public void NodeNotReady_ServingActiveNode_IsReady(int models, string? state) =>
        Assert.Null(SovereignGateway.NodeNotReady(models, state));
}
