using System.Collections.Frozen;
using System.Text;

namespace Sovereign.Languages;

/// <summary>
/// Evidence from the spelling dictionaries of the Croatian, Bosnian and Serbian standards, a source independent of the
/// tuning corpus and of any hand-made list: <c>Data/standard-forms.txt</c> holds every word form (after affix
/// expansion) that two of the three Hunspell dictionaries accept and the third rejects - <c>ko, niko, juče, opština,
/// fudbal, pozvaću, rezervisati</c> (Bosnian and Serbian, not Croatian), <c>tko, netko, točno, općina, siječanj</c>
/// (Croatian and Bosnian, not Serbian) - and the ekavian forms only the Serbian dictionary accepts whose ijekavian form
/// the other two accept (<c>mlečni, železničke, premestili</c>: the yat reflex across the whole vocabulary, where
/// <see cref="YatReflex"/> derives ekavian forms from the tuning text alone). How often a member's own running text uses a form of each kind is counted on
/// the tuning sentences (the dictionaries are permissive, and the Bosnian one accepts many Croatian words, so a form's
/// kind is evidence of a degree, not a verdict); a text's forms then add the log of those rates, centred over the
/// members (a naive Bayes over the three kinds).
/// </summary>
internal sealed class StandardForms
{
    /// <summary>The members the dictionaries decide among.</summary>
    private static readonly string[] Members = ["hr", "bs", "sr"];

    // The kinds of form, by the dictionaries that accept it (the file's sections).
    private static readonly string[] Kinds = ["bs sr", "hr bs", "sr"];

    /// <summary>Additive smoothing of the rates (a kind a member's tuning text never used is not impossible).</summary>
    private const double Smoothing = 0.5;

    private static readonly Lazy<FrozenDictionary<string, byte>> EmbeddedForms = new(LoadForms);
    private static readonly Lazy<StandardForms> Embedded = new(() => FromCorpus(LanguageProfiles.LoadCorpus()));

    private readonly FrozenDictionary<string, byte>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly double[] _logRate; // kind * members + member: log P(a word of this kind | the member's text)

    private StandardForms(FrozenDictionary<string, byte> forms, double[] logRate)
    {
        _lookup = forms.GetAlternateLookup<ReadOnlySpan<char>>();
        _logRate = logRate;
        FormCount = forms.Count;
    }

    /// <summary>Rates counted on the embedded tuning corpus.</summary>
    public static StandardForms Default => Embedded.Value;

    /// <summary>Forms in the table.</summary>
    public int FormCount { get; }

    /// <summary>Counts, for each member, the share of its tuning words of each kind.</summary>
    public static StandardForms FromCorpus(IReadOnlyDictionary<string, IReadOnlyList<string>> corpus)
    {
        var forms = EmbeddedForms.Value;
        var lookup = forms.GetAlternateLookup<ReadOnlySpan<char>>();
        var logRate = new double[Kinds.Length * Members.Length];
        for (var m = 0; m < Members.Length; m++)
        {
            var hits = new int[Kinds.Length];
            var words = 0;
            foreach (var sentence in corpus.GetValueOrDefault(Members[m]) ?? [])
            {
                var normalized = LanguageProfiles.Normalize(sentence);
                foreach (var (start, length) in LanguageProfiles.Words(normalized))
                {
                    var word = normalized.AsSpan(start, length);
                    if (!IsLatin(word))
                    {
                        continue;
                    }

                    words++;
                    if (lookup.TryGetValue(word, out var kind))
                    {
                        hits[kind]++;
                    }
                }
            }

            for (var k = 0; k < Kinds.Length; k++)
            {
                logRate[(k * Members.Length) + m] = Math.Log((hits[k] + Smoothing) / (words + (Smoothing * (Kinds.Length + 1))));
            }
        }

        return new StandardForms(forms, logRate);
    }

    /// <summary>The evidence for each of <paramref name="members"/> (codes of the group; others get 0), centred over the
    /// members of the three it has.</summary>
    public double[] Score(string normalized, IReadOnlyList<string> members)
    {
        var indices = members.Select(code => Array.IndexOf(Members, code)).ToArray();
        var evidence = new double[members.Count];
        var known = indices.Count(i => i >= 0);
        if (known < 2)
        {
            return evidence;
        }

        foreach (var (start, length) in LanguageProfiles.Words(normalized))
        {
            if (!_lookup.TryGetValue(normalized.AsSpan(start, length), out var kind))
            {
                continue;
            }

            var mean = indices.Where(i => i >= 0).Average(i => _logRate[(kind * Members.Length) + i]);
            for (var j = 0; j < indices.Length; j++)
            {
                evidence[j] += indices[j] < 0 ? 0 : _logRate[(kind * Members.Length) + indices[j]] - mean;
            }
        }

        return evidence;
    }

    /// <summary>The rates, for the benchmark's report: <c>kind member log-rate</c>.</summary>
    public IEnumerable<string> Describe() =>
        from k in Enumerable.Range(0, Kinds.Length)
        from m in Enumerable.Range(0, Members.Length)
        select FormattableString.Invariant($"[{Kinds[k]}] {Members[m]} {Math.Exp(_logRate[(k * Members.Length) + m]):P2}");

    private static bool IsLatin(ReadOnlySpan<char> word)
    {
        foreach (var c in word)
        {
            if (c is >= '\u0400' and <= '\u04FF')
            {
                return false;
            }
        }

        return true;
    }

    private static FrozenDictionary<string, byte> LoadForms()
    {
        using var stream = typeof(StandardForms).Assembly.GetManifestResourceStream("Sovereign.Languages.Data.standard-forms.txt")
            ?? throw new InvalidOperationException("The embedded standard-forms.txt is missing.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var forms = new Dictionary<string, byte>(StringComparer.Ordinal);
        var kind = -1;
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            if (line.StartsWith('[') && line.EndsWith(']'))
            {
                kind = Array.IndexOf(Kinds, line[1..^1]);
                if (kind < 0)
                {
                    throw new InvalidOperationException($"standard-forms.txt: unknown section {line}.");
                }

                continue;
            }

            forms[line] = (byte)kind;
        }

        return forms.ToFrozenDictionary(StringComparer.Ordinal);
    }
}
