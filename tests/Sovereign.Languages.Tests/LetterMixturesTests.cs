namespace Sovereign.Languages.Tests;

/// <summary>Letters no covered alphabet writes together, and neighbours' function words: text in a language beside the
/// covered ones is und.</summary>
public sealed class LetterMixturesTests
{
    [Theory]
    [InlineData("Mój bratr je wčera přišoł domoj.", "wen")]     // Upper Sorbian: ł beside ř, č
    [InlineData("Мы были в горах, і там было зимно, єй.", "rue")] // ы beside є
    [InlineData("Jo mōm nowy kōmputer.", "szl")]                 // ō
    [InlineData("Przyjechał wczoraj wieczorem.", null)]           // Polish: ł, no háček
    [InlineData("Přijel včera večer.", null)]                     // Czech: háčeks, no ł
    [InlineData("Ми були в горах, і там було холодно.", null)]    // Ukrainian: і, no ы
    [InlineData("Мы были в горах, и там было холодно.", null)]    // Russian: ы, no ї or є
    [InlineData("Jô jem ùczëł sã dłudżi czas.", "csb")]            // Kashubian: ë, ù beside ł
    [InlineData("Mes vysi breinuojom iz ezera mola.", null)]      // y alone: no Latvian letter beside it
    [InlineData("Jis ryt važiuos į miestą.", null)]               // Lithuanian: y, ū, no Latvian letter
    [InlineData("Myusu sāta ir lela.", "ltg")]                    // Latgalian: y beside ā
    [InlineData("Men qaytıp keldim.", "crh")]                     // Crimean Tatar: q beside ı
    [InlineData("Kardeşim dün akşam geldi.", null)]               // Turkish: ş, ı, no q or ñ
    [InlineData("Mona brolis vakar parvažiava ėš mėista.", null)]  // Lithuanian-like: ė, no Latvian long vowel
    [InlineData("Mona brōlis vakar parvažiava ėš mėista.", "sgs")] // Samogitian: ė beside ō
    [InlineData("Täämbä om ilus ilm, lätsimiq mõtsa.", "vro")]      // Võro: õ beside a word-final q
    [InlineData("Täna on ilus ilm, läksime metsa.", null)]          // Estonian: õ, no final q
    [InlineData("Il-qalb tiegħi fit-triq.", null)]                  // Maltese: final q, no õ
    [InlineData("Bän bugün işä gitmeyecäm.", "gag")]                // Gagauz: ä beside ş
    [InlineData("Kızım erken yatêr.", "gag")]                      // Gagauz: ê beside ı
    [InlineData("Men şu gün işe gitmeýärin.", "tk")]                // Turkmen: ý, ä beside ş
    [InlineData("Bugün işe gitmeyeceğim, çünkü hastayım.", null)]  // Turkish: ı, ğ, ş, none of ä, ê, ň, ý, ž
    [InlineData("Măriţa şi-a pierdut ţigările.", null)]           // Romanian with cedillas: ţ beside ş, no ı or ğ
    [InlineData("Эпӗ ыран ялта пулатӑп.", "cv")]                   // Chuvash: ӗ, ӑ
    [InlineData("Беҙ иртәгә ауылға ҡайтабыҙ.", "ba")]              // Bashkir: ҙ, ҡ
    [InlineData("Mus leat máŋga girjji ruovttus.", "se")]           // Northern Sami: ŋ
    [InlineData("مەن ئەتە بازارغا بارىمەن.", "ug")]                 // Uyghur: ە
    [InlineData("بۇ كىتاب ناھايىتى ياخشى ئېكەن.", "ug")]             // Uyghur: ۇ, ې
    [InlineData("ذهبت إلى السوق أمس واشتريت خبزا.", null)]         // Arabic
    public void Evaluate_LettersOfTwoAlphabets_PointOutsideTheSet(string text, string? language)
    {
        Assert.Equal(language, LetterMixtures.Evaluate(LanguageProfiles.Normalize(text))?.Language);
    }

