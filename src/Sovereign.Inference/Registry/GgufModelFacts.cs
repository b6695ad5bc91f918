// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Collections.Frozen;
using Sovereign.Inference.Gguf;

namespace Sovereign.Inference.Registry;

/// <summary>What the registry reads from a GGUF header: architecture, size, weight format, context and attention shape.</summary>
public sealed record GgufModelFacts(string Architecture, string? Name, long Parameters, string Quantization, long? ContextLength, ModelShape Shape)
{
    // llama.cpp's llama_ftype values (general.file_type), by the names its quantize tool uses.
    private static readonly FrozenDictionary<long, string> FileTypeNames = new Dictionary<long, string>
    {
        [0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [7] = "Q8_0", [8] = "Q5_0", [9] = "Q5_1",
        [10] = "Q2_K", [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L", [14] = "Q4_K_S", [15] = "Q4_K_M",
        [16] = "Q5_K_S", [17] = "Q5_K_M", [18] = "Q6_K", [19] = "IQ2_XXS", [20] = "IQ2_XS", [21] = "Q2_K_S",
        [22] = "IQ3_XS", [23] = "IQ3_XXS", [24] = "IQ1_S", [25] = "IQ4_NL", [26] = "IQ3_S", [27] = "IQ3_M",
        [28] = "IQ2_S", [29] = "IQ2_M", [30] = "IQ4_XS", [31] = "IQ1_M", [32] = "BF16", [36] = "TQ1_0",
        [37] = "TQ2_0", [38] = "MXFP4_MOE",
    }.ToFrozenDictionary();

    /// <summary>Reads the facts from a parsed header. Throws <see cref="InvalidDataException"/> when it names no architecture.</summary>
    public static GgufModelFacts From(GgufReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var arch = reader.Architecture;
        if (string.IsNullOrWhiteSpace(arch))
        {
            throw new InvalidDataException("The GGUF file has no general.architecture: llama.cpp cannot load it.");
        }

        var shape = new ModelShape
        {
            Layers = Clamp(reader.BlockCount),
            EmbeddingLength = Clamp(reader.EmbeddingLength),
            HeadCount = Clamp(Largest(reader, $"{arch}.attention.head_count")),
            KvHeadCount = Clamp(Largest(reader, $"{arch}.attention.head_count_kv") ?? Largest(reader, $"{arch}.attention.head_count")),
            KeyLength = Clamp(Largest(reader, $"{arch}.attention.key_length")),
            ValueLength = Clamp(Largest(reader, $"{arch}.attention.value_length")),
            VocabularySize = reader.VocabularySize,
        };
        return new GgufModelFacts(arch, reader.Name, reader.ParameterCount, QuantizationOf(reader), reader.ContextLength, shape);
    }

    /// <summary>
    /// The weight format: <c>general.file_type</c> by llama.cpp's name for it, else the type holding most bytes among the
    /// matrices (tensors of two or more dimensions), else "unknown".
    /// </summary>
    public static string QuantizationOf(GgufReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        if (reader.FileType is { } fileType && FileTypeNames.TryGetValue(fileType, out var name))
        {
            return name;
        }

        var dominant = reader.Tensors
            .Where(t => t.Shape.Count >= 2)
            .GroupBy(t => t.Type)
            .Select(g => (Type: g.Key, Bytes: g.Sum(t => t.ByteSize ?? (long)Math.Min(t.ElementCount, long.MaxValue))))
            .OrderByDescending(g => g.Bytes)
            .FirstOrDefault();
        return dominant.Bytes > 0 ? dominant.Type.ToString() : "unknown";
    }

    // Some architectures store per-layer head counts as arrays; the largest bounds the KV cache.
    private static long? Largest(GgufReader reader, string key)
    {
        if (!reader.Metadata.TryGetValue(key, out var value))
        {
            return null;
        }

        if (value.Value is Array array)
        {
            long? max = null;
            foreach (var item in array)
            {
                if (item is byte or sbyte or ushort or short or uint or int or long || item is ulong and <= long.MaxValue)
                {
                    var n = Convert.ToInt64(item, System.Globalization.CultureInfo.InvariantCulture);
                    max = max is null ? n : Math.Max(max.Value, n);
                }
            }

            return max;
        }

        return reader.GetInteger(key);
    }

    private static int? Clamp(long? value) => value is { } v and > 0 ? (int)Math.Min(v, int.MaxValue) : null;
}
