using Sovereign.Gateway.OpenAI;
using Sovereign.Inference.Engine;
using Sovereign.Languages;

namespace Sovereign.Gateway.Pipeline;

/// <summary>A request's text as its language is decided and its language tax measured (<see cref="Workload.LanguageSample"/>).</summary>
internal static class PromptTexts
{
    /// <summary>Chat turns (chat completions, Responses): user turns speak for the conversation, system and developer
    /// turns are instructions, assistant and tool turns only count as prompt. The tool definitions and the calls an
    /// assistant turn made are rendered into the prompt and billed as its tokens, so their letters count as prompt too:
    /// left out, English text sent there was billed at a waived language's rate when the messages were in it.</summary>
    public static PromptText Of(IReadOnlyList<ChatTurn> turns, ChatTools? tools = null)
    {
        var definitions = tools?.Definitions;
        var texts = new List<PromptTurn>(turns.Count + (definitions?.Count ?? 0));
        // Before the messages, where templates render them; never last, so a prompt's language is read as before.
        // Loops, not LINQ: every governed chat request builds this (an iterator and a boxed enumerator per call).
        if (definitions is not null)
        {
            for (var d = 0; d < definitions.Count; d++)
            {
                texts.Add(new PromptTurn(PromptRole.Other, definitions[d].GetRawText()));
            }
        }

        for (var i = 0; i < turns.Count; i++)
        {
            var turn = turns[i];
            if (turn.ToolCalls is { } calls)
            {
                for (var c = 0; c < calls.Count; c++)
                {
                    texts.Add(new PromptTurn(PromptRole.Other, $"{calls[c].Name} {calls[c].Arguments}"));
                }
            }

            texts.Add(new PromptTurn(
                turn.Role switch { "user" => PromptRole.User, "system" or "developer" => PromptRole.Instructions, _ => PromptRole.Other },
                turn.Content ?? ""));
        }

        return new(texts);
    }

    /// <summary>A batch of texts (prompts, embedding inputs): the first speaks for the request, as before; the others
    /// count as prompt.</summary>
    public static PromptText OfBatch(IReadOnlyList<string> texts) =>
        new([.. texts.Select((t, i) => new PromptTurn(i == 0 ? PromptRole.User : PromptRole.Other, t ?? ""))]);
}
