// Copyright (c) Sovereign contributors. Licensed under the MIT License.

namespace Sovereign.Inference.Gguf;

/// <summary>Metadata value types, numbered exactly as the GGUF specification enumerates them.</summary>
public enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}
