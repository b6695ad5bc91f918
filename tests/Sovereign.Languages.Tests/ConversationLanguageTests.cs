namespace Sovereign.Languages.Tests;

/// <summary>
/// A request's language is its conversation's (<see cref="LanguageDetector.DetectConversation"/>), and the language
/// tax's waiver covers the share of the prompt the language writes (<see cref="LanguageDetector.ShareOf"/>).
/// </summary>
public sealed class ConversationLanguageTests
{
    private const string ThaiSystem = "คุณเป็นผู้ช่วยที่สุภาพ ตอบเป็นภาษาไทยเสมอ";
    private const string EnglishSystem = "You are a helpful assistant. Answer briefly, politely and accurately, and never make anything up.";

    private static readonly PromptTurn[] ThaiTurns =
    [
        new(PromptRole.Instructions, ThaiSystem),
        new(PromptRole.User, "ช่วยแนะนำสถานที่ท่องเที่ยวในเชียงใหม่ให้หน่อยครับ ผมจะไปเที่ยวสามวันกับครอบครัว"),
        new(PromptRole.Other, "Doi Suthep and the Warorot market."),
        new(PromptRole.User, "แล้วอาหารพื้นเมืองที่ควรลองมีอะไรบ้างครับ ลูกผมไม่ค่อยทานเผ็ด"),
        new(PromptRole.Other, "Khao soi and sai ua."),
        new(PromptRole.User, "ร้านข้าวซอยที่มีชื่อเสียงอยู่แถวไหนครับ และเปิดกี่โมง"),
        new(PromptRole.Other, "Near Wat Phra Singh, from eight in the morning."),
    ];

    private static readonly PromptTurn[] EnglishTurns =
    [
        new(PromptRole.Instructions, EnglishSystem),
        new(PromptRole.User, "Could you recommend a few places to visit in Chiang Mai for a three day family trip?"),
        new(PromptRole.Other, "ดอยสุเทพและตลาดวโรรส"),
        new(PromptRole.User, "And which local dishes should we try? My son does not like spicy food at all."),
    ];

    private static LanguageDetector Detector => TestData.DefaultDetector;

    private static PromptText Conversation(IEnumerable<PromptTurn> turns, params string[] users) =>
        new([.. turns, .. users.Select(u => new PromptTurn(PromptRole.User, u))]);

    /// <summary>Before, the last message alone decided: und (or English) for all of these.</summary>
    [Theory]
    [InlineData("ok")]
    [InlineData("thanks")]
    [InlineData("2")]
    [InlineData("thank you so much")]
    [InlineData("👍")]
    public void AThaiConversation_EndingInAShortMessage_IsThai(string last)
    {
        Assert.Equal("th", Detector.DetectConversation(Conversation(ThaiTurns, last)).Language);
    }

    [Theory]
    [InlineData("ขอบคุณครับ")]
    [InlineData("ok")]
    public void AnEnglishConversation_EndingInAShortMessage_IsEnglish(string last)
    {
        // Ten Thai characters after two English turns do not make the conversation Thai.
        Assert.Equal("en", Detector.DetectConversation(Conversation(EnglishTurns, last)).Language);
    }

    [Fact]
    public void ALastMessageClearlyInAnotherLanguage_Wins_TheUserSwitched()
    {
        Assert.Equal("en", Detector.DetectConversation(Conversation(ThaiTurns, "Could you please tell me the same thing again in English?")).Language);
        Assert.Equal("th", Detector.DetectConversation(Conversation(EnglishTurns, "ช่วยตอบเป็นภาษาไทยได้ไหมครับ ผมอ่านภาษาอังกฤษไม่ค่อยเก่ง")).Language);
    }

    [Fact]
    public void TheMostRecentTurnsWeighMost()
    {
        // An English conversation that moved to Thai two turns ago is Thai now, though its English turns are longer.
        var moved = Conversation(EnglishTurns, "ต่อจากนี้ขอคุยเป็นภาษาไทยนะครับ", "ได้ไหม", "ok");

        Assert.Equal("th", Detector.DetectConversation(moved).Language);
    }

    [Fact]
    public void ALoneShortMessage_IsTheUsersLanguage_NotTheSystemPrompts()
    {
        // An English boilerplate system prompt does not outvote a user who writes Thai, however briefly.
        Assert.Equal("th", Detector.DetectConversation(Conversation([new(PromptRole.Instructions, EnglishSystem)], "สวัสดีครับ")).Language);
    }

