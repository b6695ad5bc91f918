using Microsoft.AspNetCore.Http;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Pipeline;
using Sovereign.Gateway.Pipeline.Executors;
using Sovereign.Gateway.Routing;

namespace Sovereign.Gateway.FunctionalTests.Pipeline;

/// <summary>
/// A relayed stream that ends before the engine's usage (the client stopped reading, or the engine stopped) is billed
/// the chunks it relayed and, through a cluster node, the prompt tokens the node stated in its headers. The prompt
/// was billed 0: a chat client that stops a long answer through a gateway paid for no prompt at all, while the same
/// request to the gateway's own engine pays for it. That the node states the count is in
/// <c>ClusterTests.RelayedStream_NodesOwnDecisionEntry_IsDurableBeforeItsFirstContent_AndPrecedesItsOutcome</c>.
/// </summary>
public sealed class RelayPromptTokensTests
{
    [Theory]
    [InlineData(true, 37)]
    [InlineData(false, 0)]
    public async Task AStreamEndedBeforeItsUsage_IsBilledThePromptANodeStated_AndNoOtherEnginesClaim(bool fromNode, int billedPrompt)
    {
        using var left = new CancellationTokenSource();
        var http = new DefaultHttpContext { RequestAborted = left.Token };
        var caller = new Caller("tenant-a", "key_1", null, "standard");
        var work = new GenerationWorkload
        {
            Model = "m",
            LanguageSample = "",
            Endpoint = "chat/completions",
            Sampling = Sovereign.Inference.Engine.SamplingOptions.Default,
            Stop = [],
            N = 1,
        };
        var request = new GovernedRequest(http, caller, work, DateTimeOffset.UnixEpoch, null!)
        {
            Route = new RoutedRequest("req_1", caller, "m", "node-th", "TH", null, null, null),
        };
        using var response = new HttpResponseMessage(System.Net.HttpStatusCode.OK);
        response.Headers.Add(RelayPromptTokens.Header, "37");
        var occupancy = new EngineOccupancy(TimeProvider.System);
        var relay = new UpstreamRelay(null!, request, response, stream: true, clientWantsUsage: false,
            new RelayCompute(occupancy.Enter("https://node-th"), reportsCompute: fromNode), new Nothing(), new Nothing());
        for (var i = 0; i < 5; i++)
        {
            relay.Progress.Delivered();
        }

        await left.CancelAsync();
        var usage = await relay.FinalUsageAsync();

        Assert.Equal((billedPrompt, 5), (usage.PromptTokens, usage.CompletionTokens));
    }

    /// <summary>
    /// A node whose decision's entry could not be committed after its headers (which state the prompt) and role chunk
    /// left ends the stream with an error event before any content: nothing is billed, even if the client left
    /// meanwhile. It was billed the stated prompt when the client had gone, a 400 event included.
    /// </summary>
    [Theory]
    [InlineData(503)]
    [InlineData(502)]
    [InlineData(400)]
    public async Task AnErrorEventBeforeAnyContent_BillsNothing_NotEvenThePromptANodeStated(int status)
    {
        using var left = new CancellationTokenSource();
        var http = new DefaultHttpContext { RequestAborted = left.Token };
        var caller = new Caller("tenant-a", "key_1", null, "standard");
        var work = new GenerationWorkload
        {
            Model = "m",
            LanguageSample = "",
            Endpoint = "chat/completions",
            Sampling = Sovereign.Inference.Engine.SamplingOptions.Default,
            Stop = [],
            N = 1,
        };
        var request = new GovernedRequest(http, caller, work, DateTimeOffset.UnixEpoch, null!)
        {
            Route = new RoutedRequest("req_1", caller, "m", "node-th", "TH", null, null, null),
        };
        using var response = new HttpResponseMessage(System.Net.HttpStatusCode.OK);
        response.Headers.Add(RelayPromptTokens.Header, "37");
        var occupancy = new EngineOccupancy(TimeProvider.System);
        var relay = new UpstreamRelay(null!, request, response, stream: true, clientWantsUsage: false,
            new RelayCompute(occupancy.Enter("https://node-th"), reportsCompute: true), new Nothing(), new Nothing());

        var refused = new Sovereign.Gateway.OpenAI.OpenAIException(status, "The audit log could not record this request.", "server_error", null, "audit_unavailable");
        UpstreamProxy.NoteRefusedBeforeContent(http, relay.Progress, new UpstreamErrorEventException(refused));
        await left.CancelAsync();
        var usage = await relay.FinalUsageAsync();

        Assert.Equal((0, 0), (usage.PromptTokens, usage.CompletionTokens));
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("1e3")]
    [InlineData("12, 13")]
    [InlineData("99999999999")]
    public void ACountThatCannotBeRead_IsNone(string stated)
    {
        using var response = new HttpResponseMessage(System.Net.HttpStatusCode.OK);
        response.Headers.TryAddWithoutValidation(RelayPromptTokens.Header, stated);

        Assert.Null(RelayPromptTokens.From(response));
    }

    private sealed class Nothing : IDisposable
    {
        public void Dispose()
        {
        }
    }
}
