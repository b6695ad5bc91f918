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
    private readonly Task _written;

    /// <param name="reader">The updates.</param>
    /// <param name="written">Completes once the writer has written its last update and completed the channel.</param>
    /// <param name="promptTokens">Tokens in the prompt.</param>
    /// <param name="maxTokens">The resolved output limit.</param>
    internal GenerationStream(ChannelReader<GenerationUpdate> reader, Task written, int promptTokens, int maxTokens)
    {
        _reader = reader;
        _written = written;
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
        var (text, result, _, _) = await CollectAllAsync(cancellationToken);
        return (text, result);
    }

    /// <summary>
    /// Reads the whole generation: text, result, each generated token's log-probabilities and the prompt's (each null
    /// unless asked for).
    /// </summary>
    public async Task<(string Text, GenerationResult Result, IReadOnlyList<Sampling.TokenLogprob>? Logprobs, IReadOnlyList<Sampling.TokenLogprob>? PromptLogprobs)> CollectAllAsync(
        CancellationToken cancellationToken = default)
    {
        var text = new System.Text.StringBuilder();
        GenerationResult? result = null;
        List<Sampling.TokenLogprob>? logprobs = null;
        IReadOnlyList<Sampling.TokenLogprob>? promptLogprobs = null;

        // Wait for the end, then read everything: one wake-up per request instead of a thread-pool continuation per
        // token, which competes with the decode loop for the cores. A failed generation throws its error here.
        await _written.WaitAsync(cancellationToken);
        await foreach (var update in _reader.ReadAllAsync(cancellationToken))
        {
            text.Append(update.Text);
            result = update.Result ?? result;
            if (update.Logprobs is { } tokens)
            {
                (logprobs ??= []).AddRange(tokens);
            }

            promptLogprobs = update.PromptLogprobs ?? promptLogprobs;
        }

        return (text.ToString(), result ?? throw new InvalidOperationException("The generation ended without a result."), logprobs, promptLogprobs);
    }
}
