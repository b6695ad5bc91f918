using System.Buffers;
using System.Text.Json;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.Routing;

/// <summary>
/// The common whole (not streamed) answer of an engine relayed without building a <c>JsonNode</c> tree: one pass over
/// its bytes reads the usage and copies every token, the top-level <c>model</c> replaced by the client's id, into
/// exactly what <c>JsonSerializer.SerializeToUtf8Bytes(JsonNode.Parse(answer), OpenAIJson.Options)</c> with that edit
/// writes (same order, same escaping, numbers as the engine wrote them). Anything the node path treats specially (not
/// an object, a usage it refuses, a repeated field, a name with escapes, text it cannot write) is left to it: this
/// returns false and the caller takes the node path, whose answers and errors stay the only ones.
/// </summary>
internal static class JsonAnswerRewrite
{
    /// <summary>More fields than this in one object: left to the node path (its duplicate check is a dictionary).</summary>
    private const int MaxFields = 32;

    private static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = OpenAIJson.Options.Encoder,
        MaxDepth = OpenAIJson.Options.MaxDepth,
        Indented = false,
    };

    /// <summary>Names this class's own thread-static buffer and writer (<see cref="ThreadJsonWriter{TOwner}"/>).</summary>
    private abstract class WriterSlot;

    /// <summary>
    /// Rewrites <paramref name="answer"/> for the client, with <paramref name="clientModel"/> as its model, and reads its
    /// usage; false when the answer must take the node path (then nothing is returned).
    /// </summary>
    public static bool TryRewrite(ReadOnlySpan<byte> answer, string clientModel, out byte[] relayed, out UpstreamUsage usage)
    {
        relayed = [];
        usage = default;
        var (buffer, writer) = ThreadJsonWriter<WriterSlot>.Take(WriterOptions);
        try
        {
            if (!TryCopyAnswer(answer, clientModel, writer, out usage))
            {
                return false;
            }

            writer.Flush();
            relayed = buffer.WrittenSpan.ToArray();
            return true;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or ArgumentException)
        {
            // Not valid JSON, too deep, text the writer refuses: the node path says what it says about it.
            return false;
        }
        finally
        {
            ThreadJsonWriter<WriterSlot>.Return(buffer, writer);
        }
    }

    private static bool TryCopyAnswer(ReadOnlySpan<byte> answer, string clientModel, Utf8JsonWriter writer, out UpstreamUsage usage)
    {
        usage = default;
        var reader = new Utf8JsonReader(answer, new JsonReaderOptions { MaxDepth = 64 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return false;
        }

        Span<int> starts = stackalloc int[MaxFields];
        Span<int> lengths = stackalloc int[MaxFields];
        var fields = 0;
        var sawModel = false;
        var sawUsage = false;
        writer.WriteStartObject();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!TryNote(answer, ref reader, starts, lengths, ref fields))
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

            if (name.SequenceEqual("usage"u8))
            {
                var counts = reader; // a copy: reads the usage, while the original copies it
                if (!TryReadUsage(answer, ref counts, out usage))
                {
                    return false;
                }

                sawUsage = true;
            }

            CopyValue(ref reader, writer);
        }

        if (reader.TokenType != JsonTokenType.EndObject || !sawUsage)
        {
            return false;
        }

        if (!sawModel)
        {
            // The node path adds the model after the engine's fields.
            writer.WriteString("model"u8, clientModel);
        }

        writer.WriteEndObject();

        // Nothing but white space may follow the answer (the reader throws on anything else).
        return !reader.Read();
    }

    /// <summary>
    /// Notes the property name under the reader among the object's names; false for a name with escapes, a repeated
    /// name, or too many names (the node path refuses a repeated one when it reads the object).
    /// </summary>
    internal static bool TryNote(ReadOnlySpan<byte> answer, ref Utf8JsonReader reader, scoped Span<int> starts, scoped Span<int> lengths, ref int fields)
    {
        if (reader.ValueIsEscaped || fields == starts.Length)
        {
            return false;
        }

        var name = reader.ValueSpan;
        for (var i = 0; i < fields; i++)
        {
            if (answer.Slice(starts[i], lengths[i]).SequenceEqual(name))
            {
                return false;
            }
        }

        starts[fields] = (int)reader.TokenStartIndex + 1; // after the opening quote
        lengths[fields] = name.Length;
        fields++;
        return true;
    }

    /// <summary>
    /// The usage as the node path reads it (<c>prompt_tokens</c> and <c>completion_tokens</c> non-negative integers,
    /// <c>prompt_tokens_details.cached_tokens</c> clamped to the prompt, else 0); false for anything it would refuse.
    /// </summary>
    internal static bool TryReadUsage(ReadOnlySpan<byte> answer, ref Utf8JsonReader reader, out UpstreamUsage usage)
    {
        usage = default;
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return false;
        }

        Span<int> starts = stackalloc int[MaxFields];
        Span<int> lengths = stackalloc int[MaxFields];
        var fields = 0;
        int? prompt = null, completion = null;
        var cached = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!TryNote(answer, ref reader, starts, lengths, ref fields))
            {
                return false;
            }

            var isPrompt = reader.ValueTextEquals("prompt_tokens"u8);
            var isCompletion = !isPrompt && reader.ValueTextEquals("completion_tokens"u8);
            var isDetails = !isPrompt && !isCompletion && reader.ValueTextEquals("prompt_tokens_details"u8);
            reader.Read();
            if (isPrompt || isCompletion)
            {
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out var count) || count < 0)
                {
                    return false;
                }

                (isPrompt ? ref prompt : ref completion) = count;
            }
            else if (isDetails && reader.TokenType == JsonTokenType.StartObject)
            {
                if (!TryReadCachedTokens(answer, ref reader, out cached))
                {
                    return false;
                }
            }
            else
            {
                reader.Skip();
            }
        }

        if (prompt is not { } p || completion is not { } c)
        {
            return false;
        }

        usage = new UpstreamUsage(p, c, Math.Clamp(cached, 0, p));
        return true;
    }

    private static bool TryReadCachedTokens(ReadOnlySpan<byte> answer, ref Utf8JsonReader reader, out int cached)
    {
        cached = 0;
        Span<int> starts = stackalloc int[MaxFields];
        Span<int> lengths = stackalloc int[MaxFields];
        var fields = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!TryNote(answer, ref reader, starts, lengths, ref fields))
            {
                return false;
            }

            var isCached = reader.ValueTextEquals("cached_tokens"u8);
            reader.Read();
            if (isCached && reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var value))
            {
                cached = value;
            }
            else
            {
                reader.Skip();
            }
        }

        return true;
    }

    /// <summary>Copies the value under the reader (a scalar, or an object or array with everything in it) and leaves the reader on its last token.</summary>
    internal static void CopyValue(ref Utf8JsonReader reader, Utf8JsonWriter writer)
    {
        if (reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
        {
            CopyToken(ref reader, writer);
            return;
        }

        var depth = reader.CurrentDepth;
        CopyToken(ref reader, writer);
        while (reader.Read())
        {
            CopyToken(ref reader, writer);
            if (reader.TokenType is JsonTokenType.EndObject or JsonTokenType.EndArray && reader.CurrentDepth == depth)
            {
                return;
            }
        }
    }

    private static void CopyToken(ref Utf8JsonReader reader, Utf8JsonWriter writer)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
                writer.WriteStartObject();
                break;
            case JsonTokenType.EndObject:
                writer.WriteEndObject();
                break;
            case JsonTokenType.StartArray:
                writer.WriteStartArray();
                break;
            case JsonTokenType.EndArray:
                writer.WriteEndArray();
                break;
            case JsonTokenType.PropertyName:
                WriteText(ref reader, writer, propertyName: true);
                break;
            case JsonTokenType.String:
                WriteText(ref reader, writer, propertyName: false);
                break;
            case JsonTokenType.Number:
                // As the engine wrote it, as a parsed node writes it.
                writer.WriteRawValue(reader.ValueSpan, skipInputValidation: true);
                break;
            case JsonTokenType.True:
                writer.WriteBooleanValue(true);
                break;
            case JsonTokenType.False:
                writer.WriteBooleanValue(false);
                break;
            case JsonTokenType.Null:
                writer.WriteNullValue();
                break;
            default:
                throw new JsonException("unexpected token");
        }
    }

    /// <summary>A name or string, unescaped and escaped again by the writer's encoder (as a parsed node is written).</summary>
    private static void WriteText(ref Utf8JsonReader reader, Utf8JsonWriter writer, bool propertyName)
    {
        if (!reader.ValueIsEscaped)
        {
            if (propertyName)
            {
                writer.WritePropertyName(reader.ValueSpan);
            }
            else
            {
                writer.WriteStringValue(reader.ValueSpan);
            }

            return;
        }

        var rented = ArrayPool<byte>.Shared.Rent(reader.ValueSpan.Length);
        try
        {
            var length = reader.CopyString(rented);
            if (propertyName)
            {
                writer.WritePropertyName(rented.AsSpan(0, length));
            }
            else
            {
                writer.WriteStringValue(rented.AsSpan(0, length));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
