using System.Collections.Frozen;

namespace Sovereign.Languages;

/// <summary>
/// A word model of one close group (Malay/Indonesian, Croatian/Bosnian/Serbian, Danish/Norwegian/Swedish,
/// Spanish/Galician/Portuguese/Catalan, Czech/Slovak) in one script, built from the members' tuning sentences only:
/// word unigrams and pairs of adjacent words, each member's probabilities smoothed over the group's vocabulary. A text
/// scores, for each member, the sum (for a long text, scaled to the length of a short message) over its words and word pairs that the group's corpus has of the member's
/// log-probability less the mean over the members; words no member had say nothing. The close languages' tuning
/// sentences are translations of one another, so words every member writes cancel and what remains is what the
/// standards write differently, learned from running text rather than listed: Bosnian <c>sedmica</c> next to
/// ijekavian <c>prije</c>, Serbian <c>da</c> + present, Malay <c>tak</c> and <c>nak</c>, Croatian <c>tko</c>. Each
/// feature's part is capped so that a word seen in one member's sentences only cannot decide alone.
/// </summary>
internal sealed class CloseGroupWords
{
    /// <summary>Smoothing added to every count (chosen by cross-validation on the tuning corpus).</summary>
    public const double DefaultSmoothing = 0.5;

    private const string Start = "^";

    private static readonly Lazy<IReadOnlyDictionary<WritingScript, CloseGroupWords[]>> Embedded =
        new(() => PerScript(LanguageProfiles.LoadCorpus()));

    private readonly string[] _members;
    private readonly FrozenDictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly float[] _centred;   // row * members + member: log P(f|member) - mean over the members

