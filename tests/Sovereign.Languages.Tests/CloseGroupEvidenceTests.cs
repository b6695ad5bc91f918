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
    [InlineData("rješenje")]
    [InlineData("izgorjela")]
    [InlineData("dio")]
    [InlineData("udio")]
    [InlineData("pobijedio")]
    [InlineData("svijet")]
    [InlineData("svijem")]
    [InlineData("vijenac")]
    [InlineData("pijesak")]
    [InlineData("bijeli")]
    [InlineData("lijepo")]
    [InlineData("smijem")]
    [InlineData("grijem")]
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
    [InlineData("gorje")]
    [InlineData("radio")]
    // Round 32: -ij- verbs' present and passive participle (every standard writes them).
    [InlineData("pijem")]
    [InlineData("popijemo")]
    [InlineData("dobijem")]
    [InlineData("zalijem")]
    [InlineData("otkrijem")]
    [InlineData("šijem")]
    [InlineData("razbijena")]
    [InlineData("savijenu")]
    [InlineData("dobijeno")]
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
    [InlineData("sjeo", 1)]
    [InlineData("posjeo", 1)]
    [InlineData("poludio", 1)]
    [InlineData("ogladnio", 1)]
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

    // Round 27: sjesti's participle (sjeo against Serbian seo, which the ekavian ending already counted) and the yat as i
    // before o (dio against deo) were no ijekavian words, so a sentence with them and an eastern word read as Serbian.
    // Seen failing on the old code: both counts were (0, 0) on the ijekavian side.
    [Fact]
    public void Count_SjeoAndDio_AreIjekavian_SeoAndDeoEkavian()
    {
        var reflex = YatReflex.FromCorpus(new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal));

        Assert.Equal((1, 0), reflex.Count("sjeo sam na klupu"));
        Assert.Equal((0, 1), reflex.Count("seo sam na klupu"));
        Assert.Equal((1, 0), reflex.Count("veći dio novca"));
        Assert.Equal((0, 1), reflex.Count("veći deo novca"));
        Assert.Equal((1, 0), reflex.Count("rješenje je jednostavno"));
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
    // Round 36: the future's clitic before da (Serbian, Bosnian) and the shortened infinitive apart before it (Croatian,
    // Bosnian); nouns, adjectives and adverbs before a future clitic, the infinitive after it and Serbian's joined
    // future count for neither. The first four failed on the old code (0, 0).
    [InlineData("šta ćemo da kupimo za rođendan", 1, 0)]
    [InlineData("ko će mi da pomogne", 1, 0)]
    [InlineData("bit će hladno pa gledat ćemo film", 0, 2)]
    [InlineData("uzet ću taksi", 0, 1)]
    [InlineData("brat će doći u subotu", 0, 0)]
    [InlineData("ispit će biti težak a rezultat će stići kasnije", 0, 0)]
    [InlineData("opet će padati kiša", 0, 0)]
    [InlineData("sutra ću raditi do kasno", 0, 0)]
    [InlineData("radiću sutra do kasno", 0, 0)]
    [InlineData("svijet će se promijeniti", 0, 0)]
    public void VerbComplements_ModalWithDaOrInfinitive(string text, int daPresent, int infinitive) =>
        Assert.Equal((daPresent, infinitive), VerbComplements.Count(text));

    // The loan-verb adaptation (LoanVerbs, session 24): 1 Croatian, 2 Bosnian and Serbian, 0 neither (native -isati
    // verbs, comparatives, -irati verbs Serbian writes too, nouns of the listed stems).
    [Theory]
    [InlineData("organizirati", 1)]
    [InlineData("identificirali", 1)]
    [InlineData("rezervirala", 1)]
    [InlineData("reagirao", 1)]
    [InlineData("financirati", 1)]
    [InlineData("organizovati", 2)]
    [InlineData("organizuju", 2)]
    [InlineData("identifikovao", 2)]
    [InlineData("rezervišem", 2)]
    [InlineData("fotografisali", 2)]
    [InlineData("reagovala", 2)]
    [InlineData("finansirati", 2)]
    [InlineData("komentarisao", 2)]
    [InlineData("napisati", 0)]
    [InlineData("potpisali", 0)]
    [InlineData("izbrisala", 0)]
    [InlineData("zamiriše", 0)]
    [InlineData("najviše", 0)]
    [InlineData("previše", 0)]
    [InlineData("motivisati", 2)]
    [InlineData("analizirati", 0)]
    [InlineData("studirali", 0)]
    [InlineData("planiramo", 0)]
    [InlineData("informacija", 0)]
    [InlineData("kombinacija", 0)]
    public void LoanVerbs_AdaptationByShape(string word, int kind) => Assert.Equal(kind, LoanVerbs.Kind(word));

    // Sentences written for this test: the same sentence with the Croatian and the Bosnian/Serbian adaptation of one
    // loan verb; the ijekavian "prije" leaves Croatian and Bosnian, and the verb decides between them.
    [Theory]
    [InlineData("Kolega je sve fotografirao prije sastanka.", "hr")]
    [InlineData("Kolega je sve fotografisao prije sastanka.", "bs")]
    public void Detect_LoanVerbAdaptation_DecidesCroatianAgainstBosnian(string text, string expected)
    {
        Assert.Equal(expected, Detector.Detect(text).Language);

        // Without the loan-verb evidence both sentences read as Croatian: the verb is what decides.
        Assert.Equal("hr", Detector.WithLoanVerbs(0).Detect(text).Language);
    }

    private static readonly Lazy<LanguageDetector> Strict = new(() => new LanguageDetector(new LanguageDetectorOptions { MinimumConfidence = 0.9 }));

    // Sentences written for this test (session 24) that every standard writes word for word: no yat reflex, no word,
    // form, loan verb or verb complement the standards write differently. The honest answer, decided in session 24
    // (SOURCES.md): the group's more likely member with a confidence that says the call is weak (the group's
    // probability split by what little the profiles see), the runner-up inside the group, never a confident answer;
    // a caller that wants und for such text raises MinimumConfidence (here 0.9) and gets it.
    [Theory]
    [InlineData("Autobus staje ispred pošte svakih petnaest minuta.")]
    [InlineData("Mačka se opet popela na krov i neće sići.")]
    [InlineData("Danas je jako toplo, pa ćemo ostati kod kuće.")]
    [InlineData("Moja sestra radi u banci već pet godina.")]
    [InlineData("Kupili smo novi televizor za dnevnu sobu.")]
    public void Detect_SentenceNoStandardMarks_WeakAnswerInsideTheGroup(string text)
    {
        string[] group = ["hr", "bs", "sr"];
        var detection = Detector.Detect(text);
        output.WriteLine($"{detection.Language} {detection.Confidence:F2} (runner-up {detection.RunnerUp})");

        Assert.Contains(detection.IsDetermined ? detection.Language : detection.RunnerUp, group);
        Assert.InRange(detection.Confidence, 0, 0.9);
        if (detection.IsDetermined)
        {
            Assert.Contains(detection.RunnerUp, group);
        }

        Assert.Equal(LanguageDetection.Undetermined, Strict.Value.Detect(text).Language);
    }

    // Round 30: a Croatian, Bosnian or Serbian answer chosen by the group's statistics alone (no standard's evidence)
    // reports at most EvidenceFreeConfidence (0.55; such answers were right 50% of the time on held-out 1-29 while
    // reporting up to 0.97), the same answer and runner-up as without the cap; an operator's threshold over the cap makes
    // it und. The first four sentences are session 24's above (its fifth is und already); the rest were written for this
    // test. Without the cap (the old code: EvidenceFreeConfidence 0) the detector reported 0.62-0.74 for four of them
    // (printed), where this test fails.
    [Theory]
    [InlineData("Autobus staje ispred pošte svakih petnaest minuta.")]
    [InlineData("Danas je jako toplo, pa ćemo ostati kod kuće.")]
    [InlineData("Moja sestra radi u banci već pet godina.")]
    [InlineData("Kupili smo novi televizor za dnevnu sobu.")]
    [InlineData("Moja baka ima tri mačke i jednog psa.")]
    [InlineData("Ona nosi crvenu haljinu na proslavu rođendana.")]
    [InlineData("Auto je parkiran ispred zgrade od jutros.")]
    public void Detect_NoStandardsEvidence_ConfidenceCappedAnswerKept(string text)
    {
        string[] group = ["hr", "bs", "sr"];
        var uncapped = Detector.WithEvidenceFreeConfidence(0).Detect(text);
        var detection = Detector.Detect(text);
        output.WriteLine(FormattableString.Invariant($"{detection.Language} {detection.Confidence:F2} (runner-up {detection.RunnerUp} {detection.RunnerUpConfidence:F2}); without the cap {uncapped.Language} {uncapped.Confidence:F2}"));

        Assert.False(Detector.HasStandardEvidence(LanguageProfiles.Normalize(text)));
        Assert.Contains(detection.Language, group);
        Assert.InRange(detection.Confidence, Detector.MinimumConfidence, Detector.EvidenceFreeConfidence);
        Assert.Equal((uncapped.Language, uncapped.RunnerUp), (detection.Language, detection.RunnerUp));
        Assert.Contains(detection.RunnerUp, group);
        Assert.True(detection.RunnerUpConfidence < detection.Confidence, $"{detection.RunnerUpConfidence} >= {detection.Confidence}");
        var over = new LanguageDetector(new LanguageDetectorOptions { MinimumConfidence = Detector.EvidenceFreeConfidence + 0.01 });
        Assert.Equal(LanguageDetection.Undetermined, over.Detect(text).Language);
    }

    // What counts as a standard's evidence (round 30): each kind the within-group decision reads, one sentence each,
    // written for this test; and a sentence every standard writes alike.
    [Theory]
    [InlineData("Popili smo svo mlijeko za doručak.", true)] // ijekavian reflex
    [InlineData("Popili smo svo mleko za doručak.", true)] // ekavian reflex
    [InlineData("Ne znam tko je ostavio otvoren prozor.", true)] // a form the dictionaries tell apart
    [InlineData("Moram da idem po sina u školu.", true)] // da + present after a modal verb
    [InlineData("Rezervisali smo sto za subotu uveče.", true)] // a loan verb's adaptation
    [InlineData("Došao je sa bratom na ručak.", true)] // a free sa (round 33: "sa sestrom" is no free sa, as s follows; it counted only through
    // the spurious ekavian stem "sest" in sestrom, Count_EkavianStem_CountsBeforeAnEndingOnly)
    [InlineData("Došao je sa sestrom na ručak.", false)]
    [InlineData("Moja sestra radi u banci već pet godina.", false)]
    public void HasStandardEvidence_EachKind_Counts(string text, bool expected) =>
        Assert.Equal(expected, Detector.HasStandardEvidence(LanguageProfiles.Normalize(text)));

    // The cap changes confidences only: every Croatian, Bosnian and Serbian sentence of held-out 1-30 gets the same
    // answer and runner-up with and without it.
    [Fact]
    public void EvidenceFreeConfidence_HeldOutSentences_SameAnswers()
    {
        var uncapped = Detector.WithEvidenceFreeConfidence(0);
        var sentences = TestData.HeldOutFiles.SelectMany(f => TestData.HeldOut(f)).Where(kv => kv.Key is "hr" or "bs" or "sr").SelectMany(kv => kv.Value).ToList();
        var differ = sentences.Where(s => Detector.Detect(s) is var a && uncapped.Detect(s) is var b && (a.Language, a.RunnerUp) != (b.Language, b.RunnerUp)).ToList();

        Assert.True(sentences.Count > 1000, $"{sentences.Count} sentences");
        Assert.True(differ.Count == 0, string.Join(" | ", differ));
    }

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

    // Session 36: a stem or ending shared with an ekavian form made words the ijekavian standards write count as
    // Serbian (posla by the stem of "posle", vremena by that of "vreme", kafiću as a joined future): 23 such hits in
    // the Croatian and Bosnian sentences of the tuning material, which cost Bosnian sentences. A word the Croatian or
    // Bosnian text writes is not ekavian.
    [Fact]
    public void Count_WordTheIjekavianTextWrites_NotEkavianByStemOrEnding()
    {
        var corpus = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal)
        {
            ["hr"] = ["Kakvo je vrijeme danas?", "Nemam vremena poslije posla.", "Vidimo se u kafić na uglu."],
            ["sr"] = ["Kakvo je danas napolju?"],
        };
        var reflex = YatReflex.FromCorpus(corpus);

        Assert.Equal((0, 0), reflex.Count("ima puno posla"));
        Assert.Equal((0, 0), reflex.Count("nemam vremena"));
        Assert.Equal((0, 0), reflex.Count("bili smo u kafiću"));
        Assert.Equal((0, 1), reflex.Count("vremenska prognoza"));
        Assert.Equal((0, 1), reflex.Count("vidimo se posle"));
        Assert.Equal((0, 1), reflex.Count("proveriću sutra"));
    }

    // Round 33: an ekavian stem matched any word it began, so "sest" (sesti, from the ijekavian text's sjesti) made
    // sestrični, sestrin, sestrama Serbian evidence: held-out 33's Bosnian "Sestrični sam za rođendan heklala kapu." went
    // Serbian at 0.84 on it. A stem counts only before an ending, which begins with a vowel (mlek-a, mest-ima,
    // vrem-enska), not before more of another root.
    [Fact]
    public void Count_EkavianStem_CountsBeforeAnEndingOnly()
    {
        var corpus = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal)
        {
            ["hr"] = ["Moram sjesti.", "Kupi mlijeko.", "Svako mjesto je zauzeto."],
            ["sr"] = ["Kakvo je danas napolju?"],
        };
        var reflex = YatReflex.FromCorpus(corpus);

        Assert.Equal((0, 0), reflex.Count("sestrični"));
        Assert.Equal((0, 0), reflex.Count("sestrin"));
        Assert.Equal((0, 0), reflex.Count("sestrama"));
        Assert.Equal((0, 1), reflex.Count("moram sesti"));
        Assert.Equal((0, 1), reflex.Count("nema mleka"));
        Assert.Equal((0, 1), reflex.Count("na mestima"));
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
    // Round 28: an ijekavian word and a word listed for Bosnian and Serbian against Croatian together are Bosnian's
    // (BosnianBlendWeight). Written for this test, not taken from an evaluation set; both were Serbian without the rule.
    [Theory]
    [InlineData("Kupila sam novu kašiku i lijepu šolju za kafu.")]
    [InlineData("U sredu idemo vozom do rijeke, pa pješke dalje.")]
    public void Detect_IjekavianWithAnEasternWord_Bosnian(string text)
    {
        Assert.Equal("sr", Detector.WithBosnianBlend(0).Detect(text).Language);
        Assert.Equal("bs", Detector.Detect(text).Language);
    }

    // The eastern words are those listed for Bosnian and Serbian and not Croatian (komšija, sedmice), not Bosnian's own
    // (hljeb) or Croatian and Bosnian's (dućanu).
    [Fact]
    public void SharedWithout_CountsTheEasternWordsOnly()
    {
        var matches = ContrastEvidence.Default.Match(LanguageProfiles.Normalize("Komšija je kupio hljeb u dućanu prošle sedmice."));

        Assert.Equal(2, matches.SharedWithout("bs", "sr", "hr"));
        Assert.Equal(1, matches.SharedWithout("hr", "bs", "sr"));
    }

    // Round 29: Croatian everyday words added to the contrast list (a month in the genitive a date takes, papar,
    // ispričavam). Written for this test, not taken from an evaluation set; no sentence was Croatian before the words
    // were listed (main 28aa8a7: Serbian 0.69, Bosnian 0.46, Serbian 0.56), as a sentence with no listed word often is.
    [Theory]
    [InlineData("Rođendan joj je devetog svibnja, pa slavimo u subotu.")]
    [InlineData("Za salatu mi trebaju sol i papar iz ormarića.")]
    [InlineData("Ispričavam se, ne mogu danas doći na sastanak.")]
    public void Detect_CroatianEverydayWords_Croatian(string text)
    {
        Assert.Equal("hr", Detector.Detect(text).Language);
    }
}