    [Theory]
    [InlineData("ok")]
    [InlineData("2")]
    public void UserTurnsThatNameNoLanguage_TakeTheInstructions(string only)
    {
        Assert.Equal("th", Detector.DetectConversation(Conversation([new(PromptRole.Instructions, ThaiSystem)], only)).Language);
        Assert.Equal("und", Detector.DetectConversation(Conversation([], only)).Language);
    }

    [Fact]
    public void AssistantTurns_NeverDecide()
    {
        // The model's Thai answer (a client may send any) does not make an English user Thai.
        var turns = Conversation([new(PromptRole.User, "ok"), new(PromptRole.Other, string.Concat(Enumerable.Repeat("ภาษาไทยเป็นภาษาราชการของประเทศไทย ", 20)))], "fine");

        Assert.Equal("und", Detector.DetectConversation(turns).Language);
    }

    [Fact]
    public void ALongLastMessageTheDetectorCannotPlace_LeavesItToTheTurnsBefore()
    {
        // A pasted key: letters enough to stand alone, in no language.
        const string log = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0";
        Assert.Equal("und", Detector.Detect(log).Language);

        Assert.Equal("th", Detector.DetectConversation(Conversation(ThaiTurns, log)).Language);
    }

    [Fact]
    public void AsOneText_AConversationOfOneUserTurn_IsThatTextsLanguage()
    {
        foreach (var text in new[] { "ok", "ภาษาไทยเป็นภาษาราชการของประเทศไทย", "Once upon a time there was a little girl who loved to play in the park." })
        {
            Assert.Equal(Detector.Detect(text), Detector.DetectConversation(text));
        }
    }

    [Fact]
    public void AVeryLongHistory_IsReadOnlyToItsCap()
    {
        // 10,000 turns of Thai, then "ok": the answer comes from the newest turns only (no assertion on time here; the
        // languages benchmark measures it).
        var history = Enumerable.Range(0, 10_000).Select(i => new PromptTurn(i % 2 == 0 ? PromptRole.User : PromptRole.Other, "ร้านข้าวซอยที่มีชื่อเสียงอยู่แถวไหนครับ"));

        Assert.Equal("th", Detector.DetectConversation(Conversation(history, "ok")).Language);
    }

    /// <summary>
    /// The language tax's thresholds are settings (<c>Sovereign:Languages:StandAloneLetters</c>,
    /// <c>ConversationCharacters</c>, <c>ShareCharacters</c>), not constants: a "ขอบคุณ" after English turns is read
    /// with them by default and decides alone where 5 letters stand alone; a shorter read of a long prompt counts fewer
    /// of its letters as the language's.
    /// </summary>
    [Fact]
    public void Thresholds_AreTheDetectorsSettings()
    {
        var lenient = new LanguageDetector(new LanguageDetectorOptions { StandAloneLetters = 5, ShareCharacters = 500 });
        var thanks = Conversation(EnglishTurns, "ขอบคุณ");
        const string filipino = "Magandang umaga po, pupunta ako sa palengke mamaya para bumili ng isda at gulay para sa hapunan namin. ";
        var longPrompt = new PromptText([new(PromptRole.User, string.Concat(Enumerable.Repeat(filipino, 30)))]);

        Assert.Equal("en", Detector.DetectConversation(thanks).Language);
        Assert.Equal("th", lenient.DetectConversation(thanks).Language);
        Assert.Equal(DefaultSettings.ShareCharacters, Detector.ShareCharacters);
        // 500 characters read are one passage, the newest: nothing stands for the rest.
        Assert.InRange(lenient.ShareOf(longPrompt, "fil").LanguageLetters, 1, 500);
        var judged = Detector.ShareOf(longPrompt, "fil");
        Assert.Equal(judged.PromptLetters, judged.LanguageLetters);
        Assert.Throws<ArgumentOutOfRangeException>(() => new LanguageDetector(new LanguageDetectorOptions { StandAloneLetters = 0 }));
    }

    private static readonly LanguageDetectorOptions DefaultSettings = new();

