using System.Globalization;
using System.Text;

namespace Sovereign.Languages;

/// <summary>What one language costs on one model.</summary>
/// <param name="Language">Language code.</param>
/// <param name="Name">English name.</param>
/// <param name="Characters">Characters of the reference text, counted as grapheme clusters (text elements).</param>
/// <param name="Tokens">Tokens the model's tokenizer makes of it.</param>
/// <param name="TokensPer1000Characters">Tokens per 1,000 characters.</param>
/// <param name="RatioToEnglish">Tokens per character relative to English (1.0 = as dense as English). The language tax
/// as the issue defines it.</param>
/// <param name="ContentRatioToEnglish">Tokens for the whole declaration relative to English's. The texts are
/// translations of one document, so this is what the same message costs; it differs from the per-character ratio
/// where scripts pack more per character (Chinese, Japanese).</param>
public sealed record LanguageTaxEntry(
    string Language,
    string Name,
    int Characters,
    int Tokens,
    double TokensPer1000Characters,
    double RatioToEnglish,
    double ContentRatioToEnglish);

/// <summary>The language tax of one model, most expensive language first.</summary>
/// <param name="ModelId">The model measured.</param>
/// <param name="Source">Where the reference texts come from.</param>
/// <param name="Entries">One per language with a reference text, by <see cref="LanguageTaxEntry.RatioToEnglish"/>, descending.</param>
/// <param name="WithoutReferenceText">Requested languages that have no reference text (Odia), and so no figure.</param>
public sealed record LanguageTaxReport(
    string ModelId,
    string Source,
    IReadOnlyList<LanguageTaxEntry> Entries,
    IReadOnlyList<string> WithoutReferenceText)
{
    /// <summary>The entry of a language, if measured.</summary>
    public LanguageTaxEntry? this[string language] => Entries.FirstOrDefault(e => e.Language == language);

    /// <summary>
    /// The ratio to English of <paramref name="language"/> written in <paramref name="script"/> (ISO 15924, from
    /// <see cref="LanguageTax.ScriptOf"/>): the entry measured in that script (<c>sr-Latn</c>) where there is one, else
    /// the language's own (measured on its reference text's script). Null when the language was not measured.
    /// </summary>
    public double? RatioFor(string language, string? script) =>
        (script is not null ? this[language + "-" + script] : null)?.RatioToEnglish ?? this[language]?.RatioToEnglish;

    /// <summary>A fixed-width table for logs and test output.</summary>
    public string ToTable()
    {
        var table = new StringBuilder();
        table.AppendLine(CultureInfo.InvariantCulture, $"Language tax of {ModelId} ({Source})");
        table.AppendLine("lang  name                 chars  tokens  tok/1k chars  ratio  content ratio");
        foreach (var e in Entries)
        {
            table.AppendLine(CultureInfo.InvariantCulture,
                $"{e.Language,-5} {e.Name,-19} {e.Characters,6} {e.Tokens,7} {e.TokensPer1000Characters,13:F1} {e.RatioToEnglish,6:F2} {e.ContentRatioToEnglish,14:F2}");
        }

        if (WithoutReferenceText.Count > 0)
        {
            table.AppendLine(CultureInfo.InvariantCulture, $"no reference text: {string.Join(", ", WithoutReferenceText)}");
        }

        return table.ToString();
    }
}

/// <summary>
/// The language tax: how many tokens a model needs per character of each language, relative to English, measured on
/// the same reference document (the UDHR) in every language.
/// </summary>
/// <remarks>
/// Characters are grapheme clusters (<see cref="StringInfo"/> text elements), not UTF-16 code units: a Hindi or Thai
/// syllable with its vowel signs and tone marks is one character to a reader but several code units, and a character
/// outside the BMP is two. Counting code units would inflate the denominator for exactly the scripts whose tax is in
/// question, and make them look cheaper than they are. Whitespace and punctuation count: they are sent and tokenized.
/// </remarks>
public static class LanguageTax
{
    /// <summary>The language every ratio is relative to.</summary>
    public const string BaseLanguage = "en";

