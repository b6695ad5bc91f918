// Copyright (c) Sovereign contributors. Licensed under the MIT License.

using Sovereign.Inference.Engine;
using Sovereign.Inference.Gguf;
using Sovereign.Inference.Registry;

namespace Sovereign.Inference.Tests.Registry;

public sealed class ModelMemoryEstimatorTests
{
    [Fact]
    public void Estimate_Stories260K_KvCacheFromLayersKvHeadsAndHeadSize()
    {
        // 5 layers × 4 KV heads × (8 + 8) per head (64 wide / 8 heads) × 2 bytes = 640 bytes per token.
        var reader = GgufReader.Open(TestModels.Stories260K);

        var estimate = ModelMemoryEstimator.Estimate(reader, 1_185_376, contextLength: 2048, parallel: 2);

        Assert.Equal(1_185_376, estimate.WeightsBytes);
        Assert.Equal(2048L * 2 * 640, estimate.KvCacheBytes);
        // Scoring a prompt (echo with logprobs) keeps up to 64 MiB of logits rows in the context: counted too.
        Assert.Equal(ModelMemoryEstimator.BaseOverheadBytes + (64L << 20) + ((estimate.WeightsBytes + estimate.KvCacheBytes) / 10), estimate.OverheadBytes);
        Assert.Equal(estimate.WeightsBytes + estimate.KvCacheBytes + estimate.OverheadBytes, estimate.TotalBytes);
    }

    [Fact]
    public void Estimate_EntryWithDefaultContext_UsesTheModelContextCappedLikeTheEngine()
    {
        var entry = Entry(new ModelShape { Layers = 32, EmbeddingLength = 4096, HeadCount = 32, KvHeadCount = 8 }, contextLength: 131_072, size: 4_920_000_000);

        var estimate = ModelMemoryEstimator.Estimate(entry);

        // Llama-3.1-8B shape: 32 × 8 × (128 + 128) × 2 = 131,072 bytes per token; 4096 tokens by default.
        Assert.Equal(131_072L * ModelOptions.DefaultMaxContextLength, estimate.KvCacheBytes);
    }

    [Fact]
    public void Estimate_WithModelOptions_UsesParallelTimesContextOrTheExplicitKvSize()
    {
        var entry = Entry(new ModelShape { Layers = 2, EmbeddingLength = 64, HeadCount = 4, KvHeadCount = 4 }, contextLength: 2048, size: 1000);
        var perToken = ModelMemoryEstimator.KvBytesPerToken(entry.Shape);

        Assert.Equal(perToken * 8 * 512, ModelMemoryEstimator.Estimate(entry, new ModelOptions { Parallel = 8, ContextLength = 512 }).KvCacheBytes);
        Assert.Equal(perToken * 1000, ModelMemoryEstimator.Estimate(entry, new ModelOptions { Parallel = 8, ContextLength = 512, KvCacheTokens = 1000 }).KvCacheBytes);
    }

    [Fact]
    public void Fits_ComparesTheTotalWithWhatIsAvailable()
    {
        var estimate = new ModelMemoryEstimate(1000, 200, 100);

        Assert.True(ModelMemoryEstimator.Fits(estimate, 1300));
        Assert.False(ModelMemoryEstimator.Fits(estimate, 1299));
    }

    [Fact]
    public void Fits_A70BModelInATinyMachine_Refused()
    {
        var entry = Entry(new ModelShape { Layers = 80, EmbeddingLength = 8192, HeadCount = 64, KvHeadCount = 8 }, contextLength: 8192, size: 40_000_000_000);

        Assert.False(ModelMemoryEstimator.Fits(ModelMemoryEstimator.Estimate(entry, 8192, 4), availableBytes: 16L << 30));
    }

    [Fact]
    public void AvailableMemoryBytes_IsPositive()
    {
        Assert.True(ModelMemoryEstimator.AvailableMemoryBytes() > 0);
    }

    private static ModelEntry Entry(ModelShape shape, long contextLength, long size) => new()
    {
        Id = "m",
        Digest = "sha256:" + new string('a', 64),
        SizeBytes = size,
        Architecture = "llama",
        Parameters = 1,
        Quantization = "Q4_K_M",
        ContextLength = contextLength,
        Shape = shape,
        License = "MIT",
        Origin = new ModelOrigin("x", "US"),
        Source = "test",
    };
}
