using System.Collections.Frozen;
using System.Globalization;
using System.IO.Compression;
using System.Text.Json;
using Lingua;

namespace Sovereign.Languages;

/// <summary>
/// Lingua's low-accuracy statistics scored in one pass over the text for all of a script's languages at once. Lingua
/// itself looks every trigram up once per language (allocating a string and a model-cache lookup each time), runs its
/// character rules first, and spends most of a short message's detection time there. This reads the same published
/// models (the unigram, bigram and trigram files Lingua ships as content, <c>Lingua/LanguageModels/&lt;iso&gt;</c>) into
/// one table keyed by n-gram, with each n-gram's languages and log-probabilities side by side, and computes what
/// Lingua's low-accuracy mode computes: for each language the sum over the text's distinct letter trigrams of the
/// log-probability of the trigram, or where the language lacks it of its leading bigram, or of its first letter; a
/// language that knows none of them gets nothing; the shares are the softmax of the sums. Lingua's character rules
/// are not repeated: the letters only some languages write are the detector's own evidence
/// (<see cref="ContrastEvidence"/>).
/// </summary>
internal sealed class TrigramShares
{
    private const int Order = 3;

    private readonly FrozenDictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _rows;
    private readonly int[] _start;             // row -> first entry; entries of a row are [start[row], start[row + 1])
    private readonly ushort[] _language;       // entry -> index into Languages
    private readonly float[] _logProbability;  // entry -> log P(n-gram | language)

    private TrigramShares(IReadOnlyList<Language> languages, Dictionary<string, List<(ushort Language, float LogProbability)>> table)
    {
        Languages = languages;
        var rows = new Dictionary<string, int>(table.Count, StringComparer.Ordinal);
        _start = new int[table.Count + 1];
        var entries = table.Values.Sum(e => e.Count);
        _language = new ushort[entries];
        _logProbability = new float[entries];
        var next = 0;
        foreach (var (ngram, list) in table)
        {
            _start[rows.Count] = next;
            rows[ngram] = rows.Count;
            foreach (var (language, logProbability) in list)
            {
                _language[next] = language;
                _logProbability[next++] = logProbability;
            }
        }

        _start[rows.Count] = next;
        _rows = rows.ToFrozenDictionary(StringComparer.Ordinal).GetAlternateLookup<ReadOnlySpan<char>>();
        Entries = entries;
    }

    /// <summary>The languages scored, in the order of <see cref="Shares"/>.</summary>
    public IReadOnlyList<Language> Languages { get; }

    /// <summary>N-gram probabilities held, over all languages (for diagnostics).</summary>
    public int Entries { get; }

    /// <summary>Reads the unigram, bigram and trigram models of these languages from Lingua's model folder.</summary>
    /// <exception cref="FileNotFoundException">A language's trigram model is not there (Lingua's content files were
    /// not copied to the output).</exception>
    public static TrigramShares Load(IReadOnlyList<Language> languages)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(languages.Count, ushort.MaxValue, nameof(languages));
        var folder = ModelFolder();
        var table = new Dictionary<string, List<(ushort, float)>>(StringComparer.Ordinal);
        for (var i = 0; i < languages.Count; i++)
        {
            var iso = languages[i].IsoCode6391().ToString().ToLowerInvariant();
            foreach (var name in (string[])["unigrams", "bigrams", "trigrams"])
            {
                var path = Path.Combine(folder, iso, name + ".json.br");
                if (!File.Exists(path) && name != "trigrams")
                {
                    continue;
                }

                Read(path, (ushort)i, table);
            }
        }

