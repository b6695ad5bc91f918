using System.Buffers;
using System.Text.Json;

namespace Sovereign.Gateway.OpenAI;

/// <summary>Server-sent events in the form OpenAI streams them: <c>data: {json}</c> lines and a final <c>data: [DONE]</c>.</summary>
internal static class ServerSentEvents
{
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    private static readonly byte[] OutcomeEntryPrefix = System.Text.Encoding.ASCII.GetBytes(": " + Routing.InferenceRouter.AuditEntryHeader + " ");
    private static readonly object OutcomeEntryKey = new();

    /// <summary>
    /// Keeps the value of <see cref="Routing.InferenceRouter.AuditEntryHeader"/> for a stream whose headers have left:
    /// <see cref="WriteOutcomeEntryAsync"/> states it as a comment before the stream's last event.
    /// </summary>
    public static void NameOutcomeEntry(HttpContext context, string value) => context.Items[OutcomeEntryKey] = value;

    /// <summary>
    /// Writes, once, the comment <c>: x-sovereign-audit-entry [CHAIN:]SEQUENCE:HASH</c> naming the stream's committed
    /// outcome entry (<see cref="NameOutcomeEntry"/>), before its last event (<c>[DONE]</c>, Responses'
    /// <c>response.completed</c>): a stream's headers leave before its end is known, so the header cannot name it. Only
    /// for a client that asked (<see cref="Routing.InferenceRouter.StreamAuditEntryHeader"/>). Event-stream parsers skip
    /// comments (WHATWG's, OpenAI's SDKs); a relaying gateway drops an upstream's, so the client sees only the entry of
    /// the gateway it called. Not flushed: the last event's flush carries it.
    /// </summary>
    public static Task WriteOutcomeEntryAsync(HttpResponse response, CancellationToken cancellationToken)
    {
        var items = response.HttpContext.Items;
        if (!response.HasStarted || !items.TryGetValue(OutcomeEntryKey, out var named) || named is not string value)
        {
            return Task.CompletedTask;
        }

        items.Remove(OutcomeEntryKey);
        return response.Body.WriteAsync((byte[])[.. OutcomeEntryPrefix, .. System.Text.Encoding.ASCII.GetBytes(value), .. EventEnd], cancellationToken).AsTask();
    }

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

    /// <summary>
    /// The final <c>[DONE]</c>, after a relaying gateway's compute report where the request has one
    /// (<see cref="Pipeline.RelayComputeReport"/>) and the comment naming the request's outcome entry
    /// (<see cref="WriteOutcomeEntryAsync"/>).
    /// </summary>
    public static async Task WriteDoneAsync(HttpResponse response, CancellationToken cancellationToken)
    {
        if (Pipeline.RelayComputeReport.Comment(response.HttpContext) is { } report)
        {
            await response.Body.WriteAsync(report, cancellationToken);
        }

        await WriteOutcomeEntryAsync(response, cancellationToken);
        await response.Body.WriteAsync(Done, cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }
}
