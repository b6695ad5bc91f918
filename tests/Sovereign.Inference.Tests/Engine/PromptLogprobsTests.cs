using LLama;
using LLama.Common;
using LLama.Native;
using Microsoft.Extensions.Logging.Abstractions;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Sampling;

namespace Sovereign.Inference.Tests.Engine;

/// <summary>
/// Prompt log-probabilities (the legacy completions API's <c>echo</c> with <c>logprobs</c>): every prompt token after the
/// first scored as log P(token | the tokens before it), checked against a second evaluation of the same prompt.
/// </summary>
public sealed class PromptLogprobsTests : IAsyncLifetime
{
    // A batch of 8 splits the longer prompts into several prefill chunks, so scores cross chunk boundaries.
    private const int BatchSize = 8;
    private TestEngine _engine = null!;

    public Task InitializeAsync()
    {
        _engine = new TestEngine(new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Parallel = 4, ContextLength = 256, BatchSize = BatchSize, Threads = 1 });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _engine.DisposeAsync();

    private async Task<(GenerationResult Result, IReadOnlyList<TokenLogprob> Prompt, IReadOnlyList<TokenLogprob>? Generated)> Score(int[] prompt, int maxTokens, int top = 3)
    {
        var (_, result, generated, scores) = await _engine.Batcher.Submit(new GenerationRequest
        {
            PromptTokens = prompt,
            MaxTokens = maxTokens,
            Sampling = SamplingOptions.Greedy,
            PromptLogprobs = top,
            TopLogprobs = maxTokens > 0 ? top : null,
        }).CollectAllAsync();
        return (result, scores!, generated);
    }

    /// <summary>
    /// The other choices of a scored prompt (<see cref="GenerationRequest.PrefillAsScored"/>) are prefilled as the
    /// scored one is, without scoring: a greedy sibling generates the same tokens with the same logprobs, submitted
    /// together (the completions endpoint scores a prompt once for its n choices), and nothing is scored twice.
    /// </summary>
    [Fact]
    public async Task ASiblingPrefilledAsScored_GeneratesTheSameLogprobs_WithoutScoringAgain()
    {
        // Prompts that both prefill within one step (BatchSize 8): longer ones are chunked differently for the two (the
        // scored rows of a step are bounded), which moves the logits by about 1e-4 on this model, as it did for two
        // scored choices.
        foreach (var prompt in new int[][] { [1, 400, 300], [1, 200], [1, 50, 60, 70] })
        {
            // An earlier request of the prompt leaves it in the prefix cache, which a plain sibling would fork.
            await _engine.Batcher.Submit(new GenerationRequest { PromptTokens = [.. prompt, 100, 120], MaxTokens = 3, Sampling = SamplingOptions.Greedy }).CollectAllAsync();
            var before = _engine.Batcher.ScoredPromptPositions;
            var scored = _engine.Batcher.Submit(new GenerationRequest { PromptTokens = prompt, MaxTokens = 4, Sampling = SamplingOptions.Greedy, PromptLogprobs = 2, TopLogprobs = 2 });
            var sibling = _engine.Batcher.Submit(new GenerationRequest { PromptTokens = prompt, MaxTokens = 4, Sampling = SamplingOptions.Greedy, PrefillAsScored = true, TopLogprobs = 2 });
            var (scoredText, _, scoredLogprobs, scores) = await scored.CollectAllAsync();
            var (siblingText, _, siblingLogprobs, siblingScores) = await sibling.CollectAllAsync();

            Assert.Equal(scoredText, siblingText);
            Assert.Null(siblingScores);
            Assert.Equal(prompt.Length, scores!.Count);
            Assert.Equal(prompt.Length - 1, _engine.Batcher.ScoredPromptPositions - before);
            Assert.Equal(scoredLogprobs!.Select(t => t.Token.Logprob), siblingLogprobs!.Select(t => t.Token.Logprob));
            // The alternatives' values may differ in the last bits: the two prefill in different steps (the scored rows of a
            // step are bounded), and a step's batch shapes the matrix products' accumulation.
            Assert.Equal(scoredLogprobs!.Select(t => t.Token.TokenId), siblingLogprobs!.Select(t => t.Token.TokenId));
        }
    }

    /// <summary>The log-softmax of each position's logits from one plain llama.cpp decode of the whole prompt, in doubles.</summary>
    private static double[][] DirectLogSoftmax(LlamaModel model, int[] prompt)
    {
        var size = (uint)Math.Max(256, prompt.Length);
        using var context = model.Weights.CreateContext(new ModelParams(model.Info.Path) { ContextSize = size, BatchSize = size, UBatchSize = size, Threads = 1, GpuLayerCount = 0 });
        var batch = new LLamaBatch();
        for (var i = 0; i < prompt.Length; i++)
        {
            batch.Add((LLamaToken)prompt[i], i, (LLamaSeqId)0, logits: true);
        }

        Assert.Equal(DecodeResult.Ok, context.Decode(batch));
        var rows = new double[prompt.Length][];
        for (var i = 0; i < prompt.Length; i++)
        {
            var logits = context.NativeHandle.GetLogitsIth(i);
            var max = double.NegativeInfinity;
            foreach (var logit in logits)
            {
                max = Math.Max(max, logit);
            }

            var sum = 0.0;
            foreach (var logit in logits)
            {
                sum += Math.Exp(logit - max);
            }

            var logSum = max + Math.Log(sum);
            rows[i] = [.. logits.ToArray().Select(l => l - logSum)];
        }

        return rows;
    }

