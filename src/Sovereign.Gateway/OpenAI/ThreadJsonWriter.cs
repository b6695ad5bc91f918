using System.Buffers;
using System.Text.Json;

namespace Sovereign.Gateway.OpenAI;

/// <summary>
/// A JSON writer and its buffer kept per thread for one kind of writing (<typeparamref name="TOwner"/>, so two kinds
/// never share them): every streamed event and relayed body was written through a new buffer and a new writer. Take
/// them, write, copy the bytes out, and <see cref="Return"/> them before any await: they are the thread's.
/// </summary>
/// <typeparam name="TOwner">The writing they serve; each closed type has its own thread-static fields.</typeparam>
internal static class ThreadJsonWriter<TOwner>
{
    /// <summary>Buffers kept per thread up to this size; a larger document's are let go.</summary>
    private const int KeptBufferBytes = 64 * 1024;

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    /// <summary>The thread's buffer, empty, and its writer, made with <paramref name="options"/> on the thread's first use.</summary>
    public static (ArrayBufferWriter<byte> Buffer, Utf8JsonWriter Writer) Take(JsonWriterOptions options)
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(1024);
        var writer = t_writer ??= new Utf8JsonWriter(buffer, options);
        return (buffer, writer);
    }

    /// <summary>Empties the buffer and resets the writer for the thread's next use, or lets both go when the buffer grew large.</summary>
    public static void Return(ArrayBufferWriter<byte> buffer, Utf8JsonWriter writer)
    {
        if (buffer.Capacity > KeptBufferBytes)
        {
            t_buffer = null;
            t_writer = null;
        }
        else
        {
            buffer.ResetWrittenCount();
            writer.Reset(buffer);
        }
    }
}
