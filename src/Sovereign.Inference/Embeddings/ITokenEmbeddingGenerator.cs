using Microsoft.Extensions.AI;

namespace Sovereign.Inference.Embeddings;

/// <summary>
/// Embeds inputs given as token ids of the model's own vocabulary, as OpenAI's <c>input</c> accepts them (an array of
/// integers, or an array of such arrays) and as vLLM serves them: the ids are fed as given, nothing is added (no BOS,
/// no <c>[CLS]</c>/<c>[SEP]</c>), and each id counts as one input token.
/// </summary>
public interface ITokenEmbeddingGenerator
{
    /// <summary>Ids run from 0 to this, exclusive. Callers check every id first: the model reads no id outside.</summary>
    int VocabularySize { get; }

    /// <summary>Most ids one input may have.</summary>
    int MaxInputTokens { get; }

    /// <summary>Embeds each input; usage counts every id once.</summary>
    /// <exception cref="ArgumentException">An input is empty, too long, or holds an id outside the vocabulary.</exception>
    Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IReadOnlyList<int[]> tokenInputs, CancellationToken cancellationToken = default);
}
