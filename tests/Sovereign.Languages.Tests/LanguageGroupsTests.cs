namespace Sovereign.Languages.Tests;

/// <summary>
/// The close groups (<c>hbs</c>, <c>msa</c>) and whether a detection decided its member, and an alias matching the
/// family when it did not (round 34: short everyday Bosnian and Croatian are right by member 70.7%, by group 97.8%).
/// </summary>
public sealed class LanguageGroupsTests
{
    [Theory]
    [InlineData("bs", "hbs")]
    [InlineData("hr", "hbs")]
    [InlineData("sr", "hbs")]
    [InlineData("cnr", "hbs")]
    [InlineData("ms", "msa")]
    [InlineData("id", "msa")]
    [InlineData("sl", null)]
    [InlineData("da", null)]
    [InlineData("gl", null)]
    [InlineData("und", null)]
    public void Of_EachCode_ItsMacrolanguageOrNone(string language, string? group)
    {
        Assert.Equal(group, LanguageGroups.Of(language));
        Assert.Equal(group, new LanguageDetection(language, 0.5, LanguageDetection.ByProfile).Group);
    }

    [Theory]
    // A member below its group's level: the group is named, the member is a guess.
    [InlineData("bs", 0.64, "Latn", false)]
    [InlineData("hr", 0.89, "Latn", false)]
    [InlineData("hr", 0.90, "Latn", true)]
    [InlineData("sr", 0.55, "Latn", false)]
    // Serbian in Cyrillic letters: the only member of hbs the detector reports in that script.
    [InlineData("sr", 0.55, "Cyrl", true)]
    [InlineData("ms", 0.79, "Latn", false)]
    [InlineData("id", 0.80, "Latn", true)]
    // Outside any group, any determined answer decides its language; und decides nothing.
    [InlineData("gl", 0.41, "Latn", true)]
    [InlineData("und", 0.30, "Latn", false)]
    public void MemberDecided_ByTheGroupsMeasuredLevel(string language, double confidence, string script, bool decided)
    {
        var detection = new LanguageDetection(language, confidence, LanguageDetection.ByProfile) { Script = script };

        Assert.Equal(decided, detection.MemberDecided);
        Assert.Equal(!decided && detection.Group is not null ? detection.Group : null, detection.UndecidedGroup);
    }

    // Round 36: text left und only because Bosnian, Croatian and Serbian split it among themselves (each near a third,
    // the group near all of it) names its group; no member is named, and no policy covers it, not even one naming the
    // group (und is never covered: fail closed). A tuning-corpus sentence (hr and sr write it alike). Failed on the old
    // code: the und answer named no group.
    [Fact]
    public void Detect_MembersSplitTheText_UndNamesTheGroup_AndNoPolicyCoversIt()
    {
        var detection = TestData.DefaultDetector.Detect("Pošalji mi poruku kad stigneš kući.");

        Assert.Equal(LanguageDetection.Undetermined, detection.Language);
        Assert.Equal(("hbs", "hbs", false), (detection.Group, detection.UndecidedGroup, detection.MemberDecided));
        Assert.Contains(detection.RunnerUp, new[] { "bs", "hr", "sr" });
        Assert.False(LanguageGroups.Covers(["hbs"], detection));
        Assert.False(LanguageGroups.Covers(["bs", "hr", "sr"], detection));

        // The level matters: above 1 no und names a group (the old behaviour).
        Assert.Null(TestData.DefaultDetector.WithUndeterminedGroupLevel(2).Detect("Pošalji mi poruku kad stigneš kući.").Group);
    }

