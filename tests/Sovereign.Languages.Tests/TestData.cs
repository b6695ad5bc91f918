using System.Text.RegularExpressions;

namespace Sovereign.Languages.Tests;

/// <summary>Shared fixtures: one detector for the whole run (it loads Lingua's models), samples, and the models folder.</summary>
internal static partial class TestData
{
    private static readonly Lazy<LanguageDetector> Detector = new(() => new LanguageDetector());
    private static readonly Lazy<string> ModelsFolder = new(FindModelsFolder);

    /// <summary>The detector with default options (covered set, low-accuracy mode).</summary>
    public static LanguageDetector DefaultDetector => Detector.Value;

    /// <summary>Random weights with the real 32k Llama-2 vocabulary.</summary>
    public static string TinyRandomLlama2 => Path.Combine(ModelsFolder.Value, "llama-2-tiny-random.gguf");

    /// <summary>The tiny stories model (a 512-token vocabulary).</summary>
    public static string Stories260K => Path.Combine(ModelsFolder.Value, "stories260K.gguf");

    /// <summary>
    /// Labelled samples of 20 characters or more: the sentences of the UDHR articles (the preamble is left out), or
    /// the CLDR strings for a language without a UDHR here (Odia).
    /// </summary>
    public static IReadOnlyList<string> Samples(string language)
    {
        var reference = ReferenceTexts.Get(language);
        var candidates = reference is null
            ? ReferenceTexts.SupplementarySamples(language)
            : reference.Articles.SelectMany(a => a).SelectMany(p => SentenceEnd().Split(p));
        return [.. candidates.Select(s => s.Trim()).Where(s => LanguageTax.CountCharacters(s) >= 20)];
    }

    /// <summary>The first held-out evaluation set (every covered language).</summary>
    public const string FirstHeldOut = "heldout.txt";

    /// <summary>The second held-out evaluation set (close languages and a sample of the others), written later.</summary>
    public const string SecondHeldOut = "heldout-2.txt";

    /// <summary>The third held-out evaluation set (the close pairs of issue 11 and the other close languages), written
    /// in session 15 before any change or evaluation of that session.</summary>
    public const string ThirdHeldOut = "heldout-3.txt";

    /// <summary>The fourth held-out evaluation set (the close groups, Bulgarian, and Macedonian as text outside the set),
    /// written in session 16 before any change, evaluation or new tuning sentence of that session.</summary>
    public const string FourthHeldOut = "heldout-4.txt";

    /// <summary>The fifth held-out evaluation set (the close groups, Bulgarian, and Macedonian as text outside the set),
    /// written in session 18 before any change, evaluation or new tuning sentence of that session.</summary>
    public const string FifthHeldOut = "heldout-5.txt";

    /// <summary>The sixth held-out evaluation set (the close groups, Bulgarian, and Macedonian, Belarusian and Afrikaans as
    /// text outside the set), written in session 19 before any change, evaluation or new tuning sentence of that
    /// session.</summary>
    public const string SixthHeldOut = "heldout-6.txt";

    /// <summary>The seventh held-out evaluation set (every covered language, 8 sentences each), written in session 20
    /// before any change, evaluation or new development sentence of that session.</summary>
    public const string SeventhHeldOut = "heldout-7.txt";

    /// <summary>The eighth held-out evaluation set (every covered language, 8-16 sentences each, more for the close
    /// groups), written in session 21 before any change, evaluation or new development sentence of that session.</summary>
    public const string EighthHeldOut = "heldout-8.txt";

    /// <summary>The ninth held-out evaluation set (every covered language, 8-16 sentences each, more for the close
    /// groups), written in session 22 before any change, evaluation or new development sentence of that session.</summary>
    public const string NinthHeldOut = "heldout-9.txt";

    /// <summary>The tenth held-out evaluation set (every covered language, 8-16 sentences each, more for the close
    /// groups), written in session 23 before any change, evaluation or new development sentence of that session.</summary>
    public const string TenthHeldOut = "heldout-10.txt";

