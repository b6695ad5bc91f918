// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Collections;
using System.Globalization;
using System.Text;

namespace Sovereign.Inference.Gguf;

/// <summary>
/// One typed GGUF metadata value. Scalars hold the matching CLR primitive; arrays hold a CLR array of the element
/// type (<c>string[]</c>, <c>int[]</c>, ... and <c>GgufValue[]</c> for arrays of arrays). The GGUF type is kept
/// explicitly because several GGUF types can matter to readers (llama.cpp rejects e.g. an int32 where it wants uint32).
/// </summary>
public sealed class GgufValue : IEquatable<GgufValue>
{
    private GgufValue(GgufValueType type, object value, GgufValueType? elementType = null)
    {
        Type = type;
        Value = value;
        ElementType = elementType;
    }

    /// <summary>The GGUF type of this value.</summary>
    public GgufValueType Type { get; }

    /// <summary>For arrays, the GGUF type of the elements; otherwise null.</summary>
    public GgufValueType? ElementType { get; }

    /// <summary>The boxed scalar, string, or element array.</summary>
    public object Value { get; }

    /// <summary>For arrays, the number of elements; otherwise null.</summary>
    public int? ArrayLength => Value is Array array && Type == GgufValueType.Array ? array.Length : null;

    public static GgufValue Of(byte value) => new(GgufValueType.UInt8, value);

    public static GgufValue Of(sbyte value) => new(GgufValueType.Int8, value);

    public static GgufValue Of(ushort value) => new(GgufValueType.UInt16, value);

    public static GgufValue Of(short value) => new(GgufValueType.Int16, value);

    public static GgufValue Of(uint value) => new(GgufValueType.UInt32, value);

    public static GgufValue Of(int value) => new(GgufValueType.Int32, value);

    public static GgufValue Of(float value) => new(GgufValueType.Float32, value);

    public static GgufValue Of(bool value) => new(GgufValueType.Bool, value);

    public static GgufValue Of(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return new(GgufValueType.String, value);
    }

    public static GgufValue Of(ulong value) => new(GgufValueType.UInt64, value);

    public static GgufValue Of(long value) => new(GgufValueType.Int64, value);

    public static GgufValue Of(double value) => new(GgufValueType.Float64, value);

    /// <summary>
    /// An array value. The element type follows from <typeparamref name="T"/>: byte, sbyte, ushort, short, uint, int,
    /// float, bool, string, ulong, long, double, or <see cref="GgufValue"/> (arrays of arrays, which must all be arrays).
    /// </summary>
    public static GgufValue OfArray<T>(IEnumerable<T> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var elementType = ElementTypeOf(typeof(T))
            ?? throw new ArgumentException($"GGUF arrays cannot hold elements of type {typeof(T).Name}.", nameof(values));
        var copy = values.ToArray();
        foreach (var item in copy)
        {
            if (item is null)
            {
                throw new ArgumentException("GGUF arrays cannot contain null elements.", nameof(values));
            }

            if (item is GgufValue { Type: not GgufValueType.Array })
            {
                throw new ArgumentException("A GGUF array of values may only contain arrays.", nameof(values));
            }
        }

        return new(GgufValueType.Array, copy, elementType);
    }

    /// <summary>Wraps an element array the reader has just built; no copy, no checks.</summary>
    internal static GgufValue FromArrayUnchecked(GgufValueType elementType, Array elements) =>
        new(GgufValueType.Array, elements, elementType);

    /// <summary>The string value; throws if this is not a string.</summary>
    public string AsString() => Value as string
        ?? throw new InvalidOperationException($"GGUF value is {Type}, not String.");

    /// <summary>The value of any GGUF integer type as a signed 64-bit number; throws if not an integer or out of range.</summary>
    public long AsInt64() => Value switch
    {
        byte v => v,
        sbyte v => v,
        ushort v => v,
        short v => v,
        uint v => v,
        int v => v,
        long v => v,
        ulong v when v <= long.MaxValue => (long)v,
        ulong => throw new OverflowException("GGUF UInt64 value does not fit in Int64."),
        _ => throw new InvalidOperationException($"GGUF value is {Type}, not an integer."),
    };

