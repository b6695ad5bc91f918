using Lingua;
using LinguaDetector = Lingua.LanguageDetector;

namespace Sovereign.Languages;

/// <summary>
/// Detects the language of a text among a configured set: first by script (a script that one configured language
/// owns decides alone), then, for scripts several languages share, by Lingua restricted to the configured languages
/// of that script, with rules where Lingua is weak (Maltese, which it lacks; Indonesian/Malay and Hindi/Marathi,
/// which it confuses). Texts that cannot be decided come back as <see cref="LanguageDetection.Undetermined"/>.
/// Build once and share: construction loads the Lingua models (about 1-2 s in low-accuracy mode); detection is
/// thread-safe.
/// </summary>
public sealed class LanguageDetector
{
    // Scripts shared by several languages: the script narrows the candidates, Lingua decides among them.
    private static readonly HashSet<WritingScript> SharedScripts =
        [WritingScript.Latin, WritingScript.Cyrillic, WritingScript.Arabic, WritingScript.Devanagari, WritingScript.Ethiopic];

    private static readonly WritingScript[] Scripts = Enum.GetValues<WritingScript>();

    private readonly LanguageDetectorOptions _options;
    private readonly HashSet<string> _languages;
    private readonly Dictionary<WritingScript, string> _owners = [];
    private readonly Dictionary<WritingScript, LinguaGroup> _groups = [];
    private readonly List<CloseLanguagePair> _pairs = [];
    private readonly bool _maltese;

    /// <summary>Builds the detector and loads the Lingua models it needs.</summary>
    /// <exception cref="ArgumentException">A configured code is not in <see cref="LanguageCatalog.All"/>, or a limit is
    /// out of range.</exception>
    public LanguageDetector(LanguageDetectorOptions? options = null)
    {
        // A snapshot: the caller's options object may change later, the detector must not.
        _options = Validate(options ?? new LanguageDetectorOptions());
        var codes = _options.Languages.Count == 0 ? LanguageCatalog.Covered : [.. _options.Languages];
        var configured = new List<LanguageDescriptor>();
        foreach (var code in codes)
        {
            if (!LanguageCatalog.TryGet(code, out var descriptor))
            {
                throw new ArgumentException(
                    $"'{code}' is not a language the detector knows; known: {string.Join(", ", LanguageCatalog.All.Select(l => l.Code))}.",
                    nameof(options));
            }

            if (!configured.Contains(descriptor))
            {
                configured.Add(descriptor);
            }
        }

        _languages = configured.Select(l => l.Code).ToHashSet(StringComparer.Ordinal);
        Languages = [.. configured.Select(l => l.Code)];
        _maltese = _languages.Contains("mt");

        foreach (var script in configured.Select(l => l.Script).Distinct())
        {
            var inScript = configured.Where(l => l.Script == script).ToList();
            if (!SharedScripts.Contains(script))
            {
                _owners[script] = inScript[0].Code;
                continue;
            }

            var lingua = inScript.Where(l => l.Lingua is not null).ToList();
            if (lingua.Count == 0)
            {
                continue;
            }

            // One candidate would make Lingua a rubber stamp: add the script's other languages as decoys, so that
            // Russian text is undetermined rather than Bulgarian.
            var decoys = lingua.Count >= 2
                ? []
                : LanguageCatalog.All.Where(l => l.Script == script && l.Lingua is not null && !_languages.Contains(l.Code)).ToList();
            _groups[script] = new LinguaGroup(lingua, decoys, _options.HighAccuracy);
        }

        foreach (var pair in new[] { CloseLanguagePair.MalayIndonesian, CloseLanguagePair.MarathiHindi })
        {
            if (_languages.Contains(pair.First) && _languages.Contains(pair.Second))
            {
                _pairs.Add(pair);
            }
        }

        LinguaLanguages = [.. _groups.Values.SelectMany(g => g.Codes.Values).Order(StringComparer.Ordinal)];
    }

