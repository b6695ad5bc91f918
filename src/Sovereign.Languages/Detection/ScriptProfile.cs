using System.Text;

namespace Sovereign.Languages;

/// <summary>How many letters of each script a text holds. Marks and digits are not letters, so a Hindi word counts
/// its consonants and independent vowels, not its vowel signs.</summary>
internal sealed class ScriptProfile
{
    private static readonly int ScriptCount = Enum.GetValues<WritingScript>().Length;

    private readonly int[] _counts = new int[ScriptCount];

    private ScriptProfile()
    {
    }

    /// <summary>Letters of any known script.</summary>
    public int TotalLetters { get; private set; }

    /// <summary>Letters of one script.</summary>
    public int this[WritingScript script] => _counts[(int)script];

    /// <summary>Counts the letters of a text by script.</summary>
    public static ScriptProfile Analyze(string text)
    {
        var profile = new ScriptProfile();
        foreach (var rune in text.EnumerateRunes())
        {
            if (!Rune.IsLetter(rune))
            {
                continue;
            }

            var script = Classify(rune.Value);
            if (script == WritingScript.Other)
            {
                continue;
            }

            profile._counts[(int)script]++;
            profile.TotalLetters++;
        }

        return profile;
    }

    /// <summary>The script of a code point, by Unicode block.</summary>
    public static WritingScript Classify(int c) => c switch
    {
        <= 0x024F => c is (>= 'A' and <= 'Z') or (>= 'a' and <= 'z') or >= 0x00C0 ? WritingScript.Latin : WritingScript.Other,
        >= 0x0370 and <= 0x03FF => WritingScript.Greek,
        >= 0x0400 and <= 0x052F => WritingScript.Cyrillic,
        >= 0x0530 and <= 0x058F => WritingScript.Armenian,
        >= 0x0590 and <= 0x05FF => WritingScript.Hebrew,
        >= 0x0600 and <= 0x06FF or >= 0x0750 and <= 0x077F or >= 0x08A0 and <= 0x08FF => WritingScript.Arabic,
        >= 0x0900 and <= 0x097F => WritingScript.Devanagari,
        >= 0x0980 and <= 0x09FF => WritingScript.Bengali,
        >= 0x0A00 and <= 0x0A7F => WritingScript.Gurmukhi,
        >= 0x0A80 and <= 0x0AFF => WritingScript.Gujarati,
        >= 0x0B00 and <= 0x0B7F => WritingScript.Oriya,
        >= 0x0B80 and <= 0x0BFF => WritingScript.Tamil,
        >= 0x0C00 and <= 0x0C7F => WritingScript.Telugu,
        >= 0x0C80 and <= 0x0CFF => WritingScript.Kannada,
        >= 0x0D00 and <= 0x0D7F => WritingScript.Malayalam,
        >= 0x0D80 and <= 0x0DFF => WritingScript.Sinhala,
        >= 0x0E00 and <= 0x0E7F => WritingScript.Thai,
        >= 0x0E80 and <= 0x0EFF => WritingScript.Lao,
        >= 0x1000 and <= 0x109F or >= 0xA9E0 and <= 0xA9FF or >= 0xAA60 and <= 0xAA7F => WritingScript.Myanmar,
        >= 0x10A0 and <= 0x10FF or >= 0x1C90 and <= 0x1CBF or >= 0x2D00 and <= 0x2D2F => WritingScript.Georgian,
        >= 0x1100 and <= 0x11FF or >= 0x3130 and <= 0x318F or >= 0xA960 and <= 0xA97F or >= 0xAC00 and <= 0xD7FF => WritingScript.Hangul,
        >= 0x1200 and <= 0x139F or >= 0x2D80 and <= 0x2DDF or >= 0xAB00 and <= 0xAB2F => WritingScript.Ethiopic,
        >= 0x1780 and <= 0x17FF or >= 0x19E0 and <= 0x19FF => WritingScript.Khmer,
        >= 0x1E00 and <= 0x1EFF or >= 0x2C60 and <= 0x2C7F or >= 0xA720 and <= 0xA7FF or >= 0xFF21 and <= 0xFF5A => WritingScript.Latin,
        >= 0x1F00 and <= 0x1FFF => WritingScript.Greek,
        >= 0x3040 and <= 0x30FF or >= 0x31F0 and <= 0x31FF or >= 0xFF66 and <= 0xFF9F => WritingScript.Kana,
        >= 0x3400 and <= 0x4DBF or >= 0x4E00 and <= 0x9FFF or >= 0xF900 and <= 0xFAFF or >= 0x20000 and <= 0x3FFFF => WritingScript.Han,
        >= 0xFB1D and <= 0xFB4F => WritingScript.Hebrew,
        >= 0xFB50 and <= 0xFDFF or >= 0xFE70 and <= 0xFEFF => WritingScript.Arabic,
        _ => WritingScript.Other,
    };
}
