namespace Sovereign.Languages;

/// <summary>What the detector concluded about a text.</summary>
/// <param name="Language">ISO 639-1 code where one exists, else ISO 639-3 (e.g. <c>fil</c>); <see cref="Undetermined"/>
/// (<c>und</c>) when the text cannot be decided.</param>
/// <param name="Confidence">0..1: the script's share of the letters, Lingua's confidence, or the heuristic's; 0 when
/// undetermined.</param>
/// <param name="Method">Which stage decided (or gave up): <c>script</c>, <c>lingua</c> or <c>heuristic</c>.</param>
public sealed record LanguageDetection(string Language, double Confidence, string Method)
{
    /// <summary>The code for "cannot be decided" (ISO 639-2/3 <c>und</c>).</summary>
    public const string Undetermined = "und";

    /// <summary>The script decided: the text is written in a script that one configured language owns.</summary>
    public const string ByScript = "script";

    /// <summary>Lingua's n-gram models decided among the configured languages of the text's script.</summary>
    public const string ByLingua = "lingua";

    /// <summary>A rule decided: Maltese letters and function words, or the marker words that tell apart languages
    /// Lingua confuses (Indonesian/Malay, Hindi/Marathi).</summary>
    public const string ByHeuristic = "heuristic";

    /// <summary>Whether a language was decided.</summary>
    public bool IsDetermined => Language != Undetermined;

    internal static LanguageDetection None(string method) => new(Undetermined, 0, method);
}
