using System.Text;
using Sovereign.Inference.Engine;
using Sovereign.Inference.Sampling;

namespace Sovereign.Inference.Tests.Engine;

public sealed class LogprobsTests : IAsyncLifetime
{
    private TestEngine _engine = null!;

    public Task InitializeAsync()
    {
        _engine = new TestEngine(new ModelOptions { Id = "stories", Path = TestModels.Stories260K, Parallel = 2, ContextLength = 256, Threads = 1 });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _engine.DisposeAsync();

    private async Task<(string Text, GenerationResult Result, List<TokenLogprob> Logprobs)> Run(SamplingOptions sampling, int top, params string[] stop)
    {
        var text = new StringBuilder();
        var logprobs = new List<TokenLogprob>();
        GenerationResult? result = null;
        await foreach (var update in _engine.Batcher.Submit(new GenerationRequest { PromptTokens = _engine.Model.Tokenize("Once upon a time"), MaxTokens = 30, Sampling = sampling, TopLogprobs = top, Stop = stop }))
        {
            text.Append(update.Text);
            logprobs.AddRange(update.Logprobs ?? []);
            result = update.Result ?? result;

            // Streamed: a token's logprob never arrives before its text.
            Assert.StartsWith(TextOf(logprobs), text.ToString(), StringComparison.Ordinal);
        }

        return (text.ToString(), result!, logprobs);
    }

    [Fact]
    public async Task Greedy_EachTokenIsTheMostLikelyOfItsTopLogprobs()
    {
        var (text, result, logprobs) = await Run(SamplingOptions.Greedy, 5);

        var contentTokens = result.FinishReason == FinishReason.Stop ? result.CompletionTokens - 1 : result.CompletionTokens;
        Assert.Equal(contentTokens, logprobs.Count);
        foreach (var token in logprobs)
        {
            Assert.Equal(5, token.Top.Count);
            Assert.Equal(token.Top[0].TokenId, token.Token.TokenId);
            Assert.Equal(token.Top.Max(t => t.Logprob), token.Token.Logprob);
            Assert.True(token.Token.Logprob <= 0f);
            Assert.Equal(token.Top.OrderByDescending(t => t.Logprob).Select(t => t.TokenId), token.Top.Select(t => t.TokenId));
            Assert.InRange(token.Top.Sum(t => Math.Exp(t.Logprob)), 0.0, 1.0 + 1e-4);
        }

        Assert.Equal(text, Encoding.UTF8.GetString([.. logprobs.SelectMany(t => t.Token.Bytes)]).TrimStart() == text.TrimStart() ? text : Encoding.UTF8.GetString([.. logprobs.SelectMany(t => t.Token.Bytes)]));
    }

    private static string TextOf(IEnumerable<TokenLogprob> logprobs) => Encoding.UTF8.GetString([.. logprobs.SelectMany(t => t.Token.Bytes)]);

    [Fact]
    public async Task StopSequence_LogprobsCoverExactlyTheReturnedText()
    {
        var (plainText, _, plain) = await Run(SamplingOptions.Greedy, 2);
        Assert.Equal(plainText, TextOf(plain));
        var starts = plain.Select((_, i) => TextOf(plain.Take(i)).Length).ToList();

        // A stop that starts inside a token (its first occurrence): that token is listed cut to the returned part,
        // with the whole token's logprob; the tokens of the stop string and past it are not listed.
        var inside = Enumerable.Range(2, plain.Count - 3)
            .Where(i => plain[i].Token.Text.Length >= 2)
            .Select(i => plain[i].Token.Text[1..] + plain[i + 1].Token.Text)
            .First(stop => !starts.Contains(plainText.IndexOf(stop, StringComparison.Ordinal)));
        var cutAt = plainText.IndexOf(inside, StringComparison.Ordinal);
        var (text, result, logprobs) = await Run(SamplingOptions.Greedy, 2, inside);

        Assert.Equal(FinishReason.Stop, result.FinishReason);
        Assert.Equal(plainText[..cutAt], text);
        Assert.Equal(text, TextOf(logprobs));
        var listed = starts.Count(start => start < cutAt);
        Assert.Equal(plain.Take(listed).Select(t => t.Token.TokenId), logprobs.Select(t => t.Token.TokenId));
        Assert.Equal(plain[listed - 1].Token.Logprob, logprobs[^1].Token.Logprob);
        Assert.Equal(2, logprobs[^1].Top.Count);

        // A stop that starts at a token: exactly the tokens before it.
        var atToken = Enumerable.Range(2, plain.Count - 3)
            .Select(i => plain[i].Token.Text + plain[i + 1].Token.Text)
            .First(stop => starts.Contains(plainText.IndexOf(stop, StringComparison.Ordinal)));
        cutAt = plainText.IndexOf(atToken, StringComparison.Ordinal);
        (text, _, logprobs) = await Run(SamplingOptions.Greedy, 2, atToken);

        Assert.Equal(plainText[..cutAt], text);
        Assert.Equal(plain.Take(starts.IndexOf(cutAt)).Select(t => t.Token.TokenId), logprobs.Select(t => t.Token.TokenId));
    }

    [Fact]
    public async Task Sampled_LogprobIsTheModelsProbabilityOfTheChosenToken()
    {
        var (_, _, logprobs) = await Run(new SamplingOptions { Temperature = 1f, Seed = 3 }, 20);

        Assert.NotEmpty(logprobs);
        foreach (var token in logprobs)
        {
            Assert.Equal(20, token.Top.Count);
            Assert.True(token.Token.Logprob <= token.Top[0].Logprob);
            var listed = token.Top.FirstOrDefault(t => t.TokenId == token.Token.TokenId);
            if (listed.Bytes is not null)
            {
                Assert.Equal(listed.Logprob, token.Token.Logprob);
            }
        }
    }

    [Fact]
    public async Task LogitBias_BanningTheGreedyTokens_ChangesTheFirstToken_AndItsLogprobsShowTheBias()
    {
        var (_, _, plain) = await Run(SamplingOptions.Greedy, 5);
        var first = plain[0];

        // -100 on the first position's two likeliest tokens: greedy must take the third, and the reported
        // distribution is the biased one it was drawn from.
        var banned = new Dictionary<int, float> { [first.Top[0].TokenId] = -100, [first.Top[1].TokenId] = -100 };
        var (_, _, biased) = await Run(SamplingOptions.Greedy with { LogitBias = banned }, 5);

        Assert.Equal(first.Top[2].TokenId, biased[0].Token.TokenId);
        Assert.DoesNotContain(biased, t => banned.ContainsKey(t.Token.TokenId));
        Assert.Equal(first.Top[2].TokenId, biased[0].Top[0].TokenId);
        Assert.True(biased[0].Token.Logprob > first.Top[2].Logprob, "the banned tokens' probability moves to the others");
    }

    [Fact]
    public async Task LogitBias_Plus100_ForcesTheToken_WhateverTheTemperature()
    {
        var forced = _engine.Model.Tokenize(" dog", addBos: false)[0];
        var bias = new Dictionary<int, float> { [forced] = 100 };

        var (_, greedy, greedyTokens) = await Run(SamplingOptions.Greedy with { LogitBias = bias }, 1);
        var (_, sampled, sampledTokens) = await Run(new SamplingOptions { Temperature = 2f, Seed = 11, LogitBias = bias }, 1);

        Assert.Equal(FinishReason.Length, greedy.FinishReason);
        Assert.All(greedyTokens, t => Assert.Equal(forced, t.Token.TokenId));
        Assert.Equal(FinishReason.Length, sampled.FinishReason);
        Assert.All(sampledTokens, t => Assert.Equal(forced, t.Token.TokenId));
    }

    [Fact]
    public void Compute_MatchesLogSoftmax()
    {
        float[] logits = [1f, 3f, -2f, 3f, 0.5f];
        var (logprob, top) = Logprobs.Compute(logits, 2, 3);
        var sum = logits.Sum(l => Math.Exp(l));

        Assert.Equal(Math.Log(Math.Exp(-2) / sum), logprob, 5);
        Assert.Equal([1, 3, 0], top.Select(t => t.Token));
        Assert.Equal(Math.Log(Math.Exp(3) / sum), top[0].Logprob, 5);
        Assert.Empty(Logprobs.Compute(logits, 0, 0).Top);
    }

    [Theory]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(61)]
    [InlineData(32000)]
    [InlineData(151_937)]
    public void Compute_Vectorized_MatchesADoublePrecisionScan_TiesToTheLowerId(int vocabulary)
    {
        // Scoring a prompt runs this once per prompt token on the decode thread, so it is vectorized (about 10x faster
        // on a 32k vocabulary); the answer must stay the plain scan's, ties included and lengths not a multiple of 8.
        var random = new Random(vocabulary);
        var logits = Enumerable.Range(0, vocabulary).Select(_ => (float)Math.Round(random.NextDouble() * 30 - 15, 1)).ToArray();
        logits[vocabulary / 2] = logits[vocabulary / 3] = logits.Max();
        var max = logits.Max();
        var logSum = max + Math.Log(logits.Sum(l => Math.Exp(l - (double)max)));
        var expected = logits.Select((logit, id) => (id, logit)).OrderByDescending(t => t.logit).ThenBy(t => t.id).Take(Math.Min(20, vocabulary)).ToArray();

        var (logprob, top) = Logprobs.Compute(logits, vocabulary - 1, 20);

        Assert.Equal(logits[^1] - logSum, logprob, 1e-4);
        Assert.Equal(expected.Select(t => t.id), top.Select(t => t.Token));
        for (var i = 0; i < top.Length; i++)
        {
            Assert.Equal(expected[i].logit - logSum, top[i].Logprob, 1e-4);
        }
    }
}
