// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Buffers.Binary;
using Sovereign.Inference.Gguf;

namespace Sovereign.Inference.Tests.Gguf;

public sealed class GgufWriterReaderTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void WriteFile_MetadataOfEveryType_RoundTripsThroughReader()
    {
        var expected = new Dictionary<string, GgufValue>
        {
            ["t.u8"] = GgufValue.Of((byte)200),
            ["t.i8"] = GgufValue.Of((sbyte)-100),
            ["t.u16"] = GgufValue.Of((ushort)60000),
            ["t.i16"] = GgufValue.Of((short)-30000),
            ["t.u32"] = GgufValue.Of(4_000_000_000u),
            ["t.i32"] = GgufValue.Of(-2_000_000_000),
            ["t.f32"] = GgufValue.Of(3.25f),
            ["t.bool"] = GgufValue.Of(true),
            ["t.string"] = GgufValue.Of("héllo ๑ \u2581world"),
            ["t.empty_string"] = GgufValue.Of(string.Empty),
            ["t.u64"] = GgufValue.Of(ulong.MaxValue),
            ["t.i64"] = GgufValue.Of(long.MinValue),
            ["t.f64"] = GgufValue.Of(Math.PI),
            ["t.arr.u8"] = GgufValue.OfArray(new byte[] { 1, 2, 255 }),
            ["t.arr.i8"] = GgufValue.OfArray(new sbyte[] { -1, 0, 1 }),
            ["t.arr.u16"] = GgufValue.OfArray(new ushort[] { 1, 65535 }),
            ["t.arr.i16"] = GgufValue.OfArray(new short[] { -5, 5 }),
            ["t.arr.u32"] = GgufValue.OfArray(new uint[] { 7, uint.MaxValue }),
            ["t.arr.i32"] = GgufValue.OfArray(new[] { -7, 7 }),
            ["t.arr.f32"] = GgufValue.OfArray(new[] { 0.5f, -1.5f, float.PositiveInfinity }),
            ["t.arr.bool"] = GgufValue.OfArray(new[] { true, false }),
            ["t.arr.string"] = GgufValue.OfArray(new[] { "a", string.Empty, "<0xFF>", "日本" }),
            ["t.arr.u64"] = GgufValue.OfArray(new[] { 0UL, ulong.MaxValue }),
            ["t.arr.i64"] = GgufValue.OfArray(new[] { long.MinValue, long.MaxValue }),
            ["t.arr.f64"] = GgufValue.OfArray(new[] { double.Epsilon, -2.5 }),
            ["t.arr.empty"] = GgufValue.OfArray(Array.Empty<int>()),
            ["t.arr.nested"] = GgufValue.OfArray(new[] { GgufValue.OfArray(new[] { 1, 2 }), GgufValue.OfArray(new[] { "x" }) }),
        };
        var writer = new GgufWriter();
        foreach (var (key, value) in expected)
        {
            writer.SetMetadata(key, value);
        }

        var path = _temp.File("meta.gguf");
        writer.WriteFile(path);
        var reader = GgufReader.Open(path);

        Assert.Equal(3u, reader.Version);
        Assert.Equal(expected.Keys, reader.Metadata.Keys);
        foreach (var (key, value) in expected)
        {
            Assert.Equal(value, reader.Metadata[key]);
            Assert.Equal(value.Type, reader.Metadata[key].Type);
        }

        Assert.Empty(reader.Tensors);
        Assert.Equal(new FileInfo(path).Length, writer.ComputeLength());
    }

    [Fact]
    public void WriteFile_TensorsOfEachType_ReaderReportsInfosAndDataMatches()
    {
        var writer = new GgufWriter();
        writer.SetMetadata("general.alignment", GgufValue.Of(64u));
        writer.AddTensor("f32", [3, 2], GgmlType.F32, (row, values) => Fill(row, values));
        writer.AddTensor("f16", [5], GgmlType.F16, (row, values) => Fill(row, values));
        writer.AddTensor("q8", [64, 3], GgmlType.Q8_0, (row, values) => Fill(row, values));
        var raw = Enumerable.Range(0, 18 * 2).Select(i => (byte)i).ToArray();
        writer.AddTensor("q4_raw", [32, 2], GgmlType.Q4_0, raw);
        writer.AddTensor("cube", [2, 2, 2, 2], GgmlType.F32, (row, values) => Fill(row, values));

        var path = _temp.File("tensors.gguf");
        writer.WriteFile(path);
        var reader = GgufReader.Open(path);
        var bytes = File.ReadAllBytes(path);

        Assert.Equal(64u, reader.Alignment);
        Assert.Equal(0, reader.DataOffset % 64);
        Assert.Equal(writer.GetTensorInfos().Select(t => (t.Name, t.Type, t.Offset)), reader.Tensors.Select(t => (t.Name, t.Type, t.Offset)));
        Assert.Equal([3UL, 2UL], reader.Tensors[0].Shape);
        Assert.Equal([2UL, 2UL, 2UL, 2UL], reader.Tensors[4].Shape);
        Assert.All(reader.Tensors, t => Assert.Equal(0UL, t.Offset % 64));
        Assert.Equal(6 + 5 + 192 + 64 + 16, reader.ParameterCount);
        Assert.Equal(bytes.Length, writer.ComputeLength());
        Assert.Equal(0, bytes.Length % 64);

        // F32: row r, column c holds r * 100 + c.
        var f32 = Data(bytes, reader, "f32");
        Assert.Equal(102f, BinaryPrimitives.ReadSingleLittleEndian(f32[(4 * 5)..]));

        // F16: exact for these small integers.
        var f16 = Data(bytes, reader, "f16");
        Assert.Equal((Half)4, BinaryPrimitives.ReadHalfLittleEndian(f16[(2 * 4)..]));

        // Q8_0, block 0 of row 1 (values 100..131): d = 131 / 127, q = round(x / d).
        var q8 = Data(bytes, reader, "q8");
        var block = q8.Slice(2 * 34, 34);
        var d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
        Assert.Equal((float)(Half)(131f / 127f), d);
        Assert.Equal(127, (sbyte)block[2 + 31]);
        Assert.Equal((sbyte)MathF.Round(100f / (131f / 127f), MidpointRounding.AwayFromZero), (sbyte)block[2]);

        Assert.Equal(raw, Data(bytes, reader, "q4_raw").ToArray());
    }

    [Fact]
    public void Write_Q8_0AllZeroBlock_WritesZeroScaleAndValues()
    {
        var writer = new GgufWriter();
        writer.AddTensor("zeros", [32], GgmlType.Q8_0, static (_, values) => values.Clear());
        using var stream = new MemoryStream();

        writer.Write(stream);
        stream.Position = 0;
        var reader = GgufReader.Read(stream);

        var data = stream.ToArray().AsSpan((int)reader.DataOffset, 34);
        Assert.True(data.ToArray().All(b => b == 0));
    }

    [Fact]
    public void WriteFile_SameWriterTwice_ProducesIdenticalFiles()
    {
        var writer = new GgufWriter();
        writer.SetMetadata("general.name", GgufValue.Of("twice"));
        writer.AddTensor("t", [32, 4], GgmlType.Q8_0, (row, values) => Fill(row, values));

        writer.WriteFile(_temp.File("a.gguf"));
        writer.WriteFile(_temp.File("b.gguf"));

        Assert.Equal(File.ReadAllBytes(_temp.File("a.gguf")), File.ReadAllBytes(_temp.File("b.gguf")));
        Assert.Equal(["a.gguf", "b.gguf"], Directory.GetFiles(Path.GetDirectoryName(_temp.File("a.gguf"))!).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void SetMetadata_ExistingKey_ReplacesValueAndKeepsPosition()
    {
        var writer = new GgufWriter();
        writer.SetMetadata("a", GgufValue.Of(1));
        writer.SetMetadata("b", GgufValue.Of(2));
        writer.SetMetadata("a", GgufValue.Of("one"));

        Assert.Equal(["a", "b"], writer.Metadata.Select(kv => kv.Key));
        Assert.Equal("one", writer.Metadata[0].Value.AsString());
    }

    [Fact]
    public void AddTensor_InvalidDeclarations_ThrowArgumentException()
    {
        var writer = new GgufWriter();
        writer.AddTensor("ok", [4], GgmlType.F32, static (_, v) => v.Clear());

        Assert.Throws<ArgumentException>(() => writer.AddTensor("ok", [4], GgmlType.F32, static (_, v) => v.Clear()));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("q", [33], GgmlType.Q8_0, static (_, v) => v.Clear()));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("k", [256], GgmlType.Q4_K, static (_, v) => v.Clear()));
        Assert.Throws<ArgumentException>(() => writer.AddTensor(new string('n', 64), [4], GgmlType.F32, static (_, v) => v.Clear()));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("dims", [1, 1, 1, 1, 1], GgmlType.F32, static (_, v) => v.Clear()));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("raw", [32], GgmlType.Q4_0, new byte[17]));
        Assert.Throws<ArgumentException>(() => new GgufWriter().SetMetadata("general.alignment", GgufValue.Of(48u)));
        Assert.Throws<ArgumentException>(() => new GgufWriter().SetMetadata("general.alignment", GgufValue.Of(32)));
    }

    [Fact]
    public void GgufValue_Accessors_ConvertAndRejectWrongTypes()
    {
        Assert.Equal(200L, GgufValue.Of((byte)200).AsInt64());
        Assert.Equal(-3L, GgufValue.Of((short)-3).AsInt64());
        Assert.Equal(2.5, GgufValue.Of(2.5f).AsDouble());
        Assert.Equal(["x", "y"], GgufValue.OfArray(new[] { "x", "y" }).AsArray<string>());
        Assert.Equal(2, GgufValue.OfArray(new[] { 1, 2 }).ArrayLength);
        Assert.Null(GgufValue.Of(1).ArrayLength);
        Assert.Throws<InvalidOperationException>(() => GgufValue.Of(1).AsString());
        Assert.Throws<InvalidOperationException>(() => GgufValue.OfArray(new[] { 1 }).AsArray<uint>());
        Assert.Throws<OverflowException>(() => GgufValue.Of(ulong.MaxValue).AsInt64());
        Assert.Throws<ArgumentException>(() => GgufValue.OfArray(new[] { DateTime.MinValue }));
        Assert.Throws<ArgumentException>(() => GgufValue.OfArray(new[] { GgufValue.Of(1) }));
    }

    private static void Fill(long row, Span<float> values)
    {
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (row * 100) + i;
        }
    }

    private static ReadOnlySpan<byte> Data(byte[] file, GgufReader reader, string name)
    {
        var tensor = reader.Tensors.Single(t => t.Name == name);
        return file.AsSpan((int)(reader.DataOffset + (long)tensor.Offset), (int)tensor.ByteSize!.Value);
    }
}
