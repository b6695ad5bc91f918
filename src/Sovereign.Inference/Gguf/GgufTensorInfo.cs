// Copyright (c) Sovereign contributors. Licensed under the MIT License.

namespace Sovereign.Inference.Gguf;

/// <summary>
/// One tensor as a GGUF file describes it. <see cref="Shape"/> lists ggml's ne[] with ne[0] the fastest-varying
/// (row length); <see cref="Offset"/> is relative to the start of the file's tensor data section.
/// </summary>
public sealed record GgufTensorInfo(string Name, IReadOnlyList<ulong> Shape, GgmlType Type, ulong Offset)
{
    /// <summary>Number of elements (product of the dimensions).</summary>
    public ulong ElementCount
    {
        get
        {
            ulong count = 1;
            foreach (var dim in Shape)
            {
                count = checked(count * dim);
            }

            return count;
        }
    }

    /// <summary>Bytes of tensor data, or null when the type's block layout is not known to this code.</summary>
    public long? ByteSize => GgmlTypeLayout.TensorBytes(Type, Shape);
}
