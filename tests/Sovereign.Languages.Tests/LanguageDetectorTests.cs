namespace Sovereign.Languages.Tests;

public sealed class LanguageDetectorTests
{
    private static LanguageDetector Detector => TestData.DefaultDetector;

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   \n\t ")]
    [InlineData("12345 67.89 !!! ???")]
    public void Detect_NoLetters_Undetermined(string? text)
    {
        var detection = Detector.Detect(text);

        Assert.Equal(LanguageDetection.Undetermined, detection.Language);
        Assert.False(detection.IsDetermined);
        Assert.Equal(0, detection.Confidence);
    }

    [Theory]
    [InlineData("hello")]
    [InlineData("ok thanks")]
    [InlineData("Danke schön")]
    [InlineData("Как дела?")]
    public void Detect_ShortTextInSharedScript_Undetermined(string text)
    {
        Assert.Equal(LanguageDetection.Undetermined, Detector.Detect(text).Language);
    }

    [Theory]
    [InlineData(2_000_000, "x")]
    [InlineData(400, "xx xxx ")]
    [InlineData(300, "lalala ")]
    [InlineData(200, "ana ")]
    [InlineData(300, "ага ")]
    public void Detect_ARunOfOneToThreeLetters_Undetermined(int length, string unit)
    {
        // Two megabytes of 'x' came back Maltese at 0.83 (found by explorer6): a few letters repeated are no language.
        var text = string.Concat(Enumerable.Repeat(unit, (length / unit.Length) + 1))[..length];

        var detection = Detector.Detect(text);

        Assert.Equal((LanguageDetection.Undetermined, 0.0), (detection.Language, detection.Confidence));
    }

    [Theory]
    [InlineData("th", "ภาษาไทยเป็นภาษาราชการของประเทศไทย")]
    [InlineData("km", "ភាសាខ្មែរជាភាសាផ្លូវការ")]
    [InlineData("lo", "ພາສາລາວແມ່ນພາສາທາງການ")]
    [InlineData("my", "မြန်မာဘာသာစကား")]
    [InlineData("kn", "ಕನ್ನಡ ಭಾಷೆ ಕರ್ನಾಟಕದ ಭಾಷೆ")]
    [InlineData("ml", "മലയാളം കേരളത്തിലെ ഭാഷയാണ്")]
    [InlineData("or", "ଓଡ଼ିଆ ଭାଷା")]
    [InlineData("ta", "தமிழ் ஒரு மொழி")]
    [InlineData("te", "తెలుగు భాష")]
    [InlineData("gu", "ગુજરાતી ભાષા")]
    [InlineData("pa", "ਪੰਜਾਬੀ ਭਾਸ਼ਾ")]
    [InlineData("bn", "বাংলা ভাষা")]
    [InlineData("el", "Η ελληνική γλώσσα")]
    [InlineData("ko", "한국어는 아름답습니다")]
    [InlineData("ja", "日本語を話します")]
    [InlineData("ja", "カタカナ")]
    [InlineData("zh", "我们今天去北京看朋友")]
    public void Detect_ScriptOwnedByOneLanguage_DecidedByScript(string expected, string text)
    {
        var detection = Detector.Detect(text);

        Assert.Equal(expected, detection.Language);
        Assert.Equal(LanguageDetection.ByScript, detection.Method);
        Assert.InRange(detection.Confidence, 0.5, 1.0);
    }

    [Fact]
    public void Detect_KoreanWithHanja_Korean()
    {
        Assert.Equal("ko", Detector.Detect("大韓民國 헌법 제1조 대한민국은 민주공화국이다").Language);
    }

    [Fact]
    public void Detect_FewKanjiWithoutKana_UndeterminedNotChinese()
    {
        // 日本語 is as much Japanese as Chinese: too few ideographs to decide.
        Assert.Equal(LanguageDetection.Undetermined, Detector.Detect("日本語").Language);
    }

    [Fact]
    public void Detect_AssameseLetters_UndeterminedNotBengali()
    {
        Assert.Equal(LanguageDetection.Undetermined, Detector.Detect("অসমীয়া ভাষা অসম ৰাজ্যৰ চৰকাৰী ভাষা").Language);
    }

    [Theory]
    [InlineData("Ninapenda kusoma vitabu jioni baada ya kazi yangu.")]
    [InlineData("Mae'r plant yn chwarae pêl-droed yn yr ysgol heddiw.")]
    [InlineData("تمام افراد بشر آزاد به دنیا می‌آیند و از لحاظ حیثیت و حقوق با هم برابرند")]
    public void Detect_LanguageOutsideSetInSharedScript_UndeterminedNotNeighbour(string text)
    {
        // Swahili, Welsh and Persian are not configured; as decoys they keep the text from becoming Indonesian, Irish or
        // Arabic. (Decoys have no profile: Kazakh sentences can still come out as Ukrainian.)
        var detection = Detector.Detect(text);

        Assert.Equal(LanguageDetection.Undetermined, detection.Language);
        Assert.NotNull(detection.RunnerUp);
    }

    [Fact]
    public void Detect_Afrikaans_UndeterminedWhereLinguaPrefersIt_AndDutchStaysDutch()
    {
        // Afrikaans borrows the Dutch profile's evidence, so the profile cannot lift Dutch over it and Lingua decides:
        // before, 14 of these 20 Afrikaans sentences came back as a confident Dutch; now 6 do (Lingua itself prefers
        // Dutch there). No Dutch sentence may be lost to it.
        var samples = TestData.HeldOut("afrikaans-dutch.txt");

        var afrikaans = samples["af"].Select(s => Detector.Detect(s)).ToList();
        var dutch = samples["nl"].Select(s => Detector.Detect(s).Language).ToList();

        Assert.True(afrikaans.Count(d => d.Language == LanguageDetection.Undetermined) >= 14, string.Join(", ", afrikaans.Select(d => d.Language)));
        Assert.Contains(afrikaans, d => d.RunnerUp == "af");
        Assert.All(dutch, language => Assert.Equal("nl", language));
    }

    [Theory]
    // Macedonian, outside the covered set, written for this test (session 23): it must stay und, not become Bulgarian
    // or Serbian. A guard for any change to how the Macedonian decoy is scored: session 23 tried giving it the
    // Bulgarian profile's evidence, or the better or the worse of the Bulgarian and Serbian profiles' (it has no tuning
    // sentences, so its profile evidence is 0 where theirs can be negative); each cost Bulgarian or Macedonian
    // sentences elsewhere and none was kept (SOURCES.md).
    [InlineData("Мачката пак се качи на покривот и не сака да слезе.")]
    [InlineData("Библиотеката работи до осум часот навечер.")]
    [InlineData("Дали можеш да ми препорачаш некој добар филм за вечерва?")]
    [InlineData("Децата си играа во дворот цело попладне.")]
    [InlineData("Нашиот сосед секоја сабота го мие својот автомобил.")]
    public void Detect_Macedonian_StaysUndetermined(string text)
    {
        var detection = Detector.Detect(text);

        Assert.Equal(LanguageDetection.Undetermined, detection.Language);
        Assert.Equal("mk", detection.RunnerUp);
    }

    // Serbian in Cyrillic letters with no ђ or ћ, which Lingua may read as Macedonian: the auxiliaries, adverbs and
    // first-person plurals the two standards write otherwise (сам/сум, код/кај, сутра/утре, идемо/одиме) tell them
    // apart (contrast-words.txt, session 40). Written for this test, not taken from an evaluation set; the first was
    // und (Macedonian 0.65) before those words. Their Macedonian translations stay und (Macedonian the runner-up).
    [Theory]
    [InlineData("Сутра идемо код баке на село, понеси топлу јакну.", "Утре одиме кај баба на село, земи топла јакна.")]
    [InlineData("Где си оставио кључеве од стана, не могу да их нађем.", "Каде ги остави клучевите од станот, не можам да ги најдам.")]
    [InlineData("Ово јело је превише слано, додај мало воде.", "Ова јадење е многу солено, додај малку вода.")]
    public void Detect_SerbianCyrillicWithoutItsOwnLetters_SerbianAndItsMacedonianTranslationUndetermined(string serbian, string macedonian)
    {
        Assert.Equal("sr", Detector.Detect(serbian).Language);

        var translation = Detector.Detect(macedonian);
        Assert.Equal(LanguageDetection.Undetermined, translation.Language);
        Assert.Equal("mk", translation.RunnerUp);
    }

    // Serbian in Cyrillic letters left und beside Macedonian (session 41, round 23): its copula, auxiliary, prepositions
    // and clitics, none of Macedonian's, decide (SerbianCyrillicGrammar). Written for this test, not taken from an
    // evaluation set; und (Serbian 0.36, below the threshold) before the rule, and with it off.
    [Fact]
    public void Detect_SerbianCyrillicLeftUndeterminedBesideMacedonian_SerbianByItsGrammar()
    {
        const string Text = "Нема воде у чесми, звали смо водоинсталатера.";

        Assert.Equal(LanguageDetection.Undetermined, Detector.WithLetterMixtures(false).Detect(Text).Language);
        var detection = Detector.Detect(Text);
        Assert.Equal("sr", detection.Language);
        Assert.Equal(LanguageDetection.ByHeuristic, detection.Method);
    }

    // Bulgarian and Macedonian by their alphabets (round 26, CyrillicAlphabets): a text with ъ, щ, ю, я or й, which
    // Macedonian does not write, gives Macedonian no probability. Written for this test, not taken from an evaluation
    // set; without the rule Macedonian is the runner-up (Bulgarian 0.65), with it Bulgarian is surer and Macedonian gone.
    [Fact]
    public void Detect_BulgarianWithLettersMacedonianLacks_MacedonianTakesNoShare()
    {
        const string Text = "Тя не може да дойде утре.";

        var without = Detector.WithCyrillicAlphabets(false).Detect(Text);
        var with = Detector.Detect(Text);

        Assert.Equal("mk", without.RunnerUp);
        Assert.Equal("bg", with.Language);
        Assert.NotEqual("mk", with.RunnerUp);
        Assert.True(with.Confidence > without.Confidence, $"{with.Confidence} <= {without.Confidence}");
    }