    // Written Cantonese (round 31): the characters of its own grammatical words, which Standard Written Chinese does not
    // write. Written for this test, not taken from an evaluation set: each was a confident Chinese before the rule.
    [Theory]
    [InlineData("佢哋今晚喺屋企食飯，唔出街喇。")]   // 佢, 哋, 喺
    [InlineData("呢啲嘢好貴，我冇錢買。")]           // 啲, 嘢, 冇
    [InlineData("你睇咗嗰套戲未呀？")]               // 睇, 咗, 嗰
    [InlineData("我攞咗把遮，你唔使擔心。")]         // 攞, 咗
    public void Detect_WrittenCantonese_UndeterminedWithCantoneseAsRunnerUp(string text)
    {
        var detector = TestData.DefaultDetector;

        Assert.Equal("zh", detector.WithLetterMixtures(false).Detect(text).Language);
        var detection = detector.Detect(text);
        Assert.Equal(LanguageDetection.Undetermined, detection.Language);
        Assert.Equal("yue", detection.RunnerUp);
        Assert.Equal(LanguageDetection.ByHeuristic, detection.Method);
    }

    // The rule must never take Chinese: no Chinese sentence of the held-out sets or the UDHR writes two of the characters,
    // and each is still Chinese. One such character alone (a quoted 冇) does not decide.
    [Fact]
    public void Detect_ChineseText_NeverTakenForCantonese()
    {
        var chinese = TestData.HeldOutFiles.SelectMany(f => TestData.HeldOut(f).GetValueOrDefault("zh") ?? []).Concat(TestData.Samples("zh")).ToList();
        Assert.True(chinese.Count > 100, $"{chinese.Count} Chinese sentences");
        var taken = chinese.Where(s => CantoneseCharacters.Count(s) >= CantoneseCharacters.Needed || TestData.DefaultDetector.Detect(s).RunnerUp == "yue").ToList();
        Assert.True(taken.Count == 0, string.Join(" | ", taken));
        Assert.Equal(1, CantoneseCharacters.Count("这个冇字在普通话里很少见。"));
        Assert.Equal("zh", TestData.DefaultDetector.Detect("这个冇字在普通话里很少见。").Language);
    }

    // Written for this test, not taken from an evaluation set: each was read as a covered neighbour before the rule.
    [Theory]
    [InlineData("Wčera smy z dźěćimi na wulět do hór jěli, to bě rjenje.")]
    [InlineData("Naša wowka je wčera tři kołače napjekła.")]
    [InlineData("Мы были вчера у бабкы, она нам дала їсти і пити.")]
    [InlineData("Mōj bracik poszoł do roboty, a jo ôstołech w chałpie.")]
    [InlineData("Bän bugün işä gitmeyecäm, çünkü hastayım.")]           // Gagauz, Turkish before the rule (round 26)
    [InlineData("Kızım okulda çok yorulêr, akşamnen erken yatêr.")]     // Gagauz, Turkish before
    [InlineData("Men şu gün işe gitmeýärin, sebäbi men kesel.")]        // Turkmen, German before
    [InlineData("Эпӗ ыран ялта пулатӑп.")]                              // Chuvash, Russian before
    public void Detect_MixtureReadAsACoveredNeighbour_Undetermined(string text)
    {
        var detector = TestData.DefaultDetector;

        Assert.Contains(detector.WithLetterMixtures(false).Detect(text).Language, LanguageCatalog.Covered);
        Assert.Equal(LanguageDetection.Undetermined, detector.Detect(text).Language);
        Assert.Equal(LanguageDetection.ByHeuristic, detector.Detect(text).Method);
    }

