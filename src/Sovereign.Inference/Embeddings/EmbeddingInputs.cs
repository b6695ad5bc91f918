using Microsoft.Extensions.AI;

namespace Sovereign.Inference.Embeddings;

/// <summary>Argument checks and vector helpers shared by the embedding generators.</summary>
internal static class EmbeddingInputs
{
    /// <summary>The <see cref="EmbeddingGeneratorMetadata.ProviderName"/> every generator here reports.</summary>
    public const string ProviderName = "sovereign";

    /// <summary>Materializes the inputs once (the enumerable may be lazy) and rejects null entries.</summary>
    public static string[] ToCheckedArray(IEnumerable<string> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var inputs = values.ToArray();
        for (var i = 0; i < inputs.Length; i++)
        {
            if (inputs[i] is null)
            {
                throw new ArgumentException($"Input {i} is null.", nameof(values));
            }
        }

        return inputs;
    }

    /// <summary>
    /// Checks token-id inputs before any work: each non-empty, within <paramref name="maxTokens"/>, every id in
    /// [0, <paramref name="vocabularySize"/>). A model given an id outside its vocabulary reads outside its embedding
    /// table (llama.cpp aborts the process, ONNX Runtime fails the run).
    /// </summary>
    /// <returns>The ids in all inputs.</returns>
    public static long CheckTokenInputs(IReadOnlyList<int[]> inputs, string modelId, int vocabularySize, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        long total = 0;
        for (var i = 0; i < inputs.Count; i++)
        {
            var tokens = inputs[i] ?? throw new ArgumentException($"Input {i} is null.", nameof(inputs));
            if (tokens.Length == 0)
            {
                throw new ArgumentException($"Input {i} has no tokens.", nameof(inputs));
            }

            if (tokens.Length > maxTokens)
            {
                throw new InputTooLongException(modelId, i, tokens.Length, maxTokens);
            }

            foreach (var token in tokens)
            {
                if ((uint)token >= (uint)vocabularySize)
                {
                    throw new ArgumentOutOfRangeException(nameof(inputs), token, $"Input {i} holds a token id outside the vocabulary (0 to {vocabularySize - 1}).");
                }
            }

            total += tokens.Length;
        }

        return total;
    }

    /// <summary>
    /// Rejects options this generator cannot honour. Vectors have one fixed size: truncating them would only be
    /// meaningful for Matryoshka-trained models, which these are not.
    /// </summary>
    public static void CheckOptions(EmbeddingGenerationOptions? options, string modelId, int dimensions)
    {
        if (options is null)
        {
            return;
        }

        if (options.Dimensions is { } requested && requested != dimensions)
        {
            throw new ArgumentException(
                $"Model '{modelId}' produces {dimensions}-dimensional vectors; {requested} were requested.", nameof(options));
        }

        if (options.ModelId is { Length: > 0 } requestedModel && !string.Equals(requestedModel, modelId, StringComparison.Ordinal))
        {
            throw new ArgumentException(
                $"This generator serves model '{modelId}', not '{requestedModel}'.", nameof(options));
        }
    }

    /// <summary>Scales <paramref name="vector"/> in place to unit L2 norm; an all-zero vector is left as it is.</summary>
    public static float[] NormalizeInPlace(float[] vector)
    {
        double sumOfSquares = 0;
        foreach (var x in vector)
        {
            sumOfSquares += (double)x * x;
        }

        if (sumOfSquares > 0)
        {
            var scale = (float)(1.0 / Math.Sqrt(sumOfSquares));
            for (var i = 0; i < vector.Length; i++)
            {
                vector[i] *= scale;
            }
        }

        return vector;
    }

    /// <summary>Builds the result with usage; input tokens are the only tokens an embedding call consumes.</summary>
    public static GeneratedEmbeddings<Embedding<float>> ToResult(float[][] vectors, string modelId, long inputTokens)
    {
        var createdAt = DateTimeOffset.UtcNow;
        var result = new GeneratedEmbeddings<Embedding<float>>(vectors.Length)
        {
            Usage = new UsageDetails { InputTokenCount = inputTokens, TotalTokenCount = inputTokens },
        };
        foreach (var vector in vectors)
        {
            result.Add(new Embedding<float>(vector) { ModelId = modelId, CreatedAt = createdAt });
        }

        return result;
    }
}