    // Round 38: Macedonian writes no ђ or ћ (CyrillicAlphabets): a Serbian sentence with one no longer ends und beside
    // Macedonian. Written for this test, not taken from an evaluation set; without the rule it is und, Macedonian the
    // runner-up at 1.00.
    [Fact]
    public void Detect_SerbianWithLetterMacedonianLacks_Serbian()
    {
        const string Text = "Ноћу на станици нема никога.";

        var without = Detector.WithCyrillicAlphabets(false).Detect(Text);
        var with = Detector.Detect(Text);

        Assert.Equal(LanguageDetection.Undetermined, without.Language);
        Assert.Equal("mk", without.RunnerUp);
        Assert.Equal("sr", with.Language);
        Assert.NotEqual("mk", with.RunnerUp);
    }

    // Round 38: Latin by its alphabet (LatinAlphabet): where Lingua gives Latin the lead over a text with letters no Latin
    // text writes, Latin takes no share and the covered language that writes them is answered. Written for this test, not
    // taken from an evaluation set; without the rule it is und with Latin as runner-up.
    [Fact]
    public void Detect_LettersLatinLacks_LatinTakesNoShare()
    {
        const string Text = "Kofer je pretežak, moram platiti doplatu.";

        var without = Detector.WithLatinAlphabet(false).Detect(Text);
        var with = Detector.Detect(Text);

        Assert.Equal(LanguageDetection.Undetermined, without.Language);
        Assert.Equal("la", without.RunnerUp);
        Assert.Equal("hbs", with.Group);
        Assert.NotEqual("la", with.RunnerUp);
    }

    // The Latin rule hands nothing to a language that could not write the text's letters, and leaves alone the text
    // Latin leads only because every profiled language's evidence is against it (a language outside the set).
    [Fact]
    public void LatinAlphabet_LettersAndLead()
    {
        Assert.True(LatinAlphabet.WritesLetterLatinLacks("kofer je pretežak"));
        Assert.False(LatinAlphabet.WritesLetterLatinLacks("gallia est omnis divisa in partes tres, poëta"));
        Assert.True(LatinAlphabet.WritesEveryLetter("hr", "kovčeg je pretežak"));
        Assert.False(LatinAlphabet.WritesEveryLetter("id", "kovčeg je pretežak"));
        Assert.False(LatinAlphabet.WritesEveryLetter("vi", "anything"));
    }

    // The alphabet rule never takes a Macedonian sentence from und (Macedonian writes none of the letters), nor gives a
    // Bulgarian sentence to Macedonian: every Macedonian and Bulgarian sentence of the tuning corpus, the decoy set and
    // the held-out and out-of-set sets.
    [Fact]
    public void CyrillicAlphabets_MacedonianSentences_WriteNoLetterItLacks()
    {
        var sets = TestData.HeldOutFiles.Concat(Enumerable.Range(1, 13).Select(i => $"out-of-set-{i}.txt")).Append("decoys.txt")
            .SelectMany(f => TestData.HeldOut(f)).ToList();
        var macedonian = LanguageProfiles.LoadCorpus()["mk"].Concat(sets.Where(kv => kv.Key == "mk").SelectMany(kv => kv.Value)).ToList();
        var lacks = CyrillicAlphabets.LettersLackedBy("mk")!;

        Assert.True(macedonian.Count > 100, $"{macedonian.Count} sentences");
        var writing = macedonian.Where(t => LanguageProfiles.Normalize(t).AsSpan().IndexOfAny(lacks) >= 0).ToList();
        Assert.True(writing.Count == 0, string.Join(" | ", writing));
        var bulgarianLost = LanguageProfiles.LoadCorpus()["bg"].Concat(sets.Where(kv => kv.Key == "bg").SelectMany(kv => kv.Value))
            .Where(t => Detector.WithCyrillicAlphabets(false).Detect(t).Language == "bg" && Detector.Detect(t).Language != "bg").ToList();
        Assert.True(bulgarianLost.Count == 0, string.Join(" | ", bulgarianLost));
    }

    // The grammar rule never takes a Macedonian sentence: the tuning corpus's, the decoy set's, the held-out and
    // out-of-set sets' (held-out 4-6 and 23, out of set 4 and 6).
    [Fact]
    public void SerbianCyrillicGrammar_MacedonianSentences_NeverTaken()
    {
        var texts = LanguageProfiles.LoadCorpus()["mk"]
            .Concat(TestData.HeldOut("decoys.txt")["mk"])
            .Concat(TestData.HeldOutFiles.Concat(Enumerable.Range(1, 10).Select(i => $"out-of-set-{i}.txt"))
                .SelectMany(f => TestData.HeldOut(f)).Where(kv => kv.Key == "mk").SelectMany(kv => kv.Value))
            .ToList();

        Assert.True(texts.Count > 60, $"{texts.Count} sentences");
        var taken = texts.Where(t => SerbianCyrillicGrammar.SerbianWords(LanguageProfiles.Normalize(t)) > 0 || Detector.Detect(t).Language == "sr").ToList();
        Assert.True(taken.Count == 0, string.Join(" | ", taken));
    }

    // Round 35's two named misses of held-out 34 (not a blind check: the brief named them). Serbian in Cyrillic letters
    // with everyday words whose Macedonian counterparts are other words (свако/секое, јутро/утро, кува/вари) was und
    // beside Macedonian (0.95); Bulgarian with its prepositions and numerals (в, четиресет, осемдесет) and none of
    // the letters only Bulgarian writes was Serbian (0.91). On be22c23's code: und and sr. No other sentence of held-out
    // 1-35, out of set 1-22, the decoys or the tuning corpus changed its answer.
    [Theory]
    [InlineData("Тата свако јутро кува кафу у малој џезви.", "sr")]
    [InlineData("В рецептата пише да се пече четиресет минути на сто и осемдесет градуса.", "bg")]
    public void Detect_CyrillicNeighboursByTheirWords_Round35(string text, string expected)
    {
        var detection = Detector.Detect(text);

        Assert.NotEqual(expected, Detector.WithLetterMixtures(false).Detect(text).Language);
        Assert.Equal(expected, detection.Language);
        Assert.Equal(LanguageDetection.ByHeuristic, detection.Method);
        Assert.True(detection.Confidence >= 0.8, $"{detection.Confidence}");
    }

    // Round 37: Serbian closed-class words whose Macedonian counterparts are other words (све/сè, док/додека,
    // ништа/ништо, нико/никој, неко/некој, врло/многу, између/меѓу, био/бил). Written for this test, not taken from an
    // evaluation set: it wrote one listed word before (у), so the rule did not apply and the answer was not Serbian;
    // with the words it is Serbian by its grammar. (Other sentences tried for this test - "Био сам врло уморан после
    // посла.", "Неко звони на врата, ништа не чујем." - were Serbian by their profiles already.) The Macedonian
    // translations stay und (Macedonian's во, сè, бев keep the rule off).
    [Theory]
    [InlineData("Тата ради у гаражи све док не падне мрак.", 3)]
    public void Detect_SerbianCyrillicByRound37Words_SerbianByItsGrammar(string text, int words)
    {
        Assert.Equal(words, SerbianCyrillicGrammar.SerbianWords(LanguageProfiles.Normalize(text)));
        Assert.NotEqual("sr", Detector.WithLetterMixtures(false).Detect(text).Language);
        var detection = Detector.Detect(text);
        Assert.Equal("sr", detection.Language);
        Assert.Equal(LanguageDetection.ByHeuristic, detection.Method);
    }

    [Theory]
    [InlineData("Татко работи во гаражата сè додека не се стемни.")]
    [InlineData("Бев многу уморен после работата.")]
    public void Detect_MacedonianTranslationsOfRound37Sentences_StayUndetermined(string text)
    {
        Assert.Equal(0, SerbianCyrillicGrammar.SerbianWords(LanguageProfiles.Normalize(text)));
        Assert.Equal(LanguageDetection.Undetermined, Detector.Detect(text).Language);
    }

    // The Serbian words of round 35 count (only у of the sentence was listed before), and a Serbian answer turned
    // Bulgarian is und, with Bulgarian as runner-up, where the operator left Bulgarian out.
    [Fact]
    public void CyrillicGrammars_Round35Words_CountAndRespectTheConfiguredSet()
    {
        Assert.Equal(4, SerbianCyrillicGrammar.SerbianWords(LanguageProfiles.Normalize("Тата свако јутро кува кафу у малој џезви.")));
        Assert.Equal(3, BulgarianSerbianGrammar.BulgarianWords(LanguageProfiles.Normalize("В рецептата пише да се пече четиресет минути на сто и осемдесет градуса.")));
        Assert.Equal(0, BulgarianSerbianGrammar.BulgarianWords(LanguageProfiles.Normalize("У рецепту пише да се пече четрдесет минута, осем или девет.")));
        Assert.Equal(0, BulgarianSerbianGrammar.BulgarianWords(LanguageProfiles.Normalize("Тука во селото има осем куќи и еден дуќан.")));

        var withoutBulgarian = new LanguageDetector(new LanguageDetectorOptions { Languages = [.. LanguageCatalog.Covered.Where(c => c != "bg")] });
        var detection = withoutBulgarian.Detect("В рецептата пише да се пече четиресет минути на сто и осемдесет градуса.");
        Assert.Equal(LanguageDetection.Undetermined, detection.Language);
        Assert.Equal("bg", detection.RunnerUp);
    }

    // The Bulgarian rule never takes a Serbian or Macedonian sentence in Cyrillic letters, and no Bulgarian sentence
    // loses its answer to it: the tuning corpus, the decoy set, the held-out and out-of-set sets.
    [Fact]
    public void BulgarianSerbianGrammar_SerbianAndMacedonianSentences_NeverTaken()
    {
        var sets = TestData.HeldOutFiles.Concat(Enumerable.Range(1, 22).Select(i => $"out-of-set-{i}.txt")).Append("decoys.txt")
            .SelectMany(f => TestData.HeldOut(f)).ToList();
        var corpus = LanguageProfiles.LoadCorpus();
        var texts = new[] { "sr", "mk" }
            .SelectMany(l => corpus[l].Concat(sets.Where(kv => kv.Key == l).SelectMany(kv => kv.Value)))
            .Where(t => t.Any(c => c is >= '\u0400' and <= '\u04FF'))
            .ToList();

        Assert.True(texts.Count > 300, $"{texts.Count} sentences");
        // (Held-out 31's Macedonian "На вечерата ми заглави рибина коска во грлото." is Bulgarian with the rule off too.)
        var taken = texts.Where(t => BulgarianSerbianGrammar.BulgarianWords(LanguageProfiles.Normalize(t)) > 0
            || (Detector.Detect(t).Language == "bg" && Detector.WithLetterMixtures(false).Detect(t).Language != "bg")).ToList();
        Assert.True(taken.Count == 0, string.Join(" | ", taken));
        var bulgarianLost = corpus["bg"].Concat(sets.Where(kv => kv.Key == "bg").SelectMany(kv => kv.Value))
            .Where(t => Detector.WithLetterMixtures(false).Detect(t).Language == "bg" && Detector.Detect(t).Language != "bg").ToList();
        Assert.True(bulgarianLost.Count == 0, string.Join(" | ", bulgarianLost));
    }

