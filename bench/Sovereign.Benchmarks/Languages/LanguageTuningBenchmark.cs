using System.Globalization;
using Sovereign.Benchmarks.Gateway;
using Sovereign.Languages;

namespace Sovereign.Benchmarks.Languages;

/// <summary>
/// How the detector's weights are chosen without the held-out sets: k-fold cross-validation on the tuning corpus
/// (<c>src/Sovereign.Languages/Data/Tuning</c>). For each fold the profiles are built from the other folds and the
/// fold's sentences are detected with every covered language on; the accuracy per language and overall is reported
/// for each weight setting asked for (a grid over <c>--profile</c>, <c>--contrast</c>, ...). The held-out sets are
/// never read here.
/// </summary>
internal static class LanguageTuningBenchmark
{
    public const string Usage = "languages-tune [--folds N (5)] [--profile w1,w2] [--lingua w] [--floor w] [--contrast w] [--letter w] [--words w (close-group word model; 0 = off)] [--cap c] [--smoothing a] [--reflex w] [--dictionary w (the hr/bs/sr spelling dictionaries' evidence; 0 = off)] [--syntax w (the hr/bs/sr verb complement: da + present or infinitive; 0 = off)] [--loan w (the hr/bs/sr loan-verb adaptation: -irati or -isati/-ovati; 0 = off)] [--participles 0|1 (the yat verbs' participles vidio/video as reflex evidence)] [--stems 0|1] [--misses hr,bs (print the misses of these languages with their scores)] [--explain TEXT] [--timing 1 (where detection time goes, on the tuning sentences)] [--fresh FOLDER (accuracy on new tuning sentences, <code>.txt, before they join the corpus)] [--udhr ms,id (a guard: UDHR sentences of these languages under each setting; never a tuning target)] [--subtitles w] [--subtitle-cap c] (the subtitles' word rates within Malay/Indonesian; 0 = off) [--devanagari 0|1 (the Sanskrit/Bhojpuri rule off or on)]";

