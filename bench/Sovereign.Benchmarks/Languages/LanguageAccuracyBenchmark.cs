using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Lingua;
using Microsoft.Extensions.Options;
using Sovereign.Benchmarks.Gateway;
using Sovereign.Gateway.Hosting;
using Sovereign.Languages;

namespace Sovereign.Benchmarks.Languages;

/// <summary>
/// Detection accuracy per language on the held-out sets (tests/Sovereign.Languages.Tests/Data/heldout.txt,
/// heldout-2.txt to heldout-38.txt, <see cref="HeldOutFiles"/>; a language outside an engine's set, Macedonian, Belarusian and Afrikaans for the covered set,
/// is right only as und) and on UDHR sentences, memory, and time per message: Sovereign's detector (default options, every
/// covered language on) next to Lingua alone over all its languages, low-accuracy and high-accuracy mode, on the same
/// texts. Each engine runs in a fresh child process, so its memory figure is its own. The <c>server</c> and
/// <c>server-all</c> engines start the real gateway (as <c>sovereign serve</c> builds it) with the covered set or with
/// every catalog language configured, and detect through <c>POST /v1/language/detect</c> with a tenant key: their
/// memory is the server's RSS after detection work less its RSS once started (detection of every request is off, so the detector is built on first use, not by the warm-up).
/// </summary>
internal static partial class LanguageAccuracyBenchmark
{
    public const string Usage = "languages-accuracy [--quick (engines sovereign,server and 10 UDHR sentences per language: minutes, not Lingua's 3.6 GiB high-accuracy mode)] [--engines sovereign,server,server-all,lingua-low,lingua-high] [--udhr N sentences per language (40; --quick 10)]";

    private const string Marker = "@@accuracy ";

