using Xunit.Abstractions;

namespace Sovereign.Languages.Tests;

/// <summary>
/// The evidence that decides among a close group's members beyond the contrast-word list: the groups' word models
/// (<see cref="CloseGroupWords"/>), the yat reflex, the yat verbs' participles and Serbian's joined future (<see
/// cref="YatReflex"/>), the verb complement (<see cref="VerbComplements"/>), and the
/// detector's decision within the group (sentences written for these tests, in neither the tuning corpus nor a held-out
/// set).
/// </summary>
public sealed class CloseGroupEvidenceTests(ITestOutputHelper output)
{
    private static LanguageDetector Detector => TestData.DefaultDetector;

    [Theory]
    [InlineData("mlijeko")]
    [InlineData("rijeka")]
    [InlineData("djeca")]
    [InlineData("gdje")]
    [InlineData("prije")]
    [InlineData("vidjeti")]
    [InlineData("namještaj")]
    [InlineData("svjetlost")]
    public void Reflex_IjekavianWords_AreFound(string word) => Assert.True(YatReflex.Reflex(word).Length > 0, word);

    [Theory]
    [InlineData("nije")]
    [InlineData("nijedan")]
    [InlineData("odjednom")]
    [InlineData("projekt")]
    [InlineData("zajedno")]
    [InlineData("njegov")]
    [InlineData("kojem")]
    [InlineData("historije")]
    public void Reflex_WordsEveryStandardWrites_AreNotIjekavian(string word) => Assert.Equal(0, YatReflex.Reflex(word).Length);

    [Theory]
    [InlineData("volela", true)]
    [InlineData("razumeti", true)]
    [InlineData("doneo", true)]
    [InlineData("hteli", true)]
    [InlineData("veseo", false)]
    [InlineData("uzeo", false)]
    [InlineData("počeo", false)]
    [InlineData("hotela", false)]
    [InlineData("voljela", false)]
    [InlineData("video", false)]
    public void EkavianEnding_VerbFormsOnly(string word, bool expected) => Assert.Equal(expected, YatReflex.HasEkavianEnding(word));

    [Theory]
    [InlineData("proveriću", true)]
    [InlineData("pozvaću", true)]
    [InlineData("kuću", false)]
    [InlineData("svijeću", false)]
    [InlineData("nesreću", false)]
    public void JoinedFuture_SerbianVerbsNotNouns(string word, bool expected) => Assert.Equal(expected, YatReflex.IsJoinedFuture(word));

    [Fact]
    public void FreeSa_CountsSaBeforeANonSibilantOnly()
    {
        Assert.Equal(1, YatReflex.FreeSa("idem sa bratom u grad"));
        Assert.Equal(0, YatReflex.FreeSa("idem sa sestrom u grad"));
        Assert.Equal(0, YatReflex.FreeSa("idem s bratom u grad"));
    }

    [Theory]
    [InlineData("vidio", 1)]
    [InlineData("zavolio", 1)]
    [InlineData("doživio", 1)]
    [InlineData("htio", 1)]
    [InlineData("voljela", 1)]
    [InlineData("voleo", -1)]
    [InlineData("živeo", -1)]
    [InlineData("hteo", -1)]
    [InlineData("mislio", 0)]
    [InlineData("radio", 0)]
    [InlineData("dozvolio", 0)]
    [InlineData("video", 0)]
    public void Participle_YatVerbsOnly(string word, int expected) => Assert.Equal(expected, YatReflex.Participle(word));

    [Fact]
    public void Count_YatParticiple_CountsAsItsReflex()
    {
        var reflex = YatReflex.FromCorpus(new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal));