    // Round 36: the level (0.9) was chosen on the tuning material (held-out 1-12 and 16) and the out-of-set sets, where
    // 0.4-0.8 named a group for Interslavic, Romani, Waray, Pangasinan or Madurese text (und, outside the set) and
    // 0.85-0.99 for none. Every und answer of a set outside the covered languages names no group, and on the held-out
    // sets every group an und answer names is the sentence's own (22 answers of held-out 1-36 and the tuning corpus).
    [Fact]
    public void Detect_UndNamingAGroup_OnlyForTheGroupsOwnText()
    {
        var detector = TestData.DefaultDetector;
        var outside = new[] { "decoys.txt", "afrikaans-dutch.txt" }
            .Concat(Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Data"), "out-of-set-*.txt").Select(Path.GetFileName).OfType<string>())
            .SelectMany(file => TestData.HeldOut(file).Where(kv => !detector.Languages.Contains(kv.Key)).SelectMany(kv => kv.Value))
            .Select(detector.Detect)
            .Where(d => d.Group is not null && !d.IsDetermined)
            .ToList();
        Assert.Empty(outside);

        var named = 0;
        var wrong = new List<string>();
        foreach (var (language, sentences) in TestData.HeldOutFiles.SelectMany(TestData.HeldOut))
        {
            foreach (var detection in sentences.Select(detector.Detect).Where(d => !d.IsDetermined && d.Group is not null))
            {
                named++;
                if (detection.Group != LanguageGroups.Of(language))
                {
                    wrong.Add($"{language}: {detection.Group}");
                }
            }
        }

        Assert.Empty(wrong);
        Assert.True(named >= 19, $"{named} und answers of the held-out sets name their group");
    }

    [Fact]
    public void Detect_EveryAnswer_CarriesGroupAndDecision()
    {
        var detector = TestData.DefaultDetector;
        // Written for this test (not from an evaluation set): Croatian, Serbian in Cyrillic, Thai.
        var croatian = detector.Detect("Jučer sam kupila novi kišobran jer je stari puknuo na vjetru.");
        Assert.Equal("hbs", croatian.Group);
        Assert.Equal(croatian.Confidence >= LanguageGroups.SerboCroatianDecidedAt, croatian.MemberDecided);

        var cyrillic = detector.Detect("Јуче смо купили нови кишобран јер је стари пукао на ветру.");
        Assert.Equal(("sr", "hbs", true), (cyrillic.Language, cyrillic.Group, cyrillic.MemberDecided));

        var thai = detector.Detect("เมื่อวานฉันซื้อร่มใหม่เพราะอันเก่าพังเพราะลม");
        Assert.Equal(("th", null, true), (thai.Language, thai.Group, thai.MemberDecided));
    }

    private static readonly LanguageAlias Balkan = new("auto", "general-8b",
    [
        new RouteCandidate("yugo-gpt", ["hr"]),
        new RouteCandidate("bertic", ["bs", "sr"]),
        new RouteCandidate("sea-lion-9b", ["id"]),
    ]);

    private static LanguageDetection Read(string language, double confidence) =>
        new(language, confidence, LanguageDetection.ByProfile) { Script = "Latn" };

    [Fact]
    public void Choose_Family_UndecidedMember_TakesTheFirstCandidateOfAnyMember_AndSaysSo()
    {
        // Bosnian at 0.64 is a coin toss with Croatian: the family's most preferred model serves it, whichever member
        // the detector guessed.
        var choice = LanguageRouter.Choose(Balkan, Read("bs", 0.64), _ => true, match: LanguageMatch.Family);

        Assert.Equal("yugo-gpt", choice.ModelId);
        Assert.Equal(("bs", "hbs"), (choice.Language, choice.UndecidedGroup));
        Assert.Contains("yugo-gpt serves 'hbs' (member 'bs' undecided) (preference 1)", choice.Reason, StringComparison.Ordinal);
        Assert.Equal("yugo-gpt", LanguageRouter.Choose(Balkan, Read("sr", 0.55), _ => true, match: LanguageMatch.Family).ModelId);
    }

    // Round 35: a candidate declared for a member serves that member only once the detector decided it (fail closed).
    // Before, exact matched the guess: Bosnian at 0.64 went to the model declared for bs (bertic), a coin toss away
    // from a Croatian answer that would have gone to yugo-gpt.
    [Fact]
    public void Choose_Exact_UndecidedMember_NoMemberCandidateServesIt_TheAliasDefault()
    {
        var choice = LanguageRouter.Choose(Balkan, Read("bs", 0.64), _ => true);

        Assert.Equal("general-8b", choice.ModelId);
        Assert.Equal("hbs", choice.UndecidedGroup);
        Assert.Contains("no candidate serves 'hbs' (member 'bs' undecided); alias default general-8b", choice.Reason, StringComparison.Ordinal);
        Assert.Equal("bertic", LanguageRouter.Choose(Balkan, Read("bs", 0.95), _ => true).ModelId);
    }

    // A candidate declared for the group, or for every member the detector reports, serves an undecided member under
    // exact matching too: whichever member the text is, the candidate serves it. A group declared also serves a decided
    // member.
    [Fact]
    public void Choose_Exact_GroupOrEveryMemberDeclared_ServesTheUndecidedMember()
    {
        var byGroup = new LanguageAlias("auto", "general-8b", [new RouteCandidate("id-only", ["id"]), new RouteCandidate("balkan-7b", ["HBS"]), new RouteCandidate("sea-lion-9b", ["msa"])]);
        var byMembers = new LanguageAlias("auto", "general-8b", [new RouteCandidate("yugo-gpt", ["hr"]), new RouteCandidate("bertic", ["sr", "hr", "bs"])]);

        var choice = LanguageRouter.Choose(byGroup, Read("bs", 0.64), _ => true);
        Assert.Equal("balkan-7b", choice.ModelId);
        Assert.Contains("balkan-7b serves 'hbs' (member 'bs' undecided) (preference 2)", choice.Reason, StringComparison.Ordinal);
        Assert.Equal("balkan-7b", LanguageRouter.Choose(byGroup, Read("hr", 0.97), _ => true).ModelId);
        Assert.Equal("sea-lion-9b", LanguageRouter.Choose(byGroup, Read("id", 0.7), _ => true).ModelId);
        Assert.Equal("id-only", LanguageRouter.Choose(byGroup, Read("id", 0.85), _ => true).ModelId);
        Assert.Equal("bertic", LanguageRouter.Choose(byMembers, Read("hr", 0.7), _ => true).ModelId);
        Assert.Equal("yugo-gpt", LanguageRouter.Choose(byMembers, Read("hr", 0.95), _ => true).ModelId);
    }

    [Theory]
    [InlineData("hr", "hr", 0.95, true)]
    [InlineData("hr", "hr", 0.70, false)]
    [InlineData("hr", "bs", 0.95, false)]
    [InlineData("hbs", "bs", 0.60, true)]
    [InlineData("hbs", "sr", 0.99, true)]
    [InlineData("hbs", "ms", 0.99, false)]
    [InlineData("bs hr sr", "hr", 0.55, true)]
    [InlineData("bs hr", "hr", 0.55, false)]
    [InlineData("msa", "id", 0.50, true)]
    [InlineData("ms", "ms", 0.79, false)]
    [InlineData("ms id", "ms", 0.79, true)]
    [InlineData("th", "th", 0.60, true)]
    [InlineData("hbs msa th", "und", 0.30, false)]
    public void Covers_APolicyNamingAMemberOrItsGroup(string codes, string language, double confidence, bool covered)
    {
        var policy = codes.Split(' ').Select(c => LanguageGroups.TryPolicyCode(c, out var code) ? code : c).ToHashSet(StringComparer.Ordinal);

        Assert.Equal(covered, LanguageGroups.Covers(policy, Read(language, confidence)));
    }

    [Theory]
    [InlineData("hbs", "hbs")]
    [InlineData(" MSA ", "msa")]
    [InlineData("tl", "fil")]
    [InlineData("HR", "hr")]
    [InlineData("cnr", null)]
    [InlineData("serbo-croatian", null)]
    [InlineData("", null)]
    public void TryPolicyCode_LanguagesAndGroups(string code, string? canonical)
    {
        Assert.Equal(canonical is not null, LanguageGroups.TryPolicyCode(code, out var found));
        Assert.Equal(canonical ?? "", found);
        Assert.Equal(["bs", "hr", "sr"], LanguageGroups.ReportedMembers("hbs"));
    }

    [Fact]
    public void Choose_Family_DecidedMember_StillExact()
    {
        var choice = LanguageRouter.Choose(Balkan, Read("bs", 0.95), _ => true, match: LanguageMatch.Family);

        Assert.Equal("bertic", choice.ModelId);
        Assert.Null(choice.UndecidedGroup);
    }

    [Fact]
    public void Choose_Family_UndecidedMalay_TakesTheIndonesianModel_AndAPolicyRefusalStillHolds()
    {
        Assert.Equal("sea-lion-9b", LanguageRouter.Choose(Balkan, Read("ms", 0.6), _ => true, match: LanguageMatch.Family).ModelId);
        Assert.Equal("general-8b", LanguageRouter.Choose(Balkan, Read("ms", 0.6), _ => true).ModelId);

        // Family widens the languages matched, never the models allowed: fail closed.
        var refused = LanguageRouter.Choose(Balkan, Read("ms", 0.6), id => id != "sea-lion-9b" && id != "general-8b", match: LanguageMatch.Family);
        Assert.Null(refused.ModelId);
        Assert.Contains("not allowed by policy: sea-lion-9b", refused.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Choose_Family_LanguageOutsideAGroup_Unchanged()
    {
        var choice = LanguageRouter.Choose(Balkan, Read("sl", 0.5), _ => true, match: LanguageMatch.Family);

        Assert.Equal("general-8b", choice.ModelId);
        Assert.Contains("no candidate serves 'sl'", choice.Reason, StringComparison.Ordinal);
    }
}