    [Fact]
    public async Task PromptLogprobs_AreTheLogSoftmaxOfADirectEvaluation_AcrossPrefillChunks()
    {
        var prompt = _engine.Model.Tokenize("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.");
        Assert.True(prompt.Length > 2 * BatchSize);

        var (result, scores, _) = await Score(prompt, maxTokens: 0);
        var direct = DirectLogSoftmax(_engine.Model, prompt);

        Assert.Equal(prompt.Length, scores.Count);
        Assert.Equal(prompt[0], scores[0].Token.TokenId);
        Assert.True(float.IsNaN(scores[0].Token.Logprob));
        Assert.Empty(scores[0].Top);
        for (var i = 1; i < prompt.Length; i++)
        {
            Assert.Equal(prompt[i], scores[i].Token.TokenId);
            Assert.Equal(direct[i - 1][prompt[i]], scores[i].Token.Logprob, 1e-3);
            Assert.Equal(3, scores[i].Top.Count);
            var expectedTop = direct[i - 1].Select((lp, id) => (lp, id)).OrderByDescending(t => t.lp).Take(3).ToList();
            for (var k = 0; k < 3; k++)
            {
                Assert.Equal(expectedTop[k].lp, scores[i].Top[k].Logprob, 1e-3);
            }
        }

        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal(0, result.CompletionTokens);
        Assert.Equal(prompt.Length, result.PromptTokens);
        Assert.Null(result.TimeToFirstToken);
    }

    [Fact]
    public async Task ScoredRows_AreBoundedPerStep_AndAPromptBeyondThemContinuesAtTheNextStep()
    {
        // A 32k vocabulary: 64 MiB of logit rows is 524 positions, so a 1,100-token prompt in a batch of 1,024 takes
        // three steps (524, 524, 52) where an unscored one takes two, and the scores stay those of a direct evaluation.
        using var model = LlamaModel.Load(new ModelOptions { Id = "random", Path = TestModels.TinyRandomLlama2, Parallel = 1, ContextLength = 2048, BatchSize = 1024, Threads = 1, PrefixCacheSequences = 0 });
        using var metrics = new EngineMetrics();
        await using var batcher = new ContinuousBatcher(model, metrics, NullLogger<ContinuousBatcher>.Instance);
        var random = new Random(7);
        var prompt = Enumerable.Range(0, 1100).Select(i => i == 0 ? 1 : random.Next(3, model.Info.VocabularySize)).ToArray();
        var steps = 0;
        batcher.BeforeStep = _ =>
        {
            Interlocked.Increment(ref steps);
            return ValueTask.CompletedTask;
        };

        await batcher.Submit(new GenerationRequest { PromptTokens = prompt, MaxTokens = 0 }).CollectAllAsync();
        var unscoredSteps = Interlocked.Exchange(ref steps, 0);
        var (_, result, _, scores) = await batcher.Submit(new GenerationRequest { PromptTokens = prompt, MaxTokens = 0, PromptLogprobs = 1 }).CollectAllAsync();

        Assert.Equal(2, unscoredSteps);
        Assert.Equal(3, steps);
        Assert.Equal(0, result.CachedPromptTokens);
        var direct = DirectLogSoftmax(model, prompt);
        Assert.Equal(prompt.Length, scores!.Count);
        for (var i = 1; i < prompt.Length; i++)
        {
            Assert.Equal(direct[i - 1][prompt[i]], scores[i].Token.Logprob, 1e-3);
        }
    }

    [Fact]
    public async Task PromptLogprobs_OfGeneratedTokens_EqualTheLogprobsReportedWhenGeneratingThem()
    {
        var prompt = _engine.Model.Tokenize("Once upon a time");
        var (_, generatedResult, generated, _) = await _engine.Batcher.Submit(new GenerationRequest
        {
            PromptTokens = prompt, MaxTokens = 12, Sampling = SamplingOptions.Greedy, TopLogprobs = 2,
        }).CollectAllAsync();
        Assert.NotNull(generated);
        var continuation = generated.Select(t => t.Token.TokenId).ToArray();

        // Scoring the prompt plus what greedy decoding produced gives each produced token the logprob it was produced with.
        var (_, scores, _) = await Score([.. prompt, .. continuation], maxTokens: 0, top: 2);

        for (var i = 0; i < continuation.Length; i++)
        {
            var scored = scores[prompt.Length + i];
            Assert.Equal(generated[i].Token.TokenId, scored.Token.TokenId);
            Assert.Equal(generated[i].Token.Logprob, scored.Token.Logprob, 1e-3);
            Assert.Equal(generated[i].Top.Select(t => t.TokenId), scored.Top.Select(t => t.TokenId));
        }

        Assert.True(generatedResult.CompletionTokens >= continuation.Length);
    }

