// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Sovereign.Storage;

namespace Sovereign.Inference.Gguf;

/// <summary>
/// Fills one row (ne[0] values) of a tensor. The writer asks for rows 0, 1, 2, ... in order, exactly once each,
/// while it streams the file, so a source may keep state (for example a random generator) between calls.
/// </summary>
public delegate void GgufRowSource(long row, Span<float> values);

/// <summary>
/// Writes GGUF version 3 files. Metadata and tensor declarations are collected first (GGUF puts every tensor's
/// offset in the header), then <see cref="Write"/> streams the header and each tensor's data in turn, so only one
/// row of a tensor is ever in memory: models far larger than RAM can be written.
/// </summary>
public sealed class GgufWriter
{
    /// <summary>Alignment GGUF assumes when <c>general.alignment</c> is absent.</summary>
    public const uint DefaultAlignment = 32;

    /// <summary>Format version this writer produces.</summary>
    public const uint Version = 3;

    internal const string AlignmentKey = "general.alignment";

    // ggml keeps tensor names in a 64-byte buffer that includes the terminating NUL.
    private const int MaxTensorNameBytes = 63;
    private const int MaxDimensions = 4;

    private static readonly byte[] Magic = "GGUF"u8.ToArray();
    private static readonly Encoding Utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly List<string> _metadataOrder = [];
    private readonly Dictionary<string, GgufValue> _metadata = new(StringComparer.Ordinal);
    private readonly List<PendingTensor> _tensors = [];
    private readonly HashSet<string> _tensorNames = new(StringComparer.Ordinal);

    /// <summary>Metadata in the order it will be written.</summary>
    public IReadOnlyList<KeyValuePair<string, GgufValue>> Metadata =>
        _metadataOrder.Select(key => KeyValuePair.Create(key, _metadata[key])).ToList();

    /// <summary>Alignment of the data section and of each tensor: <c>general.alignment</c> if set, else 32.</summary>
    public uint Alignment => _metadata.TryGetValue(AlignmentKey, out var value) ? (uint)value.Value : DefaultAlignment;

    /// <summary>Adds or replaces a metadata entry; a new key goes last, a replaced one keeps its place.</summary>
    public void SetMetadata(string key, GgufValue value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(value);
        if (Utf8.GetByteCount(key) > ushort.MaxValue)
        {
            throw new ArgumentException("GGUF metadata keys are at most 65535 bytes.", nameof(key));
        }

        if (key == AlignmentKey)
        {
            // llama.cpp only accepts a uint32 power of two here.
            if (value.Value is not uint alignment || alignment == 0 || (alignment & (alignment - 1)) != 0)
            {
                throw new ArgumentException($"{AlignmentKey} must be a UInt32 power of two.", nameof(value));
            }
        }

        if (_metadata.TryAdd(key, value))
        {
            _metadataOrder.Add(key);
        }
        else
        {
            _metadata[key] = value;
        }
    }

    /// <summary>Declares a tensor whose data is generated row by row while writing (F32, F16 or Q8_0).</summary>
    /// <param name="shape">ggml dimensions, ne[0] first (the row length).</param>
    public void AddTensor(string name, IReadOnlyList<ulong> shape, GgmlType type, GgufRowSource rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (!GgmlEncoding.CanEncode(type))
        {
            throw new ArgumentException($"Row sources can produce F32, F16 or Q8_0 tensors, not {type}.", nameof(type));
        }

        var copy = ValidateTensor(name, shape, type);
        if (copy[0] > int.MaxValue / sizeof(float))
        {
            throw new ArgumentException("Rows longer than 512M elements are not supported.", nameof(shape));
        }

        _tensors.Add(new PendingTensor(name, copy, type, rows, default));
        _tensorNames.Add(name);
    }

    /// <summary>Declares a tensor from already-encoded bytes of any ggml type whose block layout is known.</summary>
    public void AddTensor(string name, IReadOnlyList<ulong> shape, GgmlType type, ReadOnlyMemory<byte> data)
    {
        var copy = ValidateTensor(name, shape, type);
        var expected = GgmlTypeLayout.TensorBytes(type, copy);
        if (expected != data.Length)
        {
            throw new ArgumentException($"Tensor '{name}' of type {type} and shape [{string.Join(", ", copy)}] needs {expected} bytes, got {data.Length}.", nameof(data));
        }

        _tensors.Add(new PendingTensor(name, copy, type, null, data));
        _tensorNames.Add(name);
    }

    /// <summary>The tensor infos as they will be written, with offsets relative to the data section.</summary>
    public IReadOnlyList<GgufTensorInfo> GetTensorInfos()
    {
        var infos = new List<GgufTensorInfo>(_tensors.Count);
        ulong offset = 0;
        foreach (var tensor in _tensors)
        {
            infos.Add(new GgufTensorInfo(tensor.Name, tensor.Shape, tensor.Type, offset));
            offset = AlignUp(offset + (ulong)tensor.ByteSize, Alignment);
        }

        return infos;
    }