    // A neighbour's function words (Banjar, Waray, Asturian, Sundanese; round 21: Friulian, Sicilian, Kapampangan, and
    // Neapolitan by its elided articles; a word no covered language writes alone, Banjar ulun, Võro tiiä). Written for this test, not taken from an
    // evaluation set: each was read as a covered neighbour before the rule.
    [Theory]
    [InlineData("Ulun handak tulak ka pasar, pian umpat kah?", "bjn")]
    [InlineData("Karuyag ko umadto didto ha merkado ngan bumili hin isda.", "war")]
    [InlineData("El mio hermanu tien munchos llibros en casa.", "ast")]
    [InlineData("Kami geus makan di restoran, sareng kopi deui.", "su")]
    [InlineData("Ich höb dich gister neet gezien in de stad.", "li")]
    [InlineData("Chasch du mer hüt no es Brot bringe?", "gsw")]
    [InlineData("Whit are ye daein the nicht? A'm gaun hame.", "sco")]
    [InlineData("Mipela i laik go long taun bihain long kaikai.", "tpi")]
    [InlineData("Il gno amì al è simpri in ritart, ma vuê al è rivât prime di me.", "fur")]
    [InlineData("Nuatri semu stanchi e vulemu manciari quarchi cosa.", "scn")]
    [InlineData("Aggio purtato 'o pane e 'e pummarole a mammà.", "nap")]
    [InlineData("Ulun sudah makan tadi pagi di rumah.", "bjn")]   // one word no covered language writes
    [InlineData("Ma ei tiiä, kas ta tuleb homme.", "vro")]
    [InlineData("Ing kapatad ku, ali ya bisang mamangan ngeni.", "pam")]
    // Round 22: Extremaduran, Picard, West Flemish, Madurese.
    [InlineData("Nusotrus semus muchu cansaus y queremus comel algu.", "ext")]
    [InlineData("Ale a mis chés pommes dins l'panier pour minger à midi.", "pcd")]
    [InlineData("Gie moet morgen nie goan werken, 't is zondag.", "vls")]
    [InlineData("Engkok ta' bisa dhateng, polè ada rapat è kantor.", "mad")]
    [InlineData("Я ся барз тішу, же сьте пришли, лем мі шкода, же не надовго.", "rue")] // Rusyn in Cyrillic letters
    // Round 26: Interlingua, Jamaican Patois, Pennsylvania German, and more Scots and Mirandese words (each read as the
    // covered neighbour before the round's words).
    [InlineData("Il esseva un bon idea, ma nos non habeva le tempore.", "ia")]
    [InlineData("Illos veniva heri al casa de mi matre.", "ia")]
    [InlineData("Di pickney dem gone a school already.", "jam")]
    [InlineData("Wi cyaan go a di beach, di weather bad.", "jam")]
    [InlineData("Mir hen ebbes gekocht, un nau is es kalt.", "pdc")]
    [InlineData("Ich geh uff der Mark, mer hen ken Millich.", "pdc")]
    [InlineData("We couldnae get a taxi sae we walked hame.", "sco")]
    [InlineData("L rapaz stá na scola i antoce bai pa casa.", "mwl")]
    // Round 28: Interslavic, Romani, Lingua Franca Nova and Zeelandic (each read as a covered neighbour before).
    [InlineData("Moj brat ješče ne znaje, kogda prijde avtobus.", "isv")]
    [InlineData("Ona vsegda govori, čto nema vremeni za nas.", "isv")]
    [InlineData("Amaro čhavo džal adives ki škola.", "rom")]
    [InlineData("Me džav khere, odoleske kaj sem umorno.", "rom")]
    [InlineData("Mi fratelo va veni oji, ance con sua amis.", "lfn")]
    [InlineData("Me no pote veni denova, perce me labora.", "lfn")]
    [InlineData("Mien broer eit een nieuwe fiets gekocht.", "zea")]
    [InlineData("Vandaege blieve we thuus, 't regent te ard.", "zea")]
    // Round 30: Nigerian Pidgin (read as English before the round's list; main answered en for both).
    [InlineData("Wetin dey happen for market today? Abeg tell me.", "pcm")]
    [InlineData("Di pikin dey cry since morning, e no gree chop.", "pcm")]
    // Round 32: Hawaii Creole English (read as English), Meankieli and Karelian (read as Finnish) before the round's lists.
    [InlineData("Bumbai we go beach, da waves stay big today.", "hwc")]
    [InlineData("My sistah wen cook plenny food fo da party.", "hwc")]
    [InlineData("Mie lähen kauppaan ja sie jäät kotia.", "fit")]
    [InlineData("Meän poika oli tänäpänä koulussa.", "fit")]
    [InlineData("Konzu buabo tulou, myö juommo čuajuu da paistammo.", "krl")]
    [InlineData("Meijän pereh eläy kylän keskel da pidäy lehmii.", "krl")]
    [InlineData("Ming Pänz sin hück nit en dr Schull, die han Ferie.", "ksh")]
    // Round 33: Interlingua's everyday words beyond its function words (read as Italian or Spanish before).
    [InlineData("Mi soror va al schola omne matino.", "ia")]
    public void Detect_NeighboursFunctionWords_UndeterminedWithItAsRunnerUp(string text, string decoy)
    {
        var detector = TestData.DefaultDetector;

        Assert.Contains(detector.WithLetterMixtures(false).Detect(text).Language, LanguageCatalog.Covered);
        Assert.Equal(LanguageDetection.Undetermined, detector.Detect(text).Language);
        Assert.Equal(decoy, detector.Detect(text).RunnerUp);
    }

