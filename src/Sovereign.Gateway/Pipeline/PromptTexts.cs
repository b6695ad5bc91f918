using Sovereign.Inference.Engine;
using Sovereign.Languages;

namespace Sovereign.Gateway.Pipeline;

/// <summary>A request's text as its language is decided and its language tax measured (<see cref="Workload.LanguageSample"/>).</summary>
internal static class PromptTexts
{
    /// <summary>Chat turns (chat completions, Responses): user turns speak for the conversation, system and developer
    /// turns are instructions, assistant and tool turns only count as prompt.</summary>
    public static PromptText Of(IReadOnlyList<ChatTurn> turns) =>
        new([.. turns.Select(t => new PromptTurn(
            t.Role switch { "user" => PromptRole.User, "system" or "developer" => PromptRole.Instructions, _ => PromptRole.Other },
            t.Content ?? ""))]);

    /// <summary>A batch of texts (prompts, embedding inputs): the first speaks for the request, as before; the others
    /// count as prompt.</summary>
    public static PromptText OfBatch(IReadOnlyList<string> texts) =>
        new([.. texts.Select((t, i) => new PromptTurn(i == 0 ? PromptRole.User : PromptRole.Other, t ?? ""))]);
}
