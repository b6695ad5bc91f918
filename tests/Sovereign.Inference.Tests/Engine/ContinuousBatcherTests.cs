using Sovereign.Inference.Engine;
using Sovereign.Inference.Sampling;
using Xunit.Abstractions;

namespace Sovereign.Inference.Tests.Engine;

public sealed class ContinuousBatcherTests : IAsyncLifetime
{
    /// <summary>
    /// Top-2 logprobs closer than this are a near tie, which a batched decode may order either way: about 17 times the largest
    /// difference measured between a token's logprob alone and batched (0.003, stories260K, f16 KV cache).
    /// </summary>
    private const double NearTie = 0.05;

    private readonly ITestOutputHelper _output;
    private TestEngine _engine = null!;

    public ContinuousBatcherTests(ITestOutputHelper output) => _output = output;

    public Task InitializeAsync()
    {
        _engine = new TestEngine(new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Parallel = 8, ContextLength = 256, Threads = 1 });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _engine.DisposeAsync();

    private GenerationRequest Greedy(string prompt, int maxTokens = 24, params string[] stop) => new()
    {
        PromptTokens = _engine.Model.Tokenize(prompt),
        MaxTokens = maxTokens,
        Sampling = SamplingOptions.Greedy,
        Stop = stop,
    };

    [Fact]
    public async Task Submit_Greedy_GeneratesReadableTextAndCountsTokens()
    {
        var stream = _engine.Batcher.Submit(Greedy("Once upon a time", 24));
        var (text, result) = await stream.CollectAsync();

        Assert.Equal(_engine.Model.Tokenize("Once upon a time").Length, result.PromptTokens);
        Assert.InRange(result.CompletionTokens, 1, 24);
        Assert.Contains(result.FinishReason, new[] { FinishReason.Length, FinishReason.Stop });
        if (result.FinishReason == FinishReason.Length)
        {
            Assert.Equal(24, result.CompletionTokens);
        }

        Assert.False(string.IsNullOrWhiteSpace(text));
        Assert.True(result.ComputeSeconds > 0);
    }

    [Fact]
    public async Task Submit_EightConcurrentGreedy_MatchOutputAlone()
    {
        // llama.cpp does not promise equal logits for a sequence decoded alone and in a batch: a batch takes other
        // kernel paths and sums in another order (ggml-org/llama.cpp#3014; ggerganov on #11684: "not clear how to make
        // this fully deterministic"), and with the f16 KV cache the differences are not in the last bits only: on
        // stories260K a token's logprob alone and batched differed by up to 0.003 (growing along the sequence), while
        // the closest top-2 pair on a greedy path was 0.02 apart. So where a batched output leaves its output alone,
        // the token alone there must have been a near tie (top-2 closer than NearTie); after it the two continue from
        // different texts and are not compared. A mix-up of sequences (a token sampled from another row's logits, a
        // prompt decoded into another's cells) still fails: it leaves the path where the margin is wide.
        string[] prompts = ["Once upon a time", "The little dog", "Lily wanted to", "One day, a boy", "The sun was", "Tom and Sue", "A big red ball", "Mom said"];
        var alone = new List<(string Text, IReadOnlyList<TokenLogprob> Tokens)>();
        foreach (var prompt in prompts)
        {
            var (text, _, logprobs, _) = await _engine.Batcher.Submit(Greedy(prompt, 32) with { TopLogprobs = 2 }).CollectAllAsync();
            alone.Add((text, logprobs!));
        }

        var together = await Task.WhenAll(prompts.Select(p => _engine.Batcher.Submit(Greedy(p, 32) with { TopLogprobs = 2 }).CollectAllAsync()));

        var compared = 0;
        var largestDifference = 0.0;
        var closest = double.MaxValue;
        for (var i = 0; i < prompts.Length; i++)
        {
            var expected = alone[i].Tokens;
            var actual = together[i].Logprobs!;
            var same = expected.Zip(actual).TakeWhile(p => p.First.Token.TokenId == p.Second.Token.TokenId).Count();
            compared += same;
            for (var k = 0; k < same; k++)
            {
                largestDifference = Math.Max(largestDifference, Math.Abs(expected[k].Token.Logprob - actual[k].Token.Logprob));
                closest = Math.Min(closest, Margin(expected[k]));
            }

            if (same == expected.Count && same == actual.Count)
            {
                Assert.Equal(alone[i].Text, together[i].Text);
                continue;
            }

            // They part at `same` (or one ended there, on an end-of-generation token, which is not listed): that
            // position was a near tie for whichever listed a token there.
            var margin = Math.Min(same < expected.Count ? Margin(expected[same]) : double.MaxValue, same < actual.Count ? Margin(actual[same]) : double.MaxValue);
            Assert.True(margin < NearTie, $"'{prompts[i]}' batched left its output alone at token {same} of {expected.Count}, where the two most likely tokens were {margin:G3} apart (a near tie is under {NearTie}): alone '{alone[i].Text}', batched '{together[i].Text}'");
            _output.WriteLine($"'{prompts[i]}' parted at token {same}, a near tie ({margin:G3})");
        }

        _output.WriteLine($"{compared} tokens equal; closest top-2 on them {closest:G3}; largest logprob difference alone-batched {largestDifference:G3}");
        Assert.True(compared >= prompts.Length * 4, $"only {compared} tokens compared");

        static double Margin(TokenLogprob token) => token.Top[0].Logprob - token.Top[1].Logprob;
    }

