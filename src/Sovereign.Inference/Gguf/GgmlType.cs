// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Diagnostics.CodeAnalysis;

namespace Sovereign.Inference.Gguf;

/// <summary>
/// Tensor element types as ggml numbers them. Names keep ggml's spelling (Q8_0, Q4_K, ...) because that is
/// what every tool, log line and model card prints.
/// </summary>
[SuppressMessage("Naming", "CA1707:Identifiers should not contain underscores", Justification = "ggml's own type names.")]
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    MXFP4 = 39,
}

/// <summary>Block layout of each ggml type: how many elements one block holds and how many bytes it takes.</summary>
internal static class GgmlTypeLayout
{
    /// <summary>Returns false for types this code does not know (newer ggml types); callers then skip size checks.</summary>
    public static bool TryGet(GgmlType type, out int blockElements, out int blockBytes)
    {
        (blockElements, blockBytes) = type switch
        {
            GgmlType.F32 => (1, 4),
            GgmlType.F16 => (1, 2),
            GgmlType.BF16 => (1, 2),
            GgmlType.F64 => (1, 8),
            GgmlType.I8 => (1, 1),
            GgmlType.I16 => (1, 2),
            GgmlType.I32 => (1, 4),
            GgmlType.I64 => (1, 8),
            GgmlType.Q4_0 => (32, 18),
            GgmlType.Q4_1 => (32, 20),
            GgmlType.Q5_0 => (32, 22),
            GgmlType.Q5_1 => (32, 24),
            GgmlType.Q8_0 => (32, 34),
            GgmlType.Q8_1 => (32, 36),
            GgmlType.IQ4_NL => (32, 18),
            GgmlType.MXFP4 => (32, 17),
            GgmlType.Q2_K => (256, 84),
            GgmlType.Q3_K => (256, 110),
            GgmlType.Q4_K => (256, 144),
            GgmlType.Q5_K => (256, 176),
            GgmlType.Q6_K => (256, 210),
            GgmlType.Q8_K => (256, 292),
            GgmlType.IQ2_XXS => (256, 66),
            GgmlType.IQ2_XS => (256, 74),
            GgmlType.IQ3_XXS => (256, 98),
            GgmlType.IQ1_S => (256, 50),
            GgmlType.IQ3_S => (256, 110),
            GgmlType.IQ2_S => (256, 82),
            GgmlType.IQ4_XS => (256, 136),
            GgmlType.IQ1_M => (256, 56),
            GgmlType.TQ1_0 => (256, 54),
            GgmlType.TQ2_0 => (256, 66),
            _ => (0, 0),
        };
        return blockElements > 0;
    }

    /// <summary>Bytes a row of <paramref name="rowElements"/> takes, or null when the type is unknown or the row splits a block.</summary>
    public static long? RowBytes(GgmlType type, ulong rowElements)
    {
        if (!TryGet(type, out var blockElements, out var blockBytes) || rowElements % (ulong)blockElements != 0)
        {
            return null;
        }

        var blocks = rowElements / (ulong)blockElements;
        return blocks > long.MaxValue / (ulong)blockBytes ? null : (long)blocks * blockBytes;
    }

    /// <summary>Bytes a whole tensor takes (rows are ne[0] long), or null when unknown or not representable.</summary>
    public static long? TensorBytes(GgmlType type, IReadOnlyList<ulong> shape)
    {
        if (shape.Count == 0)
        {
            return null;
        }

        var rowBytes = RowBytes(type, shape[0]);
        if (rowBytes is not { } bytes)
        {
            return null;
        }

        // Multiply row by row count with overflow detection: bogus shapes must not wrap around.
        ulong total = (ulong)bytes;
        for (var i = 1; i < shape.Count; i++)
        {
            if (shape[i] != 0 && total > long.MaxValue / shape[i])
            {
                return null;
            }

            total *= shape[i];
        }

        return (long)total;
    }
}