    // An operator who configures the neighbour gets it, not und.
    [Fact]
    public void Detect_NeighbourConfigured_ItsCode()
    {
        var detector = new LanguageDetector(new LanguageDetectorOptions { Languages = [.. LanguageCatalog.Covered, "ast"] });

        Assert.Equal("ast", detector.Detect("El mio hermanu tien munchos llibros en casa.").Language);
    }

    // The rule never fires on covered text: every covered sentence of the tuning corpus, the held-out and development
    // sets and the UDHR.
    [Fact]
    public void Evaluate_CoveredSentences_NeverAMixture()
    {
        var covered = LanguageCatalog.Covered.ToHashSet(StringComparer.Ordinal);
        var texts = LanguageProfiles.LoadCorpus().Where(kv => covered.Contains(kv.Key)).SelectMany(kv => kv.Value)
            .Concat(TestData.HeldOutFiles.SelectMany(f => TestData.HeldOut(f)).Where(kv => covered.Contains(kv.Key)).SelectMany(kv => kv.Value))
            .Concat(LanguageCatalog.Covered.SelectMany(TestData.Samples))
            .ToList();

        Assert.True(texts.Count > 10_000, $"{texts.Count} sentences");
        Assert.DoesNotContain(texts, t => LetterMixtures.Evaluate(LanguageProfiles.Normalize(t)) is not null);
    }

    // Nor the function-word rule on the languages it overturns.
    [Theory]
    [InlineData("ms")]
    [InlineData("id")]
    [InlineData("fil")]
    [InlineData("es")]
    [InlineData("gl")]
    [InlineData("pt")]
    [InlineData("ca")]
    [InlineData("it")]
    [InlineData("nl")]
    [InlineData("de")]
    [InlineData("en")]
    [InlineData("et")]
    [InlineData("fi")]
    [InlineData("ro")]
    [InlineData("sv")]
    [InlineData("no")]
    [InlineData("da")]
    [InlineData("tet")]
    [InlineData("fr")]
    [InlineData("uk")]
    [InlineData("ru")]
    [InlineData("hr")]
    [InlineData("bs")]
    [InlineData("sr")]
    [InlineData("sl")]
    [InlineData("cs")]
    [InlineData("sk")]
    [InlineData("pl")]
    public void FunctionWordDecoys_CoveredSentences_NeverTaken(string language)
    {
        var texts = LanguageProfiles.LoadCorpus()[language]
            .Concat(TestData.HeldOutFiles.SelectMany(f => TestData.HeldOut(f)).Where(kv => kv.Key == language).SelectMany(kv => kv.Value))
            .Concat(TestData.Samples(language))
            .ToList();

        Assert.True(texts.Count > 200, $"{texts.Count} sentences");
        Assert.DoesNotContain(texts, t => FunctionWordDecoys.Evaluate(LanguageProfiles.Normalize(t), language) is not null);
    }