    [Fact]
    public void ShareOf_AScriptTheLanguageAloneWrites_CountsEveryLetterOfIt()
    {
        var prompt = new PromptText([new(PromptRole.Instructions, EnglishSystem), new(PromptRole.User, "ขอบคุณ")]);

        var share = Detector.ShareOf(prompt, "th");

        Assert.Equal(new LanguageShare("th", 5, 5 + EnglishSystem.Count(char.IsLetter), LanguageShare.ByScript), share);
        Assert.InRange(share.Share, 0.04, 0.07);
    }

    [Fact]
    public void ShareOf_ASharedScript_CountsOnlyPassagesDetectedAsTheLanguage()
    {
        const string filipino = "Magandang umaga po, pupunta ako sa palengke mamaya para bumili ng isda at gulay para sa hapunan namin.";
        var english = string.Concat(Enumerable.Repeat("The quarterly report is attached; please review the revenue figures before the board meeting. ", 6));
        var prompt = new PromptText([new(PromptRole.Instructions, english), new(PromptRole.User, filipino)]);

        var share = Detector.ShareOf(prompt, "fil");

        Assert.Equal(LanguageShare.ByDetection, share.Basis);
        Assert.Equal(filipino.Count(char.IsLetter) + english.Count(char.IsLetter), share.PromptLetters);
        // The Filipino message counts, the English system prompt, Latin letters too, does not.
        Assert.InRange(share.Share, 0.05, 0.3);
        Assert.Equal(1.0, Detector.ShareOf(filipino, "fil").Share, 9);
    }

    /// <summary>
    /// A long prompt in a shared script is judged over all of its text, at the same detection work: the newest
    /// passages are read whole and passages drawn from the rest stand for it. Before, only the newest 2,000 characters
    /// could count: 7,000 characters of Filipino were billed about three quarters per token.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(12345)]
    public void ShareOf_ALongPromptInASharedScript_IsJudgedOverAllOfIt(int seed)
    {
        const string filipino = "Magandang umaga po, pupunta ako sa palengke mamaya para bumili ng isda at gulay para sa hapunan namin. ";
        var prompt = new PromptText([
            new(PromptRole.User, string.Concat(Enumerable.Repeat(filipino, 60))),
            new(PromptRole.User, string.Concat(Enumerable.Repeat(filipino, 10)))]);

        var share = Detector.ShareOf(prompt, "fil", seed);

        Assert.Equal(share.PromptLetters, share.LanguageLetters);
        Assert.Equal(LanguageShare.ByDetection, share.Basis);
    }

    /// <summary>
    /// A long English document with a Filipino question at its end: the question (in the newest passages, read whole)
    /// counts and the document does not, whichever passages of it are drawn; the reverse, a long Filipino document
    /// with an English question, counts the document. Exact here, since each part is in one language.
    /// </summary>
    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void ShareOf_ALongPromptOfTwoLanguages_CountsEachPartForWhatItIs(int seed)
    {
        const string filipino = "Magandang umaga po, pupunta ako sa palengke mamaya para bumili ng isda at gulay para sa hapunan namin.";
        var document = string.Concat(Enumerable.Repeat("The quarterly report is attached; please review the revenue figures before the board meeting. ", 200));
        var filipinoDocument = string.Concat(Enumerable.Repeat(filipino + " ", 200));
        const string english = "Please summarise the document above in three short sentences for the board.";
        static long LettersOf(string text) => text.Count(char.IsLetter);

        var question = Detector.ShareOf(new PromptText([new(PromptRole.User, document), new(PromptRole.User, filipino)]), "fil", seed);
        var reverse = Detector.ShareOf(new PromptText([new(PromptRole.User, filipinoDocument), new(PromptRole.User, english)]), "fil", seed);

        Assert.Equal(LettersOf(filipino), question.LanguageLetters);
        Assert.Equal(LettersOf(filipinoDocument), reverse.LanguageLetters);
        Assert.Equal(LettersOf(filipinoDocument) + LettersOf(english), reverse.PromptLetters);
    }

    /// <summary>How the read is split: half newest, half drawn; a setting too small for two passages reads the newest one.</summary>
    [Fact]
    public void SharePassages_SplitTheCharactersRead()
    {
        Assert.Equal((2, 2), LanguageDetector.SharePassages(new LanguageDetectorOptions()));
        Assert.Equal((3, 2), LanguageDetector.SharePassages(new LanguageDetectorOptions { ShareCharacters = 2_500 }));
        Assert.Equal((1, 0), LanguageDetector.SharePassages(new LanguageDetectorOptions { ShareCharacters = 100 }));
    }
}
