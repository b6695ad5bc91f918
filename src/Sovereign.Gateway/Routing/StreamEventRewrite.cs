using System.Buffers;
using System.Text.Json;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.Routing;

/// <summary>
/// The common event of a relayed stream (a content chunk, a role or finish chunk, the usage chunk whose choices are
/// empty) rewritten for the client without building a <c>JsonNode</c> tree: one pass over the event's bytes reads its
/// usage, tells whether it carries tokens, and copies every token, the top-level <c>model</c> replaced by the client's
/// id, into exactly the <c>data: {json}\n\n</c> that the tree path (parse, set the model, <c>ServerSentEvents.WriteAsync</c>)
/// writes: same order, same escaping (the event writer's default encoder), numbers as the engine wrote them. Anything
/// that path treats specially (an error, a usage it refuses or edits, a usage beside choices, tool calls, a repeated
/// field or one with escapes in the objects it reads, text it cannot write) is left to it: this returns false and the
/// caller takes the tree path, whose answers and errors stay the only ones.
/// </summary>
internal static class StreamEventRewrite
{
    /// <summary>More fields than this in one object: left to the tree path (its duplicate check is a dictionary).</summary>
    private const int MaxFields = 32;

    /// <summary>As <c>ServerSentEvents.WriteAsync</c> makes its writer: the default options (encoder, depth).</summary>
    private static readonly JsonWriterOptions WriterOptions = default;

    /// <summary>Names this class's own thread-static buffer and writer (<see cref="ThreadJsonWriter{TOwner}"/>).</summary>
    private abstract class WriterSlot;

    /// <summary>What one event is, once read.</summary>
    /// <param name="Written">The event for the client (<c>data: {json}\n\n</c>), in a buffer rented from the shared pool that the caller returns; null when the client is not sent it.</param>
    /// <param name="Length">The written bytes in <paramref name="Written"/>.</param>
    /// <param name="Usage">The engine's usage, when the event carries it.</param>
    /// <param name="CarriesTokens">Whether a choice holds generated output (<c>UpstreamProxy.CarriesTokens</c>).</param>
    internal readonly record struct Event(byte[]? Written, int Length, UpstreamUsage? Usage, bool CarriesTokens);

    /// <summary>
    /// Rewrites the event's JSON <paramref name="data"/> for the client, with <paramref name="clientModel"/> as its model;
    /// false when the event must take the tree path (then nothing was rented). A usage event whose choices are empty is
    /// read and not written when the client did not ask for usage (<paramref name="clientWantsUsage"/>).
    /// </summary>
    public static bool TryRewrite(ReadOnlySpan<byte> data, string clientModel, bool clientWantsUsage, out Event read)
    {
        read = default;
        var (buffer, writer) = ThreadJsonWriter<WriterSlot>.Take(WriterOptions);
        try
        {
            buffer.Write("data: "u8);
            writer.Reset(buffer);
            if (!TryCopyEvent(data, clientModel, writer, out var usage, out var choices, out var carries))
            {
                return false;
            }

            // A usage beside choices (llama-server's per prompt), or without an array of them, is the tree path's to meter and edit.
            if (usage is not null && choices != 0)
            {
                return false;
            }

            if (usage is not null && !clientWantsUsage)
            {
                // The gateway asked for usage to meter the request; a client that did not is not sent it.
                read = new Event(null, 0, usage, carries);
                return true;
            }

            writer.Flush();
            buffer.Write("\n\n"u8);
            var rented = ArrayPool<byte>.Shared.Rent(buffer.WrittenCount);
            buffer.WrittenSpan.CopyTo(rented);
            read = new Event(rented, buffer.WrittenCount, usage, carries);
            return true;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or ArgumentException)
        {
            // Not valid JSON, too deep, text the writer refuses: the tree path says what it says about it.
            return false;
        }
        finally
        {
            ThreadJsonWriter<WriterSlot>.Return(buffer, writer);
        }
    }

    /// <param name="choices">The number of choices; -1 when the event has no array of them.</param>
    private static bool TryCopyEvent(ReadOnlySpan<byte> data, string clientModel, Utf8JsonWriter writer, out UpstreamUsage? usage, out int choices, out bool carries)
    {
        usage = null;
        choices = -1;
        carries = false;
        var reader = new Utf8JsonReader(data, new JsonReaderOptions { MaxDepth = 64 }); // JsonNode.Parse's depth
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return false;
        }