    // Decoys (Data/decoys.txt, written in session 24 before Macedonian and Belarusian got tuning sentences): text in a
    // language outside the set that sits beside covered ones (Macedonian beside Bulgarian and Serbian, Belarusian beside
    // Russian and Ukrainian) must come back und, with the decoy as runner-up, never as a confident neighbour.
    // Languages outside the covered set must come back und (SOURCES.md, session 33), each set written before the tuning
    // round it checks and never tuned on. Out of set 1 (20 languages x 8): 61 of 160 und before the decoys got
    // profiles (Nepali read as Hindi, Faroese as Icelandic, Asturian as Spanish, ...), 124 at its first run after.
    // Javanese and Sundanese then got a second round, checked on out of set 2 (6 of 16 und before, 13 after); Asturian,
    // Occitan, Corsican and Breton a second round and Konkani and Maithili decoys, checked on out of set 3 (23 of 72
    // before, 56 after; Bhojpuri and Sanskrit decoys were left out, since they took Hindi and Marathi held-out sentences
    // and the formal Hindi of the UDHR: both are mostly read as Hindi or Marathi). Out of set 1 is no longer held out for
    // the languages of the later rounds (148 of 160 since). The floors are the last run's counts; Asturian, Bhojpuri,
    // Sanskrit, Corsican, Esperanto, Javanese and Sundanese are below the target (7 of 8) somewhere. Session 34 gave
    // Esperanto tuning sentences (Lingua has a model, but without a profile Spanish took it): 6 -> 7 of 8 on out of set 1.
    // Out of set 4 (session 35, round 17: 14 languages x 8, written with held-out 17 before any change of the round):
    // 95 of 112 und at its first run, the unchanged detector; Bhojpuri 1 of 8 (Hindi 0.82-1.00), Sanskrit 5 (Marathi,
    // Hindi), Asturian and Sundanese 6 (Spanish, Indonesian), Javanese, Occitan and Afrikaans 7. Then Sanskrit and
    // Bhojpuri by their grammar (DevanagariDecoys, chosen on Hindi and Marathi tuning material, never on these sets):
    // out of set 3 Sanskrit 4 -> 7, Bhojpuri 3 -> 6 (56 -> 62 of 72); out of set 4 Sanskrit 5 -> 8, Bhojpuri 1 -> 6 (95
    // -> 103 of 112; its Bhojpuri was written by the writer of the rule's word list, so out of set 3's is the fairer
    // check); held-out 1-17 and the UDHR sentences unchanged. Out of set 5 (session 36, round 18: 19 languages x 8,
    // near-translations of held-out 18's sentences, written with it before any change of the round): 97 of 152 und at
    // its first run, the unchanged detector; Aragonese and Venetian 0 of 8 (Spanish, Galician, Italian), Minangkabau and
    // Balinese 2 (Indonesian, Malay), Low German 3 (Dutch), Awadhi 3 (Hindi), Walloon and Ilocano 4. Then seven decoys
    // with tuning sentences (Aragonese, Venetian, Low German, Minangkabau, Balinese, Walloon, Ilocano; written on the
    // first-round tuning topics, not on out of set 5's): 120 of 152 (Aragonese 3, Venetian 6, Low German 7, Walloon and
    // Ilocano 8, Minangkabau 4; Balinese 2), held-out 1-18 one Galician sentence of held-out 11 lost (to Asturian).
    // Then 23 more tuning sentences each for Sundanese, Minangkabau and Balinese (everyday topics of the Javanese
    // ones): Sundanese 5 -> 8 (out of set 1), 6 -> 7 (2), 6 -> 8 (4); Minangkabau 4 -> 6, Balinese 2 -> 7 and Acehnese
    // 6 -> 7 (5): 128 of 152; no held-out sentence moved. Then 23 more for Aragonese: 3 -> 6 (5; 131 of 152), and
    // Corsican 6 -> 7 on out of set 3. The same for Venetian and Corsican cost the UDHR's Italian 63 -> 59 of 64 (und),
    // and 20 more Asturian ones three Spanish held-out sentences (held-out 6, 11, 18): both left out. Out of set 6
    // (session 37, round 19: 19 languages x 8, near-translations of held-out 19's first eight sentences, close relatives
    // of covered languages among them, written with it before any change of the round): 93 of 152 und at its first run,
    // the unchanged detector; Banjar, Upper Sorbian and Rusyn 0 of 8 (Indonesian and Malay; Polish, Slovak and Czech;
    // Ukrainian and Russian), Silesian 2 (Polish), Awadhi 2 (Hindi), Romansh 3 (Italian, Catalan), Waray 3 (Filipino),
    // Limburgish 4 (Dutch), Friulian, Occitan and Sicilian 6. Then Awadhi by its grammar (DevanagariDecoys, written
    // before any run on out of set 5, whose Awadhi another engineer wrote: the fair check) and letters no covered alphabet
    // writes together (LetterMixtures: Sorbian ł beside háčeks, Rusyn ы beside ї/є, Silesian ō/ŏ): out of set 5 Awadhi
    // 3 -> 7 (135 of 152); out of set 6 Awadhi 2 -> 7, Upper Sorbian 0 -> 7, Rusyn 0 -> 6, Silesian 2 -> 7 (116 of 152;
    // its writer wrote the rules too); held-out 1-19 and the UDHR unchanged. Then neighbours' function words
    // (FunctionWordDecoys: Banjar and Sundanese against Malay and Indonesian, Waray against Filipino, Asturian against the
    // Iberian four): out of set 5 Asturian 6 -> 7 (136); out of set 6 Banjar 0 -> 4, Waray 3 -> 6, Asturian 7 -> 8 (124).
    // Out of set 7 (session 38, round 20: 19 languages no earlier out-of-set file has x 8, near-translations of held-out
    // 20's first eight sentences, written with it before any change of the round): 37 of 152 und at its first run, the
    // unchanged detector; Scots, Kashubian, Võro, Judaeo-Spanish, Chavacano, Iban, Betawi and Marwari 0 of 8 (English,
    // Polish, Estonian and Finnish, Spanish, Spanish, Malay and Indonesian, Indonesian, Hindi and Marathi), Swiss German,
    // Latgalian, Neapolitan and Bikol 1 (German, Latvian, Italian, Filipino), Crimean Tatar and Aromanian 3 (Turkish,
    // Romanian), Hiligaynon and Sardinian 4, Tok Pisin 5, Papiamento 6, Belarusian 8.
    // Then (the same round) more neighbours' function words (FunctionWordDecoys: Minangkabau, Aragonese, Venetian,
    // Romansh, Limburgish, Corsican and the languages of out of set 7 read as a neighbour; longer Banjar and Sundanese
    // lists), letters no covered alphabet writes together (LetterMixtures: Kashubian, Latgalian, Crimean Tatar), Marwari
    // by its grammar (DevanagariDecoys), English contrast words and 31 more English tuning sentences: out of set 5
    // Minangkabau and Venetian 6 -> 7 (138 of 152); out of set 6 Limburgish 4 -> 6, Romansh 3 -> 4, Sundanese 7 -> 8
    // (128); out of set 7 37 -> 113 (its writer wrote the rules: not a fair check); out of set 1-4 unchanged. Then more
    // Romansh words (pronouns, adverbs, numbers): out of set 6 Romansh 4 -> 5 (129).
    // Out of set 8 (session 39, round 21: 19 languages x 8, near-translations of held-out 21's first eight sentences,
    // written with it before any change of the round; the thirteen languages short of 7 of 8 on an earlier set written
    // afresh, and Lombard, Piedmontese, Ligurian, Mirandese, Samogitian and Kapampangan): 79 of 152 und at its first
    // run, the unchanged detector; Mirandese, Neapolitan and Samogitian 0 of 8 (Spanish and Portuguese, Italian,
    // Lithuanian), Friulian, Judaeo-Spanish and Võro 2, Ligurian 3, Chavacano 4. Then function words of Friulian,
    // Occitan, Sicilian, Lombard, Piedmontese, Ligurian, Mirandese and Kapampangan, more for Aragonese, Banjar,
    // Chavacano, Judaeo-Spanish, Neapolitan and Võro, and letters (Samogitian ė beside a Latvian long vowel, Võro õ
    // beside a word-final q), written from general knowledge: out of set 6 Sicilian 6 -> 7 (130), out of set 7
    // Chavacano 3 -> 4 (114; the fair checks: sets another engineer or an earlier round wrote), out of set 8 79 -> 108
    // (its writer wrote the rules: not a fair check); held-out 1-21 and the UDHR unchanged. Then Neapolitan's elided
    // articles ('o, 'e) count as its words: out of set 7 Neapolitan 4 -> 7 (117; another engineer's sentences, though
    // this round's writer had seen them printed while reading the file's format), out of set 8 2 -> 3 (109). Then more
    // Swiss German everyday words (chunnt, lueg, znacht, chind, mängisch, ...): out of set 7 Swiss German 4 -> 5 (118).
    // Then a word no covered language writes (Banjar ulun, Võro tiiä, Sardinian isco, ...) counts twice, so that it
    // alone marks its language: out of set 6 Banjar 4 -> 6 (132), out of set 7 Sardinian 5 -> 6, Võro 2 -> 5 (122),
    // out of set 8 Banjar 6 -> 8, Swiss German 6 -> 7, Romansh 5 -> 7 (114).
    // Out of set 9 (session 40, round 22: 20 languages x 8, near-translations of held-out 22's first eight sentences,
    // written with it before any change of the round; the sixteen languages short of 7 of 8 on an earlier set written
    // afresh, and Extremaduran, Picard, West Flemish and Madurese): 96 of 160 und at its first run, the unchanged
    // detector; Extremaduran 1 of 8 (Spanish), Judaeo-Spanish, Latgalian and Mirandese 2 (Spanish; Latvian and
    // Lithuanian; Spanish, Portuguese, Galician, Catalan), Picard, Rusyn and Võro 3 (French; Ukrainian; Estonian and
    // Finnish), Swiss German 4 (German).
    // Then function words of Extremaduran, Picard, West Flemish and Madurese (FunctionWordDecoys): out of set 9
    // Extremaduran 1 -> 2, Picard 3 -> 4, West Flemish 5 -> 6 (99; its writer wrote the lists: not a fair check); out
    // of set 1-8 unchanged. Then Rusyn's function words in Cyrillic letters (ся, барз, кідь, лем, мі, ...): out of set 9
    // Rusyn 3 -> 4 (100), out of set 6 Rusyn unchanged (6).
    // Out of set 10 (session 41, round 23: 20 languages x 8, near-translations of held-out 23's first eight sentences,
    // written with it before any change of the round; the eighteen languages the known gaps name, written afresh, and
    // Sicilian and Ligurian): 81 of 160 und at its first run, the unchanged detector; Extremaduran, Judaeo-Spanish,
    // Mirandese and Võro 1 of 8 (Spanish; Spanish; Spanish, Portuguese, Galician; Estonian, Finnish), Chavacano 2
    // (Spanish, Galician), Swiss German, Picard, Romansh and Rusyn 3 (German; French; Catalan, Italian, English;
    // Ukrainian, Russian), Friulian 4 (Italian); Latgalian 8.
    // Then spellings the answered language does not write (SpellingDecoys, from the orthographies: circumflexes, cj/gj,
    // -u after a consonant, elisions before a consonant or where the language never elides, k/sh in Spanish, doubled
    // ii/uu in German, ...): out of set 5 138 -> 141 (Corsican, Sundanese, Acehnese 7 -> 8, 6 -> 7, 7 -> 8), 6 132 ->
    // 134 (Friulian 6 -> 7, Sicilian 7 -> 8), 7 122 -> 125 (Judaeo-Spanish 3 -> 6), 8 114 -> 119 (Swiss German 7 -> 8,
    // Judaeo-Spanish 4 -> 7, Sicilian 6 -> 7), 9 100 -> 112 (Picard 4 -> 8, Judaeo-Spanish 2 -> 7, Extremaduran, Friulian,
    // Võro one each): other engineers' sentences, the fair check; out of set 10 81 -> 100 (its writer wrote the rule).
    // Then Mirandese's initial lh, Romansh ch in a Catalan answer, Swiss German's initial chu/chö/chl, ы in a Ukrainian
    // and і/ї/є/ґ in a Russian answer (Rusyn): out of set 6 Romansh 5 -> 6 (135), out of set 10 Rusyn 3 -> 4 (101).
    // Out of set 11 (session 42, round 24; the twenty languages still short on an earlier file, Sardinian and Scots among
    // them, written afresh on held-out 24's topics): its first run, on the unchanged detector, 99 of 160 und.
    // Out of set 12 (session 43, round 25; sixteen languages no earlier file has, Bavarian, Gagauz, Interlingua and
    // Northern Sami among them, and Mirandese, Extremaduran, Limburgish and Scots afresh, on held-out 25's topics): its
    // first run, on the unchanged detector (main 700454c), 100 of 160 und.
    // Out of set 13 (session 44, round 26; Gagauz, Extremaduran, Interlingua, Scots, Mirandese and Limburgish afresh and
    // fourteen languages no earlier file has - Interlingue, Fala, Cape Verdean Creole, Pennsylvania German, Bislama, Krio,
    // Jamaican Patois, Sranan Tongo, Tatar, Chuvash, Kyrgyz, Guarani, Hawaiian, Tongan -, on held-out 26's topics): its
    // first run, on the unchanged detector (main b4b1b5f), 90 of 160 und; Interlingua 0 of 8 (Spanish, Italian,
    // Galician), Gagauz 1 (Turkish 0.72-1.00), Chuvash 1 (Russian), Scots 1 (English 0.66-1.00), Jamaican Patois,
    // Mirandese and Pennsylvania German 2 (English; Spanish, Portuguese, Galician; German), Interlingue 3 (Catalan,
    // Italian, Galician), Fala 4 (Galician, Portuguese).
    // Then (round 26, from the alphabets and general knowledge, never from an evaluation sentence) Gagauz and Turkmen
    // letters beside Turkish ones and the Chuvash and Bashkir letters (LetterMixtures), and function words of
    // Interlingua, Interlingue, Jamaican Patois, Pennsylvania German and Bavarian, more of Scots, Mirandese and
    // Extremaduran (FunctionWordDecoys): out of set 10 Mirandese 1 -> 2 (102); out of set 11 Mirandese 2 -> 4, Scots 3 -> 5
    // (104); out of set 12 Gagauz 1 -> 6, Turkmen 5 -> 7, Bavarian 3 -> 5, Bashkir 7 -> 8, Interlingua 2 -> 3, Scots 2 ->
    // 3 (112): other engineers' sentences, the fair check; out of set 13 90 -> 121 (Chuvash 1 -> 8, Gagauz 1 -> 8,
    // Jamaican Patois 2 -> 7, Pennsylvania German 2 -> 7, Mirandese 2 -> 4, Scots 1 -> 3, Interlingua 0 -> 2, Interlingue
    // 3 -> 4; its writer wrote the rules: not a fair check); out of set 1-9 unchanged. Then the Uyghur letters in an
    // Arabic answer and Northern Sami's ŋ, ŧ (LetterMixtures): out of set 12 Uyghur 5 -> 8; nothing else moved.
    // Out of set 14 (session 45, round 27; Interlingua, Scots and Extremaduran afresh, eight languages of earlier files
    // afresh - Asturian, Aragonese, Venetian, Low German, Luxembourgish, Papiamento, Assamese, Belarusian - and Ido, Lingua
    // Franca Nova, Interslavic, Romani and Zeelandic, on held-out 27's topics): its first run, on the unchanged detector
    // (main c3eaf07), 80 of 128 und; Interslavic 1 of 8 (Czech, Croatian, Serbian, Slovenian, Slovak), Lingua Franca
    // Nova and Zeelandic 2 (Spanish, Galician; Dutch), Extremaduran, Romani and Scots 3 (Spanish; Slovenian, Bosnian,
    // Serbian, Spanish; English 1.00).
    // Then (round 27, from the orthographies, never from an evaluation sentence) SpellingDecoys' Extremaduran final -i in
    // Spanish text (nochi, siempri), Interlingua's ph and -tion in Romance text, Scots's -nae and -cht in English text and
    // Zeelandic's ae in Dutch text: out of set 7 Judaeo-Spanish 6 -> 7, 9 Extremaduran 3 -> 6, Aragonese and
    // Judaeo-Spanish 7 -> 8, 11 Extremaduran 3 -> 4, 12 Extremaduran 2 -> 6 (other engineers' sentences, the fair check);
    // 13 Extremaduran 5 -> 6, Limburgish 6 -> 7; 14 Extremaduran 3 -> 5, Zeelandic 2 -> 3 (its writer wrote the rules: not a
    // fair check). Scots and Interlingua did not move: their sentences carry one such word, and two are needed.
    // Out of set 15 (session 46, round 28; Scots, Interlingua, Interslavic, Lingua Franca Nova, Romani and Zeelandic
    // afresh, Extremaduran, Asturian, Aragonese, Ido and Luxembourgish afresh, and Corsican, Sicilian, Occitan, Western
    // Frisian and Esperanto, on held-out 28's topics): its first run, on the unchanged detector (main f73c389), 93 of 128
    // und; Lingua Franca Nova 2 of 8 (Spanish, Portuguese, Galician), Interlingua, Interslavic and Zeelandic 3
    // (Italian, Spanish; Slovenian, Serbian, Croatian, Slovak; Dutch), Romani 4 (Slovenian, Bosnian, Serbian).
    // Then (round 28, from the grammars and orthographies, never from an evaluation sentence) function words of
    // Interslavic, Romani, Lingua Franca Nova and Zeelandic, Interslavic's etymological letters, and a decoy's listed
    // words and marked spellings counted together (DecoyWords): out of set 7-12 (other engineers' sentences, the fair
    // check) 688 -> 700 of 952 (Swiss German 4 -> 6 on 9 and 5 -> 7 on 11, Võro +1 on 7 and 9, Sundanese 7 -> 8 on 8,
    // Limburgish and Mirandese +1 on 10, Rusyn +1 on 11, Interlingua 3 -> 4 and Scots 3 -> 4 on 12); out of set 14 (round
    // 27's writer's sentences, not read by this round's) 83 -> 88 (Interslavic 1 -> 3, Romani 3 -> 5, Interlingua 5 ->
    // 6); out of set 3 and 6 +1 each, 13 +2; out of set 15 (same writer as the rules: not a fair check) 93 -> 104. No
    // held-out, UDHR or out-of-set sentence lost.
    // Out of set 16 (session 47, round 29; the six round 28 left afresh, Extremaduran and Aragonese afresh, and Low
    // German, Venetian, Judaeo-Spanish, Papiamento, Limburgish, Upper Sorbian, Kashubian and Friulian, on held-out 29's
    // topics): its first run, on the unchanged detector (main 28aa8a7), 79 of 128 und; Interlingua 1 of 8 (Italian six
    // times), Friulian and Zeelandic 3 (Catalan, Italian; Dutch, Danish), Interslavic, Limburgish and Romani 4 (Czech,
    // Croatian, Bosnian, Slovenian; Dutch; Serbian, Bosnian, Slovenian). Round 29 changed only hr/bs/sr contrast words
    // and moved none of them; its floors are the first run's.
    // Out of set 17 (session 48, round 30; Uzbek, Kazakh, Tajik, Nigerian Pidgin, Plautdietsch, Malagasy and Maori in no
    // earlier file, Afrikaans, Azerbaijani, Crimean Tatar, Faroese, Scottish Gaelic, Latin, Tok Pisin, Walloon and
    // Silesian in one, on held-out 30's topics): its first run, on the unchanged detector (main 32f7ffa), 108 of 128 und;
    // Nigerian Pidgin 0 of 8 (English, 0.94-1.00), Plautdietsch 3 (German), Afrikaans and Silesian 6 (Dutch; Polish),
    // Malagasy, Maori and Tajik 7 (Filipino; Tetum; Ukrainian). Then (round 30, from general knowledge of its grammar)
    // a FunctionWordDecoys list for Nigerian Pidgin against English: Nigerian Pidgin 0 -> 4 (108 -> 112 of 128; its
    // writer wrote the list, so not a fair check, and no other writer's Nigerian Pidgin is in the repository); no other
    // sentence of any set writes two of its words.
    // Out of set 18 (session 49, round 31; Mauritian Creole, Kolsch, Emilian, Cantonese and Hawaii Creole English in no
    // earlier file, Urdu, Persian and Albanian in one, Scots, Interlingua, Interslavic, Romani, Zeelandic, Extremaduran,
    // Friulian and Low German in several, on held-out 31's topics): its first run, on the unchanged detector (main
    // b867aa6), 71 of 128 und; Cantonese and Zeelandic 0 of 8, Hawaii Creole English, Interlingua and Kolsch 1,
    // Interslavic 3, Mauritian Creole 4, Friulian 5; Persian, Urdu, Albanian and Low German 8. Then (round 31, from
    // general knowledge of Cantonese writing) CantoneseCharacters: two distinct characters of Cantonese's own grammatical
    // words make a Chinese answer und: Cantonese 0 -> 5 of 8 (its writer wrote those sentences: not a fair check; the
    // other three write one such character each). No Chinese sentence of any set moved.
    // Out of set 19 (session 50, round 32; Seychellois and Guadeloupean Creole, Norman, Karelian, Meankieli, North and
    // Saterland Frisian in no earlier file, Plautdietsch, Hawaii Creole English, Kolsch, Mauritian Creole and Cantonese
    // in one, Scots, Interlingua, Interslavic and Zeelandic in several, on held-out 32's topics): its first run, on the
    // unchanged detector (main 56f02b0), 67 of 128 und; Meankieli and Hawaii Creole English 0 of 8 (Finnish 0.99-1.00;
    // English 0.97-1.00), Karelian 1 (Finnish), Kolsch 2 (German), Interslavic and Zeelandic 3 (Czech, Slovenian; Dutch),
    // Frisian, Norman and Scots 4; Cantonese 7 of 8 (another writer's sentences: round 31's character rule, a fair check),
    // Seychellois and Guadeloupean Creole 8 of 8, Mauritian Creole 6.
    // Then (round 32, from general knowledge of the grammars) FunctionWordDecoys lists for Hawaii Creole English
    // (against English: wen, da, dat, kine, bumbai, pau, bettah, ...), Meankieli and Karelian (against Finnish and
    // Estonian: mie, sie, hään, meän; da, konzu, meijän, buabo, ...) and more everyday Scots words (fower, ilka, gairden,
    // schuil, snaw, ower, toon, yin, wir, hae, ...): out of set 18 Hawaii Creole English 1 -> 6 of 8 and out of set 12-16
    // Scots 4 -> 7, 3 -> 4, 3 -> 4, 6 -> 7, 5 -> 7 (other engineers' sentences, not read by this round's writer: the
    // fair check); out of set 19 (same writer as the lists: not a fair check) Hawaii Creole English 0 -> 6, Scots 4 ->
    // 6, Karelian 1 -> 3, Meankieli 0 -> 1 (its sentences mostly write one listed word; two are needed). No held-out,
    // tuning or UDHR line of English, Finnish or Estonian writes a listed word; held-out 1-32 unchanged.
    // Then SpellingDecoys reads Zeelandic's dropped h, written as an apostrophe at a word's start ('ier, 'eit; not
    // Dutch's 'em, 'er, 'ie, 'es), with its ae: out of set 16 Zeelandic 3 -> 4 (another writer's: fair), out of set 19
    // 3 -> 4 (not fair); held-out 1-32 unchanged.
    // And a Kolsch list against German (ming, dinge, hück, Pänz, jitt, kütt, ävver, üch, noh, jot, dä, ene): out of set 19
    // Kolsch 2 -> 5 (not fair); out of set 18's Kolsch, another writer's, stays 1 of 8 (its sentences write at most one).
    // Out of set 20 (session 51, round 33; Elfdalian, Gronings, Swabian, Reunion Creole, Pangasinan, Toki Pona and Xhosa
    // in no earlier file, Belarusian and Silesian in one or two, Asturian, Extremaduran, Mirandese, Occitan, Scots,
    // Interlingua and Interslavic in several, on held-out 33's topics): its first run, on the unchanged detector (main
    // a783f0f), 78 of 128 und; Interlingua 0 of 8 (Italian, Spanish, Galician, Catalan at 0.51-1.00), Interslavic 1
    // (Czech, Slovenian, Bosnian), Elfdalian and Swabian 2 (Norwegian, Swedish, Danish; German), Mirandese 3 (Galician,
    // Portuguese, Spanish, Catalan), Scots 4 (English 0.94-1.00), Gronings and Reunion Creole 5; Belarusian, Occitan, Toki
    // Pona and Xhosa 8 of 8.
    // Then (round 33, from general knowledge of Interlingua; no Spanish, Galician, Portuguese, Catalan or Italian line of the
    // tuning corpus, held-out sets or UDHR writes one) more Interlingua words in FunctionWordDecoys (solmente, jam,
    // septimana, matino, vespere, omne, soror, patre, matre, filio, schola, travalio, detra, ...): Interlingua on other
    // writers' sets, the fair check, out of set 12 4 -> 5, 13 3 -> 4, 15 4 -> 6, 16 and 18 1 -> 2; out of set 20 (same
    // writer) 0 -> 1. No held-out sentence moved.
    // Out of set 21 (session 52, round 34; Swahili, Zulu, Welsh, Breton, Afrikaans, West Frisian, Luxembourgish,
    // Corsican, Sicilian, Ladino, Aragonese, Asturian, Occitan, Interlingua, Scots and Belarusian, on held-out 34's
    // topics): its first run, on the unchanged detector (main 60904f8), 115 of 128 und; Interlingua 4 (Portuguese,
    // Italian, Spanish), Scots 5 (English 1.00), Asturian and Ladino 6 (Spanish), Aragonese and Luxembourgish 7.
    // Out of set 22 (session 53, round 35; Afrikaans, Aragonese, Asturian, Belarusian, Corsican, Welsh, Esperanto, West
    // Frisian, Scottish Gaelic, Interlingua, Latin, Luxembourgish, Occitan, Scots, Sicilian and Swahili, on held-out 35's
    // topics, the weather and the garden): its first run, on the unchanged detector (main be22c23), 122 of 128 und;
    // Interlingua 5 (Galician, Italian twice), Afrikaans 7 (Dutch 0.87), Asturian 7 (Spanish 0.79), Sicilian 7 (Italian
    // 0.99); the twelve others 8 of 8.
    private static readonly Dictionary<string, Dictionary<string, int>> OutOfSetFloors = new(StringComparer.Ordinal)
    {
        ["out-of-set-1.txt"] = new(StringComparer.Ordinal)
        {
            ["sq"] = 8, ["az"] = 8, ["cy"] = 8, ["yo"] = 8, ["ne"] = 8, ["jv"] = 6, ["ceb"] = 8, ["lb"] = 8, ["fo"] = 7, ["fy"] = 8,
            ["oc"] = 8, ["ast"] = 4, ["gd"] = 8, ["ht"] = 8, ["ku"] = 8, ["su"] = 8, ["br"] = 8, ["co"] = 8, ["sw"] = 8, ["eo"] = 7,
        },
        ["out-of-set-2.txt"] = new(StringComparer.Ordinal) { ["jv"] = 7, ["su"] = 7 },
        ["out-of-set-3.txt"] = new(StringComparer.Ordinal)
        {
            ["ast"] = 4, ["oc"] = 8, ["co"] = 7, ["br"] = 8, ["eo"] = 8, ["kok"] = 8, ["sa"] = 7, ["mai"] = 8, ["bho"] = 6,
        },
        ["out-of-set-4.txt"] = new(StringComparer.Ordinal)
        {
            ["ast"] = 6, ["co"] = 8, ["jv"] = 7, ["su"] = 8, ["bho"] = 6, ["sa"] = 8, ["eo"] = 8, ["oc"] = 7, ["la"] = 8, ["af"] = 7, ["mk"] = 8, ["ceb"] = 8, ["lb"] = 8, ["ne"] = 8,
        },
        ["out-of-set-5.txt"] = new(StringComparer.Ordinal)
        {
            ["ast"] = 7, ["co"] = 8, ["eo"] = 8, ["jv"] = 7, ["su"] = 7, ["oc"] = 7, ["an"] = 6, ["vec"] = 7, ["nds"] = 7, ["fy"] = 8,
            ["wa"] = 8, ["ceb"] = 8, ["ilo"] = 8, ["min"] = 7, ["ace"] = 8, ["ban"] = 7, ["mai"] = 8, ["awa"] = 7, ["kok"] = 8,
        },
        ["out-of-set-6.txt"] = new(StringComparer.Ordinal)
        {
            ["ast"] = 8, ["awa"] = 7, ["bho"] = 7, ["bjn"] = 6, ["co"] = 8, ["fur"] = 7, ["hsb"] = 8, ["jv"] = 8, ["lb"] = 8, ["li"] = 6,
            ["mk"] = 8, ["ne"] = 8, ["oc"] = 6, ["rm"] = 7, ["rue"] = 6, ["scn"] = 8, ["su"] = 8, ["szl"] = 7, ["war"] = 6,
        },
        ["out-of-set-7.txt"] = new(StringComparer.Ordinal)
        {
            ["bcl"] = 7, ["be"] = 8, ["bew"] = 6, ["cbk"] = 4, ["crh"] = 8, ["csb"] = 8, ["gsw"] = 5, ["hil"] = 7, ["iba"] = 6, ["lad"] = 7,
            ["ltg"] = 4, ["mwr"] = 8, ["nap"] = 7, ["pap"] = 8, ["rup"] = 8, ["sc"] = 6, ["sco"] = 6, ["tpi"] = 8, ["vro"] = 6,
        },
        ["out-of-set-8.txt"] = new(StringComparer.Ordinal)
        {
            ["an"] = 7, ["bjn"] = 8, ["cbk"] = 5, ["fur"] = 6, ["gsw"] = 8, ["lad"] = 7, ["lij"] = 5, ["lmo"] = 6, ["ltg"] = 7, ["mwl"] = 2,
            ["nap"] = 3, ["oc"] = 7, ["pam"] = 8, ["pms"] = 8, ["rm"] = 7, ["scn"] = 7, ["sgs"] = 5, ["su"] = 8, ["vro"] = 6,
        },
        ["out-of-set-9.txt"] = new(StringComparer.Ordinal)
        {
            ["an"] = 8, ["bjn"] = 6, ["cbk"] = 5, ["ext"] = 6, ["fur"] = 6, ["gsw"] = 6, ["lad"] = 8, ["li"] = 7, ["ltg"] = 2, ["mad"] = 8,
            ["mwl"] = 2, ["nap"] = 6, ["oc"] = 7, ["pcd"] = 8, ["rm"] = 6, ["rue"] = 4, ["su"] = 8, ["vls"] = 6, ["vro"] = 5, ["war"] = 6,
        },
        ["out-of-set-10.txt"] = new(StringComparer.Ordinal)
        {
            ["an"] = 5, ["bjn"] = 6, ["cbk"] = 2, ["ext"] = 5, ["fur"] = 5, ["gsw"] = 4, ["lad"] = 5, ["li"] = 6, ["lij"] = 6, ["ltg"] = 8,
            ["mwl"] = 3, ["nap"] = 7, ["oc"] = 6, ["pcd"] = 7, ["rm"] = 3, ["rue"] = 4, ["scn"] = 7, ["su"] = 6, ["vro"] = 3, ["war"] = 6,
        },
        ["out-of-set-11.txt"] = new(StringComparer.Ordinal)
        {
            ["an"] = 6, ["bjn"] = 4, ["cbk"] = 4, ["ext"] = 4, ["fur"] = 7, ["gsw"] = 7, ["lad"] = 6, ["li"] = 3, ["lij"] = 5, ["ltg"] = 4,
            ["mwl"] = 4, ["nap"] = 6, ["oc"] = 7, ["rm"] = 6, ["rue"] = 5, ["sc"] = 6, ["sco"] = 5, ["sgs"] = 6, ["vro"] = 6, ["war"] = 7,
        },
        ["out-of-set-12.txt"] = new(StringComparer.Ordinal)
        {
            ["ba"] = 8, ["bar"] = 5, ["ckb"] = 8, ["dsb"] = 8, ["ext"] = 6, ["frp"] = 5, ["gag"] = 6, ["gv"] = 8, ["ia"] = 5, ["kw"] = 8,
            ["li"] = 4, ["lld"] = 3, ["mwl"] = 3, ["rw"] = 8, ["sco"] = 7, ["se"] = 3, ["sm"] = 7, ["tk"] = 7, ["ug"] = 8, ["wo"] = 8,
        },
        ["out-of-set-13.txt"] = new(StringComparer.Ordinal)
        {
            ["bi"] = 7, ["cv"] = 8, ["ext"] = 6, ["fax"] = 4, ["gag"] = 8, ["gn"] = 7, ["haw"] = 7, ["ia"] = 4, ["ile"] = 4, ["jam"] = 7,
            ["kea"] = 5, ["kri"] = 8, ["ky"] = 8, ["li"] = 7, ["mwl"] = 5, ["pdc"] = 7, ["sco"] = 4, ["srn"] = 8, ["to"] = 5, ["tt"] = 8,
        },
        ["out-of-set-14.txt"] = new(StringComparer.Ordinal)
        {
            ["an"] = 7, ["as"] = 8, ["ast"] = 6, ["be"] = 8, ["ext"] = 5, ["ia"] = 6, ["io"] = 6, ["isv"] = 3, ["lb"] = 8, ["lfn"] = 2,
            ["nds"] = 7, ["pap"] = 6, ["rom"] = 5, ["sco"] = 4, ["vec"] = 5, ["zea"] = 3,
        },
        ["out-of-set-15.txt"] = new(StringComparer.Ordinal)
        {
            ["an"] = 6, ["ast"] = 6, ["co"] = 8, ["eo"] = 8, ["ext"] = 7, ["fy"] = 8, ["ia"] = 6, ["io"] = 8, ["isv"] = 7, ["lb"] = 8,
            ["lfn"] = 5, ["oc"] = 7, ["rom"] = 7, ["sco"] = 7, ["scn"] = 7, ["zea"] = 5,
        },
        ["out-of-set-16.txt"] = new(StringComparer.Ordinal)
        {
            ["an"] = 5, ["csb"] = 7, ["ext"] = 6, ["fur"] = 3, ["hsb"] = 8, ["ia"] = 2, ["isv"] = 5, ["lad"] = 7, ["lfn"] = 5, ["li"] = 4,
            ["nds"] = 7, ["pap"] = 5, ["rom"] = 4, ["sco"] = 7, ["vec"] = 5, ["zea"] = 4,
        },
        ["out-of-set-17.txt"] = new(StringComparer.Ordinal)
        {
            ["af"] = 6, ["az"] = 8, ["crh"] = 8, ["fo"] = 8, ["gd"] = 8, ["kk"] = 8, ["la"] = 8, ["mg"] = 7, ["mi"] = 7, ["pcm"] = 4,
            ["pdt"] = 3, ["szl"] = 6, ["tg"] = 7, ["tpi"] = 8, ["uz"] = 8, ["wa"] = 8,
        },
        ["out-of-set-18.txt"] = new(StringComparer.Ordinal)
        {
            ["egl"] = 6, ["ext"] = 6, ["fa"] = 8, ["fur"] = 5, ["hwc"] = 6, ["ia"] = 2, ["isv"] = 4, ["ksh"] = 1, ["mfe"] = 4, ["nds"] = 8,
            ["rom"] = 6, ["sco"] = 6, ["sq"] = 8, ["ur"] = 8, ["yue"] = 5, ["zea"] = 0,
        },
        ["out-of-set-19.txt"] = new(StringComparer.Ordinal)
        {
            ["crs"] = 8, ["fit"] = 1, ["frr"] = 4, ["gcf"] = 8, ["hwc"] = 6, ["ia"] = 5, ["isv"] = 5, ["krl"] = 3, ["ksh"] = 5, ["mfe"] = 6,
            ["nrf"] = 4, ["pdt"] = 6, ["sco"] = 6, ["stq"] = 6, ["yue"] = 7, ["zea"] = 4,
        },
        ["out-of-set-20.txt"] = new(StringComparer.Ordinal)
        {
            ["ast"] = 6, ["be"] = 8, ["ext"] = 6, ["gos"] = 5, ["ia"] = 1, ["isv"] = 1, ["mwl"] = 3, ["oc"] = 8, ["ovd"] = 2, ["pag"] = 6,
            ["rcf"] = 5, ["sco"] = 4, ["swg"] = 2, ["szl"] = 6, ["tok"] = 8, ["xh"] = 8,
        },
        ["out-of-set-21.txt"] = new(StringComparer.Ordinal)
        {
            ["af"] = 8, ["an"] = 7, ["ast"] = 6, ["be"] = 8, ["br"] = 8, ["co"] = 8, ["cy"] = 8, ["fy"] = 8, ["ia"] = 4, ["lad"] = 6,
            ["lb"] = 7, ["oc"] = 8, ["sco"] = 5, ["scn"] = 8, ["sw"] = 8, ["zu"] = 8,
        },
        ["out-of-set-22.txt"] = new(StringComparer.Ordinal)
        {
            ["af"] = 7, ["an"] = 8, ["ast"] = 7, ["be"] = 8, ["co"] = 8, ["cy"] = 8, ["eo"] = 8, ["fy"] = 8, ["gd"] = 8, ["ia"] = 5,
            ["la"] = 8, ["lb"] = 8, ["oc"] = 8, ["sco"] = 8, ["scn"] = 7, ["sw"] = 8,
        },
        // Round 37's first run (unchanged detector): Interslavic 0 of 8 (Czech five times at 0.51-0.96, Polish, Slovenian,
        // Croatian), Interlingua 5 (Italian, Catalan, Spanish), Asturian 6 (Spanish twice); the same after the round.
        ["out-of-set-23.txt"] = new(StringComparer.Ordinal)
        {
            ["ast"] = 6, ["eo"] = 8, ["ia"] = 5, ["isv"] = 2, ["lb"] = 8, ["oc"] = 8,
        },
        // Round 38's first run (unchanged detector): Interslavic 0 of 8 again (Slovenian twice at 0.87-0.99, Czech twice,
        // Croatian twice, Slovak, Bosnian), Interlingua 5 (Italian twice, Catalan), Novial 6 (Catalan, Spanish), Belarusian
        // in Latin letters 7 (Polish 0.69), Fijian 7 (Serbian 0.70), Shona 8. Round 38's Interslavic and Polish
        // spellings (SpellingDecoys; from the alphabets and Interslavic's declension) raised Interslavic to 3 and
        // Belarusian to 8 here, and Interslavic on out of set 15 (4 -> 7), 16 (4 -> 5), 18 (3 -> 4), 19 (3 -> 5) and 23
        // (0 -> 2), Upper Sorbian on out of set 6 (7 -> 8); no out-of-set answer lost.
        ["out-of-set-24.txt"] = new(StringComparer.Ordinal)
        {
            ["be-Latn"] = 8, ["fj"] = 7, ["ia"] = 5, ["isv"] = 3, ["nov"] = 6, ["sn"] = 8,
        },
    };

