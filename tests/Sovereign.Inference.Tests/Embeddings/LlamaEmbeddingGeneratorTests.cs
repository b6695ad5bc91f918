using System.Text;
using LLama;
using LLama.Common;
using Microsoft.Extensions.AI;
using Sovereign.Inference.Embeddings;

namespace Sovereign.Inference.Tests.Embeddings;

/// <summary>The stories260K weights, loaded once and shared by every generator in the class.</summary>
public sealed class StoriesWeightsFixture : IDisposable
{
    public const string ModelId = "stories260K";

    public StoriesWeightsFixture()
    {
        Path = TestModels.Stories260K;
        Weights = LLamaWeights.LoadFromFile(new ModelParams(Path) { GpuLayerCount = 0 });
    }

    public string Path { get; }

    public LLamaWeights Weights { get; }

    public void Dispose() => Weights.Dispose();
}

public sealed class LlamaEmbeddingGeneratorTests(StoriesWeightsFixture fixture) : IClassFixture<StoriesWeightsFixture>
{
    private static readonly LlamaEmbeddingOptions SmallOptions = new() { ContextSize = 128, Threads = 1 };

    [Fact]
    public async Task GenerateAsync_Stories260K_ReturnsNEmbdUnitVectors()
    {
        using var generator = new LlamaEmbeddingGenerator(fixture.Weights, StoriesWeightsFixture.ModelId, SmallOptions);

        var embedding = await generator.GenerateVectorAsync("Once upon a time there was a little girl.");

        Assert.Equal(64, generator.Dimensions);
        Assert.Equal(fixture.Weights.EmbeddingSize, embedding.Length);
        Assert.Equal(1.0, MiniLmEmbeddingGeneratorTests.Norm(embedding.Span), precision: 4);
    }

    [Fact]
    public async Task GenerateAsync_SameInputTwice_ReturnsIdenticalVectors()
    {
        using var generator = new LlamaEmbeddingGenerator(fixture.Weights, StoriesWeightsFixture.ModelId, SmallOptions);

        var first = await generator.GenerateVectorAsync("The dog ran to the park.");
        var second = await generator.GenerateVectorAsync("The dog ran to the park.");

        Assert.Equal(first.ToArray(), second.ToArray());
    }

    [Fact]
    public async Task GenerateAsync_Inputs_UsageEqualsTokenizerCount()
    {
        using var generator = new LlamaEmbeddingGenerator(fixture.Weights, StoriesWeightsFixture.ModelId, SmallOptions);
        string[] inputs = ["Lily liked to play.", "The sun was warm and the sky was blue."];

        var result = await generator.GenerateAsync(inputs);

        var expected = inputs.Sum(text => fixture.Weights.Tokenize(text, add_bos: true, special: true, Encoding.UTF8).Length);
        Assert.NotNull(result.Usage);
        Assert.True(expected > inputs.Length);
        Assert.Equal(expected, result.Usage.InputTokenCount);
        Assert.Equal(expected, result.Usage.TotalTokenCount);
        Assert.Equal(2, result.Count);
    }

    [Fact]
    public async Task GenerateAsync_FourConcurrentCallers_AllSucceedWithSequentialResults()
    {
        using var generator = new LlamaEmbeddingGenerator(fixture.Weights, StoriesWeightsFixture.ModelId, SmallOptions);
        string[] texts = ["Tom had a red ball.", "The cat slept.", "She found a shiny stone.", "They ate cake together."];
        var sequential = new List<float[]>();
        foreach (var text in texts)
        {
            sequential.Add((await generator.GenerateVectorAsync(text)).ToArray());
        }

        var concurrent = await Task.WhenAll(texts.Select(text =>
            Task.Run(async () => (await generator.GenerateAsync([text, text])).Select(e => e.Vector.ToArray()).ToArray())));

        for (var i = 0; i < texts.Length; i++)
        {
            Assert.Equal(sequential[i], concurrent[i][0]);
            Assert.Equal(sequential[i], concurrent[i][1]);
        }
    }