    /// <summary>The languages this detector may report, in configured order.</summary>
    public IReadOnlyList<string> Languages { get; }

    /// <summary>Languages whose Lingua models are loaded (configured ones and decoys), for diagnostics.</summary>
    public IReadOnlyList<string> LinguaLanguages { get; }

    /// <summary>Whether Lingua runs in high-accuracy mode.</summary>
    public bool HighAccuracy => _options.HighAccuracy;

    /// <summary>Detects the language of a text; <see cref="LanguageDetection.Undetermined"/> when it cannot be decided.</summary>
    public LanguageDetection Detect(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return LanguageDetection.None(LanguageDetection.ByScript);
        }

        if (text.Length > _options.MaxCharacters)
        {
            // Do not cut a surrogate pair in half.
            var end = char.IsHighSurrogate(text[_options.MaxCharacters - 1]) ? _options.MaxCharacters - 1 : _options.MaxCharacters;
            text = text[..end];
        }

        var profile = ScriptProfile.Analyze(text);
        var (script, letters) = Dominant(profile);
        if (letters == 0)
        {
            return LanguageDetection.None(LanguageDetection.ByScript);
        }

        var share = (double)letters / profile.TotalLetters;
        if (_owners.TryGetValue(script, out var owner))
        {
            return ByScript(owner, script, letters, share, text);
        }

        if (!SharedScripts.Contains(script) || letters < _options.MinimumLetters)
        {
            return LanguageDetection.None(LanguageDetection.ByScript);
        }

        var suspectMaltese = false;
        if (script == WritingScript.Latin && _maltese)
        {
            var (score, decisive) = MalteseHeuristic.Evaluate(text);
            if (decisive)
            {
                return new LanguageDetection("mt", Math.Min(0.99, 0.5 + (score / 20.0)) * share, LanguageDetection.ByHeuristic);
            }

            suspectMaltese = score >= MalteseHeuristic.SuspiciousScore;
        }

        if (!_groups.TryGetValue(script, out var group))
        {
            return LanguageDetection.None(LanguageDetection.ByLingua);
        }

