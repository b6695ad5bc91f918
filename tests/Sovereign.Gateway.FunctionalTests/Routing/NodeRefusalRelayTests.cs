using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests.Routing;

/// <summary>
/// What a client is told when the cluster node a gateway relays to refuses the request with a 503 of its own. A node
/// is another Sovereign: its 503 is a governed refusal that ran nothing (its audit log or database cannot record the
/// request, its queue is full), which the gateway does not fail over (<c>RemoteNodeExecutor.FailsOverWhenUnavailable</c>)
/// and passes on. It reached the client as 502 with the node's code (found running a cluster: PostgreSQL restarted
/// under load, one client got 502 <c>audit_unavailable</c> where the operator guide promises 503 with Retry-After).
/// </summary>
public sealed class NodeRefusalRelayTests
{
    [Theory]
    [InlineData("audit_unavailable")]
    [InlineData("storage_unavailable")]
    [InlineData("no_compliant_capacity")]
    public async Task ANodesOwn503_ReachesTheClientAs503_WithItsCodeAndRetryAfter(string code)
    {
        using var response = new HttpResponseMessage(HttpStatusCode.ServiceUnavailable)
        {
            Content = new StringContent(
                $$$"""{"error":{"message":"The audit log could not record this request, so it was not run, or its answer was withheld (fail closed). Try again.","type":"server_error","param":null,"code":"{{{code}}}"}}""",
                Encoding.UTF8, "application/json"),
        };
        response.Headers.RetryAfter = new RetryConditionHeaderValue(TimeSpan.FromSeconds(5));

        var error = await UpstreamErrors.ToOpenAIAsync(response, CancellationToken.None);

        Assert.Equal((503, "server_error", code, TimeSpan.FromSeconds(5)), (error.Status, error.Type, error.Code, error.RetryAfter));
    }

    [Fact]
    public async Task AnEnginesOther5xx_StayA502()
    {
        using var response = new HttpResponseMessage(HttpStatusCode.InternalServerError)
        {
            Content = new StringContent("""{"error":{"message":"decode failed","type":"server_error","code":500}}""", Encoding.UTF8, "application/json"),
        };

        var error = await UpstreamErrors.ToOpenAIAsync(response, CancellationToken.None);

        Assert.Equal((502, "upstream_error"), (error.Status, error.Code));
    }
}