    [Theory]
    [InlineData("out-of-set-1.txt")]
    [InlineData("out-of-set-2.txt")]
    [InlineData("out-of-set-3.txt")]
    [InlineData("out-of-set-4.txt")]
    [InlineData("out-of-set-5.txt")]
    [InlineData("out-of-set-6.txt")]
    [InlineData("out-of-set-7.txt")]
    [InlineData("out-of-set-8.txt")]
    [InlineData("out-of-set-9.txt")]
    [InlineData("out-of-set-10.txt")]
    [InlineData("out-of-set-11.txt")]
    [InlineData("out-of-set-12.txt")]
    [InlineData("out-of-set-13.txt")]
    [InlineData("out-of-set-14.txt")]
    [InlineData("out-of-set-15.txt")]
    [InlineData("out-of-set-16.txt")]
    [InlineData("out-of-set-17.txt")]
    [InlineData("out-of-set-18.txt")]
    [InlineData("out-of-set-19.txt")]
    [InlineData("out-of-set-20.txt")]
    [InlineData("out-of-set-21.txt")]
    [InlineData("out-of-set-22.txt")]
    [InlineData("out-of-set-23.txt")]
    [InlineData("out-of-set-24.txt")]
    public void Detect_LanguagesOutsideTheSet_UndeterminedAtLeastAsOftenAsRecorded(string file)
    {
        var sets = TestData.HeldOut(file);
        var undetermined = sets.ToDictionary(set => set.Key, set => set.Value.Count(s => Detector.Detect(s).Language == LanguageDetection.Undetermined));
        var floors = OutOfSetFloors[file];

        Assert.Equal(floors.Keys.Order(), sets.Keys.Order());
        var below = floors.Where(f => undetermined[f.Key] < f.Value).Select(f => $"{f.Key}: {undetermined[f.Key]} und, floor {f.Value}").ToList();
        Assert.True(below.Count == 0, string.Join("; ", below));
    }

