namespace Sovereign.Languages;

/// <summary>The share of a prompt's letters written in one language (<see cref="LanguageDetector.ShareOf"/>).</summary>
/// <param name="Language">The language measured.</param>
/// <param name="LanguageLetters">Letters counted as the language's.</param>
/// <param name="PromptLetters">Letters of the whole prompt, every turn.</param>
/// <param name="Basis"><see cref="ByScript"/> or <see cref="ByDetection"/>: how its letters were told from the rest.</param>
public sealed record LanguageShare(string Language, long LanguageLetters, long PromptLetters, string Basis)
{
    /// <summary>The language alone writes its script here: every letter of that script in the prompt is its.</summary>
    public const string ByScript = "script";

    /// <summary>Its script is shared (Latin, Cyrillic, Arabic, Devanagari): only letters of passages detected as the
    /// language count, and only in the most recent <see cref="LanguageDetectorOptions.ShareCharacters"/> characters.</summary>
    public const string ByDetection = "detected";

    /// <summary>The language's letters over the prompt's, 0..1 (0 for a prompt without letters).</summary>
    public double Share => PromptLetters == 0 ? 0 : (double)LanguageLetters / PromptLetters;
}

public sealed partial class LanguageDetector
{
    /// <summary>The default of <see cref="LanguageDetectorOptions.ShareCharacters"/>.</summary>
    public const int DefaultShareCharacters = 2_000;

    /// <summary>Characters of a prompt, newest first, read passage by passage for <see cref="ShareOf(PromptText, string)"/>
    /// when the language's script is shared; letters before them are not counted as the language's.</summary>
    public int ShareCharacters => _options.ShareCharacters;

    // The detector reads 500 characters at most; its cost is mostly per call, so passages are as long as it reads.
    private const int SharePassageCharacters = 500;

    /// <summary>
    /// The share of a prompt's letters (every turn: instructions, user, assistant and tool text) written in
    /// <paramref name="language"/>. Where the language alone among the configured ones writes its scripts (Thai,
    /// Khmer, Tamil, Hangul...), every letter of them counts, however long the prompt: a linear count of letters, no
    /// detection. Where a script is shared (Latin, Cyrillic, Arabic, Devanagari, Ethiopic), its letters count only in
    /// passages of the most recent <see cref="ShareCharacters"/> characters that the detector reads as the language;
    /// the rest of the prompt does not, so that no text the detector has not read is billed as the language.
    /// </summary>
    public LanguageShare ShareOf(PromptText prompt, string language)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(language);
        if (!LanguageCatalog.TryGet(language, out var descriptor))
        {
            return new LanguageShare(language, 0, Letters(prompt), LanguageShare.ByScript);
        }

        var code = descriptor.Code;
        var scripts = Scripts.Where(descriptor.WritesIn).ToArray();
        long promptLetters = 0, languageLetters = 0;
        foreach (var turn in prompt.Turns)
        {
            var profile = ScriptProfile.Analyze(turn.Text);
            promptLetters += profile.TotalLetters;
            languageLetters += scripts.Sum(s => profile[s]);
        }

        var shared = scripts.Any(s => SharedScripts.Contains(s) || (_owners.TryGetValue(s, out var owner) && owner != code));
        if (!shared || languageLetters == 0)
        {
            return new LanguageShare(code, languageLetters, promptLetters, LanguageShare.ByScript);
        }

        long detected = 0;
        var budget = ShareCharacters;
        for (var i = prompt.Turns.Count - 1; i >= 0 && budget > 0; i--)
        {
            var text = prompt.Turns[i].Text;
            // Newest passages first: the end of the turn back to its start.
            for (var end = text.Length; end > 0 && budget > 0;)
            {
                var start = Math.Max(0, end - Math.Min(Math.Min(SharePassageCharacters, _options.MaxCharacters), budget));
                if (start > 0 && char.IsLowSurrogate(text[start]))
                {
                    start--;
                }

                var passage = text[start..end];
                budget -= passage.Length;
                end = start;
                var profile = ScriptProfile.Analyze(passage);
                var letters = scripts.Sum(s => profile[s]);
                if (letters > 0 && Detect(passage).Language == code)
                {
                    detected += letters;
                }
            }
        }

        return new LanguageShare(code, detected, promptLetters, LanguageShare.ByDetection);
    }

    /// <summary>
    /// The share of a text gathered in a <see cref="LetterSample"/> (a completion as delivered) written in
    /// <paramref name="language"/>. Where the language alone writes its scripts, every letter of them counts (the
    /// sample's exact count). Where a script is shared, the sample's newest passages count for the letters the detector
    /// reads as the language, and its passages drawn from the rest stand for the rest: the rest's letters of the script
    /// times the share of them the drawn passages were read as the language (exact when every passage was kept).
    /// </summary>
    public LanguageShare ShareOf(LetterSample text, string language)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(language);
        if (!LanguageCatalog.TryGet(language, out var descriptor))
        {
            return new LanguageShare(language, 0, text.Letters, LanguageShare.ByScript);
        }

        var code = descriptor.Code;
        var scripts = Scripts.Where(descriptor.WritesIn).ToArray();
        var scriptLetters = scripts.Sum(text.LettersOf);
        var shared = scripts.Any(s => SharedScripts.Contains(s) || (_owners.TryGetValue(s, out var owner) && owner != code));
        if (!shared || scriptLetters == 0)
        {
            return new LanguageShare(code, scriptLetters, text.Letters, LanguageShare.ByScript);
        }

        var (newest, sampled, earlier) = text.Passages();
        var (newestLetters, newestDetected) = Read(newest);
        var (sampledLetters, sampledDetected) = Read(sampled);
        var earlierLetters = Math.Max(0, scriptLetters - newestLetters);
        var earlierDetected = earlier <= sampled.Count ? sampledDetected
            : sampledLetters == 0 ? 0
            : (long)((Int128)earlierLetters * sampledDetected / sampledLetters);
        return new LanguageShare(code, newestDetected + earlierDetected, text.Letters, LanguageShare.ByDetection);

        (long Letters, long Detected) Read(IReadOnlyList<string> passages)
        {
            long letters = 0, detected = 0;
            foreach (var passage in passages)
            {
                var profile = ScriptProfile.Analyze(passage);
                var inScript = scripts.Sum(s => profile[s]);
                letters += inScript;
                if (inScript > 0 && Detect(passage).Language == code)
                {
                    detected += inScript;
                }
            }

            return (letters, detected);
        }
    }

    private static long Letters(PromptText prompt) => prompt.Turns.Sum(t => (long)ScriptProfile.Analyze(t.Text).TotalLetters);
}
