using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;
using Sovereign.Benchmarks.Gateway;
using Sovereign.Gateway.ControlPlane;
using Sovereign.Gateway.Routing;
using Sovereign.Languages;

namespace Sovereign.Benchmarks.Languages;

/// <summary>
/// Language detection: the memory the detector takes with the default language set (measured first, in this fresh
/// process), its cost per request over UDHR paragraphs and short messages in every language with a reference text
/// (against tokenizing the same text, the other per-request pass over the prompt), and what routing by language
/// (<c>model: "auto"</c>) adds to a request against naming the model, through HTTP, in the same run.
/// </summary>
internal static class LanguagesBenchmark
{
    public const string Usage = "languages [--quick] [--paragraphs N per language (10)] [--rounds N (5)] [--requests N per route (1000)] [--data-root DIR]";

    private const int ShortLength = 60;

    private const int PromptLength = 40;

    public static async Task<int> RunAsync(string[] argv)
    {
        Args args;
        try
        {
            args = Args.Parse(argv, "--paragraphs", "--rounds", "--requests", "--data-root");
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message + "\nusage: " + Usage);
            return 2;
        }

        var perLanguage = args.Int("--paragraphs", 10, 4);
        var rounds = args.Int("--rounds", 5, 2);
        var requests = args.Int("--requests", 1_000, 200);
        Report.Machine("languages", argv);

        // Samples first, so the reference texts are not counted as the detector's memory.
        var paragraphs = new List<(string Language, string Text)>();
        foreach (var (code, text) in ReferenceTexts.All.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            paragraphs.AddRange(text.Preamble.Concat(text.Articles.SelectMany(a => a)).Where(p => p.Length >= 40).Take(perLanguage).Select(p => (code, p)));
        }

        var shorts = paragraphs.Select(p => (p.Language, Text: Cut(p.Text, ShortLength))).ToList();
        var languageCount = paragraphs.Select(p => p.Language).Distinct().Count();

        // 1. Memory.
        var before = Snapshot();
        var clock = Stopwatch.StartNew();
        var detector = new LanguageDetector();
        var constructed = clock.Elapsed;
        var after = Snapshot();
        clock.Restart();
        var correct = paragraphs.Count(p => detector.Detect(p.Text).Language == p.Language);
        var correctShort = shorts.Count(p => detector.Detect(p.Text).Language == p.Language);
        var firstPass = clock.Elapsed;
        var afterUse = Snapshot();
        GC.KeepAlive(detector);
        Console.WriteLine(FormattableString.Invariant(
            $"Detector: default options ({detector.Languages.Count} languages, {detector.LinguaLanguages.Count} through Lingua, low-accuracy mode), constructed in {constructed.TotalMilliseconds:N0} ms; first pass over {paragraphs.Count + shorts.Count:N0} samples in {firstPass.TotalMilliseconds:N0} ms."));
        Console.WriteLine();
        Console.WriteLine("### Memory (fresh process, after a full blocking GC each time)");
        Console.WriteLine();
        Report.Table(
            ["", "RSS MiB", "anonymous RSS MiB", "managed heap (live) MiB", "GC committed MiB", "RSS vs before"],
            [
                Mem("baseline: before constructing (runtime + reference texts)", before, before),
                Mem("after new LanguageDetector()", after, before),
                Mem("after detecting every sample once", afterUse, before),
                ["detector's share (after use - before)", F(afterUse.Rss - before.Rss), F(afterUse.Anon - before.Anon), F(afterUse.Managed - before.Managed), F(afterUse.Committed - before.Committed), "-"],
            ]);

        // 2. Cost per request, against tokenizing the same text with the served model's tokenizer.
        await using var server = await BenchServer.StartAsync(new ServerConfig { DataRoot = args.String("--data-root") });
        var model = server.Batcher.Model;
        var sets = new (string Name, List<(string Language, string Text)> Samples)[] { ("UDHR paragraph (detector reads <= 500 chars)", paragraphs), ($"short message (first {ShortLength} chars)", shorts) };

        // Warm-up: enough calls for tiered JIT to promote Lingua's and the tokenizer's hot paths, then time for the
        // background compiler to install them.
        for (var pass = 0; pass < 3; pass++)
        {
            foreach (var (_, samples) in sets)
            {
                foreach (var (_, text) in samples)
                {
                    _ = detector.Detect(text);
                    _ = model.Tokenize(text);
                }
            }
        }