    [Fact]
    public async Task PromptLogprobs_WithGeneration_ComeBeforeTheGeneratedTokens_AndScoringChangesNoOutput()
    {
        var prompt = _engine.Model.Tokenize("The little dog");
        var plain = await _engine.Batcher.Submit(new GenerationRequest { PromptTokens = prompt, MaxTokens = 6, Sampling = SamplingOptions.Greedy }).CollectAllAsync();

        var updates = new List<GenerationUpdate>();
        await foreach (var update in _engine.Batcher.Submit(new GenerationRequest
        {
            PromptTokens = prompt, MaxTokens = 6, Sampling = SamplingOptions.Greedy, PromptLogprobs = 1, TopLogprobs = 1,
        }))
        {
            updates.Add(update);
        }

        Assert.NotNull(updates[0].PromptLogprobs);
        Assert.Equal(prompt.Length, updates[0].PromptLogprobs!.Count);
        Assert.Equal(1, updates.Count(u => u.PromptLogprobs is not null));
        Assert.Equal(plain.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.Equal(plain.Result.CompletionTokens, updates[^1].Result!.CompletionTokens);
    }

    [Fact]
    public async Task ScoredPrompt_IsNotTakenFromThePrefixCache_AndConcurrentScoresMatchALoneOne()
    {
        var prompt = _engine.Model.Tokenize("Once upon a time, there was a little girl named Lily.");
        var (_, alone, _) = await Score(prompt, maxTokens: 0);

        // The same prompt, now cached, scored four at a time while others generate.
        var others = Enumerable.Range(0, 2).Select(_ => _engine.Batcher.Submit(new GenerationRequest { PromptTokens = prompt, MaxTokens = 8, Sampling = SamplingOptions.Greedy }).CollectAllAsync());
        var scored = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Score(prompt, maxTokens: 0)));
        await Task.WhenAll(others);

        foreach (var (result, scores, _) in scored)
        {
            Assert.Equal(0, result.CachedPromptTokens);
            Assert.Equal(alone.Select(s => s.Token.TokenId), scores.Select(s => s.Token.TokenId));
            for (var i = 1; i < scores.Count; i++)
            {
                Assert.Equal(alone[i].Token.Logprob, scores[i].Token.Logprob, 1e-3);
            }
        }
    }

    /// <summary>A clock that moves one second each time it is read: every measured span is exactly one second.</summary>
    private sealed class SteppingClock : TimeProvider
    {
        private long _now;

        public override long TimestampFrequency => 1;

        public override long GetTimestamp() => Interlocked.Increment(ref _now);
    }

    [Fact]
    public async Task Scoring_IsBilledToTheRequestAsCompute_BesidesItsShareOfTheDecode()
    {
        // Reading every position's logits runs on the decode loop's thread after the decode; it was in no request's
        // compute seconds. With a clock that moves one second per reading, the decode is one second, the scoring another.
        await using var batcher = new ContinuousBatcher(_engine.Model, _engine.Metrics, NullLogger<ContinuousBatcher>.Instance, new SteppingClock());
        var prompt = _engine.Model.Tokenize("Once upon a time");

        var plain = await batcher.Submit(new GenerationRequest { PromptTokens = prompt, MaxTokens = 0 }).CollectAllAsync();
        var scored = await batcher.Submit(new GenerationRequest { PromptTokens = prompt, MaxTokens = 0, PromptLogprobs = 0 }).CollectAllAsync();

        Assert.Equal(1.0, plain.Result.ComputeSeconds);
        Assert.Equal(2.0, scored.Result.ComputeSeconds);
    }

    [Fact]
    public async Task MaxTokensZero_WithoutScores_EvaluatesThePromptAndGeneratesNothing()
    {
        var (text, result, logprobs, scores) = await _engine.Batcher.Submit(new GenerationRequest { PromptTokens = _engine.Model.Tokenize("Once"), MaxTokens = 0 }).CollectAllAsync();

        Assert.Equal("", text);
        Assert.Equal(FinishReason.Length, result.FinishReason);
        Assert.Equal(0, result.CompletionTokens);
        Assert.Null(logprobs);
        Assert.Null(scores);
    }

    [Fact]
    public void PromptLogprobs_OutOfRange_AreRefusedAtSubmission()
    {
        var error = Assert.Throws<InvalidGenerationRequestException>(() =>
            _engine.Batcher.Submit(new GenerationRequest { PromptTokens = _engine.Model.Tokenize("Once"), MaxTokens = 0, PromptLogprobs = Logprobs.MaxTop + 1 }));
        Assert.Equal("logprobs", error.Parameter);
    }
}