    // Sanskrit and Bhojpuri have no profile (decoy profiles for them took Hindi and Marathi sentences in session 33), so
    // the profiles read them as Hindi or Marathi; their grammar tells them apart (DevanagariDecoys, session 35): Sanskrit
    // ends a quarter or more of its words in a visarga or virama, Bhojpuri writes its own copula, verb forms and pronouns.
    // Written for this test, not taken from an evaluation set.
    [Theory]
    [InlineData("sa", "मम भ्राता ह्यः विद्यालयात् गृहम् आगतवान्।")]
    [InlineData("sa", "वयं श्वः रेलयानेन नगरं गमिष्यामः, तत्र मित्राणि मिलिष्यामः।")]
    [InlineData("bho", "रउआ कहाँ जात बानी? हमार घर एही गली में बा।")]
    [InlineData("bho", "हम काल्ह बजार गइल रहीं, बाकिर दोकान बंद रहे।")]
    public void Detect_SanskritOrBhojpuriReadAsHindi_UndeterminedWithItAsRunnerUp(string language, string text)
    {
        var withoutRule = Detector.WithDevanagariDecoys(false).Detect(text);
        var detection = Detector.Detect(text);

        Assert.Contains(withoutRule.Language, new[] { "hi", "mr" });
        Assert.Equal(LanguageDetection.Undetermined, detection.Language);
        Assert.Equal(language, detection.RunnerUp);
        Assert.Equal(LanguageDetection.ByHeuristic, detection.Method);
    }

