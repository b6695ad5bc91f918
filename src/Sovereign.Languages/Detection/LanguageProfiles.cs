using System.Collections.Frozen;
using System.Globalization;
using System.Text;

namespace Sovereign.Languages;

/// <summary>
/// Character n-gram (1 to 4, across word edges) and word profiles of languages, built from the tuning corpus in
/// <c>Data/Tuning</c> (everyday sentences written for it; see <c>Data/SOURCES.md</c>). They score a text as the
/// average log-likelihood ratio of its features under a language against all profiled languages pooled: positive
/// where the text looks like the language more than like the average. This is the evidence that separates languages
/// Lingua confuses or lacks: Malay and Indonesian, Bosnian, Croatian and Serbian, Danish, Norwegian and Swedish,
/// Spanish, Galician, Portuguese and Catalan, Czech and Slovak, and Tetum.
/// </summary>
internal sealed class LanguageProfiles
{
    /// <summary>Longest character n-gram.</summary>
    public const int MaxOrder = 4;

    // Kinds of feature: 0 = whole word, 1..MaxOrder = character n-grams.
    private const int Kinds = MaxOrder + 1;

    // How much of the mean over the languages is taken off the evidence of a feature no language had (see the
    // constructor): the value with the best cross-validation among those that leave text outside the set und (0.75
    // until session 16's tuning sentences, 0.85 since). Settable for the tuning benchmark only.
    internal static float UnseenCentring { get; set; } = 0.85f;

    // Additive smoothing: small, because the corpus is small and an unseen n-gram is weak evidence.
    private const double Smoothing = 0.3;

    private static readonly Lazy<IReadOnlyDictionary<WritingScript, LanguageProfiles>> Embedded = new(() => PerScript(LoadCorpus()));

    private readonly Dictionary<string, int> _languages;
    private readonly FrozenDictionary<string, int> _rows;
    private readonly FrozenDictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly float[] _logRatio;   // row * languages + language: log P(f|language) - log P(f|pooled)
    private readonly float[] _unseen;     // kind * languages + language: the same for a feature the language never had
    private readonly float[] _weights = [1.5f, 0.5f, 1f, 1f, 1f];

    /// <summary>Builds profiles from sentences by language.</summary>
    /// <param name="corpus">Sentences by language.</param>
    /// <param name="isPooled">Whether a language's text is part of the pooled text every profile is compared with (all,
    /// when null). Decoys are scored against the pool without being part of it, so adding one does not move how the
    /// others score.</param>
    public LanguageProfiles(IReadOnlyDictionary<string, IReadOnlyList<string>> corpus, Func<string, bool>? isPooled = null)
    {
        _languages = corpus.Keys.Select((code, i) => (code, i)).ToDictionary(x => x.code, x => x.i, StringComparer.Ordinal);
        var n = _languages.Count;
        var inPool = corpus.Keys.Select(code => isPooled?.Invoke(code) ?? true).ToArray();
        if (!inPool.Contains(true))
        {
            // Decoys alone (a script no covered language writes): they make the pool themselves.
            Array.Fill(inPool, true);
        }

        var counts = new Dictionary<string, int[]>(StringComparer.Ordinal);
        var totals = new long[Kinds * n];
        foreach (var (code, sentences) in corpus)
        {
            var language = _languages[code];
            foreach (var sentence in sentences)
            {
                Features(sentence, (kind, feature) =>
                {
                    if (!counts.TryGetValue(feature, out var row))
                    {
                        counts[feature] = row = new int[n];
                    }

                    row[language]++;
                    totals[(kind * n) + language]++;
                });
            }
        }

        var vocabulary = new long[Kinds];
        foreach (var (feature, row) in counts)
        {
            if (PooledSum(row, inPool) > 0)
            {
                vocabulary[KindOf(feature)]++;
            }
        }

        var pooledTotals = new double[Kinds];
        for (var kind = 0; kind < Kinds; kind++)
        {
            for (var language = 0; language < n; language++)
            {
                pooledTotals[kind] += inPool[language] ? totals[(kind * n) + language] : 0;
            }
        }

        _unseen = new float[Kinds * n];
        for (var kind = 0; kind < Kinds; kind++)
        {
            var pooled = Math.Log(Smoothing / (pooledTotals[kind] + (Smoothing * vocabulary[kind])));
            for (var language = 0; language < n; language++)
            {
                _unseen[(kind * n) + language] = (float)(Math.Log(Smoothing / (totals[(kind * n) + language] + (Smoothing * vocabulary[kind]))) - pooled);
            }

            // Centred (mostly) over the languages: a feature no language had says which languages' corpora are smaller,
            // not which language the text is in; uncentred it lifted every profiled language over the decoys Lingua
            // scores, so that text outside the set (Welsh, Swahili) came back as a profiled language instead of und.
            var mean = Enumerable.Range(0, n).Where(language => inPool[language]).Average(language => _unseen[(kind * n) + language]);
            for (var language = 0; language < n; language++)
            {
                _unseen[(kind * n) + language] -= mean * UnseenCentring;
            }
        }

        var rows = new Dictionary<string, int>(counts.Count, StringComparer.Ordinal);
        _logRatio = new float[counts.Count * n];
        foreach (var (feature, row) in counts)
        {
            var kind = KindOf(feature);
            var index = rows.Count;
            rows[feature] = index;
            var pooledCount = PooledSum(row, inPool);
            var pooled = Math.Log((pooledCount + Smoothing) / (pooledTotals[kind] + (Smoothing * vocabulary[kind])));
            for (var language = 0; language < n; language++)
            {
                if (pooledCount == 0 && inPool[language])
                {
                    // Only decoys had it: to a pooled language it is a feature no language had, as without the decoys.
                    _logRatio[(index * n) + language] = _unseen[(kind * n) + language];
                    continue;
                }

                var own = Math.Log((row[language] + Smoothing) / (totals[(kind * n) + language] + (Smoothing * vocabulary[kind])));
                _logRatio[(index * n) + language] = (float)(own - pooled);
            }
        }

        _rows = rows.ToFrozenDictionary(StringComparer.Ordinal);
        _lookup = _rows.GetAlternateLookup<ReadOnlySpan<char>>();
        Languages = [.. _languages.Keys];
    }