    // Nor the spelling rule (session 41, round 23) on the languages it overturns.
    [Theory]
    [InlineData("it")]
    [InlineData("es")]
    [InlineData("gl")]
    [InlineData("pt")]
    [InlineData("ca")]
    [InlineData("fr")]
    [InlineData("de")]
    [InlineData("nl")]
    [InlineData("et")]
    [InlineData("fi")]
    [InlineData("ms")]
    [InlineData("id")]
    [InlineData("uk")]
    [InlineData("ru")]
    [InlineData("en")]
    [InlineData("hr")]
    [InlineData("bs")]
    [InlineData("sr")]
    [InlineData("sl")]
    [InlineData("cs")]
    [InlineData("sk")]
    [InlineData("pl")]
    public void SpellingDecoys_CoveredSentences_NeverTaken(string language)
    {
        var texts = LanguageProfiles.LoadCorpus()[language]
            .Concat(TestData.HeldOutFiles.SelectMany(f => TestData.HeldOut(f)).Where(kv => kv.Key == language).SelectMany(kv => kv.Value))
            .Concat(TestData.Samples(language))
            .ToList();

        Assert.True(texts.Count > 200, $"{texts.Count} sentences");
        var taken = texts.Where(t => SpellingDecoys.Evaluate(LanguageProfiles.Normalize(t), language) is not null).ToList();
        Assert.True(taken.Count == 0, string.Join(" | ", taken));
    }

    // Spellings the answered language does not write (session 41, round 23): written for this test, not taken from an
    // evaluation set. With the rule off the detector answers the covered neighbour (seen failing before the rule).
    [Theory]
    [InlineData("fr", "pcd", "Ma sœur a mis s'cotte rouge pou l'fête d'dimanche.")]
    [InlineData("fr", "pcd", "Ch'est m'voésin qui m'a dit d'vnir à s'mason dmain au soir.")]
    [InlineData("de", "gsw", "Mini Muetter het für d Hochziit vill Ziit brucht.")]
    [InlineData("es", "ast", "Mi hermanu compró un cochi nuevu y lo lleva a tol mundu.")]
    [InlineData("sr", "isv", "Moj dom jest blizko velikogo parka i novogo mosta.")] // round 38
    public void Detect_SpellingsTheAnswerDoesNotWrite_UndeterminedWithTheDecoyAsRunnerUp(string neighbour, string decoy, string text)
    {
        var detector = TestData.DefaultDetector;

        Assert.Equal(neighbour, detector.WithLetterMixtures(false).Detect(text).Language);
        var detection = detector.Detect(text);
        Assert.Equal(LanguageDetection.Undetermined, detection.Language);
        Assert.Equal(decoy, detection.RunnerUp);
    }

