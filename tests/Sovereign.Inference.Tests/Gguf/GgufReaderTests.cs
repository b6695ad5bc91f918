// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using System.Buffers.Binary;
using Sovereign.Inference.Gguf;

namespace Sovereign.Inference.Tests.Gguf;

public sealed class GgufReaderTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Open_Stories260K_ReportsLlamaHeader()
    {
        var reader = GgufReader.Open(TestModels.Stories260K);

        Assert.Equal(3u, reader.Version);
        Assert.Equal("llama", reader.Architecture);
        Assert.Equal(2048, reader.ContextLength);
        Assert.Equal(64, reader.EmbeddingLength);
        Assert.Equal(5, reader.BlockCount);
        Assert.Equal(512, reader.VocabularySize);
        Assert.Null(reader.ChatTemplate);
        Assert.Equal(48, reader.Tensors.Count);
        Assert.All(reader.Tensors, t => Assert.Equal(GgmlType.F32, t.Type));
        Assert.Equal(292_800, reader.ParameterCount);
        Assert.Equal("llama", reader.GetString("tokenizer.ggml.model"));
    }

    [Fact]
    public void Open_TinyRandomLlama2_ReportsLlamaHeader()
    {
        var reader = GgufReader.Open(TestModels.TinyRandomLlama2);

        Assert.Equal("llama", reader.Architecture);
        Assert.Equal(4096, reader.ContextLength);
        Assert.Equal(8, reader.EmbeddingLength);
        Assert.Equal(1, reader.BlockCount);
        Assert.Equal(32000, reader.VocabularySize);
        Assert.Equal(1, reader.FileType);
        Assert.Equal(513_048, reader.ParameterCount);
        Assert.Equal(9, reader.Tensors.Count(t => t.Type == GgmlType.F16));
        Assert.Equal(3, reader.Tensors.Count(t => t.Type == GgmlType.F32));
        var embedding = reader.Tensors.Single(t => t.Name == "token_embd.weight");
        Assert.Equal([8UL, 32000UL], embedding.Shape);
    }

    [Fact]
    public void Read_NonSeekableStream_ReadsSameHeaderAsFile()
    {
        var bytes = File.ReadAllBytes(TestModels.TinyRandomLlama2);
        using var stream = new ForwardOnlyStream(bytes);

        var reader = GgufReader.Read(stream);

        Assert.Equal(32000, reader.VocabularySize);
        Assert.Equal(GgufReader.Open(TestModels.TinyRandomLlama2).DataOffset, reader.DataOffset);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(10)]
    [InlineData(30)]
    [InlineData(1000)]
    [InlineData(100_000)]
    public void Open_TruncatedModel_ThrowsInvalidDataException(int keptBytes)
    {
        var path = _temp.File("truncated.gguf");
        File.WriteAllBytes(path, File.ReadAllBytes(TestModels.Stories260K).AsSpan(0, keptBytes).ToArray());

        var error = Assert.Throws<InvalidDataException>(() => GgufReader.Open(path));

        Assert.Contains("GGUF", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_ModelMissingItsLastTensorBytes_ThrowsInvalidDataException()
    {
        var bytes = File.ReadAllBytes(TestModels.Stories260K);
        var path = _temp.File("short.gguf");
        File.WriteAllBytes(path, bytes.AsSpan(0, bytes.Length - 100).ToArray());

        var error = Assert.Throws<InvalidDataException>(() => GgufReader.Open(path));

        Assert.Contains("truncated", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_TruncatedNonSeekableStream_ThrowsInvalidDataException()
    {
        var bytes = File.ReadAllBytes(TestModels.TinyRandomLlama2).AsSpan(0, 50_000).ToArray();
        using var stream = new ForwardOnlyStream(bytes);

        Assert.Throws<InvalidDataException>(() => GgufReader.Read(stream));
    }

    [Fact]
    public void Open_NotGguf_ThrowsInvalidDataExceptionNamingMagic()
    {
        var path = _temp.File("text.gguf");
        File.WriteAllText(path, "this is not a model file at all");

        var error = Assert.Throws<InvalidDataException>(() => GgufReader.Open(path));

        Assert.Contains("Not a GGUF file", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(1u, "version 1")]
    [InlineData(0x03000000u, "big-endian")]
    [InlineData(7u, "version 7")]
    public void Open_UnsupportedVersion_ThrowsInvalidDataException(uint version, string expected)
    {
        var bytes = Header(version, tensorCount: 0, metadataCount: 0);

        var error = Assert.Throws<InvalidDataException>(() => GgufReader.Read(new MemoryStream(bytes)));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ulong.MaxValue, 0UL)]
    [InlineData(0UL, ulong.MaxValue)]
    [InlineData(1_000_000UL, 0UL)]
    public void Read_HugeBogusCounts_ThrowsInvalidDataExceptionWithoutAllocating(ulong tensorCount, ulong metadataCount)
    {
        var bytes = Header(3, tensorCount, metadataCount);

        Assert.Throws<InvalidDataException>(() => GgufReader.Read(new MemoryStream(bytes)));
        Assert.Throws<InvalidDataException>(() => GgufReader.Read(new ForwardOnlyStream(bytes)));
    }

    [Fact]
    public void Read_HugeBogusStringAndArrayLengths_ThrowsInvalidDataException()
    {
        // One metadata entry: key "k", type ARRAY of STRING, claiming 2^62 elements.
        var bogusArray = Header(3, 0, 1).Concat(Key("k")).Concat(U32(9)).Concat(U32(8)).Concat(U64(1UL << 62)).ToArray();

        // One metadata entry whose key claims to be 2^40 bytes long.
        var bogusKey = Header(3, 0, 1).Concat(U64(1UL << 40)).ToArray();

        // A string value claiming 1 GiB followed by a few bytes, read from a stream of unknown length.
        var bogusString = Header(3, 0, 1).Concat(Key("k")).Concat(U32(8)).Concat(U64(1UL << 30)).Concat(new byte[100]).ToArray();

        Assert.Throws<InvalidDataException>(() => GgufReader.Read(new MemoryStream(bogusArray)));
        Assert.Throws<InvalidDataException>(() => GgufReader.Read(new ForwardOnlyStream(bogusArray)));
        Assert.Throws<InvalidDataException>(() => GgufReader.Read(new MemoryStream(bogusKey)));
        Assert.Throws<InvalidDataException>(() => GgufReader.Read(new ForwardOnlyStream(bogusString)));
    }

    [Fact]
    public void Read_DeeplyNestedArrays_ThrowsInvalidDataException()
    {
        var bytes = Header(3, 0, 1).Concat(Key("k")).Concat(U32(9));
        for (var i = 0; i < 1000; i++)
        {
            bytes = bytes.Concat(U32(9)).Concat(U64(1));
        }

        var error = Assert.Throws<InvalidDataException>(() => GgufReader.Read(new MemoryStream(bytes.ToArray())));

        Assert.Contains("nests", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_UnknownValueTypeAndDuplicateKey_ThrowInvalidDataException()
    {
        var unknownType = Header(3, 0, 1).Concat(Key("k")).Concat(U32(13)).Concat(new byte[8]).ToArray();
        var duplicate = Header(3, 0, 2).Concat(Key("k")).Concat(U32(4)).Concat(U32(1)).Concat(Key("k")).Concat(U32(4)).Concat(U32(2)).ToArray();

        Assert.Contains("unknown value type", Assert.Throws<InvalidDataException>(() => GgufReader.Read(new MemoryStream(unknownType))).Message, StringComparison.Ordinal);
        Assert.Contains("duplicate", Assert.Throws<InvalidDataException>(() => GgufReader.Read(new MemoryStream(duplicate))).Message, StringComparison.Ordinal);
    }

    private static byte[] Header(uint version, ulong tensorCount, ulong metadataCount) =>
        "GGUF"u8.ToArray().Concat(U32(version)).Concat(U64(tensorCount)).Concat(U64(metadataCount)).ToArray();

    private static byte[] Key(string key) => U64((ulong)key.Length).Concat(System.Text.Encoding.UTF8.GetBytes(key)).ToArray();

    private static byte[] U32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return bytes;
    }

    private static byte[] U64(ulong value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        return bytes;
    }

    /// <summary>A stream that cannot seek or tell its length, like a network or pipe stream.</summary>
    private sealed class ForwardOnlyStream(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        // Return at most 7 bytes per call to exercise the reader's refill logic.
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, Math.Min(count, 7));

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
