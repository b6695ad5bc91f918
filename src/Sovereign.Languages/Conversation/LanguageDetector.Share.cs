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

    /// <summary>Its script is shared (Latin, Cyrillic, Arabic, Devanagari): letters of passages detected as the language
    /// count, the newest passages read whole and passages drawn from the rest standing for it
    /// (<see cref="LanguageDetectorOptions.ShareCharacters"/>).</summary>
    public const string ByDetection = "detected";

    /// <summary>The language's letters over the prompt's, 0..1 (0 for a prompt without letters).</summary>
    public double Share => PromptLetters == 0 ? 0 : (double)LanguageLetters / PromptLetters;
}

public sealed partial class LanguageDetector
{
    /// <summary>The default of <see cref="LanguageDetectorOptions.ShareCharacters"/>.</summary>
    public const int DefaultShareCharacters = 2_000;

    /// <summary>Characters of a prompt (or a completion) the detector reads for <see cref="ShareOf(PromptText, string, int)"/>
    /// when the language's script is shared: half of them the newest text, half passages drawn from the rest.</summary>
    public int ShareCharacters => _options.ShareCharacters;

    // The detector reads 500 characters at most; its cost is mostly per call, so passages are as long as it reads.
    private const int SharePassageCharacters = 500;

    /// <summary>
    /// The share of a prompt's letters (every turn: instructions, user, assistant and tool text) written in
    /// <paramref name="language"/>. Where the language alone among the configured ones writes its scripts (Thai,
    /// Khmer, Tamil, Hangul...), every letter of them counts, however long the prompt: a linear count of letters, no
    /// detection. Where a script is shared (Latin, Cyrillic, Arabic, Devanagari, Ethiopic), the prompt is cut into
    /// passages as long as the detector reads (each within a turn, from its end) and
    /// <see cref="LanguageDetectorOptions.ShareCharacters"/> characters of them are read: the newest half whole, their
    /// letters counted as the language's where the detector reads them as it; and passages drawn at random (with
    /// <paramref name="seed"/>) from all the earlier ones, which stand for the rest of the prompt: its letters of the
    /// script times the share of the drawn passages' letters read as the language. A prompt no longer than that is
    /// read whole and counted exactly; a longer one costs the same detection work, and is judged over all of its text
    /// (before, only its newest 2,000 characters could count, so a long text in the language was billed mostly per token).
    /// </summary>
    public LanguageShare ShareOf(PromptText prompt, string language, int seed = 0)
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
            // The one pass over the whole prompt; the detector reads only the passages chosen below.
            var profile = ScriptProfile.Analyze(turn.Text);
            promptLetters += profile.TotalLetters;
            languageLetters += scripts.Sum(s => profile[s]);
        }

        var shared = scripts.Any(s => SharedScripts.Contains(s) || (_owners.TryGetValue(s, out var owner) && owner != code));
        if (!shared || languageLetters == 0)
        {
            return new LanguageShare(code, languageLetters, promptLetters, LanguageShare.ByScript);
        }

        var length = Math.Min(SharePassageCharacters, _options.MaxCharacters);
        var (newest, sampled) = SharePassages(_options);
        var total = 0;
        foreach (var _ in PassagesNewestFirst(prompt, length))
        {
            total++;
        }

        var drawn = Draw(total, newest, sampled, seed);
        long newestLetters = 0, newestDetected = 0, drawnLetters = 0, drawnDetected = 0;
        var index = 0;
        foreach (var (turn, start, end) in PassagesNewestFirst(prompt, length))
        {
            if (index < newest || drawn.Contains(index))
            {
                var passage = prompt.Turns[turn].Text[start..end];
                var profile = ScriptProfile.Analyze(passage);
                var letters = scripts.Sum(s => profile[s]);
                var detected = letters > 0 && Detect(passage).Language == code ? letters : 0;
                if (index < newest)
                {
                    (newestLetters, newestDetected) = (newestLetters + letters, newestDetected + detected);
                }
                else
                {
                    (drawnLetters, drawnDetected) = (drawnLetters + letters, drawnDetected + detected);
                }
            }

            index++;
        }

        var earlierLetters = Math.Max(0, languageLetters - newestLetters);
        var earlierDetected = total - newest <= sampled ? drawnDetected
            : drawnLetters == 0 ? 0
            : (long)((Int128)earlierLetters * drawnDetected / drawnLetters);
        return new LanguageShare(code, newestDetected + earlierDetected, promptLetters, LanguageShare.ByDetection);
    }

    /// <summary>
    /// How <see cref="LanguageDetectorOptions.ShareCharacters"/> is read: passages of the newest text, and passages
    /// drawn from the rest (half each, the newest getting the odd one).
    /// </summary>
    public static (int Newest, int Sampled) SharePassages(LanguageDetectorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var passages = Math.Max(1, options.ShareCharacters / Math.Min(SharePassageCharacters, options.MaxCharacters));
        var newest = (passages + 1) / 2;
        return (newest, passages - newest);
    }

    /// <summary>A sample to gather a completion in, read as a prompt is (<see cref="SharePassages"/>).</summary>
    public static LetterSample NewSample(LanguageDetectorOptions options, int seed)
    {
        var (newest, sampled) = SharePassages(options);
        return new LetterSample(Math.Min(SharePassageCharacters, options.MaxCharacters), newest, sampled, seed);
    }

    /// <summary>A prompt's passages, newest first: turns from the last, each from its end back to its start.</summary>
    private static IEnumerable<(int Turn, int Start, int End)> PassagesNewestFirst(PromptText prompt, int length)
    {
        for (var i = prompt.Turns.Count - 1; i >= 0; i--)
        {
            var text = prompt.Turns[i].Text;
            for (var end = text.Length; end > 0;)
            {
                var start = Math.Max(0, end - length);
                if (start > 0 && char.IsLowSurrogate(text[start]))
                {
                    start--;
                }

                yield return (i, start, end);
                end = start;
            }
        }
    }

    /// <summary>
    /// Which of the passages after the <paramref name="newest"/> ones are read: all when there are no more than
    /// <paramref name="sampled"/>, else that many drawn without repeats, every one as likely (Floyd's algorithm).
    /// </summary>
    private static HashSet<int> Draw(int total, int newest, int sampled, int seed)
    {
        var earlier = total - newest;
        if (earlier <= sampled)
        {
            return [.. Enumerable.Range(newest, Math.Max(0, earlier))];
        }

        var random = new Random(seed);
        var drawn = new HashSet<int>();
        for (var j = earlier - sampled; j < earlier; j++)
        {
            var pick = random.Next(j + 1);
            drawn.Add(drawn.Contains(newest + pick) ? newest + j : newest + pick);
        }

        return drawn;
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
