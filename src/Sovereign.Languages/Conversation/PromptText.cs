namespace Sovereign.Languages;

/// <summary>Who wrote a turn of a prompt, as far as its language is concerned.</summary>
public enum PromptRole
{
    /// <summary>The user's own words (chat's <c>user</c>; the prompt of a completion, the input of an embedding).</summary>
    User,

    /// <summary>The operator's or the application's instructions (<c>system</c>, <c>developer</c>, Responses' <c>instructions</c>).</summary>
    Instructions,

    /// <summary>Text the request carries that neither wrote as such (<c>assistant</c>, <c>tool</c>; the other prompts of a batch):
    /// billed as prompt, never a sign of the conversation's language.</summary>
    Other,
}

/// <summary>One turn of a prompt.</summary>
/// <param name="Role">Who wrote it.</param>
/// <param name="Text">Its text, as sent.</param>
public readonly record struct PromptTurn(PromptRole Role, string Text);

/// <summary>
/// The text of a request, turn by turn in the order sent, for deciding its language
/// (<see cref="LanguageDetector.DetectConversation"/>) and the share of it a language writes
/// (<see cref="LanguageDetector.ShareOf"/>).
/// </summary>
public sealed class PromptText
{
    /// <summary>A prompt of these turns, oldest first.</summary>
    public PromptText(IReadOnlyList<PromptTurn> turns)
    {
        ArgumentNullException.ThrowIfNull(turns);
        Turns = turns;
    }

    /// <summary>No text (a prompt of token ids).</summary>
    public static PromptText Empty { get; } = new([]);

    /// <summary>The turns, oldest first.</summary>
    public IReadOnlyList<PromptTurn> Turns { get; }

    /// <summary>One text the user wrote.</summary>
    public static PromptText Of(string text) => new([new PromptTurn(PromptRole.User, text ?? "")]);

    /// <summary>One text the user wrote.</summary>
    public static implicit operator PromptText(string text) => Of(text);
}
