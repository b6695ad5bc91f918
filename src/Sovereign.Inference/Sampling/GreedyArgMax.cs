using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Sovereign.Inference.Sampling;

/// <summary>
/// Greedy sampling read straight from the context's logits: the same token llama.cpp's greedy sampler picks, without
/// the native sampler copying all 32,000-odd logits into a candidate array first and scanning it one by one.
/// </summary>
internal static class GreedyArgMax
{
    /// <summary>
    /// The index llama.cpp's <c>llama_sampler_greedy_apply</c> selects: the first index of the largest logit (it
    /// replaces its pick only on a strictly larger one), so ties go to the lowest token id. With a NaN anywhere the
    /// answer follows that loop exactly (a NaN first logit is kept; later NaNs are passed over).
    /// </summary>
    public static int Select(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("There are no logits to choose from.", nameof(logits));
        }

        if (!Vector256.IsHardwareAccelerated || logits.Length < 2 * Vector256<float>.Count || MaximumUnlessNaN(logits) is not { } max)
        {
            return SelectScalar(logits);
        }

        // Without NaNs: the first index holding the maximum is exactly the scalar loop's pick (its value rises only
        // on a strictly larger logit, so it stops at the first element equal to the maximum; -0 equals +0 there too).
        var vectors = MemoryMarshal.Cast<float, Vector256<float>>(logits);
        var target = Vector256.Create(max);
        for (var v = 0; v < vectors.Length; v++)
        {
            var hits = Vector256.Equals(vectors[v], target).ExtractMostSignificantBits();
            if (hits != 0)
            {
                return (v * Vector256<float>.Count) + BitOperations.TrailingZeroCount(hits);
            }
        }

        for (var i = vectors.Length * Vector256<float>.Count; i < logits.Length; i++)
        {
            if (logits[i] == max)
            {
                return i;
            }
        }

        throw new InvalidOperationException("The maximum logit was not found again.");
    }

    /// <summary>llama.cpp's greedy loop, as written.</summary>
    internal static int SelectScalar(ReadOnlySpan<float> logits)
    {
        var selected = 0;
        for (var i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[selected])
            {
                selected = i;
            }
        }

        return selected;
    }

    /// <summary>The largest logit, in one vectorized pass; null when there is a NaN among them.</summary>
    private static float? MaximumUnlessNaN(ReadOnlySpan<float> logits)
    {
        var vectors = MemoryMarshal.Cast<float, Vector256<float>>(logits);
        var best = vectors[0];
        var nan = Vector256<float>.Zero;
        foreach (var vector in vectors)
        {
            best = Vector256.Max(best, vector);

            // A NaN is the one value not equal to itself.
            nan |= ~Vector256.Equals(vector, vector);
        }

        if (nan != Vector256<float>.Zero)
        {
            return null;
        }

        var max = best[0];
        for (var lane = 1; lane < Vector256<float>.Count; lane++)
        {
            max = Math.Max(max, best[lane]);
        }

        foreach (var logit in logits[(vectors.Length * Vector256<float>.Count)..])
        {
            if (float.IsNaN(logit))
            {
                return null;
            }

            max = Math.Max(max, logit);
        }

        return max;
    }
}