    // Awadhi, like Bhojpuri, by its grammar (session 37): copula, past, future and present forms, pronouns and
    // postpositions Hindi and Marathi do not write. Written for this test, not taken from an evaluation set.
    [Theory]
    [InlineData("तुम कहाँ जात हौ? हमार घर इहाँ से नियरे अहै।")]
    [InlineData("हम पंचे अगले बरिस दिल्ली जाब।")]
    public void Detect_AwadhiReadAsHindi_UndeterminedWithItAsRunnerUp(string text)
    {
        var withoutRule = Detector.WithDevanagariDecoys(false).Detect(text);
        var detection = Detector.Detect(text);

        Assert.Equal("hi", withoutRule.Language);
        Assert.Equal(LanguageDetection.Undetermined, detection.Language);
        Assert.Equal("awa", detection.RunnerUp);
        Assert.Equal(LanguageDetection.ByHeuristic, detection.Method);
    }

    // Marwari, like Awadhi, by its grammar (round 20): its negation, pronouns, postpositions and the future in -सी.
    // Written for this test, not taken from an evaluation set.
    [Theory]
    [InlineData("म्हारो भाई काल जयपुर जासी, थे भी चालसो कांई?")]
    [InlineData("म्हैं आज घरै कोनी रैसूं, म्हारी मां बीमार है।")]
    public void Detect_MarwariReadAsHindi_UndeterminedWithItAsRunnerUp(string text)
    {
        var withoutRule = Detector.WithDevanagariDecoys(false).Detect(text);
        var detection = Detector.Detect(text);

        Assert.Contains(withoutRule.Language, new[] { "hi", "mr" });
        Assert.Equal(LanguageDetection.Undetermined, detection.Language);
        Assert.Equal("mwr", detection.RunnerUp);
    }