        var detection = ByLingua(group, text);
        return suspectMaltese || !detection.IsDetermined
            ? LanguageDetection.None(detection.Method)
            : detection with { Confidence = detection.Confidence * share };
    }

    private LanguageDetection ByScript(string owner, WritingScript script, int letters, double share, string text)
    {
        // Han without kana or Hangul is Chinese only once it is longer than a Japanese kanji compound.
        var minimum = script == WritingScript.Han ? _options.MinimumHanLetters : _options.MinimumScriptLetters;
        if (letters < minimum)
        {
            return LanguageDetection.None(LanguageDetection.ByScript);
        }

        // Assamese shares the Bengali script but writes ৰ and ৱ, which Bengali does not use.
        if (script == WritingScript.Bengali && text.AsSpan().IndexOfAny('ৰ', 'ৱ') >= 0)
        {
            return LanguageDetection.None(LanguageDetection.ByScript);
        }

        return new LanguageDetection(owner, share, LanguageDetection.ByScript);
    }

    private LanguageDetection ByLingua(LinguaGroup group, string text)
    {
        var ranked = group.Detector.ComputeLanguageConfidenceValues(text)
            .OrderByDescending(kv => kv.Value)
            .Take(2)
            .ToArray();

        // Lingua can return all zeros (it does for some Devanagari sentences in low-accuracy mode): no answer.
        string? top = ranked.Length > 0 && ranked[0].Value > 0 ? group.Codes[ranked[0].Key] : null;
        if (top is not null && !_languages.Contains(top))
        {
            // A decoy won: the text is in a language outside the configured set.
            return LanguageDetection.None(LanguageDetection.ByLingua);
        }

        var confidence = top is null ? 0 : ranked[0].Value;
        var margin = confidence - (ranked.Length > 1 ? ranked[1].Value : 0);
        var confident = top is not null && confidence >= _options.MinimumConfidence && margin >= _options.MinimumMargin;
        foreach (var pair in _pairs)
        {
            if (!group.Covers(pair) || (top is not null && top != pair.First && top != pair.Second))
            {
                continue;
            }

            var balance = pair.Balance(text);
            if (balance != 0)
            {
                var chosen = balance > 0 ? pair.First : pair.Second;
                return chosen == top && confident
                    ? new LanguageDetection(top, confidence, LanguageDetection.ByLingua)
                    : new LanguageDetection(chosen, Math.Min(0.95, 0.6 + (0.1 * Math.Abs(balance))), LanguageDetection.ByHeuristic);
            }

            if (pair.WithoutMarkers is { } fallback && top is not null)
            {
                return fallback == top && confident
                    ? new LanguageDetection(top, confidence, LanguageDetection.ByLingua)
                    : new LanguageDetection(fallback, 0.55, LanguageDetection.ByHeuristic);
            }
        }

        return confident
            ? new LanguageDetection(top!, confidence, LanguageDetection.ByLingua)
            : LanguageDetection.None(LanguageDetection.ByLingua);
    }

    private static LanguageDetectorOptions Validate(LanguageDetectorOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MinimumLetters, 1, nameof(options.MinimumLetters));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MinimumScriptLetters, 1, nameof(options.MinimumScriptLetters));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MinimumHanLetters, 1, nameof(options.MinimumHanLetters));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxCharacters, 16, nameof(options.MaxCharacters));
        if (options.MinimumConfidence is < 0 or > 1 || options.MinimumMargin is < 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "MinimumConfidence and MinimumMargin are between 0 and 1.");
        }

        return new LanguageDetectorOptions
        {
            Languages = [.. options.Languages],
            HighAccuracy = options.HighAccuracy,
            MinimumLetters = options.MinimumLetters,
            MinimumScriptLetters = options.MinimumScriptLetters,
            MinimumHanLetters = options.MinimumHanLetters,
            MinimumConfidence = options.MinimumConfidence,
            MinimumMargin = options.MinimumMargin,
            MaxCharacters = options.MaxCharacters,
        };
    }

    // The script with the most letters. Han counts with kana (Japanese) or Hangul (Korean, with hanja) when those
    // are present, and on its own (Chinese) only when neither is.
    private static (WritingScript Script, int Letters) Dominant(ScriptProfile profile)
    {
        int kana = profile[WritingScript.Kana], hangul = profile[WritingScript.Hangul], han = profile[WritingScript.Han];
        var best = (Script: WritingScript.Other, Letters: 0);
        foreach (var script in Scripts)
        {
            var count = script switch
            {
                WritingScript.Other => 0,
                WritingScript.Kana when kana > 0 && kana >= hangul => kana + han,
                WritingScript.Hangul when hangul > 0 && hangul > kana => hangul + han,
                WritingScript.Han when kana > 0 || hangul > 0 => 0,
                _ => profile[script],
            };
            if (count > best.Letters)
            {
                best = (script, count);
            }
        }

        return best;
    }

    /// <summary>A Lingua detector over the configured languages of one script (plus decoys where only one is).</summary>
    private sealed class LinguaGroup
    {
        public LinguaGroup(IReadOnlyList<LanguageDescriptor> languages, IReadOnlyList<LanguageDescriptor> decoys, bool highAccuracy)
        {
            Codes = languages.Concat(decoys).ToDictionary(l => l.Lingua!.Value, l => l.Code);
            var builder = LanguageDetectorBuilder.FromLanguages([.. Codes.Keys]).WithPreloadedLanguageModels();
            Detector = (highAccuracy ? builder : builder.WithLowAccuracyMode()).Build();
        }

        public LinguaDetector Detector { get; }

        public Dictionary<Language, string> Codes { get; }

        public bool Covers(CloseLanguagePair pair) => Codes.ContainsValue(pair.First) && Codes.ContainsValue(pair.Second);
    }
}