    /// <summary>The value of any GGUF numeric type as a double; throws for bool, string and arrays.</summary>
    public double AsDouble() => Value switch
    {
        float v => v,
        double v => v,
        ulong v => v,
        byte or sbyte or ushort or short or uint or int or long => AsInt64(),
        _ => throw new InvalidOperationException($"GGUF value is {Type}, not a number."),
    };

    /// <summary>The boolean value; throws if this is not a bool.</summary>
    public bool AsBool() => Value is bool b ? b : throw new InvalidOperationException($"GGUF value is {Type}, not Bool.");

    /// <summary>The elements of an array value as <typeparamref name="T"/>; throws if the element type differs.</summary>
    public IReadOnlyList<T> AsArray<T>()
    {
        // Compare GGUF element types too: the CLR lets an int[] pass as a uint[].
        if (Value is T[] items && ElementType == ElementTypeOf(typeof(T)))
        {
            return items;
        }

        var actual = ElementType is { } e ? $"Array of {e}" : Type.ToString();
        throw new InvalidOperationException($"GGUF value is {actual}, not Array of {typeof(T).Name}.");
    }

    public bool Equals(GgufValue? other)
    {
        if (other is null || other.Type != Type || other.ElementType != ElementType)
        {
            return false;
        }

        if (Value is Array mine && other.Value is Array theirs)
        {
            return StructuralComparisons.StructuralEqualityComparer.Equals(mine, theirs);
        }

        return Value.Equals(other.Value);
    }

    public override bool Equals(object? obj) => Equals(obj as GgufValue);

    public override int GetHashCode() => Value is Array array
        ? HashCode.Combine(Type, ElementType, array.Length)
        : HashCode.Combine(Type, Value);

    /// <summary>A short, human-readable rendering; long arrays are elided so logs stay small.</summary>
    public override string ToString()
    {
        if (Value is not Array array)
        {
            return Value switch
            {
                string s => s.Length > 80 ? $"\"{s[..77]}...\"" : $"\"{s}\"",
                IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
                _ => Value.ToString() ?? string.Empty,
            };
        }

        var text = new StringBuilder().Append('[');
        var shown = Math.Min(array.Length, 8);
        for (var i = 0; i < shown; i++)
        {
            var item = array.GetValue(i);
            text.Append(i == 0 ? string.Empty : ", ")
                .Append(item is GgufValue v ? v.ToString() : item is IFormattable f ? f.ToString(null, CultureInfo.InvariantCulture) : item);
        }

        if (array.Length > shown)
        {
            text.Append(CultureInfo.InvariantCulture, $", ... ({array.Length} items)");
        }

        return text.Append(']').ToString();
    }

    internal static GgufValueType? ElementTypeOf(Type clrType) => clrType switch
    {
        _ when clrType == typeof(byte) => GgufValueType.UInt8,
        _ when clrType == typeof(sbyte) => GgufValueType.Int8,
        _ when clrType == typeof(ushort) => GgufValueType.UInt16,
        _ when clrType == typeof(short) => GgufValueType.Int16,
        _ when clrType == typeof(uint) => GgufValueType.UInt32,
        _ when clrType == typeof(int) => GgufValueType.Int32,
        _ when clrType == typeof(float) => GgufValueType.Float32,
        _ when clrType == typeof(bool) => GgufValueType.Bool,
        _ when clrType == typeof(string) => GgufValueType.String,
        _ when clrType == typeof(ulong) => GgufValueType.UInt64,
        _ when clrType == typeof(long) => GgufValueType.Int64,
        _ when clrType == typeof(double) => GgufValueType.Float64,
        _ when clrType == typeof(GgufValue) => GgufValueType.Array,
        _ => null,
    };
}