    // Short English story openings are English: "Once upon a time" came back Galician at 0.75 in usage records (round
    // 20): Lingua's low-accuracy share for English was scattered over unrelated languages, and the Iberian group's pooled
    // share with Galician's article "a" took it; "A long time ago" was und (Tsonga ahead). English has contrast words
    // and more tuning sentences since. Written for this test, not taken from an evaluation set.
    [Theory]
    [InlineData("Once upon a time")]
    [InlineData("Once upon a time...")]
    [InlineData("Once upon a time there was a princess")]
    [InlineData("Once upon a time, in a land far away")]
    [InlineData("There once was a dragon")]
    [InlineData("A long time ago")]
    [InlineData("Long ago, in a faraway land")]
    public void Detect_ShortEnglishStoryOpening_English(string text)
    {
        Assert.Equal("en", Detector.Detect(text).Language);
    }

    // The rule must never fire on real Hindi or Marathi: the formal UDHR prose (Sanskritised Hindi, the case that kept a
    // Sanskrit profile out) and every Hindi and Marathi sentence of the tuning corpus and the held-out sets.
    [Theory]
    [InlineData("hi")]
    [InlineData("mr")]
    public void DevanagariDecoys_HindiAndMarathiText_NeverTaken(string language)
    {
        var tuning = LanguageProfiles.LoadCorpus()[language];
        var heldOut = TestData.HeldOutFiles.SelectMany(file => TestData.HeldOut(file).GetValueOrDefault(language) ?? []);
        var texts = TestData.Samples(language).Concat(tuning).Concat(heldOut).ToList();

        var taken = texts.Where(t => DevanagariDecoys.Evaluate(t) is not null).ToList();
        Assert.True(texts.Count > 150, $"{texts.Count} texts");
        Assert.True(taken.Count == 0, string.Join(" | ", taken));
    }

    [Theory]
    [InlineData("hi", "अतः हम कल सुबह बाज़ार जाएँगे और ताज़ी सब्ज़ियाँ खरीदेंगे।")]
    [InlineData("hi", "पश्चात् उन्होंने बताया कि ट्रेन दो घंटे देर से आएगी।")]
    [InlineData("mr", "आम्ही उद्या सकाळी बाजारात जाऊन भाजी आणणार आहोत, अर्थात् पाऊस नसेल तर.")]
    public void Detect_HindiOrMarathiWithASanskritEnding_StaysHindiOrMarathi(string language, string text)
    {
        Assert.Equal(language, Detector.Detect(text).Language);
    }

    [Theory]
    [InlineData("ne", "भोलि बिहान म बजार गएर रोटी र दूध किन्नेछु।")]
    [InlineData("jv", "Sesuk esuk aku arep menyang pasar tuku roti lan susu.")]
    [InlineData("ceb", "Ugma sa buntag moadto ko sa merkado aron mopalit og pan ug gatas.")]
    [InlineData("lb", "Muer de Moie ginn ech an d'Geschäft fir Brout a Mëllech ze kafen.")]
    [InlineData("fo", "Í morgin fari eg í handilin at keypa breyð og mjólk.")]
    [InlineData("gd", "Tha mi a' dol don bhùth a-màireach airson aran is bainne.")]
    [InlineData("az", "Sabah bazara gedib çörək və süd alacağam.")]
    [InlineData("su", "Isukan isuk-isuk abdi rék ka pasar meuli roti jeung susu.")]
    public void Detect_UnconfiguredNeighbour_UndeterminedWithItAsRunnerUp(string language, string text)
    {
        // Each came back a confident neighbour before session 33 (Hindi, Indonesian, Filipino, German, Icelandic, Irish,
        // Turkish, 0.85-1.00); the development sentences (Data/out-of-set-development.txt).
        var detection = Detector.Detect(text);

        Assert.Equal(LanguageDetection.Undetermined, detection.Language);
        Assert.Equal(language, detection.RunnerUp);
    }

    [Theory]
    [InlineData("mk")]
    [InlineData("be")]
    public void Detect_DecoyLanguages_Undetermined(string language)
    {
        var detections = TestData.HeldOut("decoys.txt")[language].Select(s => (Text: s, Detection: Detector.Detect(s))).ToList();

        var wrong = detections.Where(x => x.Detection.Language != LanguageDetection.Undetermined || x.Detection.RunnerUp != language).ToList();
        Assert.True(wrong.Count == 0, string.Join("; ", wrong.Select(x => $"{x.Text} -> {x.Detection.Language} {x.Detection.Confidence:F2} (runner-up {x.Detection.RunnerUp})")));
    }

    [Theory]
    [InlineData("tr", "Yarın sabah erkenden köye gidip annemi ziyaret edeceğiz.")]
    [InlineData("no", "Vi skal dra på hytta i helgen og gå lange turer i skogen.")]
    [InlineData("ca", "Demà al matí anirem al mercat a comprar fruita i verdura.")]
    public void Detect_CoveredLanguageLeftOutOfTheSet_Undetermined(string language, string text)
    {
        var others = LanguageCatalog.Covered.Where(l => l != language).ToList();
        var detector = new LanguageDetector(new LanguageDetectorOptions { Languages = others });

        Assert.Equal(language, Detector.Detect(text).Language);
        Assert.Equal(LanguageDetection.Undetermined, detector.Detect(text).Language);
    }

