using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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
        var logSum = LogSumExp(logits);
        var best = new (int Token, float Logit)[top];
        var count = 0;
        if (top > 0)
        {
            // Once the list is full, a whole vector of logits none above its last entry is passed over at once: after
            // the first few hundred logits almost all are, and the scalar scan cost several times the log-sum-exp.
            var vectors = Vector256.IsHardwareAccelerated ? MemoryMarshal.Cast<float, Vector256<float>>(logits) : [];
            for (var v = 0; v < vectors.Length; v++)
            {
                if (count == top && Vector256.LessThanOrEqual(vectors[v], Vector256.Create(best[count - 1].Logit)) == Vector256<float>.AllBitsSet)
                {
                    continue;
                }

                for (var i = v * Vector256<float>.Count; i < (v + 1) * Vector256<float>.Count; i++)
                {
                    Insert(best, ref count, i, logits[i]);
                }
            }

            for (var i = vectors.Length * Vector256<float>.Count; i < logits.Length; i++)
            {
                Insert(best, ref count, i, logits[i]);
            }
        }

        var alternatives = new (int, float)[count];
        for (var i = 0; i < count; i++)
        {
            alternatives[i] = (best[i].Token, best[i].Logit - logSum);
        }

        return (logits[token] - logSum, alternatives);
    }

    /// <summary>Keeps <paramref name="logit"/> in the sorted list when it ranks: insertion into a short array (at most 20).</summary>
    private static void Insert((int Token, float Logit)[] best, ref int count, int token, float logit)
    {
        if (count == best.Length && logit <= best[count - 1].Logit)
        {
            return;
        }

        var at = count < best.Length ? count++ : count - 1;
        while (at > 0 && best[at - 1].Logit < logit)
        {
            best[at] = best[at - 1];
            at--;
        }

        best[at] = (token, logit);
    }

    /// <summary>
    /// log(sum(exp(logits))), shifted by the maximum; vectorized, since scoring a prompt runs it once per prompt token
    /// on the decode loop's thread (a scalar pass took about 1.3 ms on a 32k vocabulary, 3.5 ms on a 152k one). The
    /// exponentials are single precision, their sum double.
    /// </summary>
    internal static float LogSumExp(ReadOnlySpan<float> logits)
    {
        var vectors = Vector256.IsHardwareAccelerated ? MemoryMarshal.Cast<float, Vector256<float>>(logits) : [];
        var max = float.NegativeInfinity;
        if (vectors.Length > 0)
        {
            var maxima = vectors[0];
            for (var v = 1; v < vectors.Length; v++)
            {
                maxima = Vector256.Max(maxima, vectors[v]);
            }

            for (var lane = 0; lane < Vector256<float>.Count; lane++)
            {
                max = Math.Max(max, maxima[lane]);
            }
        }

        for (var i = vectors.Length * Vector256<float>.Count; i < logits.Length; i++)
        {
            max = Math.Max(max, logits[i]);
        }

        var shift = Vector256.Create(max);
        var (low, high) = (Vector256<double>.Zero, Vector256<double>.Zero);
        foreach (var vector in vectors)
        {
            var (lower, upper) = Vector256.Widen(Vector256.Exp(vector - shift));
            low += lower;
            high += upper;
        }

        var sum = Vector256.Sum(low + high);
        for (var i = vectors.Length * Vector256<float>.Count; i < logits.Length; i++)
        {
            sum += Math.Exp(logits[i] - max);
        }

        return max + (float)Math.Log(sum);
    }
}
