using System.Collections.Frozen;

namespace Sovereign.Languages;

/// <summary>
/// Word evidence for one standard against its neighbours where their letters do not tell them apart: how many distinct
/// words of the standard's own list a normalised text writes, when it writes at least <see cref="MinimumWords"/> of them,
/// none of the neighbours' own words and no letter the standard lacks; otherwise 0. Shared by
/// <see cref="SerbianCyrillicGrammar"/> and <see cref="BulgarianSerbianGrammar"/>, which differ only in their lists.
/// </summary>
internal sealed class DistinctWordEvidence(string own, string neighbours, string lettersLacked, int minimumWords)
{
    private readonly FrozenSet<string> _own = Set(own);
    private readonly FrozenSet<string> _neighbours = Set(neighbours);

    /// <summary>Distinct own words a text needs at least.</summary>
    public int MinimumWords { get; } = minimumWords;

    /// <summary>The distinct own words <paramref name="normalized"/> writes (see the type), or 0.</summary>
    public int Count(string normalized)
    {
        if (normalized.AsSpan().IndexOfAny(lettersLacked) >= 0)
        {
            return 0;
        }

        var own = _own.GetAlternateLookup<ReadOnlySpan<char>>();
        var neighbours = _neighbours.GetAlternateLookup<ReadOnlySpan<char>>();
        var found = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (start, length) in LanguageProfiles.Words(normalized))
        {
            var word = normalized.AsSpan(start, length);
            if (neighbours.Contains(word))
            {
                return 0;
            }

            if (own.TryGetValue(word, out var hit))
            {
                found.Add(hit);
            }
        }

        return found.Count >= MinimumWords ? found.Count : 0;
    }

    private static FrozenSet<string> Set(string words) => words.Split(' ').ToFrozenSet(StringComparer.Ordinal);
}
