using System.Text.Json;
using Sovereign.Cluster.Grains;
using Sovereign.Gateway.OpenAI;

namespace Sovereign.Gateway.Routing;

/// <summary>
/// A chat or text completion's body as the relay sends it to an engine: the client's bytes with the gateway's edits
/// (its output limit, greedy for <c>top_p: 0</c>, the prompt cache's field, the engine's model id, the usage it asks
/// for), written in one pass over those bytes instead of through a <c>JsonNode</c> tree. The bytes are exactly what
/// the tree gave with the same edits (<c>JsonSerializer.SerializeToUtf8Bytes</c> with default options: fields in the
/// client's order, a replaced one in its place, a new one after them in the order the edits are made). A body the tree
/// treats apart (a repeated or escaped field name, <c>stream_options</c> not an object) is not read here:
/// <see cref="TryRead"/> returns null and the relay builds the tree as before.
/// </summary>
internal sealed class RelayRequestBody
{
    private const int MaxFields = 64;

    /// <summary>As <c>JsonSerializer.SerializeToUtf8Bytes</c> with default options writes (the default encoder, depth 64).</summary>
    private static readonly JsonWriterOptions WriterOptions = new() { MaxDepth = 64 };

    /// <summary>Names this class's own thread-static buffer and writer (<see cref="ThreadJsonWriter{TOwner}"/>).</summary>
    private abstract class WriterSlot;

    private readonly ReadOnlyMemory<byte> _raw;
    private string? _maxTokensName;
    private int _maxTokens;
    private bool _greedy;
    private string? _cacheSalt;
    private bool _cachePromptOff;

    private RelayRequestBody(ReadOnlyMemory<byte> raw, bool stream, bool clientWantsUsage, bool topPIsZero)
    {
        _raw = raw;
        Stream = stream;
        ClientWantsUsage = clientWantsUsage;
        TopPIsZero = topPIsZero;
    }

    /// <summary>Whether the client asked for a stream (<c>"stream": true</c>).</summary>
    public bool Stream { get; }

    /// <summary>Whether the client asked for the usage event of its stream (<c>stream_options.include_usage: true</c>).</summary>
    public bool ClientWantsUsage { get; }

    /// <summary>Whether <c>top_p</c> is the number 0 (vLLM refuses it; OpenAI reads it as greedy).</summary>
    public bool TopPIsZero { get; }

    /// <summary>The client's body, read for the relay; null where the relay must build the tree instead.</summary>
    public static RelayRequestBody? TryRead(ReadOnlyMemory<byte> raw)
    {
        try
        {
            var reader = new Utf8JsonReader(raw.Span);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            Span<int> starts = stackalloc int[MaxFields];
            Span<int> lengths = stackalloc int[MaxFields];
            var fields = 0;
            bool stream = false, wantsUsage = false, topPIsZero = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (!JsonAnswerRewrite.TryNote(raw.Span, ref reader, starts, lengths, ref fields))
                {
                    return null;
                }

                var isStream = reader.ValueTextEquals("stream"u8);
                var isOptions = !isStream && reader.ValueTextEquals("stream_options"u8);
                var isTopP = !isStream && !isOptions && reader.ValueTextEquals("top_p"u8);
                reader.Read();
                if (isStream)
                {
                    stream = reader.TokenType == JsonTokenType.True;
                }
                else if (isOptions && reader.TokenType == JsonTokenType.StartObject)
                {
                    if (!TryReadIncludeUsage(raw.Span, ref reader, out wantsUsage))
                    {
                        return null;
                    }
                }
                else if (isOptions && reader.TokenType != JsonTokenType.Null)
                {
                    return null; // the tree is indexed into it: left to the tree's own answer
                }
                else if (isTopP)
                {
                    topPIsZero = reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out var topP) && topP == 0;
                }

                reader.Skip();
            }

            return reader.TokenType == JsonTokenType.EndObject && !reader.Read() ? new RelayRequestBody(raw, stream, wantsUsage, topPIsZero) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static bool TryReadIncludeUsage(ReadOnlySpan<byte> raw, ref Utf8JsonReader reader, out bool includeUsage)
    {
        includeUsage = false;
        Span<int> starts = stackalloc int[MaxFields];
        Span<int> lengths = stackalloc int[MaxFields];
        var fields = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (!JsonAnswerRewrite.TryNote(raw, ref reader, starts, lengths, ref fields))
            {
                return false;
            }

            var isIncludeUsage = reader.ValueTextEquals("include_usage"u8);
            reader.Read();
            if (isIncludeUsage)
            {
                includeUsage = reader.TokenType == JsonTokenType.True;
            }

            reader.Skip();
        }

