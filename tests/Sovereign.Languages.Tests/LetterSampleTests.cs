namespace Sovereign.Languages.Tests;

/// <summary>
/// A text gathered in pieces (a completion as delivered): its letters counted exactly, a bounded sample of its
/// passages kept for the detector, and the share of it a language writes (<see cref="LanguageDetector.ShareOf(LetterSample, string)"/>).
/// </summary>
public sealed class LetterSampleTests
{
    private const string Filipino = "Magandang umaga po, pupunta ako sa palengke mamaya para bumili ng isda at gulay para sa hapunan namin. ";
    private const string English = "The quarterly report is attached; please review the revenue figures before the board meeting. ";

    private static LanguageDetector Detector => TestData.DefaultDetector;

    private static LetterSample Gathered(int seed, params string[] pieces)
    {
        var sample = new LetterSample(500, 4, 0, seed);
        foreach (var piece in pieces)
        {
            sample.Append(0, piece);
        }

        return sample;
    }

    [Fact]
    public void Append_PiecesAndChoices_CountsEveryLetterOnce()
    {
        var sample = new LetterSample(500, 4, 0, 1);
        sample.Append(0, "Sawasdee ");
        sample.Append(1, "ขอบคุณ");
        sample.Append(0, "krap, 123!");

        Assert.Equal("Sawasdeekrap".Length + 5, sample.Letters);
    }

    /// <summary>
    /// A letter outside the BMP (CJK Extension B, 𠀀, one letter in two UTF-16 halves) whose halves arrive in two
    /// pieces is one letter, as it is in one piece; it used to be lost (each half alone is no letter).
    /// </summary>
    [Fact]
    public void Append_ASurrogatePairSplitAcrossPieces_CountsItsLetterOnce()
    {
        const string Han = "\U00020000";
        var whole = new LetterSample(500, 4, 0, 1);
        whole.Append(0, "a" + Han + "b");
        var split = new LetterSample(500, 4, 0, 1);
        split.Append(1, "x"); // another part between the halves keeps its own letters
        split.Append(0, "a" + Han[0]);
        split.Append(1, "y");
        split.Append(0, Han[1] + "b");
        split.EndPart(0);

        Assert.Equal(3, whole.Letters);
        Assert.Equal(5, split.Letters);
        Assert.Equal(whole.LettersOf(WritingScript.Han), split.LettersOf(WritingScript.Han));
        Assert.Equal(1, split.LettersOf(WritingScript.Han));
    }

    /// <summary>A lone half of a pair, at the end of a part or before another letter, counts as no letter.</summary>
    [Fact]
    public void Append_ALoneHighSurrogate_IsNoLetter()
    {
        var sample = new LetterSample(500, 4, 0, 1);
        sample.Append(0, "a\uD840");
        sample.Append(0, "b");
        sample.Append(1, "c\uD840");
        sample.EndPart(1);
        sample.Append(1, "\uDC00");

        Assert.Equal(3, sample.Letters);
    }

    /// <summary>
    /// The completion is measured on its own text. A Thai script letter count for a Thai question answered in English
    /// is zero, where the prompt's mix used to bill the English answer as Thai.
    /// </summary>
    [Fact]
    public void ShareOf_ACompletionInAScriptTheLanguageAloneWrites_CountsItsOwnLetters()
    {
        var english = Detector.ShareOf(Gathered(1, "Once upon a time, ", "there was a little girl."), "th");
        var mixed = Detector.ShareOf(Gathered(1, "Thank you is ", "ขอบคุณ", " in Thai."), "th");

        Assert.Equal(new LanguageShare("th", 0, "Onceuponatimetherewasalittlegirl".Length, LanguageShare.ByScript), english);
        Assert.Equal(new LanguageShare("th", 5, 5 + "ThankyouisinThai".Length, LanguageShare.ByScript), mixed);
    }

    [Fact]
    public void ShareOf_ACompletionInASharedScript_CountsWhatTheDetectorReadsAsTheLanguage()
    {
        var filipino = Detector.ShareOf(Gathered(1, [.. Filipino.Split(' ').Select(w => w + " ")]), "fil");
        var english = Detector.ShareOf(Gathered(1, English, English), "fil");

        Assert.Equal(LanguageShare.ByDetection, filipino.Basis);
        Assert.Equal(1.0, filipino.Share, 9);
        Assert.Equal(0, english.LanguageLetters);
    }

    /// <summary>Choices are passages of their own: their tokens interleave on the wire, but each is read as written.</summary>
    [Fact]
    public void ShareOf_InterleavedChoices_AreReadChoiceByChoice()
    {
        var sample = new LetterSample(500, 4, 0, 1);
        var filipinoWords = Filipino.Split(' ');
        var englishWords = English.Split(' ');
        for (var i = 0; i < Math.Max(filipinoWords.Length, englishWords.Length); i++)
        {
            sample.Append(0, i < filipinoWords.Length ? filipinoWords[i] + " " : "");
            sample.Append(1, i < englishWords.Length ? englishWords[i] + " " : "");
        }

        var share = Detector.ShareOf(sample, "fil");

        Assert.Equal(Filipino.Count(char.IsLetter), share.LanguageLetters);
        Assert.Equal(Filipino.Count(char.IsLetter) + English.Count(char.IsLetter), share.PromptLetters);
    }

    /// <summary>
    /// A long completion is read as a long prompt is: its newest passages whole, passages drawn from the rest standing
    /// for it, so memory and detection stay bounded and a completion all in the language counts whole.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(99)]
    public void ShareOf_ALongCompletion_IsJudgedOverAllOfIt_FromABoundedSample(int seed)
    {
        var sample = new LetterSample(500, 2, 2, seed);
        for (var i = 0; i < 200; i++)
        {
            sample.Append(0, Filipino);
        }

        var (newest, sampled, earlier) = sample.Passages();
        var share = Detector.ShareOf(sample, "fil");

        Assert.Equal((2, 2), (newest.Count, sampled.Count));
        Assert.True(earlier > 30, $"{earlier} earlier passages");
        Assert.Equal(share.PromptLetters, share.LanguageLetters);
        Assert.Equal(200L * Filipino.Count(char.IsLetter), share.PromptLetters);
    }
}