    /// <summary>Exact size in bytes of the file <see cref="Write"/> would produce.</summary>
    public long ComputeLength()
    {
        var length = (long)BuildHeader().Length;
        foreach (var tensor in _tensors)
        {
            length = checked((long)AlignUp((ulong)(length + tensor.ByteSize), Alignment));
        }

        return length;
    }

    /// <summary>Streams the whole file to <paramref name="destination"/>; progress reports total bytes written.</summary>
    public void Write(Stream destination, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var alignment = Alignment;

        // The header (metadata, tensor infos, padding) is small next to the data, so it is built in memory.
        var header = BuildHeader();
        destination.Write(header);
        var written = (long)header.Length;
        progress?.Report(written);

        foreach (var tensor in _tensors)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (tensor.Rows is null)
            {
                destination.Write(tensor.Data.Span);
                written += tensor.Data.Length;
            }
            else
            {
                written = WriteRows(destination, tensor, written, progress, cancellationToken);
            }

            written = WritePadding(destination, written, alignment);
            progress?.Report(written);
        }

        destination.Flush();
    }

    /// <summary>
    /// Writes the file to <paramref name="path"/>. Data goes to a side file that replaces <paramref name="path"/> only
    /// when complete, so an interrupted write never leaves a half-written model under the real name. With
    /// <paramref name="overwrite"/> false an existing file at <paramref name="path"/> (one made while this wrote too)
    /// is kept, and <see cref="AtomicFileExistsException"/> (an <see cref="IOException"/>) is thrown with the side file
    /// removed. The side file is flushed to disk before the rename (<see cref="AtomicFile"/>).
    /// </summary>
    public void WriteFile(string path, IProgress<long>? progress = null, CancellationToken cancellationToken = default, bool overwrite = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = AtomicFileWriter.Begin(path, overwrite ? ExistingFile.Replace : ExistingFile.Refuse, FileAccessScope.Default, bufferSize: 1 << 20);
        Write(file.Stream, progress, cancellationToken);
        file.Commit();
    }

    private List<ulong> ValidateTensor(string name, IReadOnlyList<ulong> shape, GgmlType type)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (Utf8.GetByteCount(name) > MaxTensorNameBytes)
        {
            throw new ArgumentException($"Tensor name '{name}' is longer than {MaxTensorNameBytes} bytes.", nameof(name));
        }

        if (_tensorNames.Contains(name))
        {
            throw new ArgumentException($"Tensor '{name}' was already added.", nameof(name));
        }

        if (shape.Count is 0 or > MaxDimensions || shape.Any(d => d == 0))
        {
            throw new ArgumentException($"Tensor '{name}' needs 1 to {MaxDimensions} dimensions, each at least 1.", nameof(shape));
        }

        if (!GgmlTypeLayout.TryGet(type, out var blockElements, out _))
        {
            throw new ArgumentException($"ggml type {type} has no known block layout.", nameof(type));
        }

        if (shape[0] % (ulong)blockElements != 0)
        {
            throw new ArgumentException($"Tensor '{name}': ne[0] = {shape[0]} must be a multiple of {blockElements} for {type}.", nameof(shape));
        }

        var copy = shape.ToList();
        if (GgmlTypeLayout.TensorBytes(type, copy) is null)
        {
            throw new ArgumentException($"Tensor '{name}' is too large.", nameof(shape));
        }

        return copy;
    }

    private byte[] BuildHeader()
    {
        using var output = new MemoryStream();
        var scratch = new byte[8];
        output.Write(Magic);
        WriteUInt32(output, scratch, Version);
        WriteUInt64(output, scratch, (ulong)_tensors.Count);
        WriteUInt64(output, scratch, (ulong)_metadataOrder.Count);
        foreach (var key in _metadataOrder)
        {
            WriteString(output, scratch, key);
            var value = _metadata[key];
            WriteUInt32(output, scratch, (uint)value.Type);
            WriteValue(output, scratch, value);
        }

        foreach (var info in GetTensorInfos())
        {
            WriteString(output, scratch, info.Name);
            WriteUInt32(output, scratch, (uint)info.Shape.Count);
            foreach (var dim in info.Shape)
            {
                WriteUInt64(output, scratch, dim);
            }

            WriteUInt32(output, scratch, (uint)info.Type);
            WriteUInt64(output, scratch, info.Offset);
        }

        WritePadding(output, output.Length, Alignment);
        return output.ToArray();
    }

    private static void WriteValue(Stream output, byte[] scratch, GgufValue value)
    {
        if (value.Value is Array array)
        {
            var elementType = value.ElementType!.Value;
            WriteUInt32(output, scratch, (uint)elementType);
            WriteUInt64(output, scratch, (ulong)array.Length);
            foreach (var item in array)
            {
                WriteScalar(output, scratch, elementType, item);
            }
        }
        else
        {
            WriteScalar(output, scratch, value.Type, value.Value);
        }
    }

    private static void WriteScalar(Stream output, byte[] scratch, GgufValueType type, object item)
    {
        switch (type)
        {
            case GgufValueType.UInt8: output.WriteByte((byte)item); break;
            case GgufValueType.Int8: output.WriteByte(unchecked((byte)(sbyte)item)); break;
            case GgufValueType.UInt16: BinaryPrimitives.WriteUInt16LittleEndian(scratch, (ushort)item); output.Write(scratch, 0, 2); break;
            case GgufValueType.Int16: BinaryPrimitives.WriteInt16LittleEndian(scratch, (short)item); output.Write(scratch, 0, 2); break;
            case GgufValueType.UInt32: WriteUInt32(output, scratch, (uint)item); break;
            case GgufValueType.Int32: BinaryPrimitives.WriteInt32LittleEndian(scratch, (int)item); output.Write(scratch, 0, 4); break;
            case GgufValueType.Float32: BinaryPrimitives.WriteSingleLittleEndian(scratch, (float)item); output.Write(scratch, 0, 4); break;
            case GgufValueType.Bool: output.WriteByte((bool)item ? (byte)1 : (byte)0); break;
            case GgufValueType.String: WriteString(output, scratch, (string)item); break;
            case GgufValueType.UInt64: WriteUInt64(output, scratch, (ulong)item); break;
            case GgufValueType.Int64: BinaryPrimitives.WriteInt64LittleEndian(scratch, (long)item); output.Write(scratch, 0, 8); break;
            case GgufValueType.Float64: BinaryPrimitives.WriteDoubleLittleEndian(scratch, (double)item); output.Write(scratch, 0, 8); break;
            case GgufValueType.Array:
                var nested = (GgufValue)item;
                WriteValue(output, scratch, nested);
                break;
            default:
                throw new InvalidOperationException($"Unknown GGUF value type {type}.");
        }
    }

    private static long WriteRows(Stream output, PendingTensor tensor, long written, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var rowLength = (int)tensor.Shape[0];
        var rowBytes = (int)GgmlTypeLayout.RowBytes(tensor.Type, tensor.Shape[0])!.Value;
        var rowCount = (long)(tensor.ElementCount / tensor.Shape[0]);
        var values = ArrayPool<float>.Shared.Rent(rowLength);
        var encoded = ArrayPool<byte>.Shared.Rent(rowBytes);
        try
        {
            var lastReport = written;
            for (var row = 0L; row < rowCount; row++)
            {
                var span = values.AsSpan(0, rowLength);
                span.Clear();
                tensor.Rows!(row, span);
                GgmlEncoding.Encode(tensor.Type, span, encoded.AsSpan(0, rowBytes));
                output.Write(encoded, 0, rowBytes);
                written += rowBytes;

                // Report and check for cancellation every few MiB rather than every row.
                if (written - lastReport >= 8 << 20)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    progress?.Report(written);
                    lastReport = written;
                }
            }

            return written;
        }
        finally
        {
            ArrayPool<float>.Shared.Return(values);
            ArrayPool<byte>.Shared.Return(encoded);
        }
    }

    private static long WritePadding(Stream output, long written, uint alignment)
    {
        var padding = (int)(AlignUp((ulong)written, alignment) - (ulong)written);
        for (var i = 0; i < padding; i++)
        {
            output.WriteByte(0);
        }

        return written + padding;
    }

    private static void WriteString(Stream output, byte[] scratch, string value)
    {
        var bytes = Utf8.GetBytes(value);
        WriteUInt64(output, scratch, (ulong)bytes.Length);
        output.Write(bytes);
    }

    private static void WriteUInt32(Stream output, byte[] scratch, uint value)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(scratch, value);
        output.Write(scratch, 0, 4);
    }

    private static void WriteUInt64(Stream output, byte[] scratch, ulong value)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(scratch, value);
        output.Write(scratch, 0, 8);
    }

    internal static ulong AlignUp(ulong value, uint alignment) => (value + alignment - 1) / alignment * alignment;

    private sealed record PendingTensor(string Name, List<ulong> Shape, GgmlType Type, GgufRowSource? Rows, ReadOnlyMemory<byte> Data)
    {
        public ulong ElementCount => Shape.Aggregate(1UL, (a, b) => a * b);

        public long ByteSize => GgmlTypeLayout.TensorBytes(Type, Shape)!.Value;
    }
}
