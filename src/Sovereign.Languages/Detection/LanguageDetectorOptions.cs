namespace Sovereign.Languages;

/// <summary>How the <see cref="LanguageDetector"/> is built.</summary>
public sealed class LanguageDetectorOptions
{
    /// <summary>Letters a text needs before a statistical decision (Lingua or a heuristic) is made.</summary>
    public const int DefaultMinimumLetters = 12;

    /// <summary>
    /// Codes of the languages that may be reported (see <see cref="LanguageCatalog.All"/>). Empty means
    /// <see cref="LanguageCatalog.Covered"/>. Only the Lingua models these need are loaded, which is what keeps memory
    /// bounded. (Empty rather than pre-filled so configuration binding does not append to the defaults.)
    /// </summary>
    public IList<string> Languages { get; set; } = [];

    /// <summary>
    /// Lingua's high-accuracy mode: all n-gram sizes instead of trigrams only. The detector runs Lingua over every
    /// language of a shared script (the unconfigured ones as decoys), so with Latin-script languages configured this
    /// loads some 50 high-accuracy models: over 1 GB and 20 s or more (see docs/benchmarks.md). Off by default: the
    /// profiles correct low-accuracy mode's short-text misreadings within the memory budget.
    /// </summary>
    public bool HighAccuracy { get; set; }

    /// <summary>Letters a text needs for a statistical decision; shorter texts are undetermined.</summary>
    public int MinimumLetters { get; set; } = DefaultMinimumLetters;

    /// <summary>Letters a text needs when its script alone decides (Thai, Korean, Tamil, ...).</summary>
    public int MinimumScriptLetters { get; set; } = 3;

    /// <summary>Han characters a text without kana or Hangul needs before it is called Chinese: Japanese writes
    /// short phrases in kanji alone, so a handful of ideographs is not enough.</summary>
    public int MinimumHanLetters { get; set; } = 6;

    /// <summary>Lowest probability (0..1, among the candidates of the text's script) of a reported language; an answer
    /// below it is <c>und</c>, with the best candidate as its runner-up.</summary>
    public double MinimumConfidence { get; set; } = 0.4;

    /// <summary>Least lead of the best candidate over the second; closer calls are undetermined (a tie always is).</summary>
    public double MinimumMargin { get; set; }

    /// <summary>Characters analysed from the start of a text; the rest is ignored so that a long prompt costs no more
    /// than a paragraph (Lingua's time grows with the text).</summary>
    public int MaxCharacters { get; set; } = 500;

    /// <summary>Letters a last user message needs to decide a conversation's language alone; a shorter one ("ok",
    /// "thanks", "2", "ขอบคุณ") is read with the turns before it (<see cref="LanguageDetector.DetectConversation"/>).</summary>
    public int StandAloneLetters { get; set; } = LanguageDetector.DefaultStandAloneLetters;

    /// <summary>Characters of a conversation's user turns read, at most, when its last message does not decide alone.</summary>
    public int ConversationCharacters { get; set; } = LanguageDetector.DefaultConversationCharacters;

    /// <summary>
    /// Characters of a prompt (or a completion) the detector reads, in passages of at most
    /// <see cref="MaxCharacters"/>, to measure the share a language of a shared script writes for the language tax's
    /// waiver (<see cref="LanguageDetector.ShareOf(PromptText, string, int)"/>): its work per request, however long the text.
    /// </summary>
    public int ShareCharacters { get; set; } = LanguageDetector.DefaultShareCharacters;
}