    /// <summary>The eleventh held-out evaluation set (every covered language, 8-16 sentences each, more for the close
    /// groups), written in session 24 before any change, evaluation or new development sentence of that session.</summary>
    public const string EleventhHeldOut = "heldout-11.txt";

    /// <summary>The twelfth held-out evaluation set (every covered language, 8-16 sentences each, more for the close
    /// groups and French), written in session 24's second round before any change, evaluation or new development
    /// sentence of that round.</summary>
    public const string TwelfthHeldOut = "heldout-12.txt";

    /// <summary>The thirteenth held-out evaluation set (every covered language, 8-16 sentences each, held-out 12's
    /// distribution), written in session 25's round 13 before any change, evaluation or new development sentence of
    /// that round.</summary>
    public const string ThirteenthHeldOut = "heldout-13.txt";

    /// <summary>The fourteenth held-out evaluation set (every covered language, 8-16 sentences each, held-out 13's
    /// distribution), written in session 26's round 14 before any change, evaluation or new development sentence of
    /// that round.</summary>
    public const string FourteenthHeldOut = "heldout-14.txt";

    /// <summary>The fifteenth held-out evaluation set (every covered language, 8-16 sentences each, held-out 14's
    /// distribution), written in session 26's round 15 before any change, evaluation or new development sentence of
    /// that round.</summary>
    public const string FifteenthHeldOut = "heldout-15.txt";

    /// <summary>The sixteenth held-out evaluation set (every covered language, 8-16 sentences each, held-out 15's
    /// distribution), written in session 27's round 16 before any change, evaluation or new development sentence of
    /// that round.</summary>
    public const string SixteenthHeldOut = "heldout-16.txt";

    /// <summary>The seventeenth held-out evaluation set (every covered language, 8-16 sentences each, held-out 16's
    /// distribution), written in session 35's round 17 before any change, evaluation or new development sentence of
    /// that round.</summary>
    public const string SeventeenthHeldOut = "heldout-17.txt";

    /// <summary>The eighteenth held-out evaluation set (every covered language, 8-16 sentences each, held-out 17's
    /// distribution), written in session 36's round 18 before any change, evaluation or new development sentence of
    /// that round.</summary>
    public const string EighteenthHeldOut = "heldout-18.txt";

    /// <summary>The nineteenth held-out evaluation set (every covered language, 8-16 sentences each, held-out 18's
    /// distribution; questions, requests and short messages), written in session 37's round 19 before any change,
    /// evaluation or new development sentence of that round.</summary>
    public const string NineteenthHeldOut = "heldout-19.txt";

    /// <summary>The twentieth held-out evaluation set (every covered language, 8-16 sentences each, held-out 19's
    /// distribution; questions, requests and short messages on new topics), written in session 38's round 20 before any
    /// change, evaluation or new development sentence of that round.</summary>
    public const string TwentiethHeldOut = "heldout-20.txt";

    /// <summary>The twenty-first held-out evaluation set (every covered language, 8-16 sentences each, held-out 20's
    /// distribution; health care and ministry errands among its topics), written in session 39's round 21 before any
    /// change, evaluation or new development sentence of that round.</summary>
    public const string TwentyFirstHeldOut = "heldout-21.txt";

    /// <summary>The twenty-second held-out evaluation set (every covered language, 8-16 sentences each, held-out 21's
    /// distribution; household and errand troubles among its topics), written in session 40's round 22 before any
    /// change, evaluation or new development sentence of that round.</summary>
    public const string TwentySecondHeldOut = "heldout-22.txt";

    /// <summary>The twenty-third held-out evaluation set (every covered language, 8-24 sentences each, held-out 22's
    /// distribution with more Croatian, Bosnian and Serbian in both scripts, and Macedonian, outside the set, 12; small
    /// mishaps at home, in the car and on holiday), written in session 41's round 23 before any change, evaluation or
    /// new development sentence of that round.</summary>
    public const string TwentyThirdHeldOut = "heldout-23.txt";

