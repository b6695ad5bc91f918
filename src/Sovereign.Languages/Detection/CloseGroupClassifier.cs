using System.Collections.Frozen;

namespace Sovereign.Languages;

/// <summary>
/// A discriminative model of one close group in one script: multinomial logistic regression over the words and the
/// letter 3- and 4-grams (inside words, with the word's edges) of its members' tuning sentences, trained at start with
/// an L2 penalty. Where <see cref="CloseGroupWords"/> counts how often each member writes a word, this one learns
/// weights jointly, so that n-grams every member writes get none and what separates the standards (<c>ije</c> against
/// <c>e</c>, <c>-irati</c> against <c>-ovati</c>, <c>tko</c>, <c>hljeb</c>) gets the weight the corpus supports, also
/// for words it never saw whole. A text's features are present or absent and scaled to unit length, so a long text
/// says no more than a short one. The scores are the members' log-probabilities less their mean.
/// </summary>
internal sealed class CloseGroupClassifier
{
    /// <summary>L2 penalty per sentence (chosen by cross-validation on the tuning corpus).</summary>
    public const double DefaultPenalty = 1e-3;

    private const int Epochs = 30;
    private const double LearningRate = 0.5;

    private static readonly Lazy<IReadOnlyDictionary<WritingScript, CloseGroupClassifier[]>> Embedded =
        new(() => PerScript(LanguageProfiles.LoadCorpus()));

    private readonly string[] _members;
    private readonly FrozenDictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly float[] _weights;   // feature * members + member

    /// <summary>Trains the model of one group from its members' sentences (normalised or not).</summary>
    public CloseGroupClassifier(IReadOnlyList<(string Member, IReadOnlyList<string> Sentences)> members, double penalty = DefaultPenalty)
    {
        _members = [.. members.Select(m => m.Member)];
        var n = _members.Length;
        var rows = new Dictionary<string, int>(StringComparer.Ordinal);
        var samples = new List<(int[] Features, int Member)>();
        for (var m = 0; m < n; m++)
        {
            foreach (var sentence in members[m].Sentences)
            {
                var features = new HashSet<int>();
                Features(LanguageProfiles.Normalize(sentence), feature =>
                {
                    var key = feature.ToString();
                    if (!rows.TryGetValue(key, out var row))
                    {
                        rows[key] = row = rows.Count;
                    }

                    features.Add(row);
                });
                if (features.Count > 0)
                {
                    samples.Add(([.. features.Order()], m));
                }
            }
        }

        var weights = new double[rows.Count * n];
        // Stochastic gradient descent in a fixed shuffled order (the same model on every start), the penalty applied
        // to the features a sentence has, the step shrinking with each epoch.
        var order = Enumerable.Range(0, samples.Count).ToArray();
        new Random(11).Shuffle(order);
        var logits = new double[n];
        for (var epoch = 0; epoch < Epochs; epoch++)
        {
            var rate = LearningRate / (1 + epoch);
            foreach (var s in order)
            {
                var (features, member) = samples[s];
                var value = 1 / Math.Sqrt(features.Length);
                Array.Clear(logits);
                foreach (var f in features)
                {
                    for (var m = 0; m < n; m++)
                    {
                        logits[m] += weights[(f * n) + m] * value;
                    }
                }

                var max = logits.Max();
                var sum = 0.0;
                for (var m = 0; m < n; m++)
                {
                    sum += logits[m] = Math.Exp(logits[m] - max);
                }

                for (var m = 0; m < n; m++)
                {
                    var gradient = (logits[m] / sum) - (m == member ? 1 : 0);
                    foreach (var f in features)
                    {
                        ref var w = ref weights[(f * n) + m];
                        w -= rate * ((gradient * value) + (penalty * w));
                    }
                }
            }
        }

        _weights = [.. weights.Select(w => (float)w)];
        _lookup = rows.ToFrozenDictionary(StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
        FeatureCount = rows.Count;
    }

    /// <summary>The models trained on the embedded tuning corpus: per script, one per close group that has two or more
    /// members with tuning sentences in that script.</summary>
    public static IReadOnlyDictionary<WritingScript, CloseGroupClassifier[]> Default => Embedded.Value;

    /// <summary>Distinct features held, for diagnostics.</summary>
    public int FeatureCount { get; }

    /// <summary>Trains the models of every close group, per script, from sentences by language.</summary>
    public static IReadOnlyDictionary<WritingScript, CloseGroupClassifier[]> PerScript(IReadOnlyDictionary<string, IReadOnlyList<string>> corpus, double penalty = DefaultPenalty)
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
                .Select(members => new CloseGroupClassifier(members, penalty))
                .ToArray());
    }

    /// <summary>Whether the model knows this member.</summary>
    public bool Has(string member) => Array.IndexOf(_members, member) >= 0;

    /// <summary>For each language asked for, its log-probability less the mean over the members (0 for a language
    /// this model does not know).</summary>
    public double[] Score(string normalized, IReadOnlyList<string> languages)
    {
        var n = _members.Length;
        var logits = new double[n];
        var seen = new HashSet<int>();
        Features(normalized, feature =>
        {
            if (_lookup.TryGetValue(feature, out var row))
            {
                seen.Add(row);
            }
        });

        // Scaled as in training: by the features the text has, known or not.
        var total = 0;
        Features(normalized, _ => total++);
        var value = total == 0 ? 0 : 1 / Math.Sqrt(total);
        foreach (var row in seen)
        {
            for (var m = 0; m < n; m++)
            {
                logits[m] += _weights[(row * n) + m] * value;
            }
        }

        // A member's log-probability less the members' mean is its logit less theirs.
        var mean = logits.Average();
        var scores = new double[languages.Count];
        for (var i = 0; i < scores.Length; i++)
        {
            var column = Array.IndexOf(_members, languages[i]);
            scores[i] = column < 0 ? 0 : logits[column] - mean;
        }

        return scores;
    }

    private delegate void FeatureSink(ReadOnlySpan<char> feature);

    // Words (with a leading '#') and the letter 3- and 4-grams of " word " (the spaces mark its edges), without
    // allocating for words of ordinary length.
    private static void Features(string normalized, FeatureSink add)
    {
        Span<char> buffer = stackalloc char[66];
        foreach (var (start, length) in LanguageProfiles.Words(normalized))
        {
            if (length + 2 > buffer.Length)
            {
                continue;
            }

            var word = normalized.AsSpan(start, length);
            buffer[0] = '#';
            word.CopyTo(buffer[1..]);
            add(buffer[..(length + 1)]);
            buffer[0] = ' ';
            buffer[length + 1] = ' ';
            var padded = buffer[..(length + 2)];
            for (var order = 3; order <= 4; order++)
            {
                for (var i = 0; i + order <= padded.Length; i++)
                {
                    add(padded.Slice(i, order));
                }
            }
        }
    }
}