        Span<int> starts = stackalloc int[MaxFields];
        Span<int> lengths = stackalloc int[MaxFields];
        var fields = 0;
        var sawModel = false;
        writer.WriteStartObject();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!JsonAnswerRewrite.TryNote(data, ref reader, starts, lengths, ref fields))
            {
                return false;
            }

            var name = reader.ValueSpan;
            writer.WritePropertyName(name);
            reader.Read();
            if (name.SequenceEqual("model"u8))
            {
                sawModel = true;
                writer.WriteStringValue(clientModel);
                reader.Skip();
                continue;
            }

            if (name.SequenceEqual("error"u8) && reader.TokenType != JsonTokenType.Null)
            {
                // The engine's error inside its stream ends it; the tree path reads it.
                return false;
            }

            if (name.SequenceEqual("usage"u8) && reader.TokenType != JsonTokenType.Null)
            {
                var counts = reader; // a copy: reads the usage, while the original copies it
                if (!JsonAnswerRewrite.TryReadUsage(data, ref counts, out var counted))
                {
                    return false;
                }

                usage = counted;
            }
            else if (name.SequenceEqual("choices"u8) && reader.TokenType == JsonTokenType.StartArray)
            {
                if (!TryCopyChoices(data, ref reader, writer, out choices, ref carries))
                {
                    return false;
                }

                continue;
            }

            JsonAnswerRewrite.CopyValue(ref reader, writer);
        }

        if (reader.TokenType != JsonTokenType.EndObject)
        {
            return false;
        }

        if (!sawModel)
        {
            // The tree path adds the model after the engine's fields.
            writer.WriteString("model"u8, clientModel);
        }

        writer.WriteEndObject();

        // Nothing but white space may follow the event (the reader throws on anything else).
        return !reader.Read();
    }

    /// <summary>Copies the choices, noting whether one carries tokens; false for what the tree path reads apart.</summary>
    private static bool TryCopyChoices(ReadOnlySpan<byte> data, ref Utf8JsonReader reader, Utf8JsonWriter writer, out int count, ref bool carries)
    {
        count = 0;
        writer.WriteStartArray();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            count++;
            if (reader.TokenType == JsonTokenType.Null)
            {
                writer.WriteNullValue();
                continue;
            }

            // A choice that is not an object: the tree path's reading of it throws.
            if (reader.TokenType != JsonTokenType.StartObject || !TryCopyChoice(data, ref reader, writer, ref carries))
            {
                return false;
            }
        }

        writer.WriteEndArray();
        return true;
    }

    private static bool TryCopyChoice(ReadOnlySpan<byte> data, ref Utf8JsonReader reader, Utf8JsonWriter writer, ref bool carries)
    {
        Span<int> starts = stackalloc int[MaxFields];
        Span<int> lengths = stackalloc int[MaxFields];
        var fields = 0;
        writer.WriteStartObject();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!JsonAnswerRewrite.TryNote(data, ref reader, starts, lengths, ref fields))
            {
                return false;
            }

            var name = reader.ValueSpan;
            if (name.SequenceEqual("message"u8))
            {
                // Tool calls are looked for in a message before the delta (RelayedCallIds): the tree path's.
                return false;
            }

            writer.WritePropertyName(name);
            reader.Read();
            if (name.SequenceEqual("delta"u8) && reader.TokenType != JsonTokenType.Null)
            {
                // A delta that is not an object: the tree path's look for tool calls in it throws.
                if (reader.TokenType != JsonTokenType.StartObject || !TryCopyDelta(data, ref reader, writer, ref carries))
                {
                    return false;
                }

                continue;
            }

            if (name.SequenceEqual("text"u8) && reader.TokenType == JsonTokenType.String)
            {
                if (!Decodes(ref reader))
                {
                    return false;
                }

                // An escape decodes to at least one character: a string with bytes is a non-empty text.
                carries |= reader.ValueSpan.Length > 0;
            }

            JsonAnswerRewrite.CopyValue(ref reader, writer);
        }

        writer.WriteEndObject();
        return true;
    }

    /// <summary>
    /// Whether a text the tree path decodes (a choice's text, a delta's content: <c>CarriesTokens</c>) is valid UTF-8. The
    /// writer writes invalid bytes as the tree path does, but its decoding then throws: such an event is the tree's.
    /// (An escaped string is decoded when it is copied, which throws the same.)
    /// </summary>
    private static bool Decodes(ref Utf8JsonReader reader) =>
        reader.ValueIsEscaped || System.Text.Unicode.Utf8.IsValid(reader.ValueSpan);

    private static bool TryCopyDelta(ReadOnlySpan<byte> data, ref Utf8JsonReader reader, Utf8JsonWriter writer, ref bool carries)
    {
        Span<int> starts = stackalloc int[MaxFields];
        Span<int> lengths = stackalloc int[MaxFields];
        var fields = 0;
        writer.WriteStartObject();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!JsonAnswerRewrite.TryNote(data, ref reader, starts, lengths, ref fields))
            {
                return false;
            }

            var name = reader.ValueSpan;
            if (name.SequenceEqual("tool_calls"u8))
            {
                // Their ids may need making distinct (RelayedCallIds): the tree path's.
                return false;
            }

            writer.WritePropertyName(name);
            reader.Read();
            if (name.SequenceEqual("content"u8) && reader.TokenType == JsonTokenType.String)
            {
                if (!Decodes(ref reader))
                {
                    return false;
                }

                carries |= reader.ValueSpan.Length > 0;
            }

            JsonAnswerRewrite.CopyValue(ref reader, writer);
        }

        writer.WriteEndObject();
        return true;
    }
}
