namespace Sovereign.Metering.Pricing;

/// <summary>
/// The billing rule for tokens: a request is billed for the tokens counted, unless its plan bills its language per
/// character-equivalent (the language tax is waived), in which case it is billed for as many tokens as the same text
/// would take in English on the same model, never more than counted.
/// </summary>
public sealed class BilledTokens
{
    private readonly Dictionary<string, HashSet<string>> _characterEquivalent;

    /// <summary>
    /// Creates the rule from the plans that bill per character-equivalent and their languages (BCP 47, any case).
    /// Plan names compare as the price book compares them (case-insensitive).
    /// </summary>
    public BilledTokens(IEnumerable<KeyValuePair<string, IEnumerable<string>>> characterEquivalentLanguagesByPlan)
    {
        ArgumentNullException.ThrowIfNull(characterEquivalentLanguagesByPlan);
        _characterEquivalent = characterEquivalentLanguagesByPlan.ToDictionary(
            p => p.Key, p => p.Value.ToHashSet(StringComparer.OrdinalIgnoreCase), StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>True when <paramref name="plan"/> bills <paramref name="language"/> per character-equivalent.</summary>
    public bool AppliesTo(string plan, string? language) =>
        language is not null && _characterEquivalent.TryGetValue(plan, out var languages) && languages.Contains(language);

    /// <summary>
    /// The tokens to bill. <paramref name="ratioToEnglish"/> is the language's tokens per character over English's on
    /// the model (its language tax; null when unknown), asked for only when the plan bills the language per
    /// character-equivalent. A ratio at or below 1 (no tax) bills as counted; rounding is up, per direction.
    /// </summary>
    public (int Prompt, int Completion) For(string plan, string? language, int promptTokens, int completionTokens, Func<double?> ratioToEnglish)
    {
        ArgumentNullException.ThrowIfNull(ratioToEnglish);
        if (!AppliesTo(plan, language) || ratioToEnglish() is not { } ratio || !(ratio > 1.0))
        {
            return (promptTokens, completionTokens);
        }

        return ((int)Math.Ceiling(promptTokens / ratio), (int)Math.Ceiling(completionTokens / ratio));
    }
}