    public static async Task<int> RunAsync(string[] argv)
    {
        var args = Args.Parse(argv, "--engines", "--udhr", "--engine");
        // --quick was accepted and ignored until round 35 (the UDHR count's quick value was its normal one, and every
        // engine ran): it now runs the two engines the issue's targets are checked on, with fewer UDHR sentences.
        var udhrPerLanguage = args.Int("--udhr", 40, 10);
        if (args.String("--engine") is { } engine)
        {
            return engine.StartsWith("server", StringComparison.Ordinal) ? await ServerChildAsync(engine, udhrPerLanguage) : Child(engine, udhrPerLanguage);
        }

        Report.Machine("languages-accuracy", argv);
        var engines = (args.String("--engines") ?? (args.Quick ? "sovereign,server" : "sovereign,server,server-all,lingua-low,lingua-high")).Split(',', StringSplitOptions.RemoveEmptyEntries);
        var results = new List<EngineResult>();
        foreach (var name in engines)
        {
            results.Add(await RunChildAsync(name, udhrPerLanguage));
        }

        var baseline = results[0];
        Console.WriteLine("### Accuracy, memory and time per message (each engine in a fresh process)");
        Console.WriteLine();
        Report.Table(
            ["engine", .. HeldOutFiles.Select((_, k) => $"held-out {k + 1}"), "UDHR", "load s", "RSS MiB (after use - before)", "RSS MiB after use", "managed MiB", "p50 us / message", "p99 us", "p50 vs first"],
            results.Select(r => (string[])
            [
                r.Engine, .. HeldOutFiles.Select((_, k) => Pct(r.Correct[k], r.Total[k])), Pct(r.Correct[UdhrSet], r.Total[UdhrSet]), r.LoadSeconds.ToString("0.0", CultureInfo.InvariantCulture),
                Mib(r.RssDelta), Mib(r.RssAfter), Mib(r.ManagedDelta), Report.Us(r.P50Ms), Report.Us(r.P99Ms), Report.Ratio(r.P50Ms, baseline.P50Ms),
            ]));
        Console.WriteLine(FormattableString.Invariant($"Languages: sovereign and server {LanguageCatalog.Covered.Count} (the covered set, the default), server-all {LanguageCatalog.All.Count} (every catalog language configured)."));
        Console.WriteLine("Server engines: load s is the server's start; p50/p99 are one text per POST /v1/language/detect (HTTP, authentication and detection), and the");
        Console.WriteLine("baseline for them is GET /v1/models on the same server with the same key: " + string.Join("; ", results.Where(r => r.BaselineP50Ms > 0).Select(r =>
            FormattableString.Invariant($"{r.Engine}: /v1/models p50 {Report.Us(r.BaselineP50Ms)} us, detect p50 {Report.Ratio(r.P50Ms, r.BaselineP50Ms)} of it"))) + ".");
        Console.WriteLine();

        Console.WriteLine($"### Per language: held-out 1 to {HeldOutFiles.Length} (correct of n) and UDHR (%)");
        Console.WriteLine();
        var languages = baseline.PerLanguage.Keys.Order(StringComparer.Ordinal).ToList();
        Report.Table(
            ["lang", .. HeldOutFiles.SelectMany((_, k) => results.Select(r => $"{r.Engine} held-out {k + 1}")), .. results.Select(r => r.Engine + " UDHR")],
            languages.Select(l => (string[])[
                l,
                .. HeldOutFiles.SelectMany((_, k) => results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[(2 * k) + 1] > 0 ? $"{c[2 * k]}/{c[(2 * k) + 1]}" : "-")),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[(2 * UdhrSet) + 1] > 0 ? Pct(c[2 * UdhrSet], c[(2 * UdhrSet) + 1]) : "-"),
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
        var sets = LoadSets(udhrPerLanguage);
        var heldOut = sets[0];
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

        var perLanguage = Score(engine, sets, texts => [.. texts.Select(detect)]);
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
        Console.WriteLine(Marker + JsonSerializer.Serialize(Result(engine, perLanguage, load, before, after, dist, 0)));
        return 0;
    }

    // The right answer for an engine: a language outside the engine's set (Macedonian, Belarusian, Afrikaans for the
    // covered set) is und.
    private static string Expected(string engine, string language) =>
        engine is "sovereign" or "server" && !LanguageCatalog.Covered.Contains(language) ? LanguageDetection.Undetermined : language;

    // Counts per language: [held-out 1 right, n, held-out 2 right, n, ..., held-out 31 right, n, UDHR right, n] (the sets of
    // LoadSets, in its order), from one batch detector call per set.
    private static Dictionary<string, int[]> Score(string engine, Dictionary<string, List<string>>[] sets, Func<IReadOnlyList<string>, string[]> detectAll)
    {
        var perLanguage = new Dictionary<string, int[]>(StringComparer.Ordinal);
        for (var set = 0; set < sets.Length; set++)
        {
            foreach (var (language, sentences) in sets[set])
            {
                var counts = perLanguage.TryGetValue(language, out var c) ? c : perLanguage[language] = new int[2 * (UdhrSet + 1)];
                counts[(2 * set) + 1] = sentences.Count;
                counts[2 * set] = detectAll(sentences).Count(l => l == Expected(engine, language));
            }
        }

        return perLanguage;
    }

    private static EngineResult Result(string engine, Dictionary<string, int[]> perLanguage, double load, (long Rss, long Managed) before, (long Rss, long Managed) after, Dist dist, double baselineP50) =>
        new(engine,
            [.. Enumerable.Range(0, UdhrSet + 1).Select(k => perLanguage.Values.Sum(c => c[2 * k]))],
            [.. Enumerable.Range(0, UdhrSet + 1).Select(k => perLanguage.Values.Sum(c => c[(2 * k) + 1]))],
            load, after.Rss - before.Rss, after.Rss, after.Managed - before.Managed, dist.P50, dist.P99, baselineP50, perLanguage);

    // The real gateway in this process: RSS once started and a tenant exists (the detector is built on first use), then
    // after detecting every text through POST /v1/language/detect; time per message is one text per request.
    private static async Task<int> ServerChildAsync(string engine, int udhrPerLanguage)
    {
        var sets = LoadSets(udhrPerLanguage);
        var (heldOut, heldOut2) = (sets[0], sets[1]);
        // Detection of every request off, so that the background warm-up (LanguageDetectorWarmup) does not load the
        // detector before the "before" snapshot: it is built on the first POST /v1/language/detect, and the RSS
        // difference is again what the detector costs the server (with the warm-up it was mostly in "before").
        var extra = new Dictionary<string, string?> { ["Sovereign:DetectLanguageOfEveryRequest"] = "false" };
        if (engine == "server-all")
        {
            var i = 0;
            foreach (var language in LanguageCatalog.All)
            {
                extra[$"Sovereign:Languages:Languages:{i++}"] = language.Code;
            }
        }

        var clock = Stopwatch.StartNew();
        await using var server = await BenchServer.StartAsync(new ServerConfig { Extra = extra });
        var load = clock.Elapsed.TotalSeconds;
        var configured = server.Get<IOptions<SovereignOptions>>().Value.Languages.Languages.Count;
        if (engine == "server-all" && configured != LanguageCatalog.All.Count)
        {
            throw new InvalidOperationException($"server-all: {configured} languages configured, not {LanguageCatalog.All.Count}.");
        }

        var world = await BenchWorld.CreateAsync(server, new WorldSpec { Tenants = 1, Nodes = 0 });
        var key = world.Tenants[0].Secret;
        using var models = new HttpRequestMessage(HttpMethod.Get, "v1/models");
        models.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        (await server.Client.SendAsync(models)).EnsureSuccessStatusCode();
        var before = Snapshot();

        async Task<string[]> DetectAsync(IReadOnlyList<string> texts)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/language/detect") { Content = new ByteArrayContent(BenchServer.Body(new { input = texts })) };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            using var response = await server.Client.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            if (!response.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"{(int)response.StatusCode}: {body}");
            }

            using var json = JsonDocument.Parse(body);
            return [.. json.RootElement.GetProperty("data").EnumerateArray().Select(d => d.GetProperty("language").GetString()!)];
        }

