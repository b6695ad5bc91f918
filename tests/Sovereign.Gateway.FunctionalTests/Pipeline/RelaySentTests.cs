using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Sovereign.Gateway.Hosting;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A relay to a cluster node on a member chain appends its decision's entry once the relay is on its connection
/// (<c>GovernedRequest.RelaySent</c>), not before it leaves (session 50, ttft8): the proxy says when the request has
/// been handed to the connection, before the node's answer comes, and only then.
/// </summary>
public sealed class RelaySentTests
{
    [Fact]
    public async Task OpenAtAsync_RunsSent_OnceTheRequestIsOnItsConnection_BeforeTheNodeAnswers()
    {
        var handler = new HeldAnswerHandler();
        var proxy = new UpstreamProxy(new OneHandler(handler), NullLogger<UpstreamProxy>.Instance, Options.Create(new SovereignOptions()));
        var order = new List<string>();

        var opening = proxy.OpenAtAsync(new Uri("https://node.test/v1/chat/completions"), "secret", "{\"model\":\"m\"}"u8.ToArray(),
            CancellationToken.None, UpstreamProxy.ClusterNodeClientName, [], idleTimer: null,
            sent: () => order.Add(handler.Received.IsCompleted ? "sent after the request reached the connection" : "sent before the request reached the connection"));

        var received = await handler.Received.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("{\"model\":\"m\"}", received);
        Assert.Equal(["sent after the request reached the connection"], order);
        Assert.False(opening.IsCompleted, "OpenAtAsync returned before the node answered");

        handler.Answer();
        using var response = await opening.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Single(order);
    }

    [Fact]
    public async Task OpenAtAsync_WithoutSent_StillRelays()
    {
        var handler = new HeldAnswerHandler();
        var proxy = new UpstreamProxy(new OneHandler(handler), NullLogger<UpstreamProxy>.Instance, Options.Create(new SovereignOptions()));
        handler.Answer();

        using var response = await proxy.OpenAtAsync(new Uri("https://node.test/v1/chat/completions"), null, "{}"u8.ToArray(), CancellationToken.None)
            .WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("{}", await handler.Received);
    }

    private sealed class OneHandler(HttpMessageHandler handler) : IHttpMessageHandlerFactory
    {
        public HttpMessageHandler CreateHandler(string name) => handler;
    }

    /// <summary>Takes the request at once (as a pooled connection writes it) and answers only when told.</summary>
    private sealed class HeldAnswerHandler : HttpMessageHandler
    {
        private readonly TaskCompletionSource<string> _received = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<string> Received => _received.Task;

        public void Answer() => _answer.TrySetResult();

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            // Read synchronously, as the connection writes a pooled request's bytes before the send first waits.
            _received.TrySetResult(request.Content!.ReadAsStringAsync(cancellationToken).GetAwaiter().GetResult());
            await _answer.Task.WaitAsync(cancellationToken);
            return new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
        }
    }
}
