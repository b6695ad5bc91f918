using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace Sovereign.Inference.Engine;

/// <summary>
/// The output of one submitted request: text updates as they are decoded, ending with an update that carries the
/// <see cref="GenerationResult"/>. Enumerate it once.
/// </summary>
public sealed class GenerationStream : IAsyncEnumerable<GenerationUpdate>
{
    private readonly ChannelReader<GenerationUpdate> _reader;

    internal GenerationStream(ChannelReader<GenerationUpdate> reader, int promptTokens, int maxTokens)
    {
        _reader = reader;
        PromptTokens = promptTokens;
        MaxTokens = maxTokens;
    }

    /// <summary>Tokens in the prompt.</summary>
    public int PromptTokens { get; }

    /// <summary>The resolved output limit.</summary>
    public int MaxTokens { get; }

    /// <inheritdoc />
    public async IAsyncEnumerator<GenerationUpdate> GetAsyncEnumerator(CancellationToken cancellationToken = default)
    {
        await foreach (var update in _reader.ReadAllAsync(cancellationToken))
        {
            yield return update;
        }
    }

    /// <summary>Reads the whole generation into one string and its result.</summary>
    public async Task<(string Text, GenerationResult Result)> CollectAsync(CancellationToken cancellationToken = default)
    {
        var (text, result, _) = await CollectAllAsync(cancellationToken);
        return (text, result);
    }

    /// <summary>Reads the whole generation: text, result, and each token's log-probabilities (null unless asked for).</summary>
    public async Task<(string Text, GenerationResult Result, IReadOnlyList<Sampling.TokenLogprob>? Logprobs)> CollectAllAsync(CancellationToken cancellationToken = default)
    {
        var text = new System.Text.StringBuilder();
        GenerationResult? result = null;
        List<Sampling.TokenLogprob>? logprobs = null;
        await foreach (var update in this.WithCancellation(cancellationToken))
        {
            text.Append(update.Text);
            result = update.Result ?? result;
            if (update.Logprobs is { } tokens)
            {
                (logprobs ??= []).AddRange(tokens);
            }
        }

        return (text.ToString(), result ?? throw new InvalidOperationException("The generation ended without a result."), logprobs);
    }
}