    /// <summary>Builds the model of one group from its members' sentences (normalised or not).</summary>
    public CloseGroupWords(IReadOnlyList<(string Member, IReadOnlyList<string> Sentences)> members, double smoothing = DefaultSmoothing)
    {
        _members = [.. members.Select(m => m.Member)];
        var n = _members.Length;
        var counts = new Dictionary<string, int[]>(StringComparer.Ordinal);
        for (var m = 0; m < n; m++)
        {
            foreach (var sentence in members[m].Sentences)
            {
                Features(LanguageProfiles.Normalize(sentence), feature =>
                {
                    var key = feature.ToString();
                    var row = counts.TryGetValue(key, out var existing) ? existing : counts[key] = new int[n];
                    row[m]++;
                });
            }
        }

        // Totals and vocabulary per kind (0 = word, 1 = word pair), so that pairs do not dilute words.
        var totals = new double[2 * n];
        var vocabulary = new double[2];
        foreach (var (feature, row) in counts)
        {
            var kind = KindOf(feature);
            vocabulary[kind]++;
            for (var m = 0; m < n; m++)
            {
                totals[(kind * n) + m] += row[m];
            }
        }

        var rows = new Dictionary<string, int>(counts.Count, StringComparer.Ordinal);
        _centred = new float[counts.Count * n];
        var logs = new double[n];
        foreach (var (feature, row) in counts)
        {
            var kind = KindOf(feature);
            var index = rows.Count;
            rows[feature] = index;
            for (var m = 0; m < n; m++)
            {
                logs[m] = Math.Log((row[m] + smoothing) / (totals[(kind * n) + m] + (smoothing * vocabulary[kind])));
            }

            var mean = logs.Average();
            for (var m = 0; m < n; m++)
            {
                _centred[(index * n) + m] = (float)(logs[m] - mean);
            }
        }

        _lookup = rows.ToFrozenDictionary(StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
        FeatureCount = rows.Count;
    }

    /// <summary>The models built from the embedded tuning corpus: per script, one per close group that has two or more
    /// members with tuning sentences in that script.</summary>
    public static IReadOnlyDictionary<WritingScript, CloseGroupWords[]> Default => Embedded.Value;

    /// <summary>The group's members this model knows.</summary>
    public IReadOnlyList<string> Members => _members;

    /// <summary>Distinct words and word pairs held, for diagnostics.</summary>
    public int FeatureCount { get; }

    /// <summary>Builds the models of every close group, per script, from sentences by language.</summary>
    public static IReadOnlyDictionary<WritingScript, CloseGroupWords[]> PerScript(IReadOnlyDictionary<string, IReadOnlyList<string>> corpus, double smoothing = DefaultSmoothing)
    {
        var byScript = new Dictionary<WritingScript, Dictionary<string, List<string>>>();
        foreach (var (code, sentences) in corpus.Where(kv => LanguageDetector.CloseGroups.Any(g => g.Contains(kv.Key, StringComparer.Ordinal))))
        {
            foreach (var sentence in sentences)
            {
                var script = LanguageProfiles.DominantScript(sentence);
                var byLanguage = byScript.TryGetValue(script, out var found) ? found : byScript[script] = new Dictionary<string, List<string>>(StringComparer.Ordinal);
                (byLanguage.TryGetValue(code, out var list) ? list : byLanguage[code] = []).Add(sentence);
            }
        }

        return byScript.ToDictionary(
            kv => kv.Key,
            kv => LanguageDetector.CloseGroups
                .Select(g => g.Where(kv.Value.ContainsKey).Select(m => (m, (IReadOnlyList<string>)kv.Value[m])).ToList())
                .Where(members => members.Count >= 2)
                .Select(members => new CloseGroupWords(members, smoothing))
                .ToArray());
    }

    /// <summary>Whether the model knows this member.</summary>
    public bool Has(string member) => Array.IndexOf(_members, member) >= 0;

    /// <summary>
    /// For each language asked for, the summed centred log-probability of the text's words and word pairs (0 for a
    /// language this model does not know), each feature's part capped at <paramref name="cap"/>.
    /// </summary>
    public double[] Score(string normalized, IReadOnlyList<string> languages, double cap, int shortMessageFeatures = DefaultShortMessageFeatures)
    {
        var n = _members.Length;
        var scores = new double[languages.Count];
        var columns = new int[languages.Count];
        for (var i = 0; i < columns.Length; i++)
        {
            columns[i] = Array.IndexOf(_members, languages[i]);
        }

        var features = 0;
        Features(normalized, feature =>
        {
            features++;
            if (!_lookup.TryGetValue(feature, out var row))
            {
                return;
            }

            for (var i = 0; i < columns.Length; i++)
            {
                if (columns[i] >= 0)
                {
                    scores[i] += Math.Clamp(_centred[(row * n) + columns[i]], -cap, cap);
                }
            }
        });

        // A long text is scored as if it had the features of a short message: summed over a paragraph, small
        // differences in how often each member's sentences use common words would add up to a verdict.
        if (features > shortMessageFeatures)
        {
            for (var i = 0; i < scores.Length; i++)
            {
                scores[i] *= (double)shortMessageFeatures / features;
            }
        }

        return scores;
    }

    /// <summary>Features (words and word pairs) of a short message, about twelve words: the most a text's evidence
    /// is summed over.</summary>
    internal const int DefaultShortMessageFeatures = 24;

    private static int KindOf(string feature) => feature.Contains(' ', StringComparison.Ordinal) ? 1 : 0;

    private delegate void FeatureSink(ReadOnlySpan<char> feature);

    // Words and pairs of adjacent words ("previous word", the first word paired with "^"), without allocating.
    private static void Features(string normalized, FeatureSink add)
    {
        Span<char> pair = stackalloc char[128];
        var previous = Start.AsSpan();
        var previousStart = -1;
        var previousLength = 0;
        foreach (var (start, length) in LanguageProfiles.Words(normalized))
        {
            var word = normalized.AsSpan(start, length);
            add(word);
            if (previousStart >= 0)
            {
                previous = normalized.AsSpan(previousStart, previousLength);
            }

            var needed = previous.Length + 1 + length;
            var buffer = needed <= pair.Length ? pair[..needed] : new char[needed];
            previous.CopyTo(buffer);
            buffer[previous.Length] = ' ';
            word.CopyTo(buffer[(previous.Length + 1)..]);
            add(buffer);
            (previousStart, previousLength) = (start, length);
        }
    }
}
