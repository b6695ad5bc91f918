namespace Sovereign.Inference.Embeddings;

/// <summary>
/// An embedding input has more tokens than the model can take in one pass. The client must shorten it,
/// so the HTTP layer answers 400 (OpenAI's <c>context_length_exceeded</c>) rather than 5xx.
/// </summary>
public sealed class InputTooLongException(string modelId, int inputIndex, int tokenCount, int maxTokens)
    : Exception($"Input {inputIndex} has {tokenCount} tokens; model '{modelId}' accepts at most {maxTokens} per input.")
{
    /// <summary>The model that refused the input.</summary>
    public string ModelId { get; } = modelId;

    /// <summary>Zero-based position of the offending input in the request.</summary>
    public int InputIndex { get; } = inputIndex;

    /// <summary>Tokens the input tokenizes to, BOS included.</summary>
    public int TokenCount { get; } = tokenCount;

    /// <summary>Most tokens one input may have.</summary>
    public int MaxTokens { get; } = maxTokens;
}