    // Each kind of spelling, two words of it, for the language it overturns; one word is not enough, and the covered
    // language's own spellings are not taken (the exceptions each orthography writes).
    [Theory]
    [InlineData("it", "La mê fie e vuê no à voie di lâ.", "fur")]
    [InlineData("it", "Me patri travagghia tuttu lu jornu.", "scn")]
    [InlineData("it", "Sta 'ncopp' 'o tavulo, 'mpriestame 'o libbro.", "nap")]
    [InlineData("it", "Tgi ha fatg quai cun la tschigulatta?", "rm")]
    [InlineData("ca", "La filha de la vesina a de bèlas abelhas.", "oc")]
    [InlineData("es", "Kuando vienes a la kaza de mi ermano?", "lad")]
    [InlineData("gl", "Onte fun co meu primu ao mercadu.", "ast")]
    [InlineData("de", "Im Huus isch es vill z liislig.", "gsw")]
    [InlineData("nl", "Ich höb gister de gröts sjtad gezeen.", "li")]
    [InlineData("et", "Ma panõ raamatu lavva pääle ja tulõ kodo.", "vro")]
    [InlineData("id", "Abdi teu acan dahar, geus peuting.", "su")]
    [InlineData("pt", "La lhéngua de ls abós i l lhibro de la scola.", "mwl")]
    [InlineData("ca", "La chasa dal vischin ha ina chaussa nova.", "rm")]
    [InlineData("de", "Chunnsch morn au? Mir chönd es bitzli warte.", "gsw")]
    [InlineData("uk", "Мы были в школі, там было добрі.", "rue")]
    [InlineData("es", "Mi primu vieni el martis pola nochi.", "ext")]
    [InlineData("es", "La noche siempri es larga cuandu no duermi.", "ext")]
    [InlineData("it", "Io vide le photographias del nation.", "ia")]
    [InlineData("es", "Le station del telephono es lontan.", "ia")]
    [InlineData("en", "A wouldnae gang oot the nicht, it's awfy cauld.", "sco")]
    [InlineData("en", "He hasnae telt me, an he shouldnae hae done it.", "sco")]
    [InlineData("nl", "Waer gaet de weg naer de zee?", "zea")]
    [InlineData("nl", "Z'eit 'ier gisteren 'eel lang gewacht.", "zea")] // round 32: h dropped, written as an apostrophe
    // Round 38: Interslavic's y in a text answered as hr/bs/sr/sl, its -ogo genitive, its v where hr/bs/sr write u, its ě
    // after consonants Czech does not write it after and its y after soft consonants, its č, š, ž, v in a text answered as
    // Polish (Belarusian in Latin letters by its ŭ).
    [InlineData("hr", "Moj brat byl dobry učitelj.", "isv")]
    [InlineData("sl", "Tamo byl stary most.", "isv")]
    [InlineData("sr", "Dom velikogo brata je blizu novogo parka.", "isv")]
    [InlineData("bs", "Sestra živi v gradu blizu velikogo mosta.", "isv")]
    [InlineData("cs", "Lěto bylo dlouhé a cělý měsíc pršelo.", "isv")]
    [InlineData("cs", "Jutro čytaju knigu a večer pišy pisma.", "isv")]
    [InlineData("pl", "Včera byłem v domu i čytałem.", "isv")]
    [InlineData("pl", "Ja byŭ doma i pajšoŭ u horad, kudy ŭsie išli.", "be")]
    public void SpellingDecoys_TwoWordsOfASpelling_NameTheDecoy(string language, string text, string decoy)
    {
        Assert.Equal(decoy, SpellingDecoys.Evaluate(LanguageProfiles.Normalize(text), language)?.Language);
    }

