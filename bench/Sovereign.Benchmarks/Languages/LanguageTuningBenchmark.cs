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
    public const string Usage = "languages-tune [--folds N (5)] [--profile w1,w2] [--lingua w] [--floor w] [--contrast w] [--letter w] [--stems 0|1] [--misses hr,bs (print the misses of these languages with their scores)] [--explain TEXT]";

    public static int Run(string[] argv)
    {
        var args = Args.Parse(argv, "--folds", "--profile", "--lingua", "--floor", "--contrast", "--letter", "--misses", "--stems", "--explain");
        var folds = args.Int("--folds", 5, 5);
        var corpus = LanguageProfiles.LoadCorpus();
        var detector = new LanguageDetector();
        if (args.String("--explain") is { } text)
        {
            // One text's decision with the default profiles: its leading candidates and their evidence.
            var detection = detector.WithTrace(Console.WriteLine).Detect(text);
            Console.WriteLine($"{detection.Language} {detection.Confidence:F2} (runner-up {detection.RunnerUp})");
            return 0;
        }

        Report.Machine("languages-tune", argv);

        var settings =
            from profile in Grid(args, "--profile", detector.ProfileWeight)
            from lingua in Grid(args, "--lingua", detector.LinguaWeight)
            from floor in Grid(args, "--floor", detector.LinguaFloor)
            from contrast in Grid(args, "--contrast", detector.ContrastWeight)
            from letter in Grid(args, "--letter", detector.LetterWeight)
            select (profile, lingua, floor, contrast, letter);

        var showMisses = (args.String("--misses") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        ContrastEvidence.Stems = args.String("--stems") != "0";
        var rows = new List<string[]>();
        Dictionary<string, int[]>? firstPerLanguage = null;
        foreach (var (profile, lingua, floor, contrast, letter) in settings)
        {
            var perLanguage = new Dictionary<string, int[]>(StringComparer.Ordinal);
            for (var fold = 0; fold < folds; fold++)
            {
                var training = corpus.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)[.. kv.Value.Where((_, i) => i % folds != fold)], StringComparer.Ordinal);
                var tuned = detector.With(LanguageProfiles.PerScript(training), lingua, profile, floor, contrast, letter);
                foreach (var (language, sentences) in corpus)
                {
                    var counts = perLanguage.TryGetValue(language, out var c) ? c : perLanguage[language] = new int[2];
                    foreach (var sentence in sentences.Where((_, i) => i % folds == fold))
                    {
                        counts[1]++;
                        var detected = tuned.Detect(sentence).Language;
                        counts[0] += detected == language ? 1 : 0;
                        if (detected != language && showMisses.Contains(language))
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
            rows.Add([F(profile), F(lingua), F(floor), F(contrast), F(letter), FormattableString.Invariant($"{100.0 * right / total:0.0}% ({right}/{total})"), string.Join(", ", worst)]);
            Console.Error.WriteLine(string.Join(" | ", rows[^1]));
        }

        Console.WriteLine($"### Cross-validation on the tuning corpus ({folds} folds, every covered language on)");
        Console.WriteLine();
        Report.Table(["profile", "lingua", "floor", "contrast", "letter", "accuracy", "weakest languages"], rows);
        Console.WriteLine("Per language, first setting: " + string.Join(", ", firstPerLanguage!.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {kv.Value[0]}/{kv.Value[1]}")));
        return 0;
    }

    private static double[] Grid(Args args, string name, double current) =>
        args.String(name) is { } list ? [.. list.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture))] : [current];

    private static string F(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);
}
