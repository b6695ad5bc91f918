namespace Sovereign.Inference.Engine;

/// <summary>
/// A text has more tokens than the model accepts (HTTP 400 <c>context_length_exceeded</c>). Counting may have stopped
/// early: then <see cref="CountedTokens"/> is a lower bound and <see cref="IsExact"/> is false.
/// </summary>
/// <remarks>
/// The message opens with OpenAI's (and vLLM's) "This model's maximum context length is N tokens.": applications
/// ported from OpenAI tell a context overflow by those words (the Node SDK's <c>error.message</c> is the message
/// alone; agent frameworks match "maximum context length" in it) to trim the history and retry.
/// </remarks>
/// <param name="subject">How the message names the text: "the prompt", "input[2]".</param>
/// <param name="maxTokens">The most tokens the text may have.</param>
/// <param name="countedTokens">The tokens counted.</param>
/// <param name="isExact">Whether <paramref name="countedTokens"/> is the whole text's count.</param>
/// <param name="parameter">The request field at fault.</param>
/// <param name="contextLength">The model's context length, when the text may have fewer tokens (a prompt leaves room
/// for what is generated); <paramref name="maxTokens"/> when absent.</param>
public sealed class ContextLengthExceededException(string subject, int maxTokens, int countedTokens, bool isExact, string? parameter = null, int? contextLength = null)
    : Exception(Describe(subject, maxTokens, countedTokens, isExact, contextLength ?? maxTokens))
{
    /// <summary>The most tokens the text may have.</summary>
    public int MaxTokens { get; } = maxTokens;

    /// <summary>The tokens counted: the exact count, or a lower bound when counting stopped early.</summary>
    public int CountedTokens { get; } = countedTokens;

    /// <summary>Whether <see cref="CountedTokens"/> is the whole text's count.</summary>
    public bool IsExact { get; } = isExact;

    /// <summary>The request field at fault, e.g. <c>messages</c> or <c>input</c>.</summary>
    public string? Parameter { get; } = parameter;

    /// <summary>The model's context length the message names.</summary>
    public int ContextLength { get; } = contextLength ?? maxTokens;

    /// <summary>The message for a text of <paramref name="countedTokens"/> tokens where at most <paramref name="maxTokens"/> fit.</summary>
    /// <param name="subject">How the message names the text.</param>
    /// <param name="maxTokens">The most tokens the text may have.</param>
    /// <param name="countedTokens">The tokens counted.</param>
    /// <param name="isExact">Whether <paramref name="countedTokens"/> is the whole text's count.</param>
    /// <param name="contextLength">The model's context length.</param>
    public static string Describe(string subject, int maxTokens, int countedTokens, bool isExact, int contextLength)
    {
        var room = contextLength > maxTokens ? $"; at most {maxTokens} leave room for the answer" : "";
        return isExact
            ? $"This model's maximum context length is {contextLength} tokens. However, {subject} has {countedTokens} tokens{room}."
            : $"This model's maximum context length is {contextLength} tokens. However, {subject} has more than {maxTokens} tokens (counting stopped at {countedTokens}).";
    }
}

/// <summary>
/// Caps the work of counting tokens: a text is counted in chunks cut at whitespace, and counting stops as soon as the
/// chunks' total is over the limit by more than chunk boundaries can explain. An 8 MiB prompt against a 4k context
/// costs a few chunks, not a tokenization of 8 MiB.
/// </summary>
public static class TokenBudget
{
    /// <summary>
    /// How many tokens a chunk boundary can add to the chunked total compared with counting the whole text: a
    /// tokenizer's own start tokens (BOS, [CLS]/[SEP]), a dummy-prefix space, and a word cut in two.
    /// </summary>
    public const int SlackPerChunk = 3;

    /// <summary>The chunk size in characters for a limit: about four characters per allowed token, within bounds.</summary>
    public static int ChunkCharacters(int maxTokens) => (int)Math.Clamp(maxTokens * 4L, 1024, 64 * 1024);

    /// <summary>
    /// Returns the exact token count of <paramref name="text"/> when it is at most <paramref name="maxTokens"/>;
    /// otherwise throws <see cref="ContextLengthExceededException"/> after counting only as much as needed.
    /// </summary>
    /// <param name="text">The text.</param>
    /// <param name="maxTokens">The most tokens allowed.</param>
    /// <param name="countTokens">The tokenizer's count of a text (including any tokens it adds at the start).</param>
    /// <param name="subject">How the message names the text, e.g. "the prompt" or "input[2]".</param>
    /// <param name="parameter">The request field at fault.</param>
    public static int CountWithin(string text, int maxTokens, Func<string, int> countTokens, string subject = "the text", string? parameter = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(countTokens);
        var chunk = ChunkCharacters(maxTokens);
        if (text.Length > chunk)
        {
            EnsureChunkedCountFits(text, maxTokens, countTokens, chunk, subject, parameter);
        }

        // Short, or chunks say it fits (so the text is bounded): count it whole for the exact figure.
        var count = countTokens(text);
        return count <= maxTokens ? count : throw new ContextLengthExceededException(subject, maxTokens, count, isExact: true, parameter);
    }

    /// <summary>Counts chunk by chunk and throws as soon as the total cannot fit.</summary>
    internal static void EnsureChunkedCountFits(string text, int maxTokens, Func<string, int> countTokens, int chunkCharacters, string subject, string? parameter, int? contextLength = null)
    {
        long counted = 0;
        var chunks = 0;
        foreach (var range in Chunks(text, chunkCharacters))
        {
            counted += countTokens(text[range]);
            chunks++;
            var lowerBound = counted - ((long)SlackPerChunk * chunks);
            if (lowerBound > maxTokens)
            {
                throw new ContextLengthExceededException(subject, maxTokens, (int)Math.Min(lowerBound, int.MaxValue), isExact: false, parameter, contextLength);
            }
        }
    }

    /// <summary>Splits text into ranges of at most <paramref name="size"/> characters, cut after whitespace where possible.</summary>
    internal static IEnumerable<Range> Chunks(string text, int size)
    {
        var start = 0;
        while (start < text.Length)
        {
            var end = Math.Min(start + size, text.Length);
            if (end < text.Length)
            {
                // Prefer a cut just before a whitespace character in the last quarter; never inside a surrogate pair.
                var cut = end;
                var floor = start + (size * 3 / 4);
                while (cut > floor && !char.IsWhiteSpace(text[cut]))
                {
                    cut--;
                }

                end = cut > floor ? cut : end;
                if (char.IsHighSurrogate(text[end - 1]))
                {
                    end--;
                }
            }

            yield return new Range(start, end);
            start = end;
        }
    }
}
