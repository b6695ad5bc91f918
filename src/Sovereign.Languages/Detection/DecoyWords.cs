namespace Sovereign.Languages;

/// <summary>
/// Round 28 (session 46): a decoy's function words (<see cref="FunctionWordDecoys"/>) and the words whose spelling points
/// to it (<see cref="SpellingDecoys"/>) counted together. Each rule alone needs two words, so a Scots sentence with one
/// listed word (<c>oor</c>) and one marked spelling (<c>nicht</c>), or an Interlingua one with <c>hodie</c> and
/// <c>station</c>, stayed English or Spanish; together they are two distinct words of one decoy, and a word both rules
/// mark counts once. The same two-word bar as each rule alone; the covered-sentence guards cover it
/// (<c>LetterMixturesTests.DecoyWords_CoveredSentences_NeverTaken</c>).
/// </summary>
internal static class DecoyWords
{
    /// <summary>For a normalised text answered as <paramref name="language"/>, the decoy whose listed words and marked
    /// spellings together reach <see cref="FunctionWordDecoys.MinimumWords"/>, and how many distinct words, or null.</summary>
    public static (string Language, int Words)? Evaluate(string normalized, string language)
    {
        var marked = SpellingDecoys.Marked(normalized, language);
        if (marked.Count == 0)
        {
            return null;
        }

        foreach (var (decoy, listed) in FunctionWordDecoys.Found(normalized, language))
        {
            if (!marked.TryGetValue(decoy, out var spelled))
            {
                continue;
            }

            var together = new HashSet<string>(listed, StringComparer.Ordinal);
            together.UnionWith(spelled);
            if (FunctionWordDecoys.Weight(together) >= FunctionWordDecoys.MinimumWords)
            {
                return (decoy, together.Count);
            }
        }

        return null;
    }
}