    public static int Run(string[] argv)
    {
        var args = Args.Parse(argv, "--folds", "--profile", "--lingua", "--floor", "--contrast", "--letter", "--words", "--cap", "--smoothing", "--reflex", "--dictionary", "--syntax", "--participles", "--misses", "--stems", "--explain", "--timing", "--fresh", "--udhr", "--span", "--centring", "--loan", "--subtitles", "--subtitle-cap", "--devanagari");
        var folds = args.Int("--folds", 5, 5);
        var corpus = LanguageProfiles.LoadCorpus();
        if (args.String("--centring") is { } centring)
        {
            // Before the detector builds its default profiles.
            LanguageProfiles.UnseenCentring = float.Parse(centring, CultureInfo.InvariantCulture);
        }

        var detector = new LanguageDetector().WithSwitches(
            contrastStems: args.String("--stems") != "0",
            yatParticiples: args.String("--participles") != "0",
            shortMessageFeatures: args.Int("--span", CloseGroupWords.DefaultShortMessageFeatures, 1));
        if (args.String("--loan") is { } loan)
        {
            detector = detector.WithLoanVerbs(double.Parse(loan, CultureInfo.InvariantCulture));
        }

        if (args.String("--devanagari") is { } devanagari)
        {
            detector = detector.WithDevanagariDecoys(devanagari != "0");
        }

        var subMs = Grid(args, "--subtitles", detector.SubtitleWeight);
        var subCap = Grid(args, "--subtitle-cap", detector.SubtitleCap);
        detector = detector.WithSubtitles(subMs[0], subCap[0]);

        if (args.String("--explain") is { } text)
        {
            // One text's decision with the default profiles: its leading candidates and their evidence.
            var detection = detector.WithTrace(Console.WriteLine).Detect(text);
            Console.WriteLine($"{detection.Language} {detection.Confidence:F2} (runner-up {detection.RunnerUp})");
            return 0;
        }

        var showMisses = (args.String("--misses") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        if (args.String("--fresh") is { } folder)
        {
            // Sentences written for the tuning corpus, checked before they are added: how the detector does on text it
            // has not seen (a development check; the held-out sets are never read here).
            Console.WriteLine("Dictionary rates: " + string.Join(", ", detector.StandardForms.Describe()));
            foreach (var (dictionary, syntax, sm, sc) in from d in Grid(args, "--dictionary", detector.DictionaryWeight) from x in Grid(args, "--syntax", detector.SyntaxWeight) from sm in subMs from sc in subCap select (d, x, sm, sc))
            {
                var tuned = detector.WithDictionaries(detector.StandardForms, dictionary).WithSyntax(syntax).WithSubtitles(sm, sc);
                Console.WriteLine(FormattableString.Invariant($"subtitles {sm} cap {sc}"));
                var right = 0;
                var total = 0;
                foreach (var file in Directory.GetFiles(folder, "*.txt").Order(StringComparer.Ordinal))
                {
                    var language = Path.GetFileNameWithoutExtension(file);
                    var sentences = File.ReadAllLines(file).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
                    var detected = sentences.Select(s => tuned.Detect(s).Language).ToList();
                    right += detected.Count(d => d == language);
                    total += sentences.Count;
                    Console.WriteLine(FormattableString.Invariant($"dictionary {dictionary} syntax {syntax} {language}: {detected.Count(d => d == language)}/{sentences.Count}  ") +
                        string.Join(" ", detected.Where(d => d != language).GroupBy(d => d).Select(g => $"{g.Key}x{g.Count()}")));
                    foreach (var sentence in sentences.Where((_, i) => detected[i] != language && showMisses.Contains(language)))
                    {
                        string? trace = null;
                        _ = tuned.WithTrace(t => trace = t).Detect(sentence);
                        Console.Error.WriteLine($"miss {language}: {sentence}\n    {trace}");
                    }
                }

                Console.WriteLine(FormattableString.Invariant($"dictionary {dictionary} syntax {syntax}: {right}/{total}"));
            }

            return 0;
        }

        if (args.String("--udhr") is { } udhr)
        {
            // Legal prose: a check that evidence learned from short everyday sentences does not swamp a long formal text.
            foreach (var (words, reflex, syntax, sm, sc) in from w in Grid(args, "--words", detector.WordWeight) from r in Grid(args, "--reflex", detector.ReflexWeight) from x in Grid(args, "--syntax", detector.SyntaxWeight) from sm in subMs from sc in subCap select (w, r, x, sm, sc))
            {
                var tuned = detector.WithWords(detector.CloseWords, words, detector.WordCap, detector.Reflexes, reflex).WithSyntax(syntax).WithSubtitles(sm, sc);
                var line = udhr.Split(',').Select(language =>
                {
                    var sentences = ReferenceTexts.Get(language)!.Articles.SelectMany(a => a)
                        .SelectMany(p => System.Text.RegularExpressions.Regex.Split(p, @"(?<=[.!?;])\s+")).Where(t => t.Trim().Length >= 20).ToList();
                    return FormattableString.Invariant($"{language} {sentences.Count(s => tuned.Detect(s).Language == language)}/{sentences.Count}");
                });
                Console.WriteLine(FormattableString.Invariant($"words {words} reflex {reflex} syntax {syntax} subtitles {sm} cap {sc}: {string.Join("  ", line)}"));
            }

            return 0;
        }

        if (args.String("--timing") is not null)
        {
            Timing(detector, corpus);
            return 0;
        }

        Report.Machine("languages-tune", argv);

        var settings =
            from profile in Grid(args, "--profile", detector.ProfileWeight)
            from lingua in Grid(args, "--lingua", detector.LinguaWeight)
            from floor in Grid(args, "--floor", detector.LinguaFloor)
            from contrast in Grid(args, "--contrast", detector.ContrastWeight)
            from letter in Grid(args, "--letter", detector.LetterWeight)
            from words in Grid(args, "--words", detector.WordWeight)
            from cap in Grid(args, "--cap", detector.WordCap)
            from smoothing in Grid(args, "--smoothing", CloseGroupWords.DefaultSmoothing)
            from reflex in Grid(args, "--reflex", detector.ReflexWeight)
            from dictionary in Grid(args, "--dictionary", detector.DictionaryWeight)
            from syntax in Grid(args, "--syntax", detector.SyntaxWeight)
            from sm in subMs
            from sc in subCap
            select (profile, lingua, floor, contrast, letter, words, cap, smoothing, reflex, dictionary, syntax, sm, sc);

        var foldOf = ParallelFolds(corpus, folds);
        var rows = new List<string[]>();
        Dictionary<string, int[]>? firstPerLanguage = null;
        foreach (var (profile, lingua, floor, contrast, letter, words, cap, smoothing, reflex, dictionary, syntax, sm, sc) in settings)
        {
            var perLanguage = new Dictionary<string, int[]>(StringComparer.Ordinal);
            for (var fold = 0; fold < folds; fold++)
            {
                var training = corpus.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)[.. kv.Value.Where((_, i) => foldOf[kv.Key][i] != fold)], StringComparer.Ordinal);
                var tuned = detector.With(LanguageProfiles.PerScript(training), lingua, profile, floor, contrast, letter)
                    .WithWords(CloseGroupWords.PerScript(training, smoothing), words, cap, YatReflex.FromCorpus(training), reflex)
                    .WithDictionaries(StandardForms.FromCorpus(training), dictionary)
                    .WithSyntax(syntax)
                    .WithSubtitles(sm, sc);
                foreach (var (language, sentences) in corpus)
                {
                    var counts = perLanguage.TryGetValue(language, out var c) ? c : perLanguage[language] = new int[2];
                    // A decoy's tuning sentences (Macedonian, Belarusian: outside the covered set) are right as und.
                    var expected = tuned.Languages.Contains(language) ? language : LanguageDetection.Undetermined;
                    foreach (var sentence in sentences.Where((_, i) => foldOf[language][i] == fold))
                    {
                        counts[1]++;
                        var detected = tuned.Detect(sentence).Language;
                        counts[0] += detected == expected ? 1 : 0;
                        if (detected != expected && showMisses.Contains(language))
                        {
                            string? trace = null;
                            _ = tuned.WithTrace(t => trace = t).Detect(sentence);
                            Console.Error.WriteLine($"miss {language}->{detected}: {sentence}\n    {trace}");
                        }
                    }
                }
            }

            firstPerLanguage ??= perLanguage;
            var right = perLanguage.Values.Sum(c => c[0]);
            var total = perLanguage.Values.Sum(c => c[1]);
            var worst = perLanguage.OrderBy(kv => (double)kv.Value[0] / kv.Value[1]).Take(6).Select(kv => FormattableString.Invariant($"{kv.Key} {100.0 * kv.Value[0] / kv.Value[1]:0}%"));
            var close = LanguageDetector.CloseGroups.SelectMany(g => g).Where(perLanguage.ContainsKey)
                .Select(l => FormattableString.Invariant($"{l} {100.0 * perLanguage[l][0] / perLanguage[l][1]:0}"));
            rows.Add([F(profile), F(lingua), F(floor), F(contrast), F(letter), F(words), F(cap), F(smoothing), F(reflex), F(dictionary), F(syntax), FormattableString.Invariant($"{F(sm)}/{F(sc)}"), FormattableString.Invariant($"{100.0 * right / total:0.0}% ({right}/{total})"), string.Join(", ", worst), string.Join(" ", close)]);
            Console.Error.WriteLine(string.Join(" | ", rows[^1]));
        }

