using System.Collections.Frozen;
using System.Text;

namespace Sovereign.Languages;

/// <summary>
/// Evidence that separates the languages of a close group beyond the profiles: contrast words (the standard word or
/// spelling one language uses where its neighbours use another: Malay <c>kerana</c>, Indonesian <c>karena</c>;
/// Croatian <c>tjedan</c>, Bosnian <c>sedmica</c>, Serbian <c>nedelja</c>; Norwegian <c>mye</c>, Danish <c>meget</c>),
/// from <c>Data/contrast-words.txt</c>, and letters only some languages of a script write (Serbian ђ ћ, Macedonian ѓ ќ,
/// Ukrainian ї є ґ, Czech ř ě ů, Slovak ä ô ľ ĺ ŕ, Portuguese ã õ, Catalan l·l).
/// </summary>
internal sealed class ContrastEvidence
{
    private static readonly Lazy<ContrastEvidence> Embedded = new(Load);

    // Letters by language; a letter may count for several (ј for Serbian and Macedonian).
    private static readonly (string Language, string Letters)[] LetterTable =
    [
        ("sr", "ђћјљњџ"), ("mk", "ѓќѕјљњџ"), ("uk", "іїєґ"), ("be", "ўіыэё"), ("ru", "ыэё"), ("bg", "ъ"),
        ("cs", "řěů"), ("sk", "äôľĺŕ"), ("pt", "ãõç"), ("es", "ñ¿¡"), ("ca", "·çàèò"), ("gl", "ñ"),
        ("da", "æø"), ("no", "æø"), ("sv", "äö"), ("is", "ðþæ"),
    ];

    private readonly FrozenDictionary<string, string[]> _words;
    private readonly FrozenDictionary<string, string[]>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly FrozenDictionary<string, string> _letters;
    private readonly FrozenDictionary<string, string[]>.AlternateLookup<ReadOnlySpan<char>> _stemLookup;

    // Words of the tuning corpus and the languages that write them; the letters each language's tuning corpus writes.
    private readonly FrozenDictionary<string, string[]>.AlternateLookup<ReadOnlySpan<char>> _corpusWords;
    private readonly FrozenDictionary<string, FrozenSet<char>> _alphabets;

    // For each language, the letters it may borrow from each other language (see BorrowedLetterHits).
    private readonly FrozenDictionary<string, string[]> _borrowable;

    private const string Vowels = "aeiouyáéíóúàèòâêôãõåäöøæ";

    /// <summary>Shortest stem matched as a word's beginning.</summary>
    private const int MinimumStem = 5;

    private ContrastEvidence(Dictionary<string, List<string>> wordsByLanguage, IReadOnlyDictionary<string, IReadOnlyList<string>> corpus)
    {
        var writers = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var (language, sentences) in corpus)
        {
            foreach (var sentence in sentences)
            {
                var normalized = LanguageProfiles.Normalize(sentence);
                foreach (var (start, length) in LanguageProfiles.Words(normalized))
                {
                    var word = normalized.Substring(start, length);
                    (writers.TryGetValue(word, out var set) ? set : writers[word] = new HashSet<string>(StringComparer.Ordinal)).Add(language);
                }
            }
        }

        _corpusWords = writers.ToFrozenDictionary(kv => kv.Key, kv => kv.Value.Order(StringComparer.Ordinal).ToArray(), StringComparer.Ordinal)
            .GetAlternateLookup<ReadOnlySpan<char>>();
        _alphabets = corpus.ToFrozenDictionary(
            kv => kv.Key,
            kv => kv.Value.SelectMany(sentence => LanguageProfiles.Normalize(sentence)).Where(char.IsLetter).ToFrozenSet(),
            StringComparer.Ordinal);
        var borrowable = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (var language in corpus.Keys.Concat(LanguageDetector.CloseGroups.SelectMany(g => g)).Distinct(StringComparer.Ordinal))
        {
            var group = GroupOf(language);
            var own = LetterTable.Where(t => t.Language == language).Select(t => t.Letters).FirstOrDefault() ?? "";
            var writes = _alphabets.Where(kv => kv.Key == language || group?.Contains(kv.Key, StringComparer.Ordinal) == true).Select(kv => kv.Value).ToArray();
            borrowable[language] = [.. LetterTable
                .Where(t => t.Language != language && group?.Contains(t.Language, StringComparer.Ordinal) != true)
                .Select(t => string.Concat(t.Letters.Where(letter => !own.Contains(letter, StringComparison.Ordinal) && writes.Any(a => a.Contains(letter)))))
                .Where(letters => letters.Length > 0)];
        }

        _borrowable = borrowable.ToFrozenDictionary(StringComparer.Ordinal);

