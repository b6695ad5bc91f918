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
/// Detection accuracy per language on the twenty-three held-out sets (tests/Sovereign.Languages.Tests/Data/heldout.txt,
/// heldout-2.txt to heldout-23.txt; a language outside an engine's set, Macedonian, Belarusian and Afrikaans for the covered set,
/// is right only as und) and on UDHR sentences, memory, and time per message: Sovereign's detector (default options, every
/// covered language on) next to Lingua alone over all its languages, low-accuracy and high-accuracy mode, on the same
/// texts. Each engine runs in a fresh child process, so its memory figure is its own. The <c>server</c> and
/// <c>server-all</c> engines start the real gateway (as <c>sovereign serve</c> builds it) with the covered set or with
/// every catalog language configured, and detect through <c>POST /v1/language/detect</c> with a tenant key: their
/// memory is the server's RSS after detection work less its RSS once started (detection of every request is off, so the detector is built on first use, not by the warm-up).
/// </summary>
internal static partial class LanguageAccuracyBenchmark
{
    public const string Usage = "languages-accuracy [--engines sovereign,server,server-all,lingua-low,lingua-high] [--udhr N sentences per language (40)]";

    private const string Marker = "@@accuracy ";

    public static async Task<int> RunAsync(string[] argv)
    {
        var args = Args.Parse(argv, "--engines", "--udhr", "--engine");
        var udhrPerLanguage = args.Int("--udhr", 40, 40);
        if (args.String("--engine") is { } engine)
        {
            return engine.StartsWith("server", StringComparison.Ordinal) ? await ServerChildAsync(engine, udhrPerLanguage) : Child(engine, udhrPerLanguage);
        }

        Report.Machine("languages-accuracy", argv);
        var engines = (args.String("--engines") ?? "sovereign,server,server-all,lingua-low,lingua-high").Split(',', StringSplitOptions.RemoveEmptyEntries);
        var results = new List<EngineResult>();
        foreach (var name in engines)
        {
            results.Add(await RunChildAsync(name, udhrPerLanguage));
        }

        var baseline = results[0];
        Console.WriteLine("### Accuracy, memory and time per message (each engine in a fresh process)");
        Console.WriteLine();
        Report.Table(
            ["engine", "held-out 1", "held-out 2", "held-out 3", "held-out 4", "held-out 5", "held-out 6", "held-out 7", "held-out 8", "held-out 9", "held-out 10", "held-out 11", "held-out 12", "held-out 13", "held-out 14", "held-out 15", "held-out 16", "held-out 17", "held-out 18", "held-out 19", "held-out 20", "held-out 21", "held-out 22", "held-out 23", "UDHR", "load s", "RSS MiB (after use - before)", "RSS MiB after use", "managed MiB", "p50 us / message", "p99 us", "p50 vs first"],
            results.Select(r => new[]
            {
                r.Engine, Pct(r.HeldOutCorrect, r.HeldOutTotal), Pct(r.HeldOut2Correct, r.HeldOut2Total), Pct(r.HeldOut3Correct, r.HeldOut3Total), Pct(r.HeldOut4Correct, r.HeldOut4Total), Pct(r.HeldOut5Correct, r.HeldOut5Total), Pct(r.HeldOut6Correct, r.HeldOut6Total), Pct(r.HeldOut7Correct, r.HeldOut7Total), Pct(r.HeldOut8Correct, r.HeldOut8Total), Pct(r.HeldOut9Correct, r.HeldOut9Total), Pct(r.HeldOut10Correct, r.HeldOut10Total), Pct(r.HeldOut11Correct, r.HeldOut11Total), Pct(r.HeldOut12Correct, r.HeldOut12Total), Pct(r.HeldOut13Correct, r.HeldOut13Total), Pct(r.HeldOut14Correct, r.HeldOut14Total), Pct(r.HeldOut15Correct, r.HeldOut15Total), Pct(r.HeldOut16Correct, r.HeldOut16Total), Pct(r.HeldOut17Correct, r.HeldOut17Total), Pct(r.HeldOut18Correct, r.HeldOut18Total), Pct(r.HeldOut19Correct, r.HeldOut19Total), Pct(r.HeldOut20Correct, r.HeldOut20Total), Pct(r.HeldOut21Correct, r.HeldOut21Total), Pct(r.HeldOut22Correct, r.HeldOut22Total), Pct(r.HeldOut23Correct, r.HeldOut23Total), Pct(r.UdhrCorrect, r.UdhrTotal), r.LoadSeconds.ToString("0.0", CultureInfo.InvariantCulture),
                Mib(r.RssDelta), Mib(r.RssAfter), Mib(r.ManagedDelta), Report.Us(r.P50Ms), Report.Us(r.P99Ms), Report.Ratio(r.P50Ms, baseline.P50Ms),
            }));
        Console.WriteLine(FormattableString.Invariant($"Languages: sovereign and server {LanguageCatalog.Covered.Count} (the covered set, the default), server-all {LanguageCatalog.All.Count} (every catalog language configured)."));
        Console.WriteLine("Server engines: load s is the server's start; p50/p99 are one text per POST /v1/language/detect (HTTP, authentication and detection), and the");
        Console.WriteLine("baseline for them is GET /v1/models on the same server with the same key: " + string.Join("; ", results.Where(r => r.BaselineP50Ms > 0).Select(r =>
            FormattableString.Invariant($"{r.Engine}: /v1/models p50 {Report.Us(r.BaselineP50Ms)} us, detect p50 {Report.Ratio(r.P50Ms, r.BaselineP50Ms)} of it"))) + ".");
        Console.WriteLine();

        Console.WriteLine("### Per language: held-out 1 to 23 (correct of n) and UDHR (%)");
        Console.WriteLine();
        var languages = baseline.PerLanguage.Keys.Order(StringComparer.Ordinal).ToList();
        Report.Table(
            ["lang", .. results.Select(r => r.Engine + " held-out 1"), .. results.Select(r => r.Engine + " held-out 2"), .. results.Select(r => r.Engine + " held-out 3"), .. results.Select(r => r.Engine + " held-out 4"), .. results.Select(r => r.Engine + " held-out 5"), .. results.Select(r => r.Engine + " held-out 6"), .. results.Select(r => r.Engine + " held-out 7"), .. results.Select(r => r.Engine + " held-out 8"), .. results.Select(r => r.Engine + " held-out 9"), .. results.Select(r => r.Engine + " held-out 10"), .. results.Select(r => r.Engine + " held-out 11"), .. results.Select(r => r.Engine + " held-out 12"), .. results.Select(r => r.Engine + " held-out 13"), .. results.Select(r => r.Engine + " held-out 14"), .. results.Select(r => r.Engine + " held-out 15"), .. results.Select(r => r.Engine + " held-out 16"), .. results.Select(r => r.Engine + " held-out 17"), .. results.Select(r => r.Engine + " held-out 18"), .. results.Select(r => r.Engine + " held-out 19"), .. results.Select(r => r.Engine + " held-out 20"), .. results.Select(r => r.Engine + " held-out 21"), .. results.Select(r => r.Engine + " held-out 22"), .. results.Select(r => r.Engine + " held-out 23"), .. results.Select(r => r.Engine + " UDHR")],
            languages.Select(l => (string[])[
                l,
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[1] > 0 ? $"{c[0]}/{c[1]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[5] > 0 ? $"{c[4]}/{c[5]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[7] > 0 ? $"{c[6]}/{c[7]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[9] > 0 ? $"{c[8]}/{c[9]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[11] > 0 ? $"{c[10]}/{c[11]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[13] > 0 ? $"{c[12]}/{c[13]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[15] > 0 ? $"{c[14]}/{c[15]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[17] > 0 ? $"{c[16]}/{c[17]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[19] > 0 ? $"{c[18]}/{c[19]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[21] > 0 ? $"{c[20]}/{c[21]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[23] > 0 ? $"{c[22]}/{c[23]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[25] > 0 ? $"{c[24]}/{c[25]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[27] > 0 ? $"{c[26]}/{c[27]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[29] > 0 ? $"{c[28]}/{c[29]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[31] > 0 ? $"{c[30]}/{c[31]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[33] > 0 ? $"{c[32]}/{c[33]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[35] > 0 ? $"{c[34]}/{c[35]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[37] > 0 ? $"{c[36]}/{c[37]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[39] > 0 ? $"{c[38]}/{c[39]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[41] > 0 ? $"{c[40]}/{c[41]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[43] > 0 ? $"{c[42]}/{c[43]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[45] > 0 ? $"{c[44]}/{c[45]}" : "-"),
                .. results.Select(r => r.PerLanguage.TryGetValue(l, out var c) && c[47] > 0 ? $"{c[46]}/{c[47]}" : "-"),
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
        var heldOut = HeldOut("heldout.txt");
        var heldOut2 = HeldOut("heldout-2.txt");
        var heldOut3 = HeldOut("heldout-3.txt");
        var heldOut4 = HeldOut("heldout-4.txt");
        var heldOut5 = HeldOut("heldout-5.txt");
        var heldOut6 = HeldOut("heldout-6.txt");
        var heldOut7 = HeldOut("heldout-7.txt");
        var heldOut8 = HeldOut("heldout-8.txt");
        var heldOut9 = HeldOut("heldout-9.txt");
        var heldOut10 = HeldOut("heldout-10.txt");
        var heldOut11 = HeldOut("heldout-11.txt");
        var heldOut12 = HeldOut("heldout-12.txt");
        var heldOut13 = HeldOut("heldout-13.txt");
        var heldOut14 = HeldOut("heldout-14.txt");
        var heldOut15 = HeldOut("heldout-15.txt");
        var heldOut16 = HeldOut("heldout-16.txt");
        var heldOut17 = HeldOut("heldout-17.txt");
        var heldOut18 = HeldOut("heldout-18.txt");
        var heldOut19 = HeldOut("heldout-19.txt");
        var heldOut20 = HeldOut("heldout-20.txt");
        var heldOut21 = HeldOut("heldout-21.txt");
        var heldOut22 = HeldOut("heldout-22.txt");
        var heldOut23 = HeldOut("heldout-23.txt");
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

        var perLanguage = Score(engine, [heldOut, udhr, heldOut2, heldOut3, heldOut4, heldOut5, heldOut6, heldOut7, heldOut8, heldOut9, heldOut10, heldOut11, heldOut12, heldOut13, heldOut14, heldOut15, heldOut16, heldOut17, heldOut18, heldOut19, heldOut20, heldOut21, heldOut22, heldOut23], texts => [.. texts.Select(detect)]);
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

    // Counts per language: [held-out 1 right, n, UDHR right, n, held-out 2 right, n, held-out 3 right, n, held-out 4 right, n, held-out 5 right, n, ..., held-out 23 right, n], from one batch detector call per set.
    private static Dictionary<string, int[]> Score(string engine, Dictionary<string, List<string>>[] sets, Func<IReadOnlyList<string>, string[]> detectAll)
    {
        var perLanguage = new Dictionary<string, int[]>(StringComparer.Ordinal);
        for (var set = 0; set < sets.Length; set++)
        {
            foreach (var (language, sentences) in sets[set])
            {
                var counts = perLanguage.TryGetValue(language, out var c) ? c : perLanguage[language] = new int[48];
                counts[(2 * set) + 1] = sentences.Count;
                counts[2 * set] = detectAll(sentences).Count(l => l == Expected(engine, language));
            }
        }

        return perLanguage;
    }

    private static EngineResult Result(string engine, Dictionary<string, int[]> perLanguage, double load, (long Rss, long Managed) before, (long Rss, long Managed) after, Dist dist, double baselineP50) =>
        new(engine,
            perLanguage.Values.Sum(c => c[0]), perLanguage.Values.Sum(c => c[1]), perLanguage.Values.Sum(c => c[2]), perLanguage.Values.Sum(c => c[3]),
            perLanguage.Values.Sum(c => c[4]), perLanguage.Values.Sum(c => c[5]), perLanguage.Values.Sum(c => c[6]), perLanguage.Values.Sum(c => c[7]),
            perLanguage.Values.Sum(c => c[8]), perLanguage.Values.Sum(c => c[9]), perLanguage.Values.Sum(c => c[10]), perLanguage.Values.Sum(c => c[11]),
            perLanguage.Values.Sum(c => c[12]), perLanguage.Values.Sum(c => c[13]),
            perLanguage.Values.Sum(c => c[14]), perLanguage.Values.Sum(c => c[15]),
            perLanguage.Values.Sum(c => c[16]), perLanguage.Values.Sum(c => c[17]),
            perLanguage.Values.Sum(c => c[18]), perLanguage.Values.Sum(c => c[19]),
            perLanguage.Values.Sum(c => c[20]), perLanguage.Values.Sum(c => c[21]),
            perLanguage.Values.Sum(c => c[22]), perLanguage.Values.Sum(c => c[23]),
            perLanguage.Values.Sum(c => c[24]), perLanguage.Values.Sum(c => c[25]),
            perLanguage.Values.Sum(c => c[26]), perLanguage.Values.Sum(c => c[27]),
            perLanguage.Values.Sum(c => c[28]), perLanguage.Values.Sum(c => c[29]),
            perLanguage.Values.Sum(c => c[30]), perLanguage.Values.Sum(c => c[31]),
            perLanguage.Values.Sum(c => c[32]), perLanguage.Values.Sum(c => c[33]),
            perLanguage.Values.Sum(c => c[34]), perLanguage.Values.Sum(c => c[35]),
            perLanguage.Values.Sum(c => c[36]), perLanguage.Values.Sum(c => c[37]),
            perLanguage.Values.Sum(c => c[38]), perLanguage.Values.Sum(c => c[39]),
            perLanguage.Values.Sum(c => c[40]), perLanguage.Values.Sum(c => c[41]),
            perLanguage.Values.Sum(c => c[42]), perLanguage.Values.Sum(c => c[43]),
            perLanguage.Values.Sum(c => c[44]), perLanguage.Values.Sum(c => c[45]),
            perLanguage.Values.Sum(c => c[46]), perLanguage.Values.Sum(c => c[47]),
            load, after.Rss - before.Rss, after.Rss, after.Managed - before.Managed, dist.P50, dist.P99, baselineP50, perLanguage);

    // The real gateway in this process: RSS once started and a tenant exists (the detector is built on first use), then
    // after detecting every text through POST /v1/language/detect; time per message is one text per request.
    private static async Task<int> ServerChildAsync(string engine, int udhrPerLanguage)
    {
        var heldOut = HeldOut("heldout.txt");
        var heldOut2 = HeldOut("heldout-2.txt");
        var heldOut3 = HeldOut("heldout-3.txt");
        var heldOut4 = HeldOut("heldout-4.txt");
        var heldOut5 = HeldOut("heldout-5.txt");
        var heldOut6 = HeldOut("heldout-6.txt");
        var heldOut7 = HeldOut("heldout-7.txt");
        var heldOut8 = HeldOut("heldout-8.txt");
        var heldOut9 = HeldOut("heldout-9.txt");
        var heldOut10 = HeldOut("heldout-10.txt");
        var heldOut11 = HeldOut("heldout-11.txt");
        var heldOut12 = HeldOut("heldout-12.txt");
        var heldOut13 = HeldOut("heldout-13.txt");
        var heldOut14 = HeldOut("heldout-14.txt");
        var heldOut15 = HeldOut("heldout-15.txt");
        var heldOut16 = HeldOut("heldout-16.txt");
        var heldOut17 = HeldOut("heldout-17.txt");
        var heldOut18 = HeldOut("heldout-18.txt");
        var heldOut19 = HeldOut("heldout-19.txt");
        var heldOut20 = HeldOut("heldout-20.txt");
        var heldOut21 = HeldOut("heldout-21.txt");
        var heldOut22 = HeldOut("heldout-22.txt");
        var heldOut23 = HeldOut("heldout-23.txt");
        var udhr = Udhr(udhrPerLanguage);
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
        foreach (var (set, index) in new[] { heldOut, udhr, heldOut2, heldOut3, heldOut4, heldOut5, heldOut6, heldOut7, heldOut8, heldOut9, heldOut10, heldOut11, heldOut12, heldOut13, heldOut14, heldOut15, heldOut16, heldOut17, heldOut18, heldOut19, heldOut20, heldOut21, heldOut22, heldOut23 }.Select((s, i) => (s, i)))
        {
            foreach (var (language, sentences) in set)
            {
                var counts = perLanguage.TryGetValue(language, out var c) ? c : perLanguage[language] = new int[48];
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

    private sealed record EngineResult(
        string Engine, int HeldOutCorrect, int HeldOutTotal, int UdhrCorrect, int UdhrTotal, int HeldOut2Correct, int HeldOut2Total, int HeldOut3Correct, int HeldOut3Total,
        int HeldOut4Correct, int HeldOut4Total, int HeldOut5Correct, int HeldOut5Total, int HeldOut6Correct, int HeldOut6Total, int HeldOut7Correct, int HeldOut7Total,
        int HeldOut8Correct, int HeldOut8Total,
        int HeldOut9Correct, int HeldOut9Total,
        int HeldOut10Correct, int HeldOut10Total,
        int HeldOut11Correct, int HeldOut11Total,
        int HeldOut12Correct, int HeldOut12Total,
        int HeldOut13Correct, int HeldOut13Total,
        int HeldOut14Correct, int HeldOut14Total,
        int HeldOut15Correct, int HeldOut15Total,
        int HeldOut16Correct, int HeldOut16Total,
        int HeldOut17Correct, int HeldOut17Total,
        int HeldOut18Correct, int HeldOut18Total,
        int HeldOut19Correct, int HeldOut19Total,
        int HeldOut20Correct, int HeldOut20Total,
        int HeldOut21Correct, int HeldOut21Total,
        int HeldOut22Correct, int HeldOut22Total,
        int HeldOut23Correct, int HeldOut23Total,
        double LoadSeconds, long RssDelta, long RssAfter, long ManagedDelta, double P50Ms, double P99Ms, double BaselineP50Ms,
        Dictionary<string, int[]> PerLanguage);
}
