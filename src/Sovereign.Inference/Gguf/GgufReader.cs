// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Globalization;

namespace Sovereign.Inference.Gguf;

/// <summary>
/// Reads the header of a GGUF v2 or v3 file: metadata and tensor infos, never the tensor data, so inspecting a
/// multi-gigabyte model costs a few megabytes at most. Malformed input of any kind (not GGUF, truncated, corrupt
/// counts) is reported as an <see cref="InvalidDataException"/> with the offending byte offset.
/// </summary>
public sealed class GgufReader
{
    private const int MaxArrayNesting = 16;
    private const int MaxDimensions = 4;
    private const long MaxKeyBytes = ushort.MaxValue;

    // Smallest possible encodings, used to reject impossible counts before allocating anything.
    private const int MinMetadataEntryBytes = 8 + 4 + 1;
    private const int MinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

    private GgufReader(
        uint version,
        IReadOnlyDictionary<string, GgufValue> metadata,
        IReadOnlyList<GgufTensorInfo> tensors,
        uint alignment,
        long dataOffset,
        long parameterCount)
    {
        Version = version;
        Metadata = metadata;
        Tensors = tensors;
        Alignment = alignment;
        DataOffset = dataOffset;
        ParameterCount = parameterCount;
    }

    /// <summary>GGUF format version (2 or 3).</summary>
    public uint Version { get; }

    /// <summary>All metadata, in file order.</summary>
    public IReadOnlyDictionary<string, GgufValue> Metadata { get; }

    /// <summary>All tensor infos, in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    /// <summary>Data alignment: <c>general.alignment</c>, or 32 when absent.</summary>
    public uint Alignment { get; }

    /// <summary>Offset of the tensor data section from the start of the file.</summary>
    public long DataOffset { get; }

    /// <summary>Sum of all tensors' element counts.</summary>
    public long ParameterCount { get; }

    /// <summary><c>general.architecture</c>, e.g. "llama".</summary>
    public string? Architecture => GetString("general.architecture");

    /// <summary><c>general.name</c>.</summary>
    public string? Name => GetString("general.name");

    /// <summary><c>{arch}.context_length</c>: the context the model was trained for.</summary>
    public long? ContextLength => GetArchitectureInteger("context_length");

    /// <summary><c>{arch}.embedding_length</c>: the model width.</summary>
    public long? EmbeddingLength => GetArchitectureInteger("embedding_length");

    /// <summary><c>{arch}.block_count</c>: the number of layers.</summary>
    public long? BlockCount => GetArchitectureInteger("block_count");

    /// <summary><c>tokenizer.chat_template</c>, when the model ships one.</summary>
    public string? ChatTemplate => GetString("tokenizer.chat_template");

    /// <summary>Number of entries in <c>tokenizer.ggml.tokens</c>.</summary>
    public int? VocabularySize => Metadata.TryGetValue("tokenizer.ggml.tokens", out var tokens) ? tokens.ArrayLength : null;

    /// <summary><c>general.file_type</c> (llama.cpp's ftype: 0 = all F32, 1 = mostly F16, 7 = mostly Q8_0, ...).</summary>
    public int? FileType => GetInteger("general.file_type") is { } value and >= int.MinValue and <= int.MaxValue ? (int)value : null;

