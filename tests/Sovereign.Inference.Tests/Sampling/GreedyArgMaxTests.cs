using LLama.Common;
using LLama.Native;
using LLama.Sampling;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Sampling;

namespace Sovereign.Inference.Tests.Sampling;

public sealed class GreedyArgMaxTests
{
    [Fact]
    public void Select_Ties_TakeTheLowestIndex()
    {
        var logits = new float[100];
        logits[17] = 3f;
        logits[42] = 3f;
        logits[99] = 3f;

        Assert.Equal(17, GreedyArgMax.Select(logits));
    }

    [Fact]
    public void Select_MaximumInTheTailPastTheLastFullVector_IsFound()
    {
        var logits = Enumerable.Range(0, 37).Select(i => (float)-i).ToArray();
        logits[36] = 5f;

        Assert.Equal(36, GreedyArgMax.Select(logits));
    }

    [Fact]
    public void Select_SignedZeros_AreEqualAsInLlamaCppsLoop()
    {
        var logits = Enumerable.Repeat(-1f, 40).ToArray();
        logits[5] = -0f;
        logits[30] = 0f;

        Assert.Equal(5, GreedyArgMax.Select(logits));
        Assert.Equal(GreedyArgMax.SelectScalar(logits), GreedyArgMax.Select(logits));
    }

    [Fact]
    public void Select_NaN_FollowsLlamaCppsLoop()
    {
        var nanFirst = Enumerable.Range(0, 64).Select(i => (float)i).ToArray();
        nanFirst[0] = float.NaN;
        var nanLater = Enumerable.Range(0, 64).Select(i => (float)(i % 10)).ToArray();
        nanLater[20] = float.NaN;

        // A NaN first logit is never replaced (nothing compares greater); a later NaN is passed over.
        Assert.Equal(0, GreedyArgMax.Select(nanFirst));
        Assert.Equal(9, GreedyArgMax.Select(nanLater));
    }

    [Fact]
    public void Select_Infinities_AreOrdinaryValues()
    {
        var logits = Enumerable.Repeat(float.NegativeInfinity, 50).ToArray();
        Assert.Equal(0, GreedyArgMax.Select(logits));

        logits[33] = float.PositiveInfinity;
        logits[44] = float.PositiveInfinity;
        Assert.Equal(33, GreedyArgMax.Select(logits));
    }

    [Fact]
    public void Select_NoLogits_Throws() => Assert.Throws<ArgumentException>(() => GreedyArgMax.Select([]));

    [Fact]
    public void Select_RandomLogitsWithManyTies_MatchesLlamaCppsLoop()
    {
        var random = new Random(10);
        for (var trial = 0; trial < 2000; trial++)
        {
            // Few distinct values, so ties for the maximum are common; lengths cross every vector boundary.
            var logits = new float[random.Next(1, 300)];
            for (var i = 0; i < logits.Length; i++)
            {
                logits[i] = random.Next(-4, 4) * 0.5f;
            }

            Assert.Equal(GreedyArgMax.SelectScalar(logits), GreedyArgMax.Select(logits));
        }
    }

    /// <summary>
    /// The pipeline's greedy shortcut against llama.cpp's own greedy sampler on real logits: a random-weights model
    /// with a 32k vocabulary (near-ties everywhere) and a trained one, eight sequences decoded together.
    /// </summary>
    [Theory]
    [InlineData("tiny-random")]
    [InlineData("stories")]
    public void PlainGreedyPipeline_PicksWhatLlamaCppsGreedySamplerPicks(string model)
    {
        using var weights = LlamaModel.Load(new ModelOptions
        {
            Id = model,
            Path = model == "stories" ? TestModels.Stories260K : TestModels.TinyRandomLlama2,
            Parallel = 8,
            ContextLength = 128,
            Threads = 1,
        });
        using var decoder = new BatchDecoder(weights.Weights, new ModelParams(weights.Info.Path) { ContextSize = 1024, SeqMax = 8, Threads = 1, BatchThreads = 1, KVUnified = true });
        var sequences = Enumerable.Range(0, 8).Select(_ => decoder.Create()).ToArray();
        var ours = sequences.Select(_ => new RequestSamplingPipeline(SamplingOptions.Greedy, 64)).ToArray();
        var native = sequences.Select(_ => new GreedySamplingPipeline()).ToArray();
        var random = new Random(3);
        var vocabulary = weights.Weights.Vocab.Count;
        for (var s = 0; s < sequences.Length; s++)
        {
            sequences[s].Prompt([.. Enumerable.Range(0, 5 + s).Select(_ => (LLamaToken)random.Next(3, vocabulary))]);
        }

        var compared = 0;
        for (var step = 0; step < 24; step++)
        {
            Assert.Equal(DecodeResult.Ok, decoder.Decode());
            for (var s = 0; s < sequences.Length; s++)
            {
                var expected = sequences[s].Sample(native[s]);
                Assert.Equal(expected, sequences[s].Sample(ours[s]));
                compared++;
                sequences[s].Prompt(expected);
            }
        }

        Assert.Equal(8 * 24, compared);
        foreach (var pipeline in ours.Cast<IDisposable>().Concat(native))
        {
            pipeline.Dispose();
        }
    }
}
