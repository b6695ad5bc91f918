using System.Diagnostics.Metrics;
using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using Sovereign.Inference.Engine;

namespace Sovereign.Gateway.FunctionalTests;

/// <summary>A client that goes away mid-stream frees its sequence and KV cells at the engine's next step.</summary>
[Collection(ServerCollection.Name)]
public sealed class DisconnectTests(ServerFixture server)
{
    [Fact]
    public async Task StreamingClientDisconnects_SequenceIsCancelledAndSlotFreed()
    {
        var batcher = server.Batcher(ServerFixture.Stories);
        var cancelled = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        // This server's meter only (the factory hands out one per name): servers of other test collections run in the
        // same process, and their cancellations must not end this wait.
        var meter = server.App.Services.GetRequiredService<IMeterFactory>().Create(EngineMetrics.MeterName);
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, meter) && instrument.Name == "sovereign.requests")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "finish_reason" && (string?)tag.Value == "cancelled")
                {
                    cancelled.TrySetResult(0);
                }
            }
        });
        listener.Start();

        // Hold the decode loop: three steps are granted (prefill and two tokens); after that it only wakes for
        // events such as a cancellation, so the request cannot reach its 200-token limit on its own.
        var permits = System.Threading.Channels.Channel.CreateUnbounded<bool>();
        for (var i = 0; i < 3; i++)
        {
            permits.Writer.TryWrite(true);
        }

        batcher.BeforeStep = async wake => await Task.WhenAny(permits.Reader.ReadAsync().AsTask(), wake);
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = new StringContent("""{"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":200,"temperature":0,"stream":true}"""),
            };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            var response = await server.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            var stream = await response.Content.ReadAsStreamAsync();
            var reader = new StreamReader(stream);
            // The first event (the role chunk) is written before the engine admits the request; a text chunk comes
            // from a decode step, so after it the sequence is certainly running (held at its fourth step).
            var firstEvent = await reader.ReadLineAsync();
            Assert.StartsWith("data: ", firstEvent, StringComparison.Ordinal);
            string? textEvent;
            do
            {
                textEvent = await reader.ReadLineAsync();
            }
            while (textEvent is not null && !textEvent.StartsWith("data: ", StringComparison.Ordinal));

            Assert.NotNull(textEvent);
            Assert.Equal(1, batcher.RunningCount);

            response.Dispose();

            await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(0, batcher.RunningCount);
            Assert.Equal(0.0, batcher.KvCacheUsage);
        }
        finally
        {
            batcher.BeforeStep = null;
            permits.Writer.TryWrite(true);
        }

        var (status, _, _) = await server.PostJsonAsync("/v1/chat/completions", """{"model":"stories","messages":[{"role":"user","content":"hi"}],"max_tokens":3}""");
        Assert.Equal(200, status);
    }
}
