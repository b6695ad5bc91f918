namespace Sovereign.Inference.Sampling;

/// <summary>One alternative at a sampled position: the token, its bytes and its log-probability.</summary>
/// <param name="TokenId">The token id.</param>
/// <param name="Bytes">The token's UTF-8 bytes (a token may hold part of a character).</param>
/// <param name="Logprob">Natural log of its probability under the model's distribution at that position.</param>
public readonly record struct TokenAlternative(int TokenId, byte[] Bytes, float Logprob)
{
    /// <summary>The bytes as text, with U+FFFD where they hold part of a character (OpenAI's <c>token</c> field).</summary>
    public string Text => System.Text.Encoding.UTF8.GetString(Bytes);
}

/// <summary>The log-probability of one generated token and the most likely alternatives at its position.</summary>
/// <param name="Token">The sampled token.</param>
/// <param name="Top">The <c>top_logprobs</c> most likely tokens, most likely first (empty when none were asked for).</param>
public sealed record TokenLogprob(TokenAlternative Token, IReadOnlyList<TokenAlternative> Top);

/// <summary>Log-softmax over one position's logits, without allocating the whole distribution.</summary>
public static class Logprobs
{
    /// <summary>Most alternatives OpenAI allows per position.</summary>
    public const int MaxTop = 20;

    /// <summary>
    /// The log-probability of <paramref name="token"/> and the <paramref name="top"/> most likely tokens under
    /// softmax(<paramref name="logits"/>).
    /// </summary>
    public static (float Logprob, (int Token, float Logprob)[] Top) Compute(ReadOnlySpan<float> logits, int token, int top)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(top);
        top = Math.Min(top, Math.Min(MaxTop, logits.Length));
        var max = float.NegativeInfinity;
        foreach (var logit in logits)
        {
            max = Math.Max(max, logit);
        }

        double sum = 0;
        foreach (var logit in logits)
        {
            sum += Math.Exp(logit - max);
        }

        var logSum = max + (float)Math.Log(sum);
        var best = new (int Token, float Logit)[top];
        var count = 0;
        for (var i = 0; i < logits.Length && top > 0; i++)
        {
            var logit = logits[i];
            if (count == top && logit <= best[count - 1].Logit)
            {
                continue;
            }

            // Insertion into a short sorted array: top is at most 20.
            var at = count < top ? count++ : count - 1;
            while (at > 0 && best[at - 1].Logit < logit)
            {
                best[at] = best[at - 1];
                at--;
            }

            best[at] = (i, logit);
        }

        var alternatives = new (int, float)[count];
        for (var i = 0; i < count; i++)
        {
            alternatives[i] = (best[i].Token, best[i].Logit - logSum);
        }

        return (logits[token] - logSum, alternatives);
    }
}