    [Theory]
    [InlineData("it", "Tu sei più alto di me, e lui è giù in cortile con il menu.")]
    [InlineData("ca", "Alhora, l'inhàbil gerent va dir que no.")]
    [InlineData("fr", "Aujourd'hui, le prud'homme est venu à l'hôtel.")]
    [InlineData("de", "Wir waren auf Hawaii im Urlaub.")]
    [InlineData("nl", "De coördinatie van de reünie was goed geregeld.")]
    [InlineData("et", "Mu naine kaotas abielusõrmuse pärastlõunal.")]
    [InlineData("es", "Compré un kilo de tomates para la cena de hoy.")]
    [InlineData("pt", "Eu disse-lhe que lhes daria o livro.")]
    [InlineData("de", "Der Chef singt im Chor von China.")]
    [InlineData("es", "Tomé un taxi y luego fui al safari.")]
    [InlineData("es", "Aquí, el jabalí comió maní con ají.")]
    [InlineData("en", "The antennae of the yacht picked up the station.")]
    [InlineData("it", "Il mio smartfono e la stazione.")]
    [InlineData("nl", "Heeft-ie 'em gezien? Z'n auto's staan er, 't is 's avonds.")]
    [InlineData("hr", "Mnogo smo dugo čekali, a on je predugo spavao.")]
    [InlineData("cs", "Děti běží po městě a vědí, kde je tělocvična.")]
    [InlineData("cs", "Muži si koupili nože a ježí se jim vlasy.")]
    [InlineData("pl", "Wczoraj byłem w domu i czytałem książkę, było drogo.")]
    [InlineData("pl", "Nie widziałem nikogo, kogo znam.")]
    [InlineData("sk", "Na cyklistickú trasu išli muži z Nitry.")]
    public void SpellingDecoys_TheLanguagesOwnSpellings_NotTaken(string language, string text)
    {
        Assert.Null(SpellingDecoys.Evaluate(LanguageProfiles.Normalize(text), language));
    }
    // Round 28: a decoy's listed words and marked spellings counted together (DecoyWords), never on covered text: every
    // sentence of the tuning corpus, the held-out and development sets and the UDHR of the languages the two rules
    // overturn.
    [Theory]
    [InlineData("en")]
    [InlineData("es")]
    [InlineData("gl")]
    [InlineData("pt")]
    [InlineData("ca")]
    [InlineData("it")]
    [InlineData("nl")]
    [InlineData("hr")]
    [InlineData("bs")]
    [InlineData("sr")]
    [InlineData("sl")]
    [InlineData("cs")]
    [InlineData("sk")]
    public void DecoyWords_CoveredSentences_NeverTaken(string language)
    {
        var texts = LanguageProfiles.LoadCorpus()[language]
            .Concat(TestData.HeldOutFiles.SelectMany(f => TestData.HeldOut(f)).Where(kv => kv.Key == language).SelectMany(kv => kv.Value))
            .Concat(TestData.Samples(language))
            .ToList();

        Assert.True(texts.Count > 200, $"{texts.Count} sentences");
        var taken = texts.Where(t => DecoyWords.Evaluate(LanguageProfiles.Normalize(t), language) is not null).ToList();
        Assert.True(taken.Count == 0, string.Join(" | ", taken));
    }

    // One listed word and one marked spelling of the same decoy: neither rule alone takes the sentence (each needs two
    // words), together they do. Written for this test, not taken from an evaluation set; each read as the covered
    // neighbour before the round.
    [Theory]
    [InlineData("sco", "I thocht the bus wis late again this morning.")]
    [InlineData("sco", "She said she mightnae come, her man is awa.")]
    [InlineData("ia", "Mi hermano habeva comprado un telephono nuevo.")]
    [InlineData("ia", "Io habeva un question pro le professor.")]
    public void DecoyWords_OneListedWordAndOneSpelling_Undetermined(string decoy, string text)
    {
        var normalized = LanguageProfiles.Normalize(text);
        var detector = TestData.DefaultDetector;
        var neighbour = detector.WithLetterMixtures(false).Detect(text).Language;

        Assert.Contains(neighbour, LanguageCatalog.Covered);
        Assert.Null(FunctionWordDecoys.Evaluate(normalized, neighbour));
        Assert.Null(SpellingDecoys.Evaluate(normalized, neighbour));
        Assert.Equal(decoy, DecoyWords.Evaluate(normalized, neighbour)?.Language);
        Assert.Equal(LanguageDetection.Undetermined, detector.Detect(text).Language);
        Assert.Equal(decoy, detector.Detect(text).RunnerUp);
    }

    // Interslavic's etymological letters (ę, ų, å, ȯ; ě beside Croatian, Bosnian, Serbian, Slovenian) in two words.
    [Theory]
    [InlineData("Ja jesm opęt zabyl, gdě jest moj ključ.")]
    [InlineData("Naši prijatelji pojdųt v kino, a my ostanemo doma v sobě.")]
    public void SpellingDecoys_InterslavicLetters_Undetermined(string text)
    {
        var detector = TestData.DefaultDetector;

        Assert.Contains(detector.WithLetterMixtures(false).Detect(text).Language, new[] { "hr", "bs", "sr", "sl", "cs", "sk", "pl" });
        Assert.Equal(LanguageDetection.Undetermined, detector.Detect(text).Language);
        Assert.Equal("isv", detector.Detect(text).RunnerUp);
    }
}