    /// <summary>Reads the header of the GGUF file at <paramref name="path"/>.</summary>
    public static GgufReader Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        return Read(file);
    }

    /// <summary>
    /// Reads a GGUF header starting at the stream's current position. The stream is left open; if it can seek, its
    /// length is used to reject impossible sizes up front and to check that every tensor's data lies inside the file.
    /// </summary>
    public static GgufReader Read(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        long? length = stream.CanSeek ? stream.Length - stream.Position : null;
        var reader = new GgufBinaryReader(stream, length);

        if (length is < 4)
        {
            throw new InvalidDataException($"Not a GGUF file: it is only {length} bytes long.");
        }

        var magic = new byte[4];
        for (var i = 0; i < 4; i++)
        {
            magic[i] = reader.ReadUInt8("the magic number");
        }

        if (!magic.AsSpan().SequenceEqual("GGUF"u8))
        {
            throw new InvalidDataException($"Not a GGUF file: it starts with bytes {Convert.ToHexString(magic)}, not \"GGUF\" (47475546).");
        }

        var version = reader.ReadUInt32("the version");
        if (version is not (2 or 3))
        {
            var swapped = System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(version);
            throw new InvalidDataException(version switch
            {
                1 => "Unsupported GGUF version 1 (only versions 2 and 3 are supported; reconvert the model).",
                _ when swapped is 2 or 3 => "Unsupported GGUF file: it is big-endian; only little-endian files are supported.",
                _ => $"Unsupported GGUF version {version} (only versions 2 and 3 are supported).",
            });
        }

        var countOffset = reader.Position;
        var tensorCount = reader.ReadUInt64("the tensor count");
        var metadataCount = reader.ReadUInt64("the metadata count");
        reader.EnsureAvailable(metadataCount, MinMetadataEntryBytes, "the metadata count", countOffset + 8);
        reader.EnsureAvailable(tensorCount, MinTensorInfoBytes, "the tensor count", countOffset);

        var metadata = ReadMetadata(reader, (int)metadataCount);
        var alignment = ReadAlignment(metadata);
        var (tensors, parameterCount) = ReadTensorInfos(reader, (int)tensorCount, alignment);

        var dataOffset = (long)GgufWriter.AlignUp((ulong)reader.Position, alignment);
        CheckDataFitsInFile(length, dataOffset, tensors);
        return new GgufReader(version, metadata, tensors, alignment, dataOffset, parameterCount);
    }

    /// <summary>A metadata string, or null when absent or not a string.</summary>
    public string? GetString(string key) =>
        Metadata.TryGetValue(key, out var value) && value.Value is string s ? s : null;

    /// <summary>A metadata integer of any GGUF integer type, or null when absent, not an integer, or out of range.</summary>
    public long? GetInteger(string key)
    {
        if (!Metadata.TryGetValue(key, out var value) || value.Value is Array or string or bool or float or double)
        {
            return null;
        }

        return value.Value is ulong big && big > long.MaxValue ? null : value.AsInt64();
    }

    private long? GetArchitectureInteger(string suffix) =>
        Architecture is { } arch ? GetInteger($"{arch}.{suffix}") : null;

    private static Dictionary<string, GgufValue> ReadMetadata(GgufBinaryReader reader, int count)
    {
        var metadata = new Dictionary<string, GgufValue>(Math.Min(count, 1024), StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            var offset = reader.Position;
            var entry = string.Create(CultureInfo.InvariantCulture, $"metadata entry #{i}");
            var key = reader.ReadString($"the key of {entry}", MaxKeyBytes);
            var what = $"metadata '{key}'";
            var type = ReadValueType(reader, what);
            var value = ReadValue(reader, type, what, depth: 0);
            if (!metadata.TryAdd(key, value))
            {
                throw GgufBinaryReader.Invalid($"duplicate metadata key '{key}'", offset);
            }
        }

        return metadata;
    }

    private static GgufValueType ReadValueType(GgufBinaryReader reader, string what)
    {
        var offset = reader.Position;
        var raw = reader.ReadUInt32($"the value type of {what}");
        return raw <= (uint)GgufValueType.Float64
            ? (GgufValueType)raw
            : throw GgufBinaryReader.Invalid($"unknown value type {raw} for {what}", offset);
    }

    private static GgufValue ReadValue(GgufBinaryReader reader, GgufValueType type, string what, int depth) => type switch
    {
        GgufValueType.UInt8 => GgufValue.Of(reader.ReadUInt8(what)),
        GgufValueType.Int8 => GgufValue.Of(unchecked((sbyte)reader.ReadUInt8(what))),
        GgufValueType.UInt16 => GgufValue.Of(reader.ReadUInt16(what)),
        GgufValueType.Int16 => GgufValue.Of(unchecked((short)reader.ReadUInt16(what))),
        GgufValueType.UInt32 => GgufValue.Of(reader.ReadUInt32(what)),
        GgufValueType.Int32 => GgufValue.Of(unchecked((int)reader.ReadUInt32(what))),
        GgufValueType.Float32 => GgufValue.Of(reader.ReadSingle(what)),
        GgufValueType.Bool => GgufValue.Of(reader.ReadBool(what)),
        GgufValueType.String => GgufValue.Of(reader.ReadString(what)),
        GgufValueType.UInt64 => GgufValue.Of(reader.ReadUInt64(what)),
        GgufValueType.Int64 => GgufValue.Of(unchecked((long)reader.ReadUInt64(what))),
        GgufValueType.Float64 => GgufValue.Of(reader.ReadDouble(what)),
        GgufValueType.Array => ReadArray(reader, what, depth),
        _ => throw new InvalidOperationException($"Unhandled GGUF value type {type}."),
    };

    private static GgufValue ReadArray(GgufBinaryReader reader, string what, int depth)
    {
        var offset = reader.Position;
        if (depth >= MaxArrayNesting)
        {
            throw GgufBinaryReader.Invalid($"{what} nests arrays more than {MaxArrayNesting} deep", offset);
        }

        var elementType = ReadValueType(reader, $"the elements of {what}");
        var countOffset = reader.Position;
        var count = reader.ReadUInt64($"the length of {what}");
        var minBytes = elementType switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.String or GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
            _ => 4 + 8, // a nested array's element type and length
        };
        reader.EnsureAvailable(count, minBytes, $"the length of {what}", countOffset);
        var n = (int)count;

        return elementType switch
        {
            GgufValueType.UInt8 => Collect(n, () => reader.ReadUInt8(what)),
            GgufValueType.Int8 => Collect(n, () => unchecked((sbyte)reader.ReadUInt8(what))),
            GgufValueType.UInt16 => Collect(n, () => reader.ReadUInt16(what)),
            GgufValueType.Int16 => Collect(n, () => unchecked((short)reader.ReadUInt16(what))),
            GgufValueType.UInt32 => Collect(n, () => reader.ReadUInt32(what)),
            GgufValueType.Int32 => Collect(n, () => unchecked((int)reader.ReadUInt32(what))),
            GgufValueType.Float32 => Collect(n, () => reader.ReadSingle(what)),
            GgufValueType.Bool => Collect(n, () => reader.ReadBool(what)),
            GgufValueType.String => Collect(n, () => reader.ReadString(what)),
            GgufValueType.UInt64 => Collect(n, () => reader.ReadUInt64(what)),
            GgufValueType.Int64 => Collect(n, () => unchecked((long)reader.ReadUInt64(what))),
            GgufValueType.Float64 => Collect(n, () => reader.ReadDouble(what)),
            // Per the spec an array element that is itself an array is stored as (element type, length, items),
            // with no value-type tag of its own.
            _ => Collect(n, () => ReadArray(reader, what, depth + 1)),
        };

        GgufValue Collect<T>(int length, Func<T> readOne)
        {
            // Grow as elements arrive: with an unknown stream length a lying count must not pre-allocate.
            var items = new List<T>(Math.Min(length, 1 << 16));
            for (var i = 0; i < length; i++)
            {
                items.Add(readOne());
            }

            return GgufValue.FromArrayUnchecked(elementType, items.ToArray());
        }
    }

    private static uint ReadAlignment(Dictionary<string, GgufValue> metadata)
    {
        if (!metadata.TryGetValue(GgufWriter.AlignmentKey, out var value))
        {
            return GgufWriter.DefaultAlignment;
        }

        return value.Value is uint alignment && alignment != 0 && (alignment & (alignment - 1)) == 0
            ? alignment
            : throw new InvalidDataException($"Invalid GGUF data: {GgufWriter.AlignmentKey} must be a UInt32 power of two, got {value.Type} {value}.");
    }

    private static (List<GgufTensorInfo> Tensors, long ParameterCount) ReadTensorInfos(GgufBinaryReader reader, int count, uint alignment)
    {
        var tensors = new List<GgufTensorInfo>(Math.Min(count, 1 << 16));
        var names = new HashSet<string>(StringComparer.Ordinal);
        long parameters = 0;
        for (var i = 0; i < count; i++)
        {
            var offset = reader.Position;
            var name = reader.ReadString(string.Create(CultureInfo.InvariantCulture, $"the name of tensor #{i}"), MaxKeyBytes);
            var what = $"tensor '{name}'";
            var dimensionCount = reader.ReadUInt32($"the dimension count of {what}");
            if (dimensionCount is 0 or > MaxDimensions)
            {
                throw GgufBinaryReader.Invalid($"{what} has {dimensionCount} dimensions (1 to {MaxDimensions} allowed)", reader.Position - 4);
            }

            var shape = new ulong[dimensionCount];
            ulong elements = 1;
            for (var d = 0; d < shape.Length; d++)
            {
                shape[d] = reader.ReadUInt64($"the dimensions of {what}");
                if (shape[d] != 0 && elements > ulong.MaxValue / shape[d])
                {
                    throw GgufBinaryReader.Invalid($"{what} has an impossible shape [{string.Join(", ", shape)}]", offset);
                }

                elements *= shape[d];
            }

            var type = (GgmlType)reader.ReadUInt32($"the type of {what}");
            var dataOffsetAt = reader.Position;
            var dataOffset = reader.ReadUInt64($"the data offset of {what}");
            if (dataOffset % alignment != 0)
            {
                throw GgufBinaryReader.Invalid($"{what} has data offset {dataOffset}, not a multiple of the alignment {alignment}", dataOffsetAt);
            }

            if (!names.Add(name))
            {
                throw GgufBinaryReader.Invalid($"duplicate tensor name '{name}'", offset);
            }

            if (elements > long.MaxValue || parameters > long.MaxValue - (long)elements)
            {
                throw GgufBinaryReader.Invalid($"{what} has an impossible element count", offset);
            }

            parameters += (long)elements;
            tensors.Add(new GgufTensorInfo(name, shape, type, dataOffset));
        }

        return (tensors, parameters);
    }

    private static void CheckDataFitsInFile(long? length, long dataOffset, List<GgufTensorInfo> tensors)
    {
        if (length is not { } fileLength)
        {
            return;
        }

        if (tensors.Count > 0 && dataOffset > fileLength)
        {
            throw new InvalidDataException($"Invalid GGUF data: the tensor data would start at byte {dataOffset} but the file is {fileLength} bytes (truncated file?).");
        }

        foreach (var tensor in tensors)
        {
            // Types this code does not know are skipped: their size cannot be computed.
            // UInt128: a corrupt offset near 2^64 must not wrap around and pass.
            if (tensor.ByteSize is { } size && (UInt128)dataOffset + tensor.Offset + (ulong)size is var end && end > (ulong)fileLength)
            {
                throw new InvalidDataException(
                    $"Invalid GGUF data: tensor '{tensor.Name}' ends at byte {end} but the file is {fileLength} bytes (truncated file?).");
            }
        }
    }
}