        return new TrigramShares(languages, table);
    }

    /// <summary>Each language's share (summing to 1 over the languages that know any of the text's n-grams; all 0 when
    /// none does or the text has no three letters in a row).</summary>
    public double[] Shares(string text)
    {
        var count = Languages.Count;
        var sums = new double[count];
        var letters = Clean(text);
        if (letters.Length < Order)
        {
            return sums;
        }

        var covered = new int[count];
        var seen = new HashSet<ulong>();
        var stamp = 0;
        var span = letters.AsSpan();
        for (var i = 0; i + Order <= span.Length; i++)
        {
            var trigram = span.Slice(i, Order);
            if (!char.IsLetter(trigram[0]) || !char.IsLetter(trigram[1]) || !char.IsLetter(trigram[2])
                || !seen.Add(((ulong)trigram[0] << 32) | ((ulong)trigram[1] << 16) | trigram[2]))
            {
                continue;
            }

            // The trigram where a language has it, else its leading bigram, else its first letter.
            stamp++;
            for (var length = Order; length >= 1; length--)
            {
                if (!_rows.TryGetValue(trigram[..length], out var row))
                {
                    continue;
                }

                for (var entry = _start[row]; entry < _start[row + 1]; entry++)
                {
                    var language = _language[entry];
                    if (covered[language] != stamp)
                    {
                        covered[language] = stamp;
                        sums[language] += _logProbability[entry];
                    }
                }
            }
        }

        // A missing n-gram costs a language nothing, so a language that knows little of the text can outscore the
        // right one (Croatian with č, š, ž read as Shona). Only the languages whose alphabet, as their unigram models
        // show it, has the most of the text's letters stay in the running.
        var known = KnownLetters(span, count);
        var most = known.Max();

        // Softmax over those that knew anything (a sum of 0 means none of the n-grams was found).
        var max = double.NegativeInfinity;
        for (var l = 0; l < count; l++)
        {
            if (known[l] < most)
            {
                sums[l] = 0;
            }
            else if (sums[l] < 0 && sums[l] > max)
            {
                max = sums[l];
            }
        }

        if (double.IsNegativeInfinity(max))
        {
            return sums;
        }

        double total = 0;
        for (var l = 0; l < count; l++)
        {
            sums[l] = sums[l] < 0 ? Math.Exp(sums[l] - max) : 0;
            total += sums[l];
        }

        for (var l = 0; l < count; l++)
        {
            sums[l] /= total;
        }

        return sums;
    }

    // For each language, how many of the text's distinct letters its unigram model has.
    private int[] KnownLetters(ReadOnlySpan<char> letters, int count)
    {
        var known = new int[count];
        var seen = new HashSet<char>();
        foreach (var letter in letters)
        {
            if (!char.IsLetter(letter) || !seen.Add(letter) || !_rows.TryGetValue(letters.Slice(letters.IndexOf(letter), 1), out var row))
            {
                continue;
            }

            for (var entry = _start[row]; entry < _start[row + 1]; entry++)
            {
                known[_language[entry]]++;
            }
        }

        return known;
    }

    // Lower case, without punctuation and digits (as Lingua cleans its input: "don't" is read as "dont"); everything
    // else is kept, so that a space or a mark still breaks a run of letters.
    private static string Clean(string text)
    {
        return string.Create(text.Length - Removed(text), text, static (buffer, source) =>
        {
            var j = 0;
            foreach (var c in source)
            {
                if (!char.IsPunctuation(c) && !char.IsNumber(c))
                {
                    buffer[j++] = char.ToLowerInvariant(c);
                }
            }
        });

        static int Removed(string text)
        {
            var removed = 0;
            foreach (var c in text)
            {
                removed += char.IsPunctuation(c) || char.IsNumber(c) ? 1 : 0;
            }

            return removed;
        }
    }

    // A model file: {"language":"CROATIAN","ngrams":{"8/285":"čri čre", ...}}, the n-grams of each probability
    // separated by spaces.
    private static void Read(string path, ushort language, Dictionary<string, List<(ushort, float)>> table)
    {
        using var file = File.OpenRead(path);
        using var brotli = new BrotliStream(file, CompressionMode.Decompress);
        using var json = JsonDocument.Parse(brotli);
        foreach (var probability in json.RootElement.GetProperty("ngrams").EnumerateObject())
        {
            var slash = probability.Name.IndexOf('/', StringComparison.Ordinal);
            var value = double.Parse(probability.Name.AsSpan(0, slash), CultureInfo.InvariantCulture)
                / double.Parse(probability.Name.AsSpan(slash + 1), CultureInfo.InvariantCulture);
            var logProbability = (float)Math.Log(value);
            foreach (var ngram in probability.Value.GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                (table.TryGetValue(ngram, out var list) ? list : table[ngram] = []).Add((language, logProbability));
            }
        }
    }

    /// <summary>Why the detector could not load its models (the folder is missing), or null when it can.</summary>
    internal static string? MissingModels()
    {
        try
        {
            ModelFolder();
            return null;
        }
        catch (FileNotFoundException ex)
        {
            return ex.Message;
        }
    }

    // Lingua's build target copies its models next to the application; a single-file app has no assembly location.
    private static string ModelFolder()
    {
        var lingua = typeof(Language).Assembly.Location;
        foreach (var root in (string?[])[string.IsNullOrEmpty(lingua) ? null : Path.GetDirectoryName(lingua), AppContext.BaseDirectory])
        {
            var folder = root is null ? null : Path.Combine(root, "Lingua", "LanguageModels");
            if (folder is not null && Directory.Exists(folder))
            {
                return folder;
            }
        }

        throw new FileNotFoundException($"Lingua's language models are not in {Path.Combine(AppContext.BaseDirectory, "Lingua", "LanguageModels")}.");
    }
}