    /// <summary>The twenty-fourth held-out evaluation set (held-out 23's distribution: every covered language, 8-24
    /// sentences each, Macedonian, outside the set, 12; small complaints and requests at home, at work and in town),
    /// written in session 42's round 24 before any change, evaluation or new development sentence of that round.</summary>
    public const string TwentyFourthHeldOut = "heldout-24.txt";

    /// <summary>The twenty-fifth held-out evaluation set (held-out 24's distribution: every covered language, 8-24
    /// sentences each, Macedonian, outside the set, 12; small troubles at home, with the car and with the bills), written
    /// in session 43's round 25 before any change, evaluation or new development sentence of that round.</summary>
    public const string TwentyFifthHeldOut = "heldout-25.txt";

    /// <summary>The twenty-sixth held-out evaluation set (every covered language, 10-24 sentences each: the close groups
    /// 12-24, Macedonian, outside the set, 12; small troubles at home and on the way), written in session 44's round 26
    /// before any change, evaluation or new development sentence of that round.</summary>
    public const string TwentySixthHeldOut = "heldout-26.txt";

    /// <summary>The twenty-seventh held-out evaluation set (held-out 25's distribution: every covered language 8-24
    /// sentences, Macedonian, outside the set, 12; small mishaps at home and on the way), written in session 45's round
    /// 27 before any change, evaluation or new development sentence of that round.</summary>
    public const string TwentySeventhHeldOut = "heldout-27.txt";

    /// <summary>The twenty-eighth held-out evaluation set (held-out 27's distribution: every covered language 8-24
    /// sentences, Macedonian, outside the set, 12; small troubles at home and on the way), written in session 46's round
    /// 28 before any change, evaluation or new development sentence of that round.</summary>
    public const string TwentyEighthHeldOut = "heldout-28.txt";

    /// <summary>The twenty-ninth held-out evaluation set (held-out 28's distribution: every covered language 8-24
    /// sentences, Macedonian, outside the set, 12; small mishaps at home and on the way), written in session 47's round
    /// 29 before any change, evaluation or new development sentence of that round.</summary>
    public const string TwentyNinthHeldOut = "heldout-29.txt";

    /// <summary>The thirtieth held-out evaluation set (held-out 29's distribution: every covered language 8-24 sentences,
    /// Macedonian, outside the set, 12; small troubles at home and on the way), written in session 48's round 30 before
    /// any change, evaluation or new development sentence of that round.</summary>
    public const string ThirtiethHeldOut = "heldout-30.txt";

    /// <summary>The thirty-first held-out evaluation set (held-out 30's distribution: every covered language 8-24
    /// sentences, Macedonian, outside the set, 12; small troubles at home and on the way), written in session 49's round
    /// 31 before any change, evaluation or new development sentence of that round.</summary>
    public const string ThirtyFirstHeldOut = "heldout-31.txt";

    /// <summary>The thirty-second held-out evaluation set (held-out 31's distribution: every covered language 8-24
    /// sentences, Macedonian, outside the set, 12; a new genre: small joys and good news), written in session 50's round
    /// 32 before any change, evaluation or new development sentence of that round.</summary>
    public const string ThirtySecondHeldOut = "heldout-32.txt";

    /// <summary>The thirty-third held-out evaluation set (held-out 32's distribution: every covered language 8-24
    /// sentences, Macedonian, outside the set, 12; a new theme: hobbies, sport and music in spare time), written in
    /// session 51's round 33 before any change, evaluation or new development sentence of that round.</summary>
    public const string ThirtyThirdHeldOut = "heldout-33.txt";

    /// <summary>The thirty-fourth held-out evaluation set (held-out 33's distribution: every covered language 8-24
    /// sentences, Macedonian, outside the set, 12; a new theme: cooking, baking and meals at home), written in session
    /// 52's round 34 before any change, evaluation or new development sentence of that round.</summary>
    public const string ThirtyFourthHeldOut = "heldout-34.txt";

