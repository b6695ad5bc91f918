namespace Sovereign.Languages;

/// <summary>
/// The digraphs that the standard orthographies of Spanish, Galician, Portuguese and Catalan write differently for the
/// same sounds: the palatal l is <c>lh</c> in Portuguese and <c>ll</c> in the other three (<c>filho, olho</c> against
/// <c>hijo/fillo/fill, ojo/ollo/ull</c>); the palatal n is <c>nh</c> in Portuguese, <c>ñ</c> in Spanish and Galician and
/// <c>ny</c> in Catalan (<c>vinho, vino, viño, vi; senhor, señor, senyor</c>). Galician writes <c>nh</c> only in the
/// forms of <c>unha</c> (<c>unha, algunha, ningunha, dunha, cunha, nunha</c>), where it is a velar n; Spanish writes
/// <c>ny</c> only in a few words (<c>inyección, cónyuge</c>) and <c>nh</c> only across a prefix (<c>enhorabuena,
/// inhumano</c>). Spanish alone diphthongises the stressed open o of Latin to <c>ue</c> (<c>puerta, nuevo, fuego, pueblo,
/// después, escuela</c> against <c>porta, novo/nou, fogo/foc, povo/poble, despois/després, escola</c>); Galician,
/// Portuguese and Catalan write <c>ue</c> only after <c>q</c> or <c>g</c> (<c>que, guerra</c>) and at the end of
/// verb forms (<c>continue, continuen</c>), which do not count. Counted from the orthographies' rules and the
/// historical phonology, not from any sentence of the held-out sets; the single letters (<c>ã, õ, ñ, ç, l·l</c>) are the
/// contrast letters' part.
/// </summary>
internal static class IberianSpelling
{
    private static readonly string[] GalicianUnha = ["unha", "unhas", "algunha", "algunhas", "ningunha", "ningunhas", "dunha", "dunhas", "cunha", "cunhas", "nunha", "nunhas"];

    /// <summary>In a normalised text: words with Portuguese <c>lh</c> or <c>nh</c>, words with <c>ll</c> (Spanish,
    /// Galician, Catalan), and words with Catalan <c>ny</c>.</summary>
    public static (int Portuguese, int DoubleL, int CatalanNy) Count(string normalized)
    {
        var (portuguese, doubleL, catalan, _) = CountAll(normalized);
        return (portuguese, doubleL, catalan);
    }

    /// <summary>As <see cref="Count"/>, and the words with the Spanish diphthong <c>ue</c>.</summary>
    public static (int Portuguese, int DoubleL, int CatalanNy, int SpanishUe) CountAll(string normalized)
    {
        int portuguese = 0, doubleL = 0, catalan = 0, spanish = 0;
        foreach (var (start, length) in LanguageProfiles.Words(normalized))
        {
            var word = normalized.AsSpan(start, length);
            if (Palatal(word, 'l', 'h') || (Palatal(word, 'n', 'h') && !IsUnha(word) && !PrefixH(word)))
            {
                portuguese++;
            }

            if (word.IndexOf("ll", StringComparison.Ordinal) >= 0)
            {
                doubleL++;
            }

            if (word.IndexOf("ny", StringComparison.Ordinal) is var ny && ny > 0 && !word.StartsWith("iny", StringComparison.Ordinal)
                && !word.StartsWith("cóny", StringComparison.Ordinal) && !word.StartsWith("cony", StringComparison.Ordinal))
            {
                catalan++;
            }

            if (SpanishDiphthong(word))
            {
                spanish++;
            }
        }

        return (portuguese, doubleL, catalan, spanish);
    }

    // ue or ué after a consonant other than q, g (que, guerra), c and fl (Galician also writes cuestión, frecuente,
    // influencia), before a consonant that is not the word's last letter (continuen, cruel, fuet do not count) - or
    // ués at the end (después).
    private static bool SpanishDiphthong(ReadOnlySpan<char> word)
    {
        for (var i = 1; i + 2 < word.Length; i++)
        {
            if (word[i] == 'u' && word[i + 1] is 'e' or 'é' && !IsVowel(word[i - 1]) && word[i - 1] is not ('q' or 'g' or 'c')
                && !(word[i - 1] == 'l' && i >= 2 && word[i - 2] == 'f')
                && char.IsLetter(word[i + 2]) && !IsVowel(word[i + 2]) && (i + 3 < word.Length || word[i + 1] == 'é'))
            {
                return true;
            }
        }

        return false;
    }

    // The digraph between two vowels (filho, senhora).
    private static bool Palatal(ReadOnlySpan<char> word, char first, char second)
    {
        for (var i = 1; i + 2 < word.Length; i++)
        {
            if (word[i] == first && word[i + 1] == second && IsVowel(word[i - 1]) && IsVowel(word[i + 2]))
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsUnha(ReadOnlySpan<char> word)
    {
        foreach (var form in GalicianUnha)
        {
            if (word.SequenceEqual(form))
            {
                return true;
            }
        }

        return false;
    }

    // An h after a prefix (enhorabuena, inhumano, anhelo).
    private static bool PrefixH(ReadOnlySpan<char> word) =>
        word.StartsWith("enh", StringComparison.Ordinal) || word.StartsWith("inh", StringComparison.Ordinal) || word.StartsWith("anh", StringComparison.Ordinal);

    private static bool IsVowel(char c) => "aeiouáéíóúâêôãõàèòïü".Contains(c, StringComparison.Ordinal);
}