    [Fact]
    public async Task Submit_StopString_EndsBeforeStopAndReportsStop()
    {
        var (full, _) = await _engine.Batcher.Submit(Greedy("Once upon a time", 40)).CollectAsync();
        var word = full.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(3).First();
        var stop = word[..Math.Min(3, word.Length)];
        var expected = full[..full.IndexOf(stop, StringComparison.Ordinal)];

        var (text, result) = await _engine.Batcher.Submit(Greedy("Once upon a time", 40, stop)).CollectAsync();

        Assert.Equal(expected, text);
        Assert.Equal(FinishReason.Stop, result.FinishReason);
    }

    [Fact]
    public async Task Submit_SameSeed_SameOutput()
    {
        GenerationRequest Seeded(long seed) => new()
        {
            PromptTokens = _engine.Model.Tokenize("Once upon a time"),
            MaxTokens = 32,
            Sampling = new SamplingOptions { Temperature = 1.0f, Seed = seed },
        };

        var a = await _engine.Batcher.Submit(Seeded(42)).CollectAsync();
        var b = await _engine.Batcher.Submit(Seeded(42)).CollectAsync();
        var others = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => _engine.Batcher.Submit(Seeded(1000 + i)).CollectAsync()));

        Assert.Equal(a.Text, b.Text);
        Assert.Contains(others, o => o.Text != a.Text);
    }

    [Theory]
    [InlineData(-1, 1f)]
    [InlineData(512, 1f)]
    [InlineData(5, float.NaN)]
    public async Task Submit_LogitBiasTheModelCannotApply_IsRejectedUpFront_AndTheEngineCarriesOn(int token, float bias)
    {
        Assert.Equal(512, _engine.Model.Info.VocabularySize);
        var request = Greedy("Once upon a time", 4) with { Sampling = SamplingOptions.Greedy with { LogitBias = new Dictionary<int, float> { [token] = bias } } };

        var ex = Assert.Throws<InvalidGenerationRequestException>(() => _engine.Batcher.Submit(request));

        Assert.Equal("logit_bias", ex.Parameter);
        Assert.Equal(4, (await _engine.Batcher.Submit(Greedy("Once upon a time", 4)).CollectAsync()).Result.CompletionTokens);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(512)]
    public async Task Submit_PromptTokenOutsideTheVocabulary_IsRejectedUpFront_AndARunningSequenceCarriesOn(int token)
    {
        // llama.cpp refuses the whole batch that holds such a token (InvalidInputBatch), which failed every sequence of
        // that step, not the one request that sent it.
        var running = _engine.Batcher.Submit(Greedy("Once upon a time", 12));
        var request = Greedy("Once upon a time", 4) with { PromptTokens = [.. _engine.Model.Tokenize("Once upon"), token] };

        var ex = Assert.Throws<InvalidGenerationRequestException>(() => _engine.Batcher.Submit(request));

        Assert.Equal("prompt", ex.Parameter);
        Assert.Equal(12, (await running.CollectAsync()).Result.CompletionTokens);
    }

    [Fact]
    public void Submit_PromptLongerThanContext_IsRejectedUpFront()
    {
        var prompt = string.Join(' ', Enumerable.Repeat("once upon a time", 200));
        var ex = Assert.Throws<InvalidGenerationRequestException>(() => _engine.Batcher.Submit(Greedy(prompt, 4)));
        Assert.Equal("context_length_exceeded", ex.Code);
    }

    [Fact]
    public async Task EngineStoppedMidStream_ReportsWhatTheRunningSequenceGenerated()
    {
        // A model unloaded mid-stream: its streams end with EngineStoppedException, and a running one says what it
        // generated (its stream delivered it), so the gateway can bill it; a request after the stop generated nothing.
        var steps = System.Threading.Channels.Channel.CreateUnbounded<bool>();
        _engine.Batcher.BeforeStep = async _ => await steps.Reader.ReadAsync();
        var stream = _engine.Batcher.Submit(Greedy("Once upon a time", 200));
        await using var e = stream.GetAsyncEnumerator();
        for (var i = 0; i < 4; i++)
        {
            steps.Writer.TryWrite(true);
        }

        var delivered = 0;
        while (delivered < 3 && await e.MoveNextAsync())
        {
            delivered += e.Current.Text.Length > 0 ? 1 : 0;
        }

        var stopping = _engine.Batcher.DisposeAsync();
        steps.Writer.TryWrite(true);
        var stopped = await Assert.ThrowsAsync<EngineStoppedException>(async () =>
        {
            while (await e.MoveNextAsync())
            {
            }
        });
        await stopping;

        Assert.NotNull(stopped.Partial);
        Assert.Equal(FinishReason.Cancelled, stopped.Partial.FinishReason);
        Assert.InRange(stopped.Partial.CompletionTokens, 3, 200);
        Assert.Equal(_engine.Model.Tokenize("Once upon a time").Length, stopped.Partial.PromptTokens);
        Assert.True(stopped.Partial.ComputeSeconds > 0);
        var late = await Assert.ThrowsAsync<EngineStoppedException>(async () => await _engine.Batcher.Submit(Greedy("The dog", 4)).CollectAsync());
        Assert.Null(late.Partial);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task DecodeFailsMidStream_ReportsWhatTheRunningSequenceGenerated_AndTheModelServesOn(bool throws)
    {
        // A failed decode step (an error status or a throw) stops the running sequences: each reports what it generated
        // (its stream delivered it), so the gateway can bill it, and the rebuilt executor serves the next request.
        var steps = System.Threading.Channels.Channel.CreateUnbounded<bool>();
        _engine.Batcher.BeforeStep = async _ => await steps.Reader.ReadAsync();
        var stream = _engine.Batcher.Submit(Greedy("Once upon a time", 200));
        await using var e = stream.GetAsyncEnumerator();
        for (var i = 0; i < 4; i++)
        {
            steps.Writer.TryWrite(true);
        }

        var delivered = 0;
        while (delivered < 3 && await e.MoveNextAsync())
        {
            delivered += e.Current.Text.Length > 0 ? 1 : 0;
        }

        _engine.Batcher.AfterDecode = _ => throws ? throw new InvalidOperationException("injected") : LLama.Native.DecodeResult.DecodeFailed;
        steps.Writer.TryWrite(true);
        var failed = await Assert.ThrowsAsync<EngineDecodeFailedException>(async () =>
        {
            while (await e.MoveNextAsync())
            {
            }
        });

        Assert.NotNull(failed.Partial);
        Assert.Equal(FinishReason.Cancelled, failed.Partial.FinishReason);
        Assert.InRange(failed.Partial.CompletionTokens, 3, 200);
        Assert.Equal(_engine.Model.Tokenize("Once upon a time").Length, failed.Partial.PromptTokens);
        Assert.True(failed.Partial.ComputeSeconds > 0);

        _engine.Batcher.AfterDecode = null;
        _engine.Batcher.BeforeStep = null;
        var (text, result) = await _engine.Batcher.Submit(Greedy("The dog", 4)).CollectAsync();
        Assert.Equal(4, result.CompletionTokens);
        Assert.False(string.IsNullOrEmpty(text));
    }

    [Fact]
    public async Task Submit_CancelledMidStream_FreesSlotAndKvAtNextStep()
    {
        var steps = System.Threading.Channels.Channel.CreateUnbounded<bool>();
        _engine.Batcher.BeforeStep = async _ => await steps.Reader.ReadAsync();
        using var cts = new CancellationTokenSource();
        var stream = _engine.Batcher.Submit(Greedy("Once upon a time", 200), cts.Token);
        await using var e = stream.GetAsyncEnumerator();

        // Prefill, then two decode steps: the request is mid-stream with most of its budget left.
        for (var i = 0; i < 3; i++)
        {
            steps.Writer.TryWrite(true);
        }

        Assert.True(await e.MoveNextAsync());
        Assert.Equal(1, _engine.Batcher.RunningCount);
        Assert.True(_engine.Batcher.KvCacheUsage > 0);

        cts.Cancel();
        steps.Writer.TryWrite(true);
        GenerationResult? result = null;
        while (await e.MoveNextAsync())
        {
            result = e.Current.Result ?? result;
        }

        Assert.Equal(FinishReason.Cancelled, result!.FinishReason);
        Assert.InRange(result.CompletionTokens, 1, 4);
        Assert.Equal(0, _engine.Batcher.RunningCount);
        Assert.Equal(0.0, _engine.Batcher.KvCacheUsage);
        _engine.Batcher.BeforeStep = null;
        steps.Writer.TryWrite(true);

        // The freed slot serves the next request normally.
        var (_, next) = await _engine.Batcher.Submit(Greedy("The dog", 4)).CollectAsync();
        Assert.Equal(FinishReason.Length, next.FinishReason);
    }

    [Fact]
    public async Task FrequencyPenalty_ReducesRepetitionOfGreedyOutput()
    {
        GenerationRequest Request(float penalty) => new()
        {
            PromptTokens = _engine.Model.Tokenize("Once upon a time"),
            MaxTokens = 96,
            Sampling = new SamplingOptions { Temperature = 0, FrequencyPenalty = penalty },
        };

        var plain = await _engine.Batcher.Submit(Request(0)).CollectAsync();
        var penalised = await _engine.Batcher.Submit(Request(2)).CollectAsync();

        static int Repeats(string text)
        {
            var words = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return words.Length - words.Distinct(StringComparer.Ordinal).Count();
        }

        Assert.NotEqual(plain.Text, penalised.Text);
        Assert.True(Repeats(penalised.Text) < Repeats(plain.Text), $"plain {Repeats(plain.Text)} repeats, penalised {Repeats(penalised.Text)}");
    }
}