    private static int PooledSum(int[] row, bool[] inPool)
    {
        var sum = 0;
        for (var language = 0; language < row.Length; language++)
        {
            sum += inPool[language] ? row[language] : 0;
        }

        return sum;
    }

    /// <summary>The profiles built from the embedded tuning corpus, one set per script (Serbian has a Latin and a
    /// Cyrillic profile), so that each is compared with the pooled text of its own script only.</summary>
    public static IReadOnlyDictionary<WritingScript, LanguageProfiles> Default => Embedded.Value;

    /// <summary>Splits a corpus by each sentence's dominant script and builds profiles per script.</summary>
    public static IReadOnlyDictionary<WritingScript, LanguageProfiles> PerScript(IReadOnlyDictionary<string, IReadOnlyList<string>> corpus)
    {
        var split = new Dictionary<WritingScript, Dictionary<string, IReadOnlyList<string>>>();
        foreach (var (code, sentences) in corpus)
        {
            foreach (var group in sentences.GroupBy(DominantScript))
            {
                if (!split.TryGetValue(group.Key, out var byLanguage))
                {
                    split[group.Key] = byLanguage = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
                }

                byLanguage[code] = [.. group];
            }
        }

        return split.ToDictionary(kv => kv.Key, kv => new LanguageProfiles(kv.Value, Pooled));
    }

    // The covered languages make the pool; decoys (Macedonian, Faroese, ...) are compared with it.
    private static bool Pooled(string code) => LanguageCatalog.TryGet(code, out var language) && language.IsCovered;

    internal static WritingScript DominantScript(string sentence)
    {
        var profile = ScriptProfile.Analyze(sentence);
        return Enum.GetValues<WritingScript>().MaxBy(s => profile[s]);
    }

    /// <summary>Profiled languages.</summary>
    public IReadOnlyList<string> Languages { get; }

    /// <summary>Distinct features held, for diagnostics.</summary>
    public int FeatureCount => _rows.Count;

    /// <summary>Whether a language has a profile.</summary>
    public bool Has(string language) => _languages.ContainsKey(language);