        await Task.Delay(1_000);
        var timing = new Dictionary<(string Set, string Route), List<double>>();
        var perLanguageTimes = new Dictionary<string, List<double>>(StringComparer.Ordinal);
        for (var round = 0; round < rounds; round++)
        {
            foreach (var (name, samples) in sets)
            {
                var order = samples.OrderBy(_ => Random.Shared.Next()).ToList();
                foreach (var route in round % 2 == 0 ? new[] { "detect", "tokenize" } : ["tokenize", "detect"])
                {
                    var list = timing.TryGetValue((name, route), out var l) ? l : timing[(name, route)] = [];
                    foreach (var (language, text) in order)
                    {
                        var start = Stopwatch.GetTimestamp();
                        if (route == "detect")
                        {
                            _ = detector.Detect(text);
                        }
                        else
                        {
                            _ = model.Tokenize(text);
                        }

                        var ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                        list.Add(ms);
                        if (route == "detect" && samples == paragraphs)
                        {
                            (perLanguageTimes.TryGetValue(language, out var pl) ? pl : perLanguageTimes[language] = []).Add(ms);
                        }
                    }
                }
            }
        }

        Console.WriteLine(FormattableString.Invariant($"### Detection cost per request: {languageCount} languages x {perLanguage} UDHR paragraphs, {rounds} rounds, interleaved with the baseline"));
        Console.WriteLine();
        var rows = new List<string[]>();
        foreach (var (name, samples) in sets)
        {
            var tok = new Dist(timing[(name, "tokenize")]);
            var det = new Dist(timing[(name, "detect")]);
            var accuracy = (double)(samples == paragraphs ? correct : correctShort) / samples.Count;
            rows.Add([$"baseline: tokenize, {name}", Report.Us(tok.P50), Report.Us(tok.P99), Report.Us(tok.Max), "1.00x", "1.00x", "-"]);
            rows.Add([$"LanguageDetector.Detect, {name}", Report.Us(det.P50), Report.Us(det.P99), Report.Us(det.Max), Report.Ratio(det.P50, tok.P50), Report.Ratio(det.P99, tok.P99), accuracy.ToString("P1", CultureInfo.InvariantCulture)]);
        }

        Report.Table(["per request", "p50 us", "p99 us", "max us", "p50 vs baseline", "p99 vs baseline", "detected as its language"], rows);
        var slowest = perLanguageTimes.Select(kv => (kv.Key, Dist: new Dist(kv.Value))).OrderByDescending(x => x.Dist.P50).Take(5).ToList();
        Console.WriteLine("Slowest languages (paragraphs, p50 us): " + string.Join(", ", slowest.Select(s => $"{s.Key} {Report.Us(s.Dist.P50)}")) + ".");
        Console.WriteLine();

        // 2b. Conversations: a request's language is its conversation's, and the language tax's waiver measures the
        // share of the whole prompt in the language. Per language: 40 turns of history (its paragraphs as user turns,
        // English assistant turns), ending in a paragraph (decided by the last message alone, as before), in "ok" (the
        // turns before it are read) or in a pasted key (a long message in no language: both read).
        ConversationCost(detector, paragraphs, rounds);

