// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Buffers.Binary;

namespace Sovereign.Inference.Gguf;

/// <summary>Encodes float rows into the ggml types the writer can produce (F32, F16, Q8_0).</summary>
internal static class GgmlEncoding
{
    /// <summary>Values per Q8_0 block.</summary>
    public const int Q8BlockElements = 32;

    public static bool CanEncode(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.Q8_0;

    public static void Encode(GgmlType type, ReadOnlySpan<float> values, Span<byte> destination)
    {
        switch (type)
        {
            case GgmlType.F32:
                for (var i = 0; i < values.Length; i++)
                {
                    BinaryPrimitives.WriteSingleLittleEndian(destination[(i * 4)..], values[i]);
                }

                break;
            case GgmlType.F16:
                for (var i = 0; i < values.Length; i++)
                {
                    // The Half conversion rounds to nearest-even, like ggml's own fp32->fp16.
                    BinaryPrimitives.WriteHalfLittleEndian(destination[(i * 2)..], (Half)values[i]);
                }

                break;
            case GgmlType.Q8_0:
                EncodeQ8_0(values, destination);
                break;
            default:
                throw new NotSupportedException($"Encoding to ggml type {type} is not supported.");
        }
    }

    /// <summary>
    /// Q8_0: per block of 32 values, an fp16 scale d = max|x| / 127 followed by 32 int8 values round(x / d).
    /// The int8s are computed from the fp32 scale (not the rounded fp16 one), as ggml's reference quantizer does.
    /// </summary>
    private static void EncodeQ8_0(ReadOnlySpan<float> values, Span<byte> destination)
    {
        var blocks = values.Length / Q8BlockElements;
        for (var b = 0; b < blocks; b++)
        {
            var block = values.Slice(b * Q8BlockElements, Q8BlockElements);
            var output = destination.Slice(b * (2 + Q8BlockElements), 2 + Q8BlockElements);

            var amax = 0f;
            foreach (var x in block)
            {
                amax = MathF.Max(amax, MathF.Abs(x));
            }

            var d = amax / 127f;
            var inverse = d != 0f ? 1f / d : 0f;
            BinaryPrimitives.WriteHalfLittleEndian(output, (Half)d);
            for (var i = 0; i < Q8BlockElements; i++)
            {
                var q = MathF.Round(block[i] * inverse, MidpointRounding.AwayFromZero);
                output[2 + i] = unchecked((byte)(sbyte)Math.Clamp(q, -127f, 127f));
            }
        }
    }
}