    [Theory]
    [InlineData("bg", "Всички хора се раждат свободни и равни по достойнство и права.")]
    [InlineData("ar", "اللغة العربية هي اللغة الرسمية في كثير من الدول العربية")]
    [InlineData("en", "The weather is lovely today, let us go for a walk in the park.")]
    [InlineData("de", "Das Wetter ist heute schön, lass uns im Park spazieren gehen.")]
    [InlineData("fr", "Il fait beau aujourd'hui, allons nous promener dans le parc.")]
    [InlineData("pl", "Każdy człowiek ma prawo do życia, wolności i bezpieczeństwa swej osoby.")]
    [InlineData("vi", "Hôm nay trời đẹp, chúng ta hãy đi dạo trong công viên.")]
    [InlineData("fil", "Maganda ang panahon ngayon, mamasyal tayo sa parke mamaya.")]
    public void Detect_SharedScript_DecidedByStatistics(string expected, string text)
    {
        var detection = Detector.Detect(text);

        Assert.Equal(expected, detection.Language);
        Assert.Contains(detection.Method, new[] { LanguageDetection.ByLingua, LanguageDetection.ByProfile });
        Assert.InRange(detection.Confidence, Detector.MinimumConfidence, 1.0);
        Assert.NotEqual(expected, detection.RunnerUp);
        Assert.InRange(detection.RunnerUpConfidence, 0, detection.Confidence);
    }

    [Theory]
    [InlineData("Il-bnedmin kollha jitwieldu ħielsa u ugwali fid-dinjità u d-drittijiet.")]
    [InlineData("Il-gvern ħabbar li l-iskejjel se jerġgħu jiftħu fix-xahar li ġej.")]
    [InlineData("Kull persuna għandha d-dritt għall-edukazzjoni mingħajr ħlas.")]
    public void Detect_Maltese_MalteseByHeuristic(string text)
    {
        var detection = Detector.Detect(text);

        Assert.Equal("mt", detection.Language);
        Assert.Equal(LanguageDetection.ByHeuristic, detection.Method);
    }

    [Fact]
    public void Detect_MalteseSentences_NeverGermanOrItalian()
    {
        var answers = TestData.Samples("mt").Select(s => Detector.Detect(s).Language).ToList();

        Assert.DoesNotContain("de", answers);
        Assert.DoesNotContain("it", answers);
    }

    [Fact]
    public void Detect_PolishWithZDot_PolishNotMaltese()
    {
        Assert.Equal("pl", Detector.Detect("Żadna osoba nie może być poddana torturom ani okrutnemu traktowaniu.").Language);
    }

    [Theory]
    [InlineData("hi", "मुझे आज बाज़ार जाना है और कुछ सब्ज़ियाँ खरीदनी हैं।")]
    [InlineData("mr", "मला आज बाजारात जायचे आहे आणि भाज्या विकत घ्यायच्या आहेत.")]
    public void Detect_HindiMarathi_Separated(string expected, string text)
    {
        Assert.Equal(expected, Detector.Detect(text).Language);
    }

    [Fact]
    public void Detect_MixedScripts_DominantScriptDecides()
    {
        var detection = Detector.Detect("कृपया इस API अनुरोध का उत्तर हिंदी में दीजिए, धन्यवाद मित्र");

        Assert.Equal("hi", detection.Language);
        Assert.True(detection.Confidence < 1.0, "the Latin letters lower the confidence");
    }

    [Fact]
    public void Detect_TextLongerThanLimit_DecidedFromItsStart()
    {
        var text = string.Concat(Enumerable.Repeat("The quick brown fox jumps over the lazy dog. ", 200));

        Assert.Equal("en", Detector.Detect(text).Language);
    }

    [Fact]
    public void Detect_ManyThreadsAtOnce_SameAnswersAsOneThread()
    {
        var samples = new[] { "en", "de", "hi", "mr", "th", "ja", "mt", "id", "ms", "bg" }
            .SelectMany(l => TestData.Samples(l).Take(8))
            .ToArray();
        var sequential = samples.Select(s => Detector.Detect(s)).ToArray();

        var parallel = new LanguageDetection[samples.Length];
        Parallel.For(0, samples.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => parallel[i] = Detector.Detect(samples[i]));

        Assert.Equal(sequential, parallel);
    }

    [Fact]
    public void Languages_Default_IsTheCoveredSet()
    {
        Assert.Equal(LanguageCatalog.Covered, Detector.Languages);
        Assert.Equal(57, Detector.Languages.Count);
        Assert.Subset(Detector.Languages.ToHashSet(), new HashSet<string> { "no", "is", "ca", "gl", "eu", "bs", "sr", "uk", "ru", "tr", "tet", "or" });
        Assert.False(Detector.HighAccuracy);
        // Languages Lingua lacks are decided without it.
        Assert.DoesNotContain("mt", Detector.LinguaLanguages);
        Assert.DoesNotContain("km", Detector.LinguaLanguages);
        Assert.DoesNotContain("gl", Detector.LinguaLanguages);
        Assert.DoesNotContain("tet", Detector.LinguaLanguages);
    }

    [Fact]
    public void Asean_HasTetumSinceTimorLesteJoined()
    {
        Assert.Contains("tet", LanguageCatalog.Asean);
        Assert.All(LanguageCatalog.Asean, code => Assert.Contains(code, LanguageCatalog.Covered));
    }

    [Fact]
    public void Detect_EveryAnswer_CarriesScriptAndConfidence()
    {
        var thai = Detector.Detect("ภาษาไทยเป็นภาษาราชการของประเทศไทย");
        var french = Detector.Detect("Nous partons demain matin pour la montagne avec les enfants.");
        var nothing = Detector.Detect("12345");

        Assert.Equal(("Thai", "th"), (thai.Script, thai.Language));
        Assert.Equal(("Latn", "fr"), (french.Script, french.Language));
        Assert.Equal("Zyyy", nothing.Script);
        Assert.True(french.Confidence > french.RunnerUpConfidence);
    }

    [Fact]
    public void Detect_ThresholdRaised_LowConfidenceAnswersBecomeUndetermined()
    {
        // Croatian and Bosnian write this sentence alike: a real answer, but not a certain one.
        const string text = "Danas idemo u grad na ručak.";
        var usual = Detector.Detect(text);
        Assert.True(usual.IsDetermined);
        Assert.InRange(usual.Confidence, Detector.MinimumConfidence, 0.99);

        var strict = new LanguageDetector(new LanguageDetectorOptions { MinimumConfidence = usual.Confidence + 0.01 });
        var detection = strict.Detect(text);

        Assert.Equal(LanguageDetection.Undetermined, detection.Language);
        Assert.Equal(usual.Language, detection.RunnerUp);
        Assert.Equal(usual.Confidence, detection.Confidence, 6);
    }

    [Fact]
    public void Constructor_RepeatedLanguage_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => new LanguageDetector(new LanguageDetectorOptions { Languages = ["fil", "en", "tl"] }));

        Assert.Contains("'tl'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_UnknownLanguage_Throws()
    {
        var ex = Assert.Throws<ArgumentException>(() => new LanguageDetector(new LanguageDetectorOptions { Languages = ["en", "xx"] }));

        Assert.Contains("'xx'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_LimitOutOfRange_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LanguageDetector(new LanguageDetectorOptions { Languages = ["th"], MinimumLetters = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LanguageDetector(new LanguageDetectorOptions { Languages = ["th"], MinimumMargin = 1.5 }));
    }

    [Fact]
    public void Constructor_OptionsChangedAfterwards_DetectorUnaffected()
    {
        var options = new LanguageDetectorOptions { Languages = ["th", "ko"] };
        var detector = new LanguageDetector(options);

        options.Languages.Clear();
        options.MinimumScriptLetters = 1000;

        Assert.Equal(["th", "ko"], detector.Languages);
        Assert.Equal("ko", detector.Detect("한국어는 아름답습니다").Language);
    }

    [Fact]
    public void Constructor_SubsetOfLanguages_LoadsOnlyTheirModelsAndReportsOnlyThem()
    {
        var detector = new LanguageDetector(new LanguageDetectorOptions { Languages = ["th", "bg", "tl"] });

        Assert.Equal(["th", "bg", "fil"], detector.Languages);
        // Bulgarian alone in Cyrillic gets the other Cyrillic languages as decoys; no Latin language but Tagalog's
        // own decoys are loaded, since Filipino is alone in Latin script.
        Assert.Contains("ru", detector.LinguaLanguages);
        Assert.DoesNotContain("th", detector.LinguaLanguages);
        Assert.Equal("th", detector.Detect("ภาษาไทยเป็นภาษาราชการ").Language);
        Assert.Equal("bg", detector.Detect("Всички хора се раждат свободни и равни по достойнство и права.").Language);
        Assert.Equal(LanguageDetection.Undetermined, detector.Detect("Все люди рождаются свободными и равными в своем достоинстве.").Language);
        Assert.Equal(LanguageDetection.Undetermined, detector.Detect("한국어는 아름답습니다").Language);
    }

    [Fact]
    public void Constructor_HighAccuracy_DetectsWithAllNgramModels()
    {
        // Devanagari: the only script whose Lingua group is small enough (Hindi, Marathi) to load in high-accuracy
        // mode within a test; every Latin language would take over 1 GB.
        var detector = new LanguageDetector(new LanguageDetectorOptions { Languages = ["hi", "mr"], HighAccuracy = true });

        Assert.True(detector.HighAccuracy);
        Assert.Equal("hi", detector.Detect("मुझे आज बाज़ार जाना है और कुछ सब्ज़ियाँ खरीदनी हैं।").Language);
    }

    // French read as Catalan or Spanish: the Iberian contrast words (la, un, que) and letters (à, è, ç) lifted a close
    // group's member over French, which writes them too (held-out 11: 6 of 8 French, und and ca). Sentences written for
    // this test in session 24's second round, in no held-out set; on the old detector five came back ca, one es.
    [Theory]
    [InlineData("Après la pluie, un escargot est sorti sur la terrasse.")]
    [InlineData("Un pêcheur a réparé la barque près de la digue.")]
    [InlineData("Ma sœur a perdu la clé de la cave.")]
    [InlineData("Il y a un orage sur la colline.")]
    [InlineData("On a vu un hérisson près de la haie.")]
    [InlineData("Un cerf-volant est resté coincé dans la branche.")]
    public void Detect_FrenchWithWordsCatalanAndSpanishWriteToo_French(string text)
    {
        Assert.Equal("fr", TestData.DefaultDetector.Detect(text).Language);
    }
}
