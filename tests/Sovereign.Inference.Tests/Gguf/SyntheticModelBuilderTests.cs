// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using Sovereign.Inference.Gguf;

namespace Sovereign.Inference.Tests.Gguf;

public sealed class SyntheticModelBuilderTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void Write_SameOptionsAndSeed_ProducesByteIdenticalFiles()
    {
        var options = new SyntheticModelOptions { TensorType = GgmlType.Q8_0, Seed = 7 };

        SyntheticModelBuilder.Write(options, _temp.File("a.gguf"));
        SyntheticModelBuilder.Write(options with { }, _temp.File("b.gguf"));
        SyntheticModelBuilder.Write(options with { Seed = 8 }, _temp.File("c.gguf"));

        var a = File.ReadAllBytes(_temp.File("a.gguf"));
        Assert.Equal(a, File.ReadAllBytes(_temp.File("b.gguf")));
        Assert.NotEqual(a, File.ReadAllBytes(_temp.File("c.gguf")));
    }

    [Theory]
    [InlineData(GgmlType.F32, 0)]
    [InlineData(GgmlType.F16, 1)]
    [InlineData(GgmlType.Q8_0, 7)]
    public void Write_SmallModel_HeaderDescribesLlamaModel(GgmlType type, int fileType)
    {
        var options = new SyntheticModelOptions
        {
            Layers = 3,
            EmbeddingLength = 64,
            HeadCount = 4,
            KvHeadCount = 2,
            VocabularySize = 600,
            ContextLength = 1024,
            TensorType = type,
            Name = "tiny",
        };
        var path = _temp.File("model.gguf");

        SyntheticModelBuilder.Write(options, path);
        var reader = GgufReader.Open(path);

        Assert.Equal("llama", reader.Architecture);
        Assert.Equal("tiny", reader.Name);
        Assert.Equal(fileType, reader.FileType);
        Assert.Equal(1024, reader.ContextLength);
        Assert.Equal(64, reader.EmbeddingLength);
        Assert.Equal(3, reader.BlockCount);
        Assert.Equal(600, reader.VocabularySize);
        Assert.Equal(SyntheticModelOptions.DefaultChatTemplate, reader.ChatTemplate);
        Assert.Contains("random weights", reader.GetString("general.description"), StringComparison.Ordinal);
        Assert.Equal(16, reader.GetInteger("llama.rope.dimension_count"));
        Assert.Equal(2, reader.GetInteger("llama.attention.head_count_kv"));
        Assert.Equal(4, reader.GetInteger("tokenizer.ggml.eot_token_id"));
        Assert.Equal(3 + (3 * 9), reader.Tensors.Count);

        var shapes = reader.Tensors.ToDictionary(t => t.Name, t => t.Shape.ToArray());
        Assert.Equal([64UL, 600UL], shapes["token_embd.weight"]);
        Assert.Equal([64UL, 600UL], shapes["output.weight"]);
        Assert.Equal([64UL], shapes["output_norm.weight"]);
        Assert.Equal([64UL, 64UL], shapes["blk.2.attn_q.weight"]);
        Assert.Equal([64UL, 32UL], shapes["blk.2.attn_k.weight"]);
        Assert.Equal([64UL, 32UL], shapes["blk.2.attn_v.weight"]);
        Assert.Equal([64UL, 64UL], shapes["blk.2.attn_output.weight"]);
        Assert.Equal([64UL, 192UL], shapes["blk.2.ffn_gate.weight"]);
        Assert.Equal([64UL, 192UL], shapes["blk.2.ffn_up.weight"]);
        Assert.Equal([192UL, 64UL], shapes["blk.2.ffn_down.weight"]);
        Assert.All(reader.Tensors, t => Assert.Equal(t.Name.EndsWith("norm.weight", StringComparison.Ordinal) ? GgmlType.F32 : type, t.Type));
    }

    [Fact]
    public void Write_Vocabulary_HasSpecialByteAndUniqueNormalTokens()
    {
        var path = _temp.File("vocab.gguf");

        SyntheticModelBuilder.Write(new SyntheticModelOptions { VocabularySize = 40_000, Layers = 1 }, path);
        var reader = GgufReader.Open(path);

        var tokens = reader.Metadata["tokenizer.ggml.tokens"].AsArray<string>();
        var types = reader.Metadata["tokenizer.ggml.token_type"].AsArray<int>();
        var scores = reader.Metadata["tokenizer.ggml.scores"].AsArray<float>();
        Assert.Equal(40_000, tokens.Count);
        Assert.Equal(40_000, types.Count);
        Assert.Equal(40_000, scores.Count);
        Assert.Equal(tokens.Count, tokens.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"], tokens.Take(5));
        Assert.Equal([2, 3, 3, 3, 3], types.Take(5));
        Assert.Equal("<0x00>", tokens[5]);
        Assert.Equal("<0xFF>", tokens[260]);
        Assert.All(types.Skip(5).Take(256), t => Assert.Equal(6, t));
        Assert.All(types.Skip(261), t => Assert.Equal(1, t));
        Assert.True(scores.Skip(261).Zip(scores.Skip(262)).All(pair => pair.First > pair.Second));
        Assert.Equal("llama", reader.GetString("tokenizer.ggml.model"));
    }

    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.Q8_0)]
    public void Estimate_AnyType_MatchesWrittenFile(GgmlType type)
    {
        var options = new SyntheticModelOptions { Layers = 2, EmbeddingLength = 128, HeadCount = 8, KvHeadCount = 2, VocabularySize = 1000, TensorType = type };
        var path = _temp.File("estimate.gguf");

        var estimate = SyntheticModelBuilder.Estimate(options);
        SyntheticModelBuilder.Write(options, path);
        var reader = GgufReader.Open(path);

        Assert.Equal(new FileInfo(path).Length, estimate.FileSizeBytes);
        Assert.Equal(reader.ParameterCount, estimate.ParameterCount);
        Assert.Equal(reader.Tensors.Count, estimate.TensorCount);
    }

    [Fact]
    public void Estimate_LargeModel_ComputesWithoutWriting()
    {
        // Roughly a 7B llama shape: the estimate must be instant and exact in parameter count.
        var options = new SyntheticModelOptions
        {
            Layers = 32,
            EmbeddingLength = 4096,
            FeedForwardLength = 11008,
            HeadCount = 32,
            VocabularySize = 32000,
            TensorType = GgmlType.Q8_0,
        };

        var estimate = SyntheticModelBuilder.Estimate(options);

        var perLayer = (4L * 4096 * 4096) + (3L * 4096 * 11008) + (2 * 4096);
        Assert.Equal((32 * perLayer) + (2L * 4096 * 32000) + 4096, estimate.ParameterCount);
        Assert.InRange(estimate.FileSizeBytes, estimate.ParameterCount, estimate.ParameterCount * 2);
    }

    [Fact]
    public void Write_Weights_AreFiniteAndScaledByFanIn()
    {
        var path = _temp.File("weights.gguf");
        SyntheticModelBuilder.Write(new SyntheticModelOptions { TensorType = GgmlType.F32, EmbeddingLength = 256, HeadCount = 4 }, path);
        var reader = GgufReader.Open(path);
        var bytes = File.ReadAllBytes(path);

        var down = reader.Tensors.Single(t => t.Name == "blk.0.ffn_down.weight");
        var values = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(
            bytes.AsSpan((int)(reader.DataOffset + (long)down.Offset), (int)down.ByteSize!.Value)).ToArray();
        var norm = reader.Tensors.Single(t => t.Name == "blk.0.ffn_norm.weight");
        var normValues = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(
            bytes.AsSpan((int)(reader.DataOffset + (long)norm.Offset), (int)norm.ByteSize!.Value)).ToArray();

        var mean = values.Average();
        var std = Math.Sqrt(values.Select(v => (v - mean) * (v - mean)).Average());
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
        Assert.InRange(mean, -0.01, 0.01);
        Assert.InRange(std, 0.9 / Math.Sqrt((double)down.Shape[0]), 1.1 / Math.Sqrt((double)down.Shape[0]));
        Assert.All(normValues, v => Assert.Equal(1f, v));
    }
}
