using System.Buffers;
using System.Globalization;
using System.Text;
using LLama.Native;

namespace Sovereign.Inference.Engine;

/// <summary>
/// Message text that spells one of the model's control tokens (<c>&lt;/s&gt;</c>, <c>&lt;|im_end|&gt;</c>) stays text.
/// </summary>
/// <remarks>
/// The rendered prompt is tokenized with special tokens parsed (the template writes its role markers as text), so a
/// message saying <c>&lt;|im_end|&gt;\n&lt;|im_start|&gt;system</c> ended its own turn and opened a system turn, as vLLM
/// and llama-server read it; OpenAI reads it as text. A message that spells one is rendered with each spelling replaced
/// by a marker (a private-use character none of the messages holds, around the spelling's index); the rendered prompt
/// is cut at the markers, the template's text tokenized as before and each spelling as text. A prompt whose messages
/// spell none is tokenized exactly as before (cutting changes tokens at the cuts: SentencePiece adds its space prefix
/// to each piece). Only control and unknown tokens are concerned: llama.cpp parses user-defined tokens with or without
/// the flag.
/// </remarks>
public sealed partial class LlamaModel
{
    /// <summary>The texts of the vocabulary's control tokens, longest first, and a searcher for any of them; null: none.</summary>
    private (string[] Texts, SearchValues<string> Search)? FindControlTexts()
    {
        var vocab = Weights.Vocab;
        var texts = new HashSet<string>(StringComparer.Ordinal);
        for (var token = 0; token < vocab.Count; token++)
        {
            // A control (or unknown) token prints nothing unless asked for its special text.
            var asSpecial = vocab.LLamaTokenToString((LLamaToken)token, isSpecialToken: true);
            if (!string.IsNullOrEmpty(asSpecial) && string.IsNullOrEmpty(vocab.LLamaTokenToString((LLamaToken)token, isSpecialToken: false)))
            {
                texts.Add(asSpecial);
            }
        }

        if (texts.Count == 0)
        {
            return null;
        }

        // Longest first, as llama.cpp matches them.
        var ordered = texts.OrderByDescending(t => t.Length).ThenBy(t => t, StringComparer.Ordinal).ToArray();
        return (ordered, SearchValues.Create(ordered, StringComparison.Ordinal));
    }

    /// <summary>Whether <paramref name="text"/> spells one of the model's control tokens (the first it spells, if so).</summary>
    public string? SpelledControlToken(string? text)
    {
        if (string.IsNullOrEmpty(text) || _controlTexts.Value is not { } control)
        {
            return null;
        }

        var at = text.AsSpan().IndexOfAny(control.Search);
        return at < 0 ? null : SpellingAt(control.Texts, text.AsSpan(at));
    }

    /// <summary>The longest control-token text that <paramref name="text"/> starts with (one does: the searcher found it).</summary>
    private static string SpellingAt(string[] longestFirst, ReadOnlySpan<char> text)
    {
        foreach (var spelling in longestFirst)
        {
            if (text.StartsWith(spelling, StringComparison.Ordinal))
            {
                return spelling;
            }
        }

        throw new InvalidOperationException("The searcher found a control token's text that none of them starts.");
    }

    /// <summary>
    /// The messages with every spelling of a control token in their text replaced by a marker, and what each marker
    /// stands for; null when no message spells one.
    /// </summary>
    private MarkedTurns? MarkControlTexts(IReadOnlyList<ChatTurn> messages)
    {
        if (_controlTexts.Value is not { } control || !messages.Any(m => SpelledControlToken(m.Content) is not null))
        {
            return null;
        }

        // A private-use character that no message holds: the template writes no such character of its own.
        var marker = '\uE000';
        while (messages.Any(m => m.Content?.Contains(marker, StringComparison.Ordinal) == true || m.Name?.Contains(marker, StringComparison.Ordinal) == true))
        {
            marker++;
        }

        var spelled = new List<string>();
        var turns = new ChatTurn[messages.Count];
        for (var i = 0; i < messages.Count; i++)
        {
            var content = messages[i].Content;
            if (SpelledControlToken(content) is null)
            {
                turns[i] = messages[i];
                continue;
            }

            var text = new StringBuilder(content.Length + 16);
            var rest = content.AsSpan();
            while (rest.IndexOfAny(control.Search) is var at && at >= 0)
            {
                var token = SpellingAt(control.Texts, rest[at..]);
                text.Append(rest[..at]).Append(marker).Append(spelled.Count.ToString(CultureInfo.InvariantCulture)).Append(marker);
                spelled.Add(token);
                rest = rest[(at + token.Length)..];
            }

            text.Append(rest);
            turns[i] = messages[i] with { Content = text.ToString() };
        }

        return new MarkedTurns(turns, marker, spelled);
    }

    /// <summary>
    /// Tokenizes a prompt rendered from marked messages: the template's text with special tokens parsed, each marked
    /// spelling as text. A marker the template did not keep whole is refused: the spelling's place is then unknown.
    /// </summary>
    private int[] TokenizeMarked(string rendered, MarkedTurns marked, bool addBos, int? maxTokens, string parameter)
    {
        var parts = rendered.Split(marked.Marker);
        if (parts.Length % 2 == 0)
        {
            throw ControlTextNotKept(marked);
        }

        var tokens = new List<int>(rendered.Length / 2);
        for (var i = 0; i < parts.Length; i++)
        {
            if (i % 2 == 1)
            {
                if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out var index) || index >= marked.Spelled.Count)
                {
                    throw ControlTextNotKept(marked);
                }

                var spelling = marked.Spelled[index];
                Interlocked.Add(ref _tokenizedCharacters, spelling.Length);
                foreach (var token in Weights.Tokenize(spelling, false, special: false, Encoding.UTF8))
                {
                    tokens.Add((int)token);
                }
            }
            else if (parts[i].Length > 0 || (i == 0 && addBos))
            {
                tokens.AddRange(maxTokens is { } max
                    ? TokenizeWithin(parts[i], max, i == 0 && addBos, "the prompt", parameter)
                    : Tokenize(parts[i], i == 0 && addBos));
            }

            if (maxTokens is { } limit && tokens.Count > limit)
            {
                throw new ContextLengthExceededException("the prompt", limit, tokens.Count, isExact: i == parts.Length - 1, parameter, ContextLengthAbove(limit));
            }
        }

        return [.. tokens];
    }

    private static InvalidGenerationRequestException ControlTextNotKept(MarkedTurns marked) => new(
        $"A message spells one of this model's control tokens ('{marked.Spelled[0]}'), which is read as text, but the model's chat template did not keep the message's text as written; leave the token out.",
        "messages", "invalid_value");

    /// <summary>Messages with their spellings of control tokens marked.</summary>
    /// <param name="Turns">The messages, spellings replaced by markers.</param>
    /// <param name="Marker">The marker character (a marker is it, the spelling's index, it again).</param>
    /// <param name="Spelled">The spellings, by index.</param>
    private sealed record MarkedTurns(IReadOnlyList<ChatTurn> Turns, char Marker, List<string> Spelled);
}
