namespace Sovereign.Languages;

/// <summary>What the detector concluded about a text.</summary>
/// <param name="Language">ISO 639-1 code where one exists, else ISO 639-3 (e.g. <c>fil</c>); <see cref="Undetermined"/>
/// (<c>und</c>) when the text cannot be decided.</param>
/// <param name="Confidence">0..1. For a decided language, how sure the detector is (the script's share of the letters
/// times the probability of the language among the candidates). For <c>und</c>, the confidence that made it <c>und</c>:
/// that of the best language the detector may name (configured), which was too low, too close to the next, or behind a
/// language outside the set; what a rule that placed the text outside the set left to the language it overruled; 0
/// when there was nothing to go on. Never a decoy's: the best candidate, which may be one, is the
/// <see cref="RunnerUp"/>, with its own confidence.</param>
/// <param name="Method">Which stage decided (or gave up): <c>script</c>, <c>lingua</c>, <c>profile</c> or
/// <c>heuristic</c>.</param>
public sealed record LanguageDetection(string Language, double Confidence, string Method)
{
    /// <summary>The code for "cannot be decided" (ISO 639-2/3 <c>und</c>).</summary>
    public const string Undetermined = "und";

    /// <summary>The script decided: the text is written in a script that one configured language owns.</summary>
    public const string ByScript = "script";

    /// <summary>Lingua's n-gram models decided among the languages of the text's script, and the profiles agreed.</summary>
    public const string ByLingua = "lingua";

    /// <summary>The language profiles (built from the tuning corpus) decided, where Lingua is weak or has no model: a
    /// close group (Malay/Indonesian, Bosnian/Croatian/Serbian, Danish/Norwegian/Swedish, Spanish/Galician/Portuguese/
    /// Catalan, Czech/Slovak), Galician or Tetum, or a short text Lingua misread.</summary>
    public const string ByProfile = "profile";

    /// <summary>A rule decided: Maltese letters and articles, or the Hindi/Marathi function words.</summary>
    public const string ByHeuristic = "heuristic";

    /// <summary>The dominant script, as an ISO 15924 code (<c>Latn</c>, <c>Cyrl</c>, <c>Jpan</c>, ...); <c>Zyyy</c> when the
    /// text has no letters.</summary>
    public string Script { get; init; } = "Zyyy";

    /// <summary>The next most likely language (or, for <c>und</c>, the best candidate); null when there was none.</summary>
    public string? RunnerUp { get; init; }

    /// <summary>The probability of <see cref="RunnerUp"/>, 0..1.</summary>
    public double RunnerUpConfidence { get; init; }

    /// <summary>Whether a language was decided.</summary>
    public bool IsDetermined => Language != Undetermined;

    /// <summary>The close group <see cref="Language"/> belongs to (<c>hbs</c> for Bosnian, Croatian and Serbian,
    /// <c>msa</c> for Malay and Indonesian; <see cref="LanguageGroups"/>), or null: derived from the language, so
    /// detections compare by what the detector answered. For <c>und</c>, <see cref="UndeterminedGroup"/>.</summary>
    public string? Group => LanguageGroups.Of(Language) ?? (IsDetermined ? null : UndeterminedGroup);

    /// <summary>For <c>und</c> only: the close group whose members held the text together when it was left undecided
    /// only because they were too close to one another (Bosnian, Croatian and Serbian splitting it, none of them at the
    /// minimum confidence while the group is well over it); null otherwise. Ignored for a determined language, whose
    /// group is derived from it. The text is the group's; no member is named (round 36).</summary>
    public string? UndeterminedGroup { get; init; }

    /// <summary>Whether the member of <see cref="Group"/> was decided (<see cref="LanguageGroups.IsMemberDecided"/>):
    /// true for any determined language outside a group; for a member, only at its group's measured confidence; false
    /// for <c>und</c>. When false for a group member, the text is the group's and which member is a guess.</summary>
    public bool MemberDecided => LanguageGroups.IsMemberDecided(this);

    /// <summary>The group when the member was not decided (what routing, headers and audit name instead of a guess),
    /// else null.</summary>
    public string? UndecidedGroup => Group is { } group && !MemberDecided ? group : null;

    internal static LanguageDetection None(string method) => new(Undetermined, 0, method);
}
