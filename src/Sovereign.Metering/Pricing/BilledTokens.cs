namespace Sovereign.Metering.Pricing;

/// <summary>
/// What a waived request's bill rests on, for its audit entry: an auditor recomputes the billed tokens from it.
/// </summary>
/// <param name="Language">The waived language (the request's).</param>
/// <param name="RatioToEnglish">The language's tokens per character over English's on the model (its language tax).</param>
/// <param name="LanguageLetters">Letters of the prompt counted as the language's.</param>
/// <param name="PromptLetters">Letters of the whole prompt, every turn.</param>
/// <param name="Method">How the language's letters were told from the rest (<c>script</c>, <c>detected</c>).</param>
public sealed record CharacterEquivalentBasis(string Language, double RatioToEnglish, long LanguageLetters, long PromptLetters, string Method)
{
    /// <summary>Letters of the completion counted as the language's (the completion's tokens are billed at its own mix).</summary>
    public long CompletionLanguageLetters { get; init; }

    /// <summary>Letters of the completion, every choice.</summary>
    public long CompletionLetters { get; init; }

    /// <summary>The language's share of the prompt's letters, 0..1.</summary>
    public double Share => ShareOf(LanguageLetters, PromptLetters);

    /// <summary>The language's share of the completion's letters, 0..1.</summary>
    public double CompletionShare => ShareOf(CompletionLanguageLetters, CompletionLetters);

    /// <summary>
    /// The prompt's tokens per character over English's, estimated from its letters: the language's at
    /// <see cref="RatioToEnglish"/>, the rest at English's, <c>1 + share × (ratio − 1)</c>. The tokens divided by it are
    /// what the same text would take if the language cost what English does.
    /// </summary>
    public double EffectiveRatio => EffectiveRatioAt(Share);

    /// <summary>The same for the completion, from its own letters.</summary>
    public double CompletionEffectiveRatio => EffectiveRatioAt(CompletionShare);

    private double EffectiveRatioAt(double share) => 1 + (share * (RatioToEnglish - 1));

    private static double ShareOf(long language, long all) => all <= 0 ? 0 : Math.Clamp((double)language / all, 0, 1);
}

/// <summary>
/// The billing rule for tokens: a request is billed for the tokens counted, unless its plan bills its language per
/// character-equivalent (the language tax is waived). Then the waiver covers the share of the text written in that
/// language and no more: prompt tokens are divided by the prompt's letter-weighted ratio
/// (<see cref="CharacterEquivalentBasis.EffectiveRatio"/>), completion tokens by the completion's
/// (<see cref="CharacterEquivalentBasis.CompletionEffectiveRatio"/>), so a prompt all in the language is billed as the
/// same text in English would be, and English text that ends in a few characters of the language is billed as English.
/// Never more than counted.
/// </summary>
public sealed class BilledTokens
{
    private readonly Dictionary<string, HashSet<string>> _characterEquivalent;
    private readonly Func<IReadOnlyCollection<string>, string, string?, bool> _covers;

    /// <summary>
    /// Creates the rule from the plans that bill per character-equivalent and their languages (BCP 47, any case).
    /// Plan names compare as the price book compares them (case-insensitive). <paramref name="covers"/> says whether a
    /// plan's languages cover a request's language, given the close group whose member the detector did not decide (the
    /// gateway passes the language groups' rule: a group named covers its members, a member named only a decided
    /// member); without it a plan covers exactly the languages it names, and never a language whose member was not
    /// decided (fail closed).
    /// </summary>
    public BilledTokens(IEnumerable<KeyValuePair<string, IEnumerable<string>>> characterEquivalentLanguagesByPlan, Func<IReadOnlyCollection<string>, string, string?, bool>? covers = null)
    {
        ArgumentNullException.ThrowIfNull(characterEquivalentLanguagesByPlan);
        _characterEquivalent = characterEquivalentLanguagesByPlan.ToDictionary(
            p => p.Key, p => p.Value.ToHashSet(StringComparer.OrdinalIgnoreCase), StringComparer.OrdinalIgnoreCase);
        _covers = covers ?? ((languages, language, undecidedGroup) => undecidedGroup is null && languages.Contains(language));
    }

    /// <summary>True when <paramref name="plan"/> bills some language per character-equivalent.</summary>
    public bool WaivesAny(string plan) => _characterEquivalent.TryGetValue(plan, out var languages) && languages.Count > 0;

    /// <summary>True when <paramref name="plan"/> bills <paramref name="language"/> per character-equivalent;
    /// <paramref name="undecidedGroup"/> is the close group when the detector did not decide the member (<c>hbs</c>,
    /// <c>msa</c>), else null.</summary>
    public bool AppliesTo(string plan, string? language, string? undecidedGroup = null) =>
        language is not null && _characterEquivalent.TryGetValue(plan, out var languages) && _covers(languages, language, undecidedGroup);

    /// <summary>
    /// The tokens to bill, and the waiver's basis when one applies. <paramref name="ratioToEnglish"/> is the
    /// language's language tax on the model (null when unknown) and <paramref name="letters"/> the prompt's letters in
    /// the language and in all (with how they were told apart), <paramref name="completionLetters"/> the completion's
    /// (its own mix bills its tokens; left out, the prompt's does); all are asked for only when the plan bills the
    /// language per character-equivalent. A ratio at or below 1 (no tax) bills as counted; rounding is up, per direction.
    /// <paramref name="undecidedGroup"/> is the close group whose member the detector did not decide (see
    /// <see cref="AppliesTo"/>).
    /// </summary>
    public (int Prompt, int Completion, CharacterEquivalentBasis? Basis) For(
        string plan, string? language, int promptTokens, int completionTokens, Func<double?> ratioToEnglish, Func<(long Language, long Prompt, string Method)> letters,
        Func<(long Language, long Completion)>? completionLetters = null, string? undecidedGroup = null)
    {
        ArgumentNullException.ThrowIfNull(ratioToEnglish);
        ArgumentNullException.ThrowIfNull(letters);
        if ((promptTokens == 0 && completionTokens == 0) || !AppliesTo(plan, language, undecidedGroup) || ratioToEnglish() is not { } ratio || !(ratio > 1.0))
        {
            return (promptTokens, completionTokens, null);
        }

        var (languageLetters, promptLetters, method) = letters();
        // The completion is billed at its own mix of letters: an English answer to a Thai question is billed per token.
        var (completionLanguage, completionAll) = completionTokens > 0 && completionLetters is not null ? completionLetters() : (languageLetters, promptLetters);
        var basis = new CharacterEquivalentBasis(language!, ratio, languageLetters, promptLetters, method)
        {
            CompletionLanguageLetters = completionLanguage,
            CompletionLetters = completionAll,
        };
        return ((int)Math.Ceiling(promptTokens / basis.EffectiveRatio), (int)Math.Ceiling(completionTokens / basis.CompletionEffectiveRatio), basis);
    }
}