        var byWord = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (language, words) in wordsByLanguage)
        {
            foreach (var word in words)
            {
                (byWord.TryGetValue(word, out var list) ? list : byWord[word] = []).Add(language);
            }
        }

        _words = byWord.ToFrozenDictionary(kv => kv.Key, kv => kv.Value.ToArray(), StringComparer.Ordinal);
        _lookup = _words.GetAlternateLookup<ReadOnlySpan<char>>();

        // Inflected forms: a listed word of 6 letters or more, less a final vowel, also matches the beginning of a
        // word (hiljada: hiljadu, hiljade; univerzitet: univerzitetu), as Slavic, Romance and Malay words inflect or
        // take suffixes.
        var byStem = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var (word, languages) in byWord)
        {
            if (word.Length < MinimumStem + 1 || word.Contains('-', StringComparison.Ordinal) || word.Contains('\'', StringComparison.Ordinal))
            {
                continue;
            }

            var stem = Vowels.Contains(word[^1], StringComparison.Ordinal) ? word[..^1] : word;
            (byStem.TryGetValue(stem, out var set) ? set : byStem[stem] = new HashSet<string>(StringComparer.Ordinal)).UnionWith(languages);

            // The fleeting a of Slavic nouns: ožujak, ožujka, ožujku; petak, petka.
            if (word[^2] == 'a' && !Vowels.Contains(word[^1], StringComparison.Ordinal))
            {
                var fleeting = string.Concat(word.AsSpan(0, word.Length - 2), word.AsSpan(word.Length - 1));
                (byStem.TryGetValue(fleeting, out set) ? set : byStem[fleeting] = new HashSet<string>(StringComparer.Ordinal)).UnionWith(languages);
            }
        }

        _stemLookup = byStem.ToFrozenDictionary(kv => kv.Key, kv => kv.Value.Order(StringComparer.Ordinal).ToArray(), StringComparer.Ordinal)
            .GetAlternateLookup<ReadOnlySpan<char>>();
        _letters = LetterTable.ToFrozenDictionary(t => t.Language, t => t.Letters, StringComparer.Ordinal);
    }

    /// <summary>The contrast words of the embedded file.</summary>
    public static ContrastEvidence Default => Embedded.Value;

    /// <summary>The contrast words listed for a language (alone or with others).</summary>
    public IEnumerable<string> WordsOf(string language) =>
        _words.Where(kv => kv.Value.Contains(language, StringComparer.Ordinal)).Select(kv => kv.Key);

    /// <summary>Contrast words of each language in the text (each distinct word once); with <paramref name="stems"/>
    /// (the default; off only for tuning) inflected forms match by stem.</summary>
    public Dictionary<string, int> WordHits(string normalized, bool stems = true) => Match(normalized, stems).Hits;

    /// <summary>
    /// The contrast words a language borrows from another's hits: listed words of a language outside its close group
    /// that its own tuning corpus, or a member of its group's, writes (so that every member borrows alike): Catalan
    /// and Spanish <c>la</c>, <c>un</c>, which French writes; Serbian ekavian <c>mleko</c>, which Slovenian writes. A word
    /// tells the members of a group apart; against a language that writes it too it is no evidence, so that language
    /// counts it as well (the most it shares with any one language).
    /// </summary>
    public int BorrowedWordHits(string normalized, string language, bool stems = true) => Match(normalized, stems).Borrowed(language);

    /// <summary>The listed words of a text (each distinct word once) with their languages.</summary>
    public Matches Match(string normalized, bool stems = true)
    {
        var matched = new List<(string Word, string[] Languages)>();
        foreach (var (start, length) in LanguageProfiles.Words(normalized))
        {
            var word = normalized.AsSpan(start, length);
            var languages = Find(word, stems);
            if (languages is not null)
            {
                Add(matched, normalized.Substring(start, length), languages);
                continue;
            }

            // A compound written with a hyphen (sogan-dolma, jiran-jiran's parts) that is not listed whole counts by
            // its parts.
            var rest = word;
            while (rest.IndexOf('-') is var hyphen && hyphen >= 0 && length > hyphen)
            {
                var part = rest[..hyphen];
                if (Find(part, stems) is { } partLanguages)
                {
                    Add(matched, part.ToString(), partLanguages);
                }

                rest = rest[(hyphen + 1)..];
                if (rest.IndexOf('-') < 0 && Find(rest, stems) is { } lastLanguages)
                {
                    Add(matched, rest.ToString(), lastLanguages);
                }
            }
        }

        return new Matches(this, matched);
    }

    private static void Add(List<(string Word, string[] Languages)> matched, string word, string[] languages)
    {
        if (!matched.Exists(m => m.Word == word))
        {
            matched.Add((word, languages));
        }
    }

    /// <summary>The letters a language borrows from another's hits (<see cref="LetterHits"/>): letters listed for a
    /// language outside its close group that its own tuning corpus writes (Catalan <c>à è ç</c> in French text), the most
    /// it shares with any one language.</summary>
    public int BorrowedLetterHits(string normalized, string language)
    {
        if (!_borrowable.TryGetValue(language, out var lenders))
        {
            return 0;
        }

        var best = 0;
        foreach (var letters in lenders)
        {
            var count = 0;
            foreach (var letter in letters)
            {
                if (normalized.Contains(letter, StringComparison.Ordinal))
                {
                    count++;
                }
            }

            best = Math.Max(best, count);
        }

        return best;
    }

    /// <summary>The close group a language belongs to, or null.</summary>
    internal static string[]? GroupOf(string language) =>
        Array.Find(LanguageDetector.CloseGroups, g => g.Contains(language, StringComparer.Ordinal));

    // The languages of a listed word, or of the longest listed stem the word begins with.
    private string[]? Find(ReadOnlySpan<char> word, bool stems)
    {
        if (_lookup.TryGetValue(word, out var languages) || !stems)
        {
            return languages;
        }

        for (var end = word.Length; end >= MinimumStem && languages is null; end--)
        {
            _ = _stemLookup.TryGetValue(word[..end], out languages);
        }

        return languages;
    }

    /// <summary>Distinct letters of a language's own set that the text writes.</summary>
    public int LetterHits(string normalized, string language)
    {
        if (!_letters.TryGetValue(language, out var letters))
        {
            return 0;
        }

        var count = 0;
        foreach (var letter in letters)
        {
            if (normalized.Contains(letter, StringComparison.Ordinal))
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>A text's listed words: hits by language, and what each language borrows.</summary>
    internal sealed class Matches
    {
        private readonly ContrastEvidence _evidence;
        private readonly List<(string Word, string[] Languages)> _matched;

        internal Matches(ContrastEvidence evidence, List<(string Word, string[] Languages)> matched)
        {
            _evidence = evidence;
            _matched = matched;
            Hits = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var (_, languages) in matched)
            {
                foreach (var language in languages)
                {
                    Hits[language] = Hits.GetValueOrDefault(language) + 1;
                }
            }
        }

        /// <summary>Distinct listed words by language.</summary>
        public Dictionary<string, int> Hits { get; }

        /// <summary>Distinct listed words that both <paramref name="first"/> and <paramref name="second"/> write and
        /// <paramref name="not"/> does not (round 28: Bosnian and Serbian's eastern words, against Croatian).</summary>
        public int SharedWithout(string first, string second, string not) =>
            _matched.Count(m => m.Languages.Contains(first, StringComparer.Ordinal) && m.Languages.Contains(second, StringComparer.Ordinal)
                && !m.Languages.Contains(not, StringComparer.Ordinal));

        /// <summary>See <see cref="BorrowedWordHits"/>.</summary>
        public int Borrowed(string borrower)
        {
            if (_matched.Count == 0)
            {
                return 0;
            }

            var group = GroupOf(borrower);
            Dictionary<string, int>? lent = null;
            foreach (var (word, languages) in _matched)
            {
                if (languages.Contains(borrower, StringComparer.Ordinal) || !_evidence._corpusWords.TryGetValue(word, out var writers)
                    || !writers.Any(w => w == borrower || group?.Contains(w, StringComparer.Ordinal) == true))
                {
                    continue;
                }

                foreach (var lender in languages)
                {
                    if (group?.Contains(lender, StringComparer.Ordinal) != true)
                    {
                        lent ??= new Dictionary<string, int>(StringComparer.Ordinal);
                        lent[lender] = lent.GetValueOrDefault(lender) + 1;
                    }
                }
            }

            return lent is null ? 0 : lent.Values.Max();
        }
    }

    private static ContrastEvidence Load()
    {
        using var stream = typeof(ContrastEvidence).Assembly.GetManifestResourceStream("Sovereign.Languages.Data.contrast-words.txt")
            ?? throw new InvalidOperationException("The embedded resource contrast-words.txt is missing from Sovereign.Languages.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var words = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith('#') || line.IndexOf(':', StringComparison.Ordinal) is var colon && colon < 0)
            {
                continue;
            }

            // "hr bs: ..." lists words that several languages share against the rest of their group.
            var entries = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(LanguageProfiles.Normalize).ToList();
            foreach (var language in line[..colon].Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                (words.TryGetValue(language, out var list) ? list : words[language] = []).AddRange(entries);
            }
        }

        return new ContrastEvidence(words, LanguageProfiles.LoadCorpus());
    }
}
