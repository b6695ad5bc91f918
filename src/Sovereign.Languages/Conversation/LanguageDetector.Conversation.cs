using System.Text;

namespace Sovereign.Languages;

public sealed partial class LanguageDetector
{
    /// <summary>The default of <see cref="LanguageDetectorOptions.StandAloneLetters"/>.</summary>
    public const int DefaultStandAloneLetters = 24;

    /// <summary>The default of <see cref="LanguageDetectorOptions.ConversationCharacters"/>: the user turns read, newest
    /// first, back to the most recent one that stands alone (see <see cref="DetectConversation"/>).</summary>
    public const int DefaultConversationCharacters = 300;

    [ThreadStatic]
    private static StringBuilder? t_sample;

    private int StandAloneLetters => _options.StandAloneLetters;

    private int ConversationCharacters => _options.ConversationCharacters;

    /// <summary>
    /// The language of a conversation. The last user message decides when it is itself clearly in a language (a
    /// determined language and at least <see cref="LanguageDetectorOptions.StandAloneLetters"/> letters): someone who switches language is
    /// answered in the new one. Otherwise the user turns are read together, newest first, back to the most recent
    /// one that stands alone (or until they hold twice its letters, at most <see cref="LanguageDetectorOptions.ConversationCharacters"/>): the
    /// language spoken now, in which a short last message counts for what its letters are worth and no more ("ok"
    /// after Thai turns is Thai; "ขอบคุณ" after English turns is English; English turns, then a Thai one, then "ok"
    /// are Thai). The instructions
    /// (system, developer) count only when the user turns name no language at all: an English boilerplate system
    /// prompt must not outvote a user who writes Thai, while a Thai system prompt decides for a first "ok". Assistant
    /// and tool turns never count (the client writes them too, and the model's answer follows the routing). At most
    /// <see cref="LanguageDetectorOptions.MaxCharacters"/> characters of the last message and
    /// <see cref="LanguageDetectorOptions.ConversationCharacters"/> of the conversation are read, however long the history.
    /// </summary>
    public LanguageDetection DetectConversation(PromptText prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var turns = prompt.Turns;
        var last = LastIndexOf(turns, PromptRole.User);
        if (last < 0)
        {
            // No user turn: the last turn's text, whatever wrote it.
            return Detect(turns.Count > 0 ? turns[^1].Text : null);
        }

        var lastText = turns[last].Text;
        var alone = Detect(lastText);
        var standsAlone = HasLetters(lastText, StandAloneLetters);
        // A determined last message decides when it stands alone, or when no other user turn could outvote it (one
        // question, the common case: no sample is built).
        if (alone.IsDetermined && (standsAlone || LastIndexOf(turns, PromptRole.User, last - 1) < 0))
        {
            return alone;
        }

        // A long last message the detector cannot place (a pasted log, code) says nothing: the turns before it decide.
        var sample = Sample();
        var users = AppendNewestFirst(sample, turns, PromptRole.User, standsAlone ? last - 1 : last);
        var conversation = users == 0 ? alone
            : users == 1 && !standsAlone ? alone // the last message alone: already read
            : Detect(sample.ToString());
        if (conversation.IsDetermined)
        {
            return conversation;
        }

        // The user's words name no language ("ok", "2"): the instructions may. Only then, so that an English
        // boilerplate system prompt does not outvote a user who writes Thai.
        if (sample.Length < ConversationCharacters && AppendNewestFirst(sample, turns, PromptRole.Instructions, turns.Count - 1) > 0
            && Detect(sample.ToString()) is { IsDetermined: true } instructed)
        {
            return instructed;
        }

        return alone;
    }

    /// <summary>
    /// This thread's sample, emptied: detection never awaits, so no other use interleaves. A short last message that
    /// names no language (a greeting) built one per request, the largest allocation of the request's detection.
    /// </summary>
    private StringBuilder Sample()
    {
        var sample = t_sample;
        if (sample is null || sample.Capacity > 4 * ConversationCharacters)
        {
            t_sample = sample = new StringBuilder(ConversationCharacters);
        }

        return sample.Clear();
    }

    private static int LastIndexOf(IReadOnlyList<PromptTurn> turns, PromptRole role) => LastIndexOf(turns, role, turns.Count - 1);

    private static int LastIndexOf(IReadOnlyList<PromptTurn> turns, PromptRole role, int from)
    {
        for (var i = from; i >= 0; i--)
        {
            if (turns[i].Role == role)
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>
    /// Appends the turns of a role from <paramref name="from"/> back to the first, newest first, until one that stands
    /// alone has been added (the most recent substantial turn says most about the language spoken now), the sample
    /// holds twice as many letters as one that does, or it is full; returns how many were added.
    /// </summary>
    private int AppendNewestFirst(StringBuilder sample, IReadOnlyList<PromptTurn> turns, PromptRole role, int from)
    {
        var appended = 0;
        for (var i = from; i >= 0 && sample.Length < ConversationCharacters && !HasLetters(sample, 2 * StandAloneLetters); i--)
        {
            if (turns[i].Role != role || string.IsNullOrWhiteSpace(turns[i].Text))
            {
                continue;
            }

            if (sample.Length > 0)
            {
                sample.Append('\n');
            }

            var text = turns[i].Text;
            var take = Math.Min(text.Length, ConversationCharacters - sample.Length);
            if (take < text.Length && take > 0 && char.IsHighSurrogate(text[take - 1]))
            {
                take--;
            }

            sample.Append(text, 0, take);
            appended++;
            if (HasLetters(text, StandAloneLetters))
            {
                break;
            }
        }

        return appended;
    }

    private static bool HasLetters(StringBuilder text, int count)
    {
        var letters = 0;
        foreach (var chunk in text.GetChunks())
        {
            foreach (var rune in chunk.Span.EnumerateRunes())
            {
                if (Rune.IsLetter(rune) && ++letters >= count)
                {
                    return true;
                }
            }
        }

        return false;
    }

    /// <summary>Whether a text has at least <paramref name="count"/> letters (stops counting there).</summary>
    private static bool HasLetters(string? text, int count)
    {
        if (text is null)
        {
            return false;
        }

        var letters = 0;
        foreach (var rune in text.EnumerateRunes())
        {
            if (Rune.IsLetter(rune) && ++letters >= count)
            {
                return true;
            }
        }

        return false;
    }
}