    /// <summary>
    /// The average weighted log-likelihood ratio of the text's features for each language asked for (0 for a
    /// language without a profile), and how many features the text has.
    /// </summary>
    public (double[] Scores, int Features) Score(string text, IReadOnlyList<string> languages)
    {
        var scores = new double[languages.Count];
        var columns = new int[languages.Count];
        for (var i = 0; i < columns.Length; i++)
        {
            columns[i] = _languages.GetValueOrDefault(languages[i], -1);
        }

        var n = _languages.Count;
        var features = 0;
        double weightSum = 0;
        var buffer = new char[text.Length + 2];
        var lower = Normalize(text);
        foreach (var (start, length) in Words(lower))
        {
            // " word " so that n-grams see the word's edges.
            buffer[0] = ' ';
            lower.AsSpan(start, length).CopyTo(buffer.AsSpan(1));
            buffer[length + 1] = ' ';
            var padded = buffer.AsSpan(0, length + 2);
            Add(padded[1..^1], 0);
            for (var order = 1; order <= MaxOrder; order++)
            {
                for (var i = 0; i + order <= padded.Length; i++)
                {
                    var gram = padded.Slice(i, order);
                    if (order == 1 && gram[0] == ' ')
                    {
                        continue;
                    }

                    Add(gram, order);
                }
            }
        }

        if (weightSum > 0)
        {
            for (var i = 0; i < scores.Length; i++)
            {
                scores[i] /= weightSum;
            }
        }

        return (scores, features);

        void Add(ReadOnlySpan<char> feature, int kind)
        {
            features++;
            var weight = _weights[kind];
            weightSum += weight;
            var found = kind == 0 ? _lookup.TryGetValue(WordKey(feature), out var row) : _lookup.TryGetValue(feature, out row);
            for (var i = 0; i < columns.Length; i++)
            {
                if (columns[i] < 0)
                {
                    continue;
                }

                scores[i] += weight * (found ? _logRatio[(row * n) + columns[i]] : _unseen[(kind * n) + columns[i]]);
            }
        }
    }

    /// <summary>Lower case, NFC, and the typographic apostrophe as the plain one.</summary>
    internal static string Normalize(string text) =>
        text.Normalize(NormalizationForm.FormC).ToLower(CultureInfo.InvariantCulture).Replace('’', '\'');

    // A word: letters and marks, with inner apostrophes and hyphens (ne'e, l'hotel, kanak-kanak).
    internal static IEnumerable<(int Start, int Length)> Words(string text)
    {
        var i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && !IsWordChar(text[i]))
            {
                i++;
            }

            var start = i;
            while (i < text.Length && (IsWordChar(text[i]) || ((text[i] is '\'' or '-') && i + 1 < text.Length && IsWordChar(text[i + 1]) && i > start)))
            {
                i++;
            }

            if (i > start)
            {
                yield return (start, i - start);
            }
        }
    }

    private static bool IsWordChar(char c) =>
        char.IsLetter(c) || CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark;

    // Words are stored with a leading '#', which no n-gram starts with (n-grams hold letters and spaces only).
    private static string WordKey(ReadOnlySpan<char> word) => string.Concat("#", word);

    private static int KindOf(string feature) => feature[0] == '#' ? 0 : feature.Length;

    private static void Features(string sentence, Action<int, string> add)
    {
        var lower = Normalize(sentence);
        foreach (var (start, length) in Words(lower))
        {
            var word = lower.Substring(start, length);
            add(0, "#" + word);
            var padded = " " + word + " ";
            for (var order = 1; order <= MaxOrder; order++)
            {
                for (var i = 0; i + order <= padded.Length; i++)
                {
                    if (order == 1 && padded[i] == ' ')
                    {
                        continue;
                    }

                    add(order, padded.Substring(i, order));
                }
            }
        }
    }

    /// <summary>The embedded tuning corpus: sentences by language.</summary>
    internal static IReadOnlyDictionary<string, IReadOnlyList<string>> LoadCorpus()
    {
        const string prefix = "Sovereign.Languages.Data.Tuning.";
        var assembly = typeof(LanguageProfiles).Assembly;
        var corpus = new SortedDictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal) && n.EndsWith(".txt", StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var reader = new StreamReader(stream, Encoding.UTF8);
            var lines = new List<string>();
            while (reader.ReadLine() is { } line)
            {
                if (line.Length > 0 && !line.StartsWith('#'))
                {
                    lines.Add(line);
                }
            }

            corpus[name[prefix.Length..^4]] = lines;
        }

        return corpus;
    }
}
