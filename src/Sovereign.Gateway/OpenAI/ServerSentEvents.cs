using System.Buffers;
using System.Text.Json;

namespace Sovereign.Gateway.OpenAI;

/// <summary>Server-sent events in the form OpenAI streams them: <c>data: {json}</c> lines and a final <c>data: [DONE]</c>.</summary>
internal static class ServerSentEvents
{
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    public static void Start(HttpResponse response)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
    }

    public static async Task WriteAsync<T>(HttpResponse response, T payload, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        buffer.Write(DataPrefix);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            JsonSerializer.Serialize(writer, payload, OpenAIJson.Options);
        }

        buffer.Write(EventEnd);
        await response.Body.WriteAsync(buffer.WrittenMemory, cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    /// <summary>A named event (<c>event: NAME</c> then <c>data: {json}</c>), as the Responses API streams them.</summary>
    public static async Task WriteEventAsync<T>(HttpResponse response, string name, T payload, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        buffer.Write("event: "u8);
        System.Text.EncodingExtensions.GetBytes(System.Text.Encoding.UTF8, name, buffer);
        buffer.Write("\n"u8);
        buffer.Write(DataPrefix);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            // The runtime type: events are passed as their common base.
            JsonSerializer.Serialize(writer, payload, payload?.GetType() ?? typeof(T), OpenAIJson.Options);
        }

        buffer.Write(EventEnd);
        await response.Body.WriteAsync(buffer.WrittenMemory, cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    /// <summary>The final <c>[DONE]</c>, after a relaying gateway's compute report where the request has one (<see cref="Pipeline.RelayComputeReport"/>).</summary>
    public static async Task WriteDoneAsync(HttpResponse response, CancellationToken cancellationToken)
    {
        if (Pipeline.RelayComputeReport.Comment(response.HttpContext) is { } report)
        {
            await response.Body.WriteAsync(report, cancellationToken);
        }

        await response.Body.WriteAsync(Done, cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }
}