        var perLanguage = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (var (set, index) in sets.Select((s, i) => (s, i)))
        {
            foreach (var (language, sentences) in set)
            {
                var counts = perLanguage.TryGetValue(language, out var c) ? c : perLanguage[language] = new int[2 * (UdhrSet + 1)];
                counts[(2 * index) + 1] = sentences.Count;
                counts[2 * index] = (await DetectAsync(sentences)).Count(l => l == Expected(engine, language));
            }
        }

        var after = Snapshot();

        // One text per request, interleaved with the baseline GET /v1/models, after a warm-up pass.
        var messages = heldOut.Values.Concat(heldOut2.Values).SelectMany(s => s).ToArray();
        foreach (var m in messages)
        {
            _ = await DetectAsync([m]);
        }

        var times = new List<double>();
        var baseline = new List<double>();
        for (var round = 0; round < 2; round++)
        {
            foreach (var m in messages.OrderBy(_ => Random.Shared.Next()))
            {
                var t = Stopwatch.GetTimestamp();
                _ = await DetectAsync([m]);
                times.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                t = Stopwatch.GetTimestamp();
                using var list = new HttpRequestMessage(HttpMethod.Get, "v1/models");
                list.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
                using var listed = await server.Client.SendAsync(list);
                _ = await listed.Content.ReadAsByteArrayAsync();
                baseline.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }
        }

        Console.WriteLine(Marker + JsonSerializer.Serialize(Result(engine, perLanguage, load, before, after, new Dist(times), new Dist(baseline).P50)));
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

    /// <summary>The held-out sets, in the order they were written (the tests' <c>TestData.HeldOutFiles</c>).</summary>
    private static readonly string[] HeldOutFiles = ["heldout.txt", .. Enumerable.Range(2, 37).Select(k => $"heldout-{k}.txt")];

    /// <summary>Index of the UDHR sentences among the scored sets: after every held-out set.</summary>
    private static readonly int UdhrSet = HeldOutFiles.Length;

    // Every held-out set, then the UDHR sentences (the counts' order).
    private static Dictionary<string, List<string>>[] LoadSets(int udhrPerLanguage) => [.. HeldOutFiles.Select(HeldOut), Udhr(udhrPerLanguage)];

    private static Dictionary<string, List<string>> HeldOut(string file)
    {
        var path = FindUp(Path.Combine("tests", "Sovereign.Languages.Tests", "Data", file));
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

    // Correct and Total: per set, held-out 1 to 28 and then UDHR (LoadSets' order).
    private sealed record EngineResult(
        string Engine, int[] Correct, int[] Total,
        double LoadSeconds, long RssDelta, long RssAfter, long ManagedDelta, double P50Ms, double P99Ms, double BaselineP50Ms,
        Dictionary<string, int[]> PerLanguage);
}