    /// <summary>Measures a model's language tax.</summary>
    /// <param name="modelId">The model, for the report.</param>
    /// <param name="countTokens">Tokens the model's tokenizer makes of a text, without BOS or other special tokens.</param>
    /// <param name="languages">Languages to measure; default <see cref="LanguageCatalog.Covered"/>. English is always measured.</param>
    public static LanguageTaxReport Measure(string modelId, Func<string, int> countTokens, IEnumerable<string>? languages = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelId);
        ArgumentNullException.ThrowIfNull(countTokens);
        var requested = (languages ?? LanguageCatalog.Covered).Distinct(StringComparer.Ordinal).ToList();
        if (!requested.Contains(BaseLanguage))
        {
            requested.Insert(0, BaseLanguage);
        }

        var measured = new List<(string Language, string Name, int Characters, int Tokens)>();
        var missing = new List<string>();
        foreach (var language in requested)
        {
            var reference = ReferenceTexts.Get(language);
            if (reference is null)
            {
                missing.Add(language);
                continue;
            }

            var text = reference.Text;
            var tokens = countTokens(text);
            if (tokens < 0)
            {
                throw new InvalidOperationException($"The tokenizer returned {tokens} tokens for {language}.");
            }

            var name = LanguageCatalog.TryGet(language, out var descriptor) ? descriptor.Name : reference.Name;
            measured.Add((language, name, CountCharacters(text), tokens));
        }

        // Serbian is written in Cyrillic (its reference text) and in Latin, which tokenizers pack differently (Latin
        // letters share English's merges): Latin-script Serbian is measured on the same declaration transliterated,
        // and billed at its own ratio (RatioFor with the request's script), not at the Cyrillic one.
        if (measured.Any(m => m.Language == "sr") && ReferenceTexts.Get("sr") is { } serbian)
        {
            var latin = SerbianLatin.Transliterate(serbian.Text);
            var tokens = countTokens(latin);
            if (tokens < 0)
            {
                throw new InvalidOperationException($"The tokenizer returned {tokens} tokens for {SerbianLatin.Tag}.");
            }

            measured.Add((SerbianLatin.Tag, "Serbian (Latin)", CountCharacters(latin), tokens));
        }

        var english = measured.First(m => m.Language == BaseLanguage);
        var englishDensity = Density(english.Tokens, english.Characters);
        var entries = measured
            .Select(m => new LanguageTaxEntry(
                m.Language,
                m.Name,
                m.Characters,
                m.Tokens,
                Density(m.Tokens, m.Characters),
                englishDensity > 0 ? Density(m.Tokens, m.Characters) / englishDensity : 0,
                english.Tokens > 0 ? (double)m.Tokens / english.Tokens : 0))
            .OrderByDescending(e => e.RatioToEnglish)
            .ThenBy(e => e.Language, StringComparer.Ordinal)
            .ToList();
        return new LanguageTaxReport(modelId, ReferenceTexts.Source, entries, missing);
    }

    /// <summary>
    /// The script a request in <paramref name="language"/> is written in, for a language written in more than one
    /// (Serbian: Cyrillic and Latin): the one of its scripts most of the prompt's letters are in (ISO 15924, <c>Latn</c>,
    /// <c>Cyrl</c>); its first script when none has any. Null for a language of one script (its ratio needs none).
    /// </summary>
    /// <remarks>
    /// Letters of other text in the same script count too (an English system prompt before a Cyrillic Serbian question
    /// makes it Latin): the Latin ratio is the lower, so such a request is billed more per token, never less.
    /// </remarks>
    public static string? ScriptOf(PromptText prompt, string language)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        if (!LanguageCatalog.TryGet(language, out var descriptor) || descriptor.OtherScripts.Count == 0)
        {
            return null;
        }

        WritingScript[] scripts = [descriptor.Script, .. descriptor.OtherScripts];
        var letters = new long[scripts.Length];
        foreach (var turn in prompt.Turns)
        {
            var profile = ScriptProfile.Analyze(turn.Text);
            for (var i = 0; i < scripts.Length; i++)
            {
                letters[i] += profile[scripts[i]];
            }
        }

        var most = 0;
        for (var i = 1; i < scripts.Length; i++)
        {
            most = letters[i] > letters[most] ? i : most;
        }

        return scripts[most].IsoCode();
    }

    /// <summary>Characters as a reader counts them: grapheme clusters.</summary>
    public static int CountCharacters(string text) => new StringInfo(text ?? throw new ArgumentNullException(nameof(text))).LengthInTextElements;

    private static double Density(int tokens, int characters) => characters == 0 ? 0 : tokens * 1000.0 / characters;
}
