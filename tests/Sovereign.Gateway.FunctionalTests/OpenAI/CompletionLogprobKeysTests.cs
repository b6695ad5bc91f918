using Sovereign.Gateway.OpenAI;
using Sovereign.Inference.Sampling;

namespace Sovereign.Gateway.FunctionalTests.OpenAI;

/// <summary>
/// Completions' <c>top_logprobs</c> keys: one per alternative, deterministic, the sampled token under its own text. Tokens
/// that decode alike (partial UTF-8, byte-fallback ASCII, control tokens that print nothing) shared one key, so the
/// dictionary kept one of them.
/// </summary>
public sealed class CompletionLogprobKeysTests
{
    private static TokenAlternative T(int id, float logprob, params byte[] bytes) => new(id, bytes, logprob);

    private static Dictionary<string, float> TopOf(TokenAlternative sampled, params TokenAlternative[] top)
    {
        var offset = 0;
        var logprobs = StructuredOutput.Completion([new TokenLogprob(sampled, top)], ref offset);
        return logprobs!.TopLogprobs[0]!;
    }

    [Fact]
    public void PartialUtf8Alternatives_AreKeyedByTheirBytes_AsOpenAIWritesThem()
    {
        var sampled = T(7, -0.5f, (byte)'a');
        var top = TopOf(sampled, sampled, T(300, -1.5f, 0xE0), T(301, -2.5f, 0xE1, 0xB8));

        Assert.Equal(3, top.Count);
        Assert.Equal(-0.5f, top["a"]);
        Assert.Equal(-1.5f, top["bytes:\\xe0"]);
        Assert.Equal(-2.5f, top["bytes:\\xe1\\xb8"]);
    }

    [Fact]
    public void APartialUtf8SampledToken_IsTheSameKeyInTokens()
    {
        var sampled = T(300, -0.25f, 0xE0);
        var offset = 0;
        var logprobs = StructuredOutput.Completion([new TokenLogprob(sampled, [T(301, -0.1f, 0xE1), sampled])], ref offset)!;

        Assert.Equal("bytes:\\xe0", logprobs.Tokens[0]);
        Assert.Equal(-0.25f, logprobs.TopLogprobs[0]![logprobs.Tokens[0]]);
        Assert.Equal(-0.1f, logprobs.TopLogprobs[0]!["bytes:\\xe1"]);
    }

    [Fact]
    public void AlternativesOfTheSameText_KeepEveryOne_AndTheSampledTokenKeepsItsText()
    {
        // The byte-fallback token <0x61> is more likely than the sampled "a" (id 5); two control tokens print nothing.
        var sampled = T(5, -1f, (byte)'a');
        var top = TopOf(sampled, T(100, -0.5f, (byte)'a'), sampled, T(1, -3f), T(2, -4f));

        Assert.Equal(4, top.Count);
        Assert.Equal(-1f, top["a"]);
        Assert.Equal(-0.5f, top["token_id:100"]);
        Assert.Equal(-3f, top[""]);
        Assert.Equal(-4f, top["token_id:2"]);
        Assert.Equal(top, TopOf(sampled, T(100, -0.5f, (byte)'a'), sampled, T(1, -3f), T(2, -4f)));
    }

    [Fact]
    public void ASampledTokenOutsideTheTop_IsAddedUnderItsText_AndAnAlternativeOfTheSameTextMoves()
    {
        var sampled = T(5, -6f, (byte)'a');
        var top = TopOf(sampled, T(100, -0.5f, (byte)'a'), T(9, -1f, (byte)'b'));

        Assert.Equal(3, top.Count);
        Assert.Equal(-6f, top["a"]);
        Assert.Equal(-0.5f, top["token_id:100"]);
        Assert.Equal(-1f, top["b"]);
    }
}