        Console.WriteLine($"### Cross-validation on the tuning corpus ({folds} folds, every covered language on)");
        Console.WriteLine();
        Report.Table(["profile", "lingua", "floor", "contrast", "letter", "words", "cap", "smoothing", "reflex", "dictionary", "syntax", "subtitles/cap", "accuracy", "weakest languages", "close groups %"], rows);
        Console.WriteLine("Per language, first setting: " + string.Join(", ", firstPerLanguage!.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {kv.Value[0]}/{kv.Value[1]}")));
        return 0;
    }

    // Folds that keep translations together: the close languages' tuning sentences are translations of one another, and
    // a sentence tested while its translation in a neighbour trains would be judged by that copy (a model that memorises
    // n-grams looks worse than it is, and shared sentences tilt to whichever copy trained). Sentences of one close group
    // whose character trigrams overlap by a third or more are put in one fold; the rest go by position.
    private static Dictionary<string, int[]> ParallelFolds(IReadOnlyDictionary<string, IReadOnlyList<string>> corpus, int folds)
    {
        var nodes = corpus.SelectMany(kv => kv.Value.Select((s, i) => (Language: kv.Key, Index: i, Grams: Trigrams(s)))).ToList();
        var parent = Enumerable.Range(0, nodes.Count).ToArray();
        int Find(int x) => parent[x] == x ? x : parent[x] = Find(parent[x]);
        foreach (var group in LanguageDetector.CloseGroups)
        {
            var members = Enumerable.Range(0, nodes.Count).Where(n => group.Contains(nodes[n].Language, StringComparer.Ordinal)).ToList();
            for (var a = 0; a < members.Count; a++)
            {
                for (var b = a + 1; b < members.Count; b++)
                {
                    var (x, y) = (nodes[members[a]], nodes[members[b]]);
                    if (x.Language != y.Language && (double)x.Grams.Intersect(y.Grams).Count() / Math.Min(x.Grams.Count, y.Grams.Count) >= 1.0 / 3)
                    {
                        parent[Find(members[a])] = Find(members[b]);
                    }
                }
            }
        }

        var result = corpus.ToDictionary(kv => kv.Key, kv => new int[kv.Value.Count], StringComparer.Ordinal);
        var clusterFold = new Dictionary<int, int>();
        for (var n = 0; n < nodes.Count; n++)
        {
            var root = Find(n);
            if (!clusterFold.TryGetValue(root, out var fold))
            {
                clusterFold[root] = fold = nodes[root].Index % folds;
            }

            result[nodes[n].Language][nodes[n].Index] = fold;
        }

        return result;
    }

    private static HashSet<string> Trigrams(string sentence)
    {
        var text = " " + LanguageProfiles.Normalize(sentence) + " ";
        return [.. Enumerable.Range(0, Math.Max(0, text.Length - 2)).Select(i => text.Substring(i, 3))];
    }

    // Lingua alone over the Latin-script models the detector loads, against the whole detection, on the tuning sentences.
    private static void Timing(LanguageDetector detector, IReadOnlyDictionary<string, IReadOnlyList<string>> corpus)
    {
        var models = LanguageCatalog.All.Where(l => l.Script == WritingScript.Latin).SelectMany(l => l.Lingua).Distinct().ToArray();
        var lingua = Lingua.LanguageDetectorBuilder.FromLanguages(models).WithPreloadedLanguageModels().WithLowAccuracyMode().Build();
        var texts = corpus.Values.SelectMany(s => s).ToArray();
        var trigrams = TrigramShares.Load(models);
        // How often the one-pass scorer's leader is Lingua's (Lingua also applies character rules, which it does not).
        var same = texts.Count(t =>
        {
            var ours = trigrams.Shares(t);
            var theirs = lingua.ComputeLanguageConfidenceValues(t).First();
            return theirs.Value == 0 || trigrams.Languages[Array.IndexOf(ours, ours.Max())] == theirs.Key;
        });
        Console.WriteLine(FormattableString.Invariant($"same leader as Lingua: {same} of {texts.Length}"));
        var normalized = texts.Select(LanguageProfiles.Normalize).ToArray();
        var index = 0;
        foreach (var (name, run) in new (string, Action<string>)[]
        {
            ("lingua", t => lingua.ComputeLanguageConfidenceValues(t)), ("trigrams", t => trigrams.Shares(t)), ("detect", t => detector.Detect(t)),
            ("verb complements (normalized text)", _ => VerbComplements.Count(normalized[index])),
        })
        {
            var times = new List<double>();
            long allocated = 0;
            for (var round = 0; round < 4; round++)
            {
                for (index = 0; index < texts.Length; index++)
                {
                    var bytes = GC.GetAllocatedBytesForCurrentThread();
                    var start = System.Diagnostics.Stopwatch.GetTimestamp();
                    run(texts[index]);
                    if (round > 0)
                    {
                        times.Add(System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                        allocated += GC.GetAllocatedBytesForCurrentThread() - bytes;
                    }
                }
            }

            times.Sort();
            Console.WriteLine(FormattableString.Invariant($"{name}: p50 {1000 * times[times.Count / 2]:0.0} us, mean {1000 * times.Average():0.0} us, {(double)allocated / times.Count:0} bytes allocated per call, over {times.Count} ({models.Length} Latin models)"));
        }
    }

    private static double[] Grid(Args args, string name, double current) =>
        args.String(name) is { } list ? [.. list.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture))] : [current];

    private static string F(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);
}
