using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.FunctionalTests.OpenAI;

/// <summary>
/// Events written through the thread's reused buffer and writer are byte for byte what a buffer and writer made per
/// event wrote, one after another, after a large event (whose buffers are let go) and after one that failed.
/// </summary>
public sealed class ServerSentEventsTests
{
    /// <summary>What WriteAsync wrote before: a new buffer and a new writer (default options) per event.</summary>
    private static string PerEvent<T>(T payload, string? name = null)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        if (name is not null)
        {
            buffer.Write(Encoding.UTF8.GetBytes($"event: {name}\n"));
        }

        buffer.Write("data: "u8);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            JsonSerializer.Serialize(writer, payload, name is null ? typeof(T) : payload!.GetType(), OpenAIJson.Options);
        }

        buffer.Write("\n\n"u8);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    [Fact]
    public async Task Events_AreWrittenAsAWriterPerEventWroteThem()
    {
        var context = new DefaultHttpContext();
        var body = new MemoryStream();
        context.Response.Body = body;
        var chunk = new JsonObject { ["id"] = "c1", ["choices"] = new JsonArray(new JsonObject { ["delta"] = new JsonObject { ["content"] = "caf\u00e9 <b> \ud83d\ude00 ไทย" } }) };
        var large = new JsonObject { ["text"] = new string('x', 100_000) };
        object named = new Dictionary<string, object?> { ["type"] = "response.output_text.delta", ["delta"] = "a\"b" };
        var expected = new StringBuilder();

        await ServerSentEvents.WriteAsync(context.Response, chunk, CancellationToken.None);
        expected.Append(PerEvent(chunk));
        await ServerSentEvents.WriteAsync(context.Response, large, CancellationToken.None);
        expected.Append(PerEvent(large));
        await ServerSentEvents.WriteEventAsync(context.Response, "response.output_text.delta", named, CancellationToken.None);
        expected.Append(PerEvent(named, "response.output_text.delta"));

        // A payload the serializer refuses writes nothing, and the next event is written from its start.
        await Assert.ThrowsAnyAsync<Exception>(() => ServerSentEvents.WriteAsync(context.Response, new { value = double.NaN }, CancellationToken.None));
        await ServerSentEvents.WriteAsync(context.Response, chunk, CancellationToken.None);
        expected.Append(PerEvent(chunk));

        Assert.Equal(expected.ToString(), Encoding.UTF8.GetString(body.ToArray()));
    }
}