    /// <summary>The thirty-fifth held-out evaluation set (held-out 34's distribution: every covered language 8-24
    /// sentences, Macedonian, outside the set, 12; a new theme: the weather, the seasons and the garden), written in
    /// session 53's round 35 before any change, evaluation or new development sentence of that round.</summary>
    public const string ThirtyFifthHeldOut = "heldout-35.txt";

    /// <summary>The thirty-sixth held-out evaluation set (held-out 35's distribution: every covered language 8-24
    /// sentences, Macedonian, outside the set, 12; a new theme: children, school and homework), written in session 54's
    /// round 36 before any change, evaluation or new development sentence of that round.</summary>
    public const string ThirtySixthHeldOut = "heldout-36.txt";

    /// <summary>The thirty-seventh held-out evaluation set (held-out 36's distribution with Serbian 28, 12 of them in
    /// Cyrillic letters, and Macedonian, outside the set, 12; a new theme: work and the office), written in session 55's
    /// round 37 before any change, evaluation or new development sentence of that round.</summary>
    public const string ThirtySeventhHeldOut = "heldout-37.txt";

    /// <summary>The thirty-eighth held-out evaluation set (held-out 37's distribution: Serbian 28, 12 of them in Cyrillic
    /// letters, and Macedonian, outside the set, 12; a new theme: travel and public transport), written in session 56's
    /// round 38 before any change, evaluation or new development sentence of that round.</summary>
    public const string ThirtyEighthHeldOut = "heldout-38.txt";

    /// <summary>The held-out sets, in the order they were written.</summary>
    public static IReadOnlyList<string> HeldOutFiles { get; } = [FirstHeldOut, SecondHeldOut, ThirdHeldOut, FourthHeldOut, FifthHeldOut, SixthHeldOut, SeventhHeldOut, EighthHeldOut, NinthHeldOut, TenthHeldOut, EleventhHeldOut, TwelfthHeldOut, ThirteenthHeldOut, FourteenthHeldOut, FifteenthHeldOut, SixteenthHeldOut, SeventeenthHeldOut, EighteenthHeldOut, NineteenthHeldOut, TwentiethHeldOut, TwentyFirstHeldOut, TwentySecondHeldOut, TwentyThirdHeldOut, TwentyFourthHeldOut, TwentyFifthHeldOut, TwentySixthHeldOut, TwentySeventhHeldOut, TwentyEighthHeldOut, TwentyNinthHeldOut, ThirtiethHeldOut, ThirtyFirstHeldOut, ThirtySecondHeldOut, ThirtyThirdHeldOut, ThirtyFourthHeldOut, ThirtyFifthHeldOut, ThirtySixthHeldOut, ThirtySeventhHeldOut, ThirtyEighthHeldOut];

    /// <summary>A held-out evaluation set by language (<c>Data/heldout*.txt</c>).</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> HeldOut(string file = FirstHeldOut)
    {
        var result = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        List<string>? current = null;
        foreach (var line in File.ReadLines(Path.Combine(AppContext.BaseDirectory, "Data", file)))
        {
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            if (line.StartsWith('[') && line.EndsWith(']'))
            {
                result[line[1..^1]] = current = [];
                continue;
            }

            current!.Add(line);
        }

        return result;
    }

    // Sentence ends: Latin and Greek punctuation, danda, CJK full stops, Arabic, Ethiopic, Burmese and Khmer marks.
    [GeneratedRegex(@"(?<=[.!?;;।॥。！？؟።။។])\s*")]
    private static partial Regex SentenceEnd();

    private static string FindModelsFolder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "shared", "models");
            if (File.Exists(Path.Combine(candidate, "llama-2-tiny-random.gguf")))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException($"No shared/models/llama-2-tiny-random.gguf above {AppContext.BaseDirectory}.");
    }
}
