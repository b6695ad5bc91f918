namespace Sovereign.Languages;

/// <summary>The writing systems the detector tells apart before any statistics are run.</summary>
public enum WritingScript
{
    /// <summary>Not a letter of a script the detector knows.</summary>
    Other,

    /// <summary>Latin, including Vietnamese and the Latin Extended blocks.</summary>
    Latin,

    /// <summary>Cyrillic.</summary>
    Cyrillic,

    /// <summary>Greek (monotonic and polytonic).</summary>
    Greek,

    /// <summary>Armenian.</summary>
    Armenian,

    /// <summary>Hebrew.</summary>
    Hebrew,

    /// <summary>Arabic, including its supplements and presentation forms.</summary>
    Arabic,

    /// <summary>Devanagari (Hindi, Marathi, Nepali, ...).</summary>
    Devanagari,

    /// <summary>Bengali-Assamese.</summary>
    Bengali,

    /// <summary>Gurmukhi (Punjabi).</summary>
    Gurmukhi,

    /// <summary>Gujarati.</summary>
    Gujarati,

    /// <summary>Oriya (Odia).</summary>
    Oriya,

    /// <summary>Tamil.</summary>
    Tamil,

    /// <summary>Telugu.</summary>
    Telugu,

    /// <summary>Kannada.</summary>
    Kannada,

    /// <summary>Malayalam.</summary>
    Malayalam,

    /// <summary>Sinhala.</summary>
    Sinhala,

    /// <summary>Thai.</summary>
    Thai,

    /// <summary>Lao.</summary>
    Lao,

    /// <summary>Myanmar (Burmese).</summary>
    Myanmar,

    /// <summary>Khmer.</summary>
    Khmer,

    /// <summary>Georgian.</summary>
    Georgian,

    /// <summary>Ethiopic (Amharic, Tigrinya).</summary>
    Ethiopic,

    /// <summary>Hangul (Korean).</summary>
    Hangul,

    /// <summary>Hiragana and Katakana (Japanese).</summary>
    Kana,

    /// <summary>Han ideographs (Chinese; Japanese when mixed with kana, Korean when mixed with Hangul).</summary>
    Han,
}

/// <summary>ISO 15924 codes of the scripts.</summary>
public static class WritingScriptCodes
{
    /// <summary>The ISO 15924 code of a script: <c>Latn</c>, <c>Cyrl</c>, ...; <c>Jpan</c> for kana (with kanji),
    /// <c>Kore</c> for Hangul (with hanja), <c>Hani</c> for Han alone, <c>Zyyy</c> for none.</summary>
    public static string IsoCode(this WritingScript script) => script switch
    {
        WritingScript.Latin => "Latn",
        WritingScript.Cyrillic => "Cyrl",
        WritingScript.Greek => "Grek",
        WritingScript.Armenian => "Armn",
        WritingScript.Hebrew => "Hebr",
        WritingScript.Arabic => "Arab",
        WritingScript.Devanagari => "Deva",
        WritingScript.Bengali => "Beng",
        WritingScript.Gurmukhi => "Guru",
        WritingScript.Gujarati => "Gujr",
        WritingScript.Oriya => "Orya",
        WritingScript.Tamil => "Taml",
        WritingScript.Telugu => "Telu",
        WritingScript.Kannada => "Knda",
        WritingScript.Malayalam => "Mlym",
        WritingScript.Sinhala => "Sinh",
        WritingScript.Thai => "Thai",
        WritingScript.Lao => "Laoo",
        WritingScript.Myanmar => "Mymr",
        WritingScript.Khmer => "Khmr",
        WritingScript.Georgian => "Geor",
        WritingScript.Ethiopic => "Ethi",
        WritingScript.Hangul => "Kore",
        WritingScript.Kana => "Jpan",
        WritingScript.Han => "Hani",
        _ => "Zyyy",
    };
}