        return true;
    }

    /// <summary>Sends <paramref name="value"/> as the output limit, named as the client's endpoint names it.</summary>
    public void SetMaxTokens(string name, int value) => (_maxTokensName, _maxTokens) = (name, value);

    /// <summary>Drops <c>top_p</c> and sends <c>temperature: 0</c> (greedy, what <c>top_p: 0</c> means).</summary>
    public void MakeGreedy() => _greedy = true;

    /// <summary>The prompt cache's field for <paramref name="mode"/>, as <see cref="Pipeline.EnginePromptCache.Apply"/> sets it.</summary>
    public void SetPromptCache(string mode, string tenantId, string? clientSalt)
    {
        switch (mode)
        {
            case EnginePromptCaches.Salt:
                _cacheSalt = Pipeline.EnginePromptCache.SaltOf(tenantId, clientSalt);
                break;
            case EnginePromptCaches.Off:
                _cachePromptOff = true;
                break;
        }
    }

    /// <summary>The bytes to send: the client's fields with every edit, the engine's model, and the usage asked of a stream.</summary>
    public byte[] Write(string upstreamModel, bool usageOnEveryEvent)
    {
        var (buffer, writer) = ThreadJsonWriter<WriterSlot>.Take(WriterOptions);
        try
        {
            var reader = new Utf8JsonReader(_raw.Span);
            reader.Read();
            writer.WriteStartObject();
            bool wroteMax = false, wroteTemperature = false, wroteCache = false, wroteModel = false, wroteOptions = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.ValueSpan;
                if (_greedy && name.SequenceEqual("top_p"u8))
                {
                    reader.Read();
                    reader.Skip();
                    continue;
                }

                writer.WritePropertyName(name);
                reader.Read();
                if (_maxTokensName is not null && !wroteMax && System.Text.Ascii.Equals(name, _maxTokensName))
                {
                    writer.WriteNumberValue(_maxTokens);
                    wroteMax = true;
                }
                else if (_greedy && name.SequenceEqual("temperature"u8))
                {
                    writer.WriteNumberValue(0);
                    wroteTemperature = true;
                }
                else if (_cacheSalt is not null && name.SequenceEqual("cache_salt"u8))
                {
                    writer.WriteStringValue(_cacheSalt);
                    wroteCache = true;
                }
                else if (_cachePromptOff && name.SequenceEqual("cache_prompt"u8))
                {
                    writer.WriteBooleanValue(false);
                    wroteCache = true;
                }
                else if (name.SequenceEqual("model"u8))
                {
                    writer.WriteStringValue(upstreamModel);
                    wroteModel = true;
                }
                else if (Stream && name.SequenceEqual("stream_options"u8))
                {
                    WriteStreamOptions(writer, usageOnEveryEvent);
                    wroteOptions = true;
                }
                else
                {
                    JsonAnswerRewrite.CopyValue(ref reader, writer);
                    continue;
                }

                reader.Skip();
            }

            // New fields after the client's, in the order the edits are made.
            if (_maxTokensName is not null && !wroteMax)
            {
                writer.WriteNumber(_maxTokensName, _maxTokens);
            }

            if (_greedy && !wroteTemperature)
            {
                writer.WriteNumber("temperature"u8, 0);
            }

            if (!wroteCache && _cacheSalt is not null)
            {
                writer.WriteString("cache_salt"u8, _cacheSalt);
            }
            else if (!wroteCache && _cachePromptOff)
            {
                writer.WriteBoolean("cache_prompt"u8, false);
            }

            if (!wroteModel)
            {
                writer.WriteString("model"u8, upstreamModel);
            }

            if (Stream && !wroteOptions)
            {
                writer.WritePropertyName("stream_options"u8);
                WriteStreamOptions(writer, usageOnEveryEvent);
            }

            writer.WriteEndObject();
            writer.Flush();
            return buffer.WrittenSpan.ToArray();
        }
        finally
        {
            ThreadJsonWriter<WriterSlot>.Return(buffer, writer);
        }
    }

    private static void WriteStreamOptions(Utf8JsonWriter writer, bool usageOnEveryEvent)
    {
        writer.WriteStartObject();
        writer.WriteBoolean("include_usage"u8, true);
        if (usageOnEveryEvent)
        {
            writer.WriteBoolean("continuous_usage_stats"u8, true);
        }

        writer.WriteEndObject();
    }
}