        Assert.Equal((1, 0), reflex.Count("nisam ga vidio"));
        Assert.Equal((0, 1), reflex.Count("ga je voleo"));
        Assert.Equal((0, 0), reflex.Count("nisam ga mislio zvati"));
    }

    [Theory]
    [InlineData("moram da idem kući", 1, 0)]
    [InlineData("nije smeo da uđe", 1, 0)]
    [InlineData("hoću da spavam", 1, 0)]
    [InlineData("da li si ga vidio", 1, 0)]
    [InlineData("moram ići kući", 0, 1)]
    [InlineData("moram ti nešto reći", 0, 0)]
    [InlineData("moram ti reći nešto", 0, 1)]
    [InlineData("počeo je raditi", 0, 1)]
    [InlineData("mora da je umoran", 0, 0)]
    [InlineData("neću doći sutra", 0, 0)]
    [InlineData("moram kući", 0, 0)]
    [InlineData("mislim da je gotovo", 0, 0)]
    public void VerbComplements_ModalWithDaOrInfinitive(string text, int daPresent, int infinitive) =>
        Assert.Equal((daPresent, infinitive), VerbComplements.Count(text));

    [Fact]
    public void Count_EkavianFormsDerivedFromIjekavianText_CountForSerbian()
    {
        // "vrijeme" in the Croatian text gives the ekavian "vreme" (and by stem "vremena"), which neither writes.
        var corpus = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal)
        {
            ["hr"] = ["Kakvo je vrijeme danas?"],
            ["sr"] = ["Kakvo je danas napolju?"],
        };
        var reflex = YatReflex.FromCorpus(corpus);

        Assert.Equal((0, 1), reflex.Count("nemam vremena"));
        Assert.Equal((1, 0), reflex.Count("vrijeme"));
    }

    [Fact]
    public void WordModel_WordOneMemberWrites_CountsForIt_SharedWordsCancel()
    {
        var model = new CloseGroupWords(
        [
            ("hr", ["idemo vlakom u grad", "kupujem kruh u pekari"]),
            ("bs", ["idemo vozom u grad", "kupujem hljeb u pekari"]),
        ]);

        var own = model.Score("idemo vlakom", ["hr", "bs"], cap: 5);
        var shared = model.Score("u grad", ["hr", "bs"], cap: 5);
        var unknown = model.Score("potpuno nove riječi", ["hr", "bs"], cap: 5);

        Assert.True(own[0] > own[1], $"{own[0]} <= {own[1]}");
        Assert.Equal(shared[0], shared[1], 6);
        Assert.Equal([0.0, 0.0], unknown);
    }

    [Fact]
    public void WordModel_OneWordCannotDecideAlone_ItsPartIsCapped()
    {
        var model = new CloseGroupWords([("ms", ["saya nak balik"]), ("id", ["saya mau pulang"])]);

        var scores = model.Score("nak", ["ms", "id"], cap: 0.5);

        Assert.Equal(0.5, scores[0], 6);
        Assert.Equal(-0.5, scores[1], 6);
    }

    [Fact]
    public void Default_HasAWordModelForEachCloseGroupInLatinLetters()
    {
        var latin = CloseGroupWords.Default[WritingScript.Latin];

        foreach (var group in LanguageDetector.CloseGroups.Where(g => !g.Contains("nn")))
        {
            Assert.Contains(latin, model => group.All(model.Has));
        }
    }

    [Fact]
    public void Detect_IjekavianWithSerbianVocabulary_Bosnian()
    {
        // Ijekavian (namještaj) with the vocabulary Bosnian shares with Serbian (komšija, sprat).
        var detection = Detector.Detect("Komšija nam je pomogao da ponesemo namještaj na treći sprat.");

        Assert.Equal("bs", detection.Language);
    }

    [Theory]
    [InlineData("Počela je da pjeva čim je ušla u auto.", "bs")]
    [InlineData("Nije smio da nam kaže, pa smo sve saznali tek sutradan.", "bs")]
    [InlineData("Mogli smo da sjednemo u hlad i odmorimo noge.", "bs")]
    [InlineData("Morao sam da ga čekam ispred zgrade skoro sat vremena.", "sr")]
    [InlineData("Morali smo čekati pola sata da se oslobodi parking.", "hr")]
    [InlineData("Nismo mogli doći jer je auto bio u servisu.", "hr")]
    public void Detect_VerbComplementAndParticiple_DecideWithoutAListWord(string text, string expected)
    {
        var hits = ContrastEvidence.Default.WordHits(LanguageProfiles.Normalize(text));
        Assert.False(hits.ContainsKey("hr") || hits.ContainsKey("bs") || hits.ContainsKey("sr"), "the sentence must hold no hr, bs or sr list word");

        var detection = Detector.Detect(text);
        output.WriteLine($"{text} -> {detection.Language} {detection.Confidence:F2}");
        Assert.Equal(expected, detection.Language);
    }

    [Theory]
    [InlineData("Mogli smo da sjednemo u hlad i odmorimo noge.", "bs")]
    [InlineData("Morali smo čekati pola sata da se oslobodi parking.", "hr")]
    public void Detect_WithoutTheVerbComplement_TheStandardIsLost(string text, string expected)
    {
        // Ijekavian with da + present (Bosnian, not Croatian), and the infinitive after a modal (Croatian, not Serbian):
        // the verb complement is what decides these.
        Assert.Equal(expected, Detector.Detect(text).Language);
        Assert.NotEqual(expected, Detector.WithSyntax(0).Detect(text).Language);
    }

    [Fact]
    public void Detect_EkavianVerbFormInNoList_Serbian()
    {
        const string text = "Nisam razumela šta je profesor objašnjavao na času.";
        var hits = ContrastEvidence.Default.WordHits(LanguageProfiles.Normalize(text));

        Assert.False(hits.ContainsKey("sr") && hits["sr"] > hits.GetValueOrDefault("bs"), "the sentence must not be decided by a Serbian-only list word");
        Assert.Equal("sr", Detector.Detect(text).Language);
    }

    [Fact]
    public void Detect_MalaysianSentenceWithoutAnyListWord_Malay()
    {
        const string text = "Atuk tengah baiki bumbung rumah bersama abang sejak pagi.";
        var hits = ContrastEvidence.Default.WordHits(LanguageProfiles.Normalize(text));

        Assert.False(hits.ContainsKey("ms") || hits.ContainsKey("id"), "the sentence must hold no Malay or Indonesian list word");
        Assert.Equal("ms", Detector.Detect(text).Language);
    }

    [Fact]
    public void Detect_CloseGroupDecision_KeepsConfidenceAndRunnerUpInTheGroup()
    {
        var detection = Detector.Detect("Komšija nam je pomogao da ponesemo namještaj na treći sprat.");

        Assert.InRange(detection.Confidence, Detector.MinimumConfidence, 1.0);
        Assert.Contains(detection.RunnerUp, (string[])["hr", "sr"]);
        Assert.True(detection.RunnerUpConfidence < detection.Confidence);
    }
}
