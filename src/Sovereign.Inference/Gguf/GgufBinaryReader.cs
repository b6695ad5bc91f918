// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace Sovereign.Inference.Gguf;

/// <summary>
/// Little-endian primitive reads over a stream that turn every short read into an <see cref="InvalidDataException"/>
/// naming the offset and what was being read. When the length is known, sizes are checked against the bytes left
/// before anything is allocated; when it is not, large reads grow their buffers only as data actually arrives.
/// </summary>
internal sealed class GgufBinaryReader
{
    private const int BufferSize = 64 * 1024;

    private static readonly Encoding Utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    private readonly Stream _stream;
    private readonly byte[] _buffer = new byte[BufferSize];
    private int _start;
    private int _end;

    public GgufBinaryReader(Stream stream, long? length)
    {
        _stream = stream;
        Length = length;
    }

    /// <summary>Total bytes of the GGUF data, when the stream can tell.</summary>
    public long? Length { get; }

    /// <summary>Offset of the next byte, from the start of the GGUF data.</summary>
    public long Position { get; private set; }

    /// <summary>Bytes left, when the length is known.</summary>
    public long? Remaining => Length - Position;

    public byte ReadUInt8(string what) => Take(1, what)[0];

    public ushort ReadUInt16(string what) => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, what));

    public uint ReadUInt32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));

    public ulong ReadUInt64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));

    public float ReadSingle(string what) => BinaryPrimitives.ReadSingleLittleEndian(Take(4, what));

    public double ReadDouble(string what) => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, what));

    public bool ReadBool(string what)
    {
        var offset = Position;
        return ReadUInt8(what) switch
        {
            0 => false,
            1 => true,
            var b => throw Invalid($"invalid bool byte {b} while reading {what}", offset),
        };
    }

    /// <summary>Reads a GGUF string: a uint64 byte length, then that many UTF-8 bytes.</summary>
    public string ReadString(string what, long maxBytes = int.MaxValue)
    {
        var offset = Position;
        var length = ReadUInt64(what);
        if (length > (ulong)maxBytes)
        {
            throw Invalid($"{what} claims {length} bytes (limit {maxBytes})", offset);
        }

        EnsureAvailable(length, 1, what, offset);
        var count = (int)length;
        if (count <= BufferSize)
        {
            return Utf8.GetString(Take(count, what));
        }

        // Long strings (chat templates can be large): copy chunk by chunk so a lying length prefix on a stream
        // of unknown length fails at end of data instead of allocating the claimed size up front.
        using var collected = new MemoryStream();
        while (count > 0)
        {
            var chunk = Math.Min(count, BufferSize);
            collected.Write(Take(chunk, what));
            count -= chunk;
        }

        return Utf8.GetString(collected.GetBuffer(), 0, (int)collected.Length);
    }

    /// <summary>
    /// Fails early with a clear message when <paramref name="count"/> items of at least <paramref name="minItemBytes"/>
    /// bytes each cannot fit in what is left of the data (or in a .NET array).
    /// </summary>
    public void EnsureAvailable(ulong count, int minItemBytes, string what, long offset)
    {
        if (count > int.MaxValue)
        {
            throw Invalid($"{what} claims {count} items or bytes, more than this reader supports", offset);
        }

        if (Remaining is { } remaining && count * (ulong)minItemBytes > (ulong)Math.Max(0, remaining))
        {
            throw Invalid($"{what} claims {count} items or bytes but only {remaining} bytes remain (truncated or corrupt file)", offset);
        }
    }

    public void Skip(long count, string what)
    {
        while (count > 0)
        {
            var chunk = (int)Math.Min(count, BufferSize);
            Take(chunk, what);
            count -= chunk;
        }
    }

    public static InvalidDataException Invalid(string message, long offset) =>
        new(string.Create(CultureInfo.InvariantCulture, $"Invalid GGUF data at byte {offset}: {message}."));

    /// <summary>Returns the next <paramref name="count"/> bytes (at most the buffer size), valid until the next read.</summary>
    private ReadOnlySpan<byte> Take(int count, string what)
    {
        if (_end - _start < count)
        {
            Fill(count, what);
        }

        var span = _buffer.AsSpan(_start, count);
        _start += count;
        Position += count;
        return span;
    }

    private void Fill(int count, string what)
    {
        // Move the unread tail to the front, then read until enough bytes are buffered.
        var unread = _end - _start;
        Buffer.BlockCopy(_buffer, _start, _buffer, 0, unread);
        _start = 0;
        _end = unread;
        while (_end < count)
        {
            var read = _stream.Read(_buffer, _end, _buffer.Length - _end);
            if (read == 0)
            {
                throw new InvalidDataException(string.Create(
                    CultureInfo.InvariantCulture,
                    $"Invalid GGUF data: the file ends at byte {Position + _end} while reading {what} (truncated file?)."));
            }

            _end += read;
        }
    }
}
