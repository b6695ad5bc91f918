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
        // OpenAI's own value: a client decoding by the declared charset reads the same bytes the same way.
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
    }

    /// <summary>
    /// Names the thread's buffer and writer for events (default options, as a writer made per event had): a stream
    /// wrote every token's event through a new buffer and a new writer (<see cref="ThreadJsonWriter{TOwner}"/>).
    /// </summary>
    private abstract class WriterSlot;

    public static Task WriteAsync<T>(HttpResponse response, T payload, CancellationToken cancellationToken) =>
        SendAsync(response, Serialize(null, payload, typeof(T)), cancellationToken);

    /// <summary>A named event (<c>event: NAME</c> then <c>data: {json}</c>), as the Responses API streams them.</summary>
    public static Task WriteEventAsync<T>(HttpResponse response, string name, T payload, CancellationToken cancellationToken) =>
        // The runtime type: events are passed as their common base.
        SendAsync(response, Serialize(name, payload, payload?.GetType() ?? typeof(T)), cancellationToken);

    private static async Task SendAsync(HttpResponse response, (byte[] Rented, int Length) written, CancellationToken cancellationToken)
    {
        try
        {
            await response.Body.WriteAsync(written.Rented.AsMemory(0, written.Length), cancellationToken);
            await response.Body.FlushAsync(cancellationToken);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(written.Rented);
        }
    }

    /// <summary>The event's bytes, in a buffer rented from the shared pool that the caller returns.</summary>
    private static (byte[] Rented, int Length) Serialize(string? name, object? payload, Type type)
    {
        var (buffer, writer) = ThreadJsonWriter<WriterSlot>.Take(default);
        try
        {
            if (name is not null)
            {
                buffer.Write("event: "u8);
                System.Text.EncodingExtensions.GetBytes(System.Text.Encoding.UTF8, name, buffer);
                buffer.Write("\n"u8);
            }

            buffer.Write(DataPrefix);
            writer.Reset(buffer);
            JsonSerializer.Serialize(writer, payload, type, OpenAIJson.Options);
            writer.Flush();
            buffer.Write(EventEnd);
            var rented = ArrayPool<byte>.Shared.Rent(buffer.WrittenCount);
            buffer.WrittenSpan.CopyTo(rented);
            return (rented, buffer.WrittenCount);
        }
        finally
        {
            ThreadJsonWriter<WriterSlot>.Return(buffer, writer);
        }
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
