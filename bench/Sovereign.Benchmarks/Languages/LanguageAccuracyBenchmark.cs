using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Lingua;
using Sovereign.Benchmarks.Gateway;
using Sovereign.Languages;

namespace Sovereign.Benchmarks.Languages;

/// <summary>
/// Detection accuracy per language on the held-out set (tests/Sovereign.Languages.Tests/Data/heldout.txt) and on UDHR
/// sentences, memory, and time per message: Sovereign's detector (default options, every covered language on) next to
/// Lingua alone over all its languages, low-accuracy and high-accuracy mode, on the same texts. Each engine runs in a
/// fresh child process, so its memory figure is its own.
/// </summary>
internal static partial class LanguageAccuracyBenchmark
{
    public const string Usage = "languages-accuracy [--engines sovereign,lingua-low,lingua-high] [--udhr N sentences per language (40)]";

    private const string Marker = "@@accuracy ";

    public static async Task<int> RunAsync(string[] argv)
    {
        var args = Args.Parse(argv, "--engines", "--udhr", "--engine");
        var udhrPerLanguage = args.Int("--udhr", 40, 40);
        if (args.String("--engine") is { } engine)
        {
            return Child(engine, udhrPerLanguage);
        }

        Report.Machine("languages-accuracy", argv);
        var engines = (args.String("--engines") ?? "sovereign,lingua-low,lingua-high").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var results = new List<EngineResult>();
        foreach (var name in engines)
        {
            results.Add(await RunChildAsync(name, udhrPerLanguage));
        }

        var baseline = results[0];
        Console.WriteLine("### Accuracy, memory and time per message (each engine in a fresh process)");
        Console.WriteLine();
        Report.Table(
            ["engine", "held-out", "UDHR", "load s", "RSS MiB (after use - before)", "managed MiB", "p50 us / message", "p99 us", "p50 vs first"],
            results.Select(r => new[]
            {
                r.Engine, Pct(r.HeldOutCorrect, r.HeldOutTotal), Pct(r.UdhrCorrect, r.UdhrTotal), r.LoadSeconds.ToString("0.0", CultureInfo.InvariantCulture),
                Mib(r.RssDelta), Mib(r.ManagedDelta), Report.Us(r.P50Ms), Report.Us(r.P99Ms), Report.Ratio(r.P50Ms, baseline.P50Ms),
            }));

        Console.WriteLine("### Per language: held-out (correct of n) and UDHR (%)");
        Console.WriteLine();
        var languages = baseline.PerLanguage.Keys.Order(StringComparer.Ordinal).ToList();
        Report.Table(
            ["lang", .. results.Select(r => r.Engine + " held-out"), .. results.Select(r => r.Engine + " UDHR")],
            languages.Select(l => (string[])[
                l,
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) ? $"{c[0]}/{c[1]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[3] > 0 ? Pct(c[2], c[3]) : "-"),
            ]));
        Console.WriteLine($"Load average at end: {Report.LoadAverage()}");
        return 0;
    }

    private static string Pct(int correct, int total) => total == 0 ? "-" : (100.0 * correct / total).ToString("0.0", CultureInfo.InvariantCulture) + "%";

    private static string Mib(long bytes) => (bytes / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture);

    private static async Task<EngineResult> RunChildAsync(string engine, int udhrPerLanguage)
    {
        var start = new ProcessStartInfo
        {
            FileName = Environment.ProcessPath ?? throw new InvalidOperationException("Unknown process path."),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (Path.GetFileNameWithoutExtension(start.FileName).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
        {
            start.ArgumentList.Add(typeof(LanguageAccuracyBenchmark).Assembly.Location);
        }

        foreach (var arg in (string[])["languages-accuracy", "--engine", engine, "--udhr", udhrPerLanguage.ToString(CultureInfo.InvariantCulture)])
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start the child.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var line = (await stdout).Split('\n').FirstOrDefault(l => l.StartsWith(Marker, StringComparison.Ordinal));
        return process.ExitCode == 0 && line is not null
            ? JsonSerializer.Deserialize<EngineResult>(line[Marker.Length..])!
            : throw new InvalidOperationException($"{engine} failed ({process.ExitCode}): {await stderr}");
    }

    private static int Child(string engine, int udhrPerLanguage)
    {
        var heldOut = HeldOut();
        var udhr = Udhr(udhrPerLanguage);
        var before = Snapshot();
        var clock = Stopwatch.StartNew();
        Func<string, string> detect;
        switch (engine)
        {
            case "sovereign":
                var ours = new Sovereign.Languages.LanguageDetector();
                detect = text => ours.Detect(text).Language;
                break;
            case "lingua-low":
                detect = Lingua(LanguageDetectorBuilder.FromAllLanguages().WithPreloadedLanguageModels().WithLowAccuracyMode().Build());
                break;
            case "lingua-high":
                detect = Lingua(LanguageDetectorBuilder.FromAllLanguages().WithPreloadedLanguageModels().Build());
                break;
            default:
                throw new ArgumentException($"unknown engine '{engine}'");
        }

        var load = clock.Elapsed.TotalSeconds;

        var perLanguage = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var (language, sentences) in heldOut)
        {
            var counts = perLanguage.TryGetValue(language, out var c) ? c : perLanguage[language] = new int[4];
            counts[1] = sentences.Count;
            counts[0] = sentences.Count(s => detect(s) == language);
        }

        foreach (var (language, sentences) in udhr)
        {
            var counts = perLanguage.TryGetValue(language, out var c) ? c : perLanguage[language] = new int[4];
            counts[3] = sentences.Count;
            counts[2] = sentences.Count(s => detect(s) == language);
        }

        var after = Snapshot();

        // Time per short message: the held-out sentences, after a warm-up pass.
        var messages = heldOut.Values.SelectMany(s => s).ToArray();
        for (var pass = 0; pass < 3; pass++)
        {
            foreach (var m in messages)
            {
                _ = detect(m);
            }
        }

        var times = new List<double>();
        for (var round = 0; round < 5; round++)
        {
            foreach (var m in messages.OrderBy(_ => Random.Shared.Next()))
            {
                var t = Stopwatch.GetTimestamp();
                _ = detect(m);
                times.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }
        }

        var dist = new Dist(times);
        var result = new EngineResult(
            engine,
            perLanguage.Values.Sum(c => c[0]), perLanguage.Values.Sum(c => c[1]), perLanguage.Values.Sum(c => c[2]), perLanguage.Values.Sum(c => c[3]),
            load, after.Rss - before.Rss, after.Managed - before.Managed, dist.P50, dist.P99, perLanguage);
        Console.WriteLine(Marker + JsonSerializer.Serialize(result));
        return 0;
    }

    // Lingua's answer as a Sovereign code; languages outside the catalog (and Unknown) are "und".
    private static Func<string, string> Lingua(Lingua.LanguageDetector lingua)
    {
        var codes = new Dictionary<Language, string>();
        foreach (var entry in LanguageCatalog.All)
        {
            foreach (var model in entry.Lingua)
            {
                codes.TryAdd(model, entry.Code);
            }
        }

        return text => codes.GetValueOrDefault(lingua.DetectLanguageOf(text), "und");
    }

    private static Dictionary<string, List<string>> HeldOut()
    {
        var path = FindUp(Path.Combine("tests", "Sovereign.Languages.Tests", "Data", "heldout.txt"));
        var result = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        List<string>? current = null;
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            if (line.StartsWith('['))
            {
                result[line[1..^1]] = current = [];
            }
            else
            {
                current!.Add(line);
            }
        }

        return result;
    }

    // The first N sentences of 20 characters or more of articles 1-30 (as the accuracy test takes them).
    private static Dictionary<string, List<string>> Udhr(int perLanguage) =>
        ReferenceTexts.All.ToDictionary(
            kv => kv.Key,
            kv => kv.Value.Articles.SelectMany(a => a).SelectMany(p => SentenceEnd().Split(p)).Select(s => s.Trim())
                .Where(s => LanguageTax.CountCharacters(s) >= 20).Take(perLanguage).ToList(),
            StringComparer.Ordinal);

    private static string FindUp(string relative)
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, relative)))
            {
                return Path.Combine(dir.FullName, relative);
            }
        }

        throw new FileNotFoundException($"{relative} not found above {Directory.GetCurrentDirectory()}.");
    }

    private static (long Rss, long Managed) Snapshot()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        var rss = Environment.WorkingSet;
        if (File.Exists("/proc/self/status"))
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            if (line is not null)
            {
                rss = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return (rss, GC.GetTotalMemory(false));
    }

    [GeneratedRegex(@"(?<=[.!?;;।॥。！？؟።။។])\s*")]
    private static partial Regex SentenceEnd();

    private sealed record EngineResult(
        string Engine, int HeldOutCorrect, int HeldOutTotal, int UdhrCorrect, int UdhrTotal, double LoadSeconds,
        long RssDelta, long ManagedDelta, double P50Ms, double P99Ms, Dictionary<string, int[]> PerLanguage);
}