    [Fact]
    public async Task GenerateAsync_InputLongerThanContext_ThrowsInputTooLong()
    {
        using var generator = new LlamaEmbeddingGenerator(
            fixture.Weights, StoriesWeightsFixture.ModelId, new LlamaEmbeddingOptions { ContextSize = 32, Threads = 1 });
        var longText = string.Concat(Enumerable.Repeat("Once upon a time there was a girl. ", 20));

        var error = await Assert.ThrowsAsync<InputTooLongException>(() => generator.GenerateAsync(["short", longText]));

        Assert.Equal(1, error.InputIndex);
        Assert.Equal(32, error.MaxTokens);
        Assert.Equal(generator.CountTokens(longText), error.TokenCount);
        Assert.True(error.TokenCount > 32);
    }

    [Fact]
    public async Task GenerateAsync_InputExactlyAtContext_Succeeds()
    {
        using var generator = new LlamaEmbeddingGenerator(
            fixture.Weights, StoriesWeightsFixture.ModelId, new LlamaEmbeddingOptions { ContextSize = 32, Threads = 1 });
        var text = "Once";
        while (generator.CountTokens(text + " once") <= 32)
        {
            text += " once";
        }

        var result = await generator.GenerateAsync([text]);

        Assert.Equal(generator.CountTokens(text), result.Usage?.InputTokenCount);
        Assert.True(result.Usage?.InputTokenCount > 28);
    }

    [Fact]
    public void GetService_Metadata_ReportsProviderModelAndDimensions()
    {
        using var generator = new LlamaEmbeddingGenerator(fixture.Weights, StoriesWeightsFixture.ModelId, SmallOptions);

        var metadata = generator.GetService<EmbeddingGeneratorMetadata>();

        Assert.NotNull(metadata);
        Assert.Equal("sovereign", metadata.ProviderName);
        Assert.Equal(StoriesWeightsFixture.ModelId, metadata.DefaultModelId);
        Assert.Equal(64, metadata.DefaultModelDimensions);
    }

    [Fact]
    public async Task GenerateAsync_TokenIds_GiveTheVectorOfTheirText_AndCountEachIdOnce()
    {
        using var generator = new LlamaEmbeddingGenerator(fixture.Weights, StoriesWeightsFixture.ModelId, SmallOptions);
        const string Text = "The dog ran to the park.";
        var ids = fixture.Weights.Tokenize(Text, add_bos: true, special: true, Encoding.UTF8).Select(t => (int)t).ToArray();

        var fromText = await generator.GenerateVectorAsync(Text);
        var fromIds = await ((ITokenEmbeddingGenerator)generator).GenerateAsync([ids, [1, 2]]);

        // The same tokens through the same weights; llama.cpp's kernels may sum in another order per call (last bits).
        Assert.All(fromText.ToArray().Zip(fromIds[0].Vector.ToArray()), pair => Assert.Equal(pair.First, pair.Second, 5));
        Assert.Equal(ids.Length + 2, fromIds.Usage!.InputTokenCount);
        Assert.Equal(512, generator.VocabularySize);
    }

    [Fact]
    public async Task GenerateAsync_TokenIdOutsideTheVocabulary_OrNoIds_IsRefusedBeforeTheModelSeesIt()
    {
        using var generator = new LlamaEmbeddingGenerator(fixture.Weights, StoriesWeightsFixture.ModelId, SmallOptions);
        ITokenEmbeddingGenerator tokens = generator;

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => tokens.GenerateAsync([[1, tokens.VocabularySize]]));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => tokens.GenerateAsync([[-1]]));
        await Assert.ThrowsAsync<ArgumentException>(() => tokens.GenerateAsync([[]]));
        var tooLong = await Assert.ThrowsAsync<InputTooLongException>(() => tokens.GenerateAsync([[1], new int[tokens.MaxInputTokens + 1]]));
        Assert.Equal(1, tooLong.InputIndex);
    }

    [Fact]
    public async Task GenerateAsync_AfterDispose_ThrowsObjectDisposed()
    {
        var generator = new LlamaEmbeddingGenerator(fixture.Weights, StoriesWeightsFixture.ModelId, SmallOptions);
        _ = await generator.GenerateVectorAsync("Before dispose.");

        generator.Dispose();
        generator.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => generator.GenerateAsync(["After dispose."]));
    }

    [Fact]
    public async Task Load_OwnWeights_EmbedsAndDisposes()
    {
        using var generator = LlamaEmbeddingGenerator.Load(fixture.Path, "own", SmallOptions);

        var embedding = await generator.GenerateVectorAsync("A small bird sang.");

        Assert.Equal(64, embedding.Length);
    }
}
