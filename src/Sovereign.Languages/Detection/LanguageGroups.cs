namespace Sovereign.Languages;

/// <summary>
/// The close groups whose members short everyday text often cannot tell apart, named by their ISO 639-3
/// macrolanguage: <c>hbs</c> (Serbo-Croatian: Bosnian, Croatian, Serbian, Montenegrin) and <c>msa</c> (Malay:
/// Malay, Indonesian). A detection in one of them names its group, and whether its member was decided
/// (<see cref="LanguageDetection.MemberDecided"/>): the member's confidence reached the level at which the group's
/// members were measured to be as reliable as any other language's (docs/benchmarks.md, issue 11's rounds 33-34).
/// </summary>
/// <remarks>
/// Danish/Norwegian/Swedish, the Iberian four and Czech/Slovak are close groups of the detector too, but each member
/// is a language of its own that the held-out sets tell apart (98.6-99.2% by member), and ISO names no macrolanguage
/// for them: they have no group here.
/// </remarks>
public static class LanguageGroups
{
    /// <summary>Serbo-Croatian (ISO 639-3 macrolanguage <c>hbs</c>): Bosnian, Croatian, Serbian, Montenegrin.</summary>
    public const string SerboCroatian = "hbs";

    /// <summary>Malay (ISO 639-3 macrolanguage <c>msa</c>): Malay, Indonesian.</summary>
    public const string Malay = "msa";

    /// <summary>
    /// The confidence at which an <c>hbs</c> member counts as decided: on the twenty held-out sets never tuned on
    /// before round 33 (833 member answers to 852 Latin-script sentences), answers at 0.9 or more were 98.4% right by
    /// member (314 of 319), below it 56%.
    /// </summary>
    public const double SerboCroatianDecidedAt = 0.9;

    /// <summary>
    /// The confidence at which an <c>msa</c> member counts as decided, chosen as <see cref="SerboCroatianDecidedAt"/>
    /// was, on the same sets (held-out 13-15 and 17-33, 484 Malay and Indonesian answers, in round 34 before held-out 34
    /// was read): at 0.8 or more 99.0% right by member (407 of 411), below it 83.6%.
    /// </summary>
    public const double MalayDecidedAt = 0.8;

    private static readonly Dictionary<string, string> GroupByMember = new(StringComparer.Ordinal)
    {
        ["bs"] = SerboCroatian,
        ["hr"] = SerboCroatian,
        ["sr"] = SerboCroatian,
        ["cnr"] = SerboCroatian,
        ["ms"] = Malay,
        ["id"] = Malay,
    };

    /// <summary>The groups and their members (as the detector names them), in code order.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> Members { get; } = GroupByMember
        .GroupBy(m => m.Value, StringComparer.Ordinal)
        .ToDictionary(g => g.Key, g => (IReadOnlyList<string>)[.. g.Select(m => m.Key).Order(StringComparer.Ordinal)], StringComparer.Ordinal);

    /// <summary>The group a language code belongs to (<c>hbs</c>, <c>msa</c>), or null.</summary>
    public static string? Of(string? language) =>
        language is not null && GroupByMember.TryGetValue(language, out var group) ? group : null;

    /// <summary>The members of a group the detector reports (in <see cref="LanguageCatalog"/>): <c>hbs</c> is
    /// <c>bs, hr, sr</c> (Montenegrin is not detected), <c>msa</c> is <c>id, ms</c>; empty for any other code.</summary>
    public static IReadOnlyList<string> ReportedMembers(string? group) =>
        group is not null && Members.TryGetValue(group, out var members) ? [.. members.Where(m => LanguageCatalog.TryGet(m, out _))] : [];

    /// <summary>
    /// A code a policy may name (a model's or an alias candidate's languages, a plan's character-equivalent
    /// languages): a language the detector knows, as it names it (<c>tl</c> is <c>fil</c>; any case), or a group
    /// (<c>hbs</c>, <c>msa</c>; any case). False for anything else.
    /// </summary>
    public static bool TryPolicyCode(string? code, out string canonical)
    {
        canonical = "";
        if (string.IsNullOrWhiteSpace(code))
        {
            return false;
        }

        var trimmed = code.Trim();
        if (LanguageCatalog.TryGet(trimmed, out var language))
        {
            canonical = language.Code;
            return true;
        }

        var lower = trimmed.ToLowerInvariant();
        if (Members.ContainsKey(lower))
        {
            canonical = lower;
            return true;
        }

        return false;
    }

    /// <summary>
    /// Whether a policy's languages (<see cref="TryPolicyCode"/>'s canonical codes) cover a detected language. A group
    /// named covers each of its members, decided or not. A member named covers that member only when the detector
    /// decided it: text whose member is undecided (<paramref name="undecidedGroup"/>, <see cref="LanguageDetection.UndecidedGroup"/>)
    /// is covered only by its group or by a list naming every member the detector reports (then the guess cannot
    /// matter); a policy naming <c>sr</c> alone does not apply to text read as Serbian at 0.7 (fail closed: a coin toss
    /// between members neither routes nor waives). <c>und</c> is never covered.
    /// </summary>
    public static bool Covers(IReadOnlyCollection<string> codes, string? language, string? undecidedGroup)
    {
        ArgumentNullException.ThrowIfNull(codes);
        if (language is null || language == LanguageDetection.Undetermined)
        {
            return false;
        }

        if (Of(language) is { } group && codes.Contains(group))
        {
            return true;
        }

        if (undecidedGroup is not null)
        {
            var members = ReportedMembers(undecidedGroup);
            return members.Count > 0 && members.All(codes.Contains);
        }

        return codes.Contains(language);
    }

    /// <summary>Whether a policy's languages cover a detection (<see cref="Covers(IReadOnlyCollection{string}, string?, string?)"/>).</summary>
    public static bool Covers(IReadOnlyCollection<string> codes, LanguageDetection detection)
    {
        ArgumentNullException.ThrowIfNull(detection);
        return Covers(codes, detection.Language, detection.UndecidedGroup);
    }

    /// <summary>Whether two language codes are members of one group (a code is never in a group with itself only).</summary>
    public static bool SameGroup(string first, string second) =>
        Of(first) is { } group && group == Of(second);

    /// <summary>
    /// Whether a detection decided its member: a language outside any group always has (when determined); a group
    /// member has when its confidence reached the group's level, or when its script is one only that member writes
    /// among those the detector reports (Serbian in Cyrillic letters); <c>und</c> never has.
    /// </summary>
    public static bool IsMemberDecided(LanguageDetection detection)
    {
        ArgumentNullException.ThrowIfNull(detection);
        if (!detection.IsDetermined)
        {
            return false;
        }

        return Of(detection.Language) switch
        {
            null => true,
            SerboCroatian => detection.Script == "Cyrl" || detection.Confidence >= SerboCroatianDecidedAt,
            Malay => detection.Confidence >= MalayDecidedAt,
            _ => true,
        };
    }
}