        // 3. Routing: "auto" against naming the model, through HTTP with a tenant key.
        var world = await BenchWorld.CreateAsync(server, new WorldSpec { Tenants = 100, Nodes = 0 });
        await world.WarmGrainsAsync(server);
        var prompts = ReferenceTexts.All.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => Cut(kv.Value.Preamble[0], PromptLength)).ToArray();
        var client = server.Client;
        var determined = 0;
        async Task Complete(string modelName, int i)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
            {
                Content = new ByteArrayContent(BenchServer.Body(new { model = modelName, prompt = prompts[i % prompts.Length], max_tokens = 1, temperature = 0 })),
            };
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + world.Tenants[i % world.Tenants.Count].Secret);
            using var response = await client.SendAsync(request);
            if (!response.IsSuccessStatusCode)
            {
                throw new HttpRequestException($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
            }

            if (response.Headers.TryGetValues(LanguageRouting.LanguageHeader, out var language) && !language.First().StartsWith(LanguageDetection.Undetermined + ";", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref determined);
            }
        }

        // In process: what the alias resolution itself costs (visible models + detection + choice).
        var languages = server.Get<LanguageRouting>();
        var router = server.Get<InferenceRouter>();
        var context = new DefaultHttpContext();
        context.Request.Headers.Authorization = "Bearer " + world.Tenants[0].Secret;
        var caller = await server.Get<CallerAuthenticator>().AuthenticateAsync(context);

        var routes = new (string Name, Func<int, Task> Op)[]
        {
            ("baseline: model \"stories\" (named)", i => Complete(BenchServer.ModelId, i)),
            ("model \"auto\" (routed by language)", i => Complete("auto", i)),
        };
        foreach (var route in routes)
        {
            await Driver.BackToBackAsync(200, route.Op);
        }

        // Pairs: the same prompt and tenant through both routes, one right after the other (alternating which goes
        // first), so the per-pair difference cancels prompt length (prefill) and most of the machine's drift.
        determined = 0;
        var named = new List<double>();
        var auto = new List<double>();
        var differences = new List<double>();
        var errors = 0;
        string? firstError = null;
        for (var i = 0; i < requests; i++)
        {
            var pair = new double[2];
            try
            {
                foreach (var r in i % 2 == 0 ? new[] { 0, 1 } : [1, 0])
                {
                    var start = Stopwatch.GetTimestamp();
                    await routes[r].Op(i);
                    pair[r] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or InvalidOperationException)
            {
                errors++;
                firstError ??= ex.Message;
                continue;
            }

            named.Add(pair[0]);
            auto.Add(pair[1]);
            differences.Add(pair[1] - pair[0]);
        }

        var detectOnly = await Driver.BackToBackAsync(requests, i => { _ = languages.Detect(prompts[i % prompts.Length]); return Task.CompletedTask; });
        var choose = await Driver.BackToBackAsync(requests, i => languages.ChooseAsync(router, caller, "auto", prompts[i % prompts.Length]));

        var namedDist = new Dist(named);
        var autoDist = new Dist(auto);
        var diff = new Dist(differences);
        Console.WriteLine(FormattableString.Invariant($"### Routing: POST /v1/completions, max_tokens 1, tenant key, {prompts.Length} languages' UDHR openings ({PromptLength} chars), {requests:N0} pairs back to back"));
        Console.WriteLine();
        Report.Table(
            ["route", "p50 ms", "p90 ms", "p99 ms", "max ms", "p50 vs baseline", "p99 vs baseline", "errors"],
            [
                ["baseline: model \"stories\" (named; detection still runs, after generation, for the usage record)", Report.Ms(namedDist.P50), Report.Ms(namedDist.P90), Report.Ms(namedDist.P99), Report.Ms(namedDist.Max), "1.00x", "1.00x", Report.N(errors)],
                ["model \"auto\" (detection before routing, visible models, choice)", Report.Ms(autoDist.P50), Report.Ms(autoDist.P90), Report.Ms(autoDist.P99), Report.Ms(autoDist.Max), Report.Ratio(autoDist.P50, namedDist.P50), Report.Ratio(autoDist.P99, namedDist.P99), Report.N(errors)],
                ["paired difference auto - named, same prompt and tenant", Report.Ms(diff.P50), Report.Ms(diff.P90), Report.Ms(diff.P99), Report.Ms(diff.Max), Report.Ratio(diff.P50, namedDist.P50), "-", "-"],
                ["in process: LanguageRouting.Detect only", Report.Ms(detectOnly.Latency.P50), Report.Ms(detectOnly.Latency.P90), Report.Ms(detectOnly.Latency.P99), Report.Ms(detectOnly.Latency.Max), Report.Ratio(detectOnly.Latency.P50, namedDist.P50), "-", "0"],
                ["in process: LanguageRouting.ChooseAsync(\"auto\")", Report.Ms(choose.Latency.P50), Report.Ms(choose.Latency.P90), Report.Ms(choose.Latency.P99), Report.Ms(choose.Latency.Max), Report.Ratio(choose.Latency.P50, namedDist.P50), "-", Report.N(choose.Errors)],
            ]);
        Console.WriteLine(FormattableString.Invariant($"Mean paired difference: {differences.DefaultIfEmpty(double.NaN).Average():0.000} ms. \"auto\" requests answered with a determined language: {determined:N0} of {auto.Count:N0}."));
        if ((firstError ?? choose.FirstError) is { } first)
        {
            Console.WriteLine("First error: " + first);
        }

        Console.WriteLine($"Load average at end: {Report.LoadAverage()}");
        return 0;
    }

    private static void ConversationCost(LanguageDetector detector, List<(string Language, string Text)> paragraphs, int rounds)
    {
        const string key = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0";
        var byLanguage = paragraphs.GroupBy(p => p.Language).ToDictionary(g => g.Key, g => g.Select(p => p.Text).ToList(), StringComparer.Ordinal);
        PromptText Conversation(string language, string last)
        {
            var texts = byLanguage[language];
            var turns = new List<PromptTurn> { new(PromptRole.Instructions, "You are a helpful assistant. Answer in the user's language.") };
            for (var i = 0; i < 20; i++)
            {
                turns.Add(new(PromptRole.User, texts[i % texts.Count]));
                turns.Add(new(PromptRole.Other, "Certainly. Here is what I found about that question, in short."));
            }

            turns.Add(new(PromptRole.User, last));
            return new PromptText(turns);
        }

        var cases = new (string Name, Func<string, (string Last, PromptText Prompt)> Make)[]
        {
            ("ends in a paragraph", l => (byLanguage[l][0], Conversation(l, byLanguage[l][0]))),
            ("ends in \"ok\"", l => ("ok", Conversation(l, "ok"))),
            ("ends in a pasted key", l => (key, Conversation(l, key))),
        };
        var samples = cases.Select(c => (c.Name, Items: byLanguage.Keys.Order(StringComparer.Ordinal).Select(l => (Language: l, Case: c.Make(l))).ToList())).ToList();
        foreach (var (_, items) in samples)
        {
            foreach (var (_, (last, prompt)) in items)
            {
                _ = detector.Detect(last);
                _ = detector.DetectConversation(prompt);
            }
        }

        var rows = new List<string[]>();
        foreach (var (name, items) in samples)
        {
            var before = new List<double>();
            var after = new List<double>();
            var ownScript = new List<double>();
            var sharedScript = new List<double>();
            var agreeing = 0;
            for (var round = 0; round < rounds; round++)
            {
                foreach (var (language, (last, prompt)) in items.OrderBy(_ => Random.Shared.Next()))
                {
                    var start = Stopwatch.GetTimestamp();
                    _ = detector.Detect(last);
                    before.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    start = Stopwatch.GetTimestamp();
                    var detected = detector.DetectConversation(prompt);
                    after.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    start = Stopwatch.GetTimestamp();
                    var share = detector.ShareOf(prompt, language);
                    (share.Basis == LanguageShare.ByScript ? ownScript : sharedScript).Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    agreeing += round == 0 && detected.Language == language ? 1 : 0;
                }
            }

            var (b, a, own, shared) = (new Dist(before), new Dist(after), new Dist(ownScript), new Dist(sharedScript));
            rows.Add([$"before: Detect(last message), {name}", Report.Us(b.P50), Report.Us(b.P99), Report.Us(b.Max), "-"]);
            rows.Add([$"DetectConversation, {name}", Report.Us(a.P50), Report.Us(a.P99), Report.Us(a.Max),
                FormattableString.Invariant($"{agreeing}/{items.Count}")]);
            rows.Add([$"ShareOf(prompt, its language), own script, {name}", Report.Us(own.P50), Report.Us(own.P99), Report.Us(own.Max), "-"]);
            rows.Add([$"ShareOf(prompt, its language), shared script, {name}", Report.Us(shared.P50), Report.Us(shared.P99), Report.Us(shared.Max), "-"]);
        }

        var characters = samples[0].Items.Average(i => i.Case.Prompt.Turns.Sum(t => t.Text.Length));
        Console.WriteLine(FormattableString.Invariant(
            $"### Conversations: {samples[0].Items.Count} languages, 41 user turns and 20 assistant turns each (about {characters:N0} characters), {rounds} rounds"));
        Console.WriteLine();
        Report.Table(["per request", "p50 us", "p99 us", "max us", "conversation detected as its language"], rows);
    }

    private static string Cut(string text, int length)
    {
        if (text.Length <= length)
        {
            return text;
        }

        var end = length;
        if (char.IsHighSurrogate(text[end - 1]))
        {
            end--;
        }

        return text[..end];
    }

    private static string F(long bytes) => (bytes / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture);

    private static string[] Mem(string name, Memory m, Memory baseline) =>
        [name, F(m.Rss), F(m.Anon), F(m.Managed), F(m.Committed), Report.Ratio(m.Rss, baseline.Rss)];

    private static Memory Snapshot()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        long rss = Environment.WorkingSet, anon = 0;
        if (File.Exists("/proc/self/status"))
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    rss = Kb(line);
                }
                else if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
                {
                    anon = Kb(line);
                }
            }
        }

        return new Memory(rss, anon, GC.GetTotalMemory(false), GC.GetGCMemoryInfo().TotalCommittedBytes);
    }

    private static long Kb(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;

    private readonly record struct Memory(long Rss, long Anon, long Managed, long Committed);
}
